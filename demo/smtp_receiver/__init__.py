"""An SMTP server on loopback for the demo and the end-to-end tests: it stores every message it accepts."""

"""A Slack incoming-webhook stand-in for the demo and the end-to-end tests."""

"""A StatsD listener on loopback UDP for the demo: it writes every datagram it receives to a file."""

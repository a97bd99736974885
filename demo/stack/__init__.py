"""Local stack: PostgreSQL, two TLS Docker daemons, Spark standalone, a Slack webhook stand-in and Airflow 3.

`python -m demo.stack up|down|status|env` (the Makefile's demo-up/demo-down call this).
"""

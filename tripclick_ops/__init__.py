"""Operating tripclick_daily_pipeline from outside Airflow: the REST client (apache-airflow-client), the
happy-path outcome checks, and the runbook's commands (`python -m tripclick_ops --help`)."""

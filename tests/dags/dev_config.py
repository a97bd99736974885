"""Development Connections and Variables, given as environment variables the way Airflow reads them.

Hosts here are reserved `.invalid` names or loopback ports that nothing listens on: these tests
check what the DAG builds, not that anything answers.
"""

from __future__ import annotations

import json

DEV_CONNECTIONS = {
    "AIRFLOW_CONN_DOCKER_SERVER0": "tcp://server0.tripclick.invalid:2376",
    "AIRFLOW_CONN_DOCKER_SERVER1": "tcp://server1.tripclick.invalid:2376",
    "AIRFLOW_CONN_SPARK_CLUSTER": "spark://spark-master.tripclick.invalid:7077",
    "AIRFLOW_CONN_SLACK_WEBHOOK": json.dumps(
        {"conn_type": "slackwebhook", "password": "https://hooks.slack.invalid/services/T000/B000/XXXX"}
    ),
}

DEV_VARIABLES = {
    "AIRFLOW_VAR_TRIPCLICK_LAKE_ROOT": "s3a://tripclick-lake-dev",
    "AIRFLOW_VAR_TRIPCLICK_KAFKA_BROKERS": "kafka-0.tripclick.invalid:9092,kafka-1.tripclick.invalid:9092",
    "AIRFLOW_VAR_TRIPCLICK_DATA_DIR_SERVER0": "/srv/tripclick/server0",
    "AIRFLOW_VAR_TRIPCLICK_DATA_DIR_SERVER1": "/srv/tripclick/server1",
    "AIRFLOW_VAR_TRIPCLICK_SPARK_DRIVER_HOST": "10.0.0.10",
}

DEV_ENV = {**DEV_CONNECTIONS, **DEV_VARIABLES}

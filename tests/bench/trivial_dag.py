"""Baseline for the parse benchmark: a DAG that imports only airflow.sdk."""

from airflow.sdk import DAG

with DAG(dag_id="trivial", schedule=None, tags=["bench"], doc_md="Benchmark baseline.") as dag:
    pass

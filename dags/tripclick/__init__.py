"""Helpers for the tripclick_daily_pipeline DAG.

Listed in ``dags/.airflowignore`` so the DAG processor never parses it as DAG files.
Everything that needs configuration, a network or a heavy import does so when a task
runs, not when the DAG file is parsed.
"""

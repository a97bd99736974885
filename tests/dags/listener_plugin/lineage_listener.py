"""A plugin with a task listener, as OpenLineage and other lineage tools install one."""

from __future__ import annotations

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin


class _TaskListener:
    @hookimpl
    def on_task_instance_running(self, previous_state, task_instance):
        pass


class LineageListenerPlugin(AirflowPlugin):
    name = "lineage_listener"
    listeners = [_TaskListener()]

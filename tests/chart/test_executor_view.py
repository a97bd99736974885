"""The KubernetesExecutor's view: the pod it would create for each task of the DAG.

Each pod is built by the cncf-kubernetes provider's own PodGenerator from the rendered pod template
(production overlay) and the task's executor_config pod override, then validated against Kubernetes
1.30-1.33 in strict mode. Needs the official chart's source (full render) and the DAG's
dags/tripclick/pod_overrides.py.
"""

from __future__ import annotations

import json

import jmespath
import pytest
import yaml

from tests.chart import chartlib

# discard_partial_day runs Spark in local mode but reads the lake and fetches the s3a connector like the others.
SPARK_TASKS = {"streaming_to_silver", "batch_to_bronze", "etl_to_gold", "discard_partial_day"}
DOCKER_TASKS = {"preflight", "producer_server0", "producer_server1"}
TLS_MOUNT = "/opt/airflow/secrets/docker-tls"


def build_pods(full_renders, dag, tmp_path) -> dict[str, dict]:
    """task_id -> the pod (as the API would receive it) the executor creates for it."""
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
    from kubernetes.client import ApiClient

    objs = chartlib.objects(full_renders["base+k3s-ec2"])
    template_file = tmp_path / "pod_template_file.yaml"
    template_file.write_text(yaml.safe_dump(chartlib.pod_template(objs)))
    base_pod = PodGenerator.deserialize_model_file(str(template_file))
    pods = {}
    for task in dag.tasks:
        override = (task.executor_config or {}).get("pod_override")
        pod = PodGenerator.construct_pod(
            dag_id=dag.dag_id,
            task_id=task.task_id,
            pod_id=f"{dag.dag_id}-{task.task_id}".replace("_", "-"),
            try_number=1,
            kube_image="tripclick-airflow:3.3.2-1",
            date=None,
            run_id="scheduled__2020-10-01T15:00:00+00:00",
            args=["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", "{}"],
            pod_override_object=override,
            base_worker_pod=base_pod,
            namespace=chartlib.NAMESPACE,
            scheduler_job_id="1",
        )
        pods[task.task_id] = ApiClient().sanitize_for_serialization(pod)
    return pods


@pytest.fixture(scope="module")
def task_pods(full_renders, pipeline_dag, tmp_path_factory):
    return build_pods(full_renders, pipeline_dag, tmp_path_factory.mktemp("executor"))


def _base(pod: dict) -> dict:
    return jmespath.search("spec.containers[?name=='base'] | [0]", pod)


def test_every_task_has_a_pod_override(pipeline_dag):
    missing = [t.task_id for t in pipeline_dag.tasks if not (t.executor_config or {}).get("pod_override")]
    assert missing == []
    assert {t.task_id for t in pipeline_dag.tasks} >= SPARK_TASKS | DOCKER_TASKS


@pytest.mark.parametrize("kube", chartlib.KUBE_VERSIONS)
def test_every_task_pod_validates_strictly(task_pods, kube):
    chartlib.validate_strictly([pod | {"__source": f"task {task_id}"} for task_id, pod in task_pods.items()], kube)


def test_spark_tasks_run_the_driver_on_the_node_network(task_pods):
    from tests.chart import pod_files

    for task_id in SPARK_TASKS:
        pod = task_pods[task_id]
        assert pod["spec"]["hostNetwork"] is True, task_id
        assert pod["spec"]["dnsPolicy"] == "ClusterFirstWithHostNet", task_id
        env = {e["name"]: e for e in _base(pod)["env"]}
        assert env["SPARK_DRIVER_HOST"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}, task_id
        # The pod template's env and envFrom (the Connections Secret) survive the override's merge.
        assert "AIRFLOW_CONN_SPARK_CLUSTER" in pod_files.env_names(_base(pod)), task_id
    for task_id in set(task_pods) - SPARK_TASKS:
        assert not task_pods[task_id]["spec"].get("hostNetwork"), f"{task_id} must stay on the pod network"


def test_docker_tasks_see_the_tls_material_once(task_pods):
    from tests.chart import pod_files

    for task_id, pod in task_pods.items():
        names = [v["name"] for v in pod["spec"]["volumes"]]
        assert len(names) == len(set(names)), f"{task_id}: duplicate volume names {names}"
        mounts = jmespath.search(f"volumeMounts[?mountPath=='{TLS_MOUNT}']", _base(pod))
        assert mounts == [{"name": "docker-tls", "mountPath": TLS_MOUNT, "readOnly": True}], task_id
        env = pod_files.env_names(_base(pod))
        assert {"AIRFLOW_CONN_DOCKER_SERVER0", "AIRFLOW_CONN_DOCKER_SERVER1", "AIRFLOW_CONN_SLACK_WEBHOOK"} <= env


def test_task_resources_come_from_the_task_policy(task_pods, full_renders):
    """Each task pod has its stage's size from the task policy the release gives the DAG, not the template's."""
    from tripclick.policy import POLICY_VARIABLE, merge_policy

    objs = chartlib.objects(full_renders["base+k3s-ec2"])
    policy = merge_policy(json.loads(chartlib.variables(objs).get(f"AIRFLOW_VAR_{POLICY_VARIABLE.upper()}", "{}")))
    template = _base(chartlib.pod_template(objs))["resources"]
    stage = {"producer_server0": "producer", "producer_server1": "producer", "preflight": "preflight"}
    stage |= {job: job for job in SPARK_TASKS}
    assert any(policy[name].pod != template for name in stage.values()), "policy and template must differ somewhere"
    for task_id, name in stage.items():
        assert _base(task_pods[task_id])["resources"] == policy[name].pod, task_id
    for pod in task_pods.values():
        assert pod["metadata"]["labels"]["component"] == "worker"
        assert pod["metadata"]["labels"]["release"] == "tripclick"
        assert jmespath.search("spec.initContainers[].name", pod) == ["git-sync-init"]


def test_every_file_a_task_reads_is_in_its_pod(task_pods, full_renders):
    """With the production overlays' Variables, each path a task opens (Spark application, Docker TLS
    files, ...) is in the image or under a volume of the pod the executor builds for it."""
    from tests.chart import pod_files

    values = pod_files.production_variables(chartlib.objects(full_renders["base+k3s-ec2"]))
    missing = []
    for task_id, pod in sorted(task_pods.items()):
        for path in pod_files.task_reads(task_id, values):
            reason = pod_files.why_missing(pod, path)
            if reason:
                missing.append(f"{task_id}: {path}: {reason}")
    assert missing == []
    read = {task_id for task_id in task_pods if pod_files.task_reads(task_id, values)}
    assert read >= SPARK_TASKS | DOCKER_TASKS, "the check must see the Spark applications and the TLS files"


def test_spark_tasks_fetch_connectors_into_a_scratch_volume(task_pods):
    """spark-submit --packages writes the connectors through Ivy into the folder the task names, which
    is an emptyDir of the pod (sized), not the image."""
    for task_id in SPARK_TASKS:
        pod = task_pods[task_id]
        env = {e["name"]: e.get("value") for e in _base(pod)["env"]}
        ivy = env["TRIPCLICK_SPARK_IVY_DIR"]
        (mount,) = jmespath.search(f"volumeMounts[?mountPath=='{ivy}']", _base(pod))
        assert not mount.get("readOnly"), task_id
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
        assert volume["emptyDir"]["sizeLimit"], task_id
    for task_id in set(task_pods) - SPARK_TASKS:
        assert "TRIPCLICK_SPARK_IVY_DIR" not in {e["name"] for e in _base(task_pods[task_id])["env"]}, task_id

"""Per-task KubernetesExecutor pod overrides, kept in one place.

- Spark tasks run the client-mode driver, which executors on the Spark cluster call back: they
  use the node's network (hostNetwork) and learn the node's IP from the downward API as
  ``SPARK_DRIVER_HOST``. No other task gets host networking. discard_partial_day (Spark in local
  mode) needs no callback, but it reads the lake and fetches the s3a connector as they do, so it
  gets their pod and with it their network paths.
- Spark tasks also get a scratch volume for the connectors spark-submit fetches (``--packages``):
  ``spark.jars.ivy`` points there through ``TRIPCLICK_SPARK_IVY_DIR``, and it goes with the pod.
- Every task gets requests and limits from the task policy, so the 15:00 peak (two producers and
  the streaming driver at once) is sized, not guessed.
- The Docker TLS client material is NOT added here: the chart mounts the ``tripclick-docker-tls``
  Secret into the pod template (values/base.yaml, workers.extraVolumes), at the path that Variable
  ``tripclick_docker_tls_dir`` defaults to. Adding it twice would give the pod two volumes of
  one name, which the API server rejects.

Only the executor reads these; the LocalExecutor of `make demo` ignores them.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import models as k8s

from tripclick.config import DRIVER_HOST_ENV, SPARK_IVY_DIR_ENV

# The pod template's task container is named "base"; overrides merge into it by that name.
TASK_CONTAINER = "base"
SPARK_IVY_VOLUME = "spark-ivy"
SPARK_IVY_DIR = "/opt/airflow/spark-ivy"
# hadoop-aws's AWS SDK bundle alone is over 500 MB; the Kafka connector and Ivy's metadata add little.
SPARK_IVY_SIZE = "2Gi"


def _resources(pod: dict[str, Any]) -> k8s.V1ResourceRequirements:
    return k8s.V1ResourceRequirements(requests=pod.get("requests"), limits=pod.get("limits"))


def task_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """executor_config for an ordinary task: its resources only."""
    return {
        "pod_override": k8s.V1Pod(
            spec=k8s.V1PodSpec(containers=[k8s.V1Container(name=TASK_CONTAINER, resources=_resources(pod))])
        )
    }


def spark_driver_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """executor_config for a Spark task: host networking, the node IP as the driver host, an Ivy cache."""
    node_ip = k8s.V1EnvVar(
        name=DRIVER_HOST_ENV,
        value_from=k8s.V1EnvVarSource(field_ref=k8s.V1ObjectFieldSelector(field_path="status.hostIP")),
    )
    ivy_dir = k8s.V1EnvVar(name=SPARK_IVY_DIR_ENV, value=SPARK_IVY_DIR)
    return {
        "pod_override": k8s.V1Pod(
            spec=k8s.V1PodSpec(
                host_network=True,
                # Keep cluster DNS (the api-server, S3 endpoints) reachable on the host network.
                dns_policy="ClusterFirstWithHostNet",
                containers=[
                    k8s.V1Container(
                        name=TASK_CONTAINER,
                        env=[node_ip, ivy_dir],
                        resources=_resources(pod),
                        volume_mounts=[k8s.V1VolumeMount(name=SPARK_IVY_VOLUME, mount_path=SPARK_IVY_DIR)],
                    )
                ],
                volumes=[
                    k8s.V1Volume(name=SPARK_IVY_VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=SPARK_IVY_SIZE))
                ],
            )
        )
    }

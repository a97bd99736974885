"""image/Dockerfile's own steps, built on the Debian stand-in base and run.

What this proves and what it does not is written in docs/testing.md: the Dockerfile's
instructions work (apt JRE as root, back to uid 50000, pip from requirements.txt keeping the Airflow pin,
labels), and the result runs Airflow, Java, spark-submit and imports the DAG folder. It does not prove the
same on the official base (Python 3.12, its preinstalled packages), which cannot be pulled here.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess

from tests.image import standin

PIN_LINE = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def pins() -> dict[str, str]:
    found = {}
    for line in (standin.REPO / "requirements.txt").read_text().splitlines():
        match = PIN_LINE.match(line.strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_airflow_in_the_image_is_the_pinned_version(run_in_image):
    done = run_in_image("airflow", "version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == standin.airflow_pin()


def test_every_requirement_is_installed_at_its_pin(run_in_image):
    done = run_in_image("pip", "list", "--format", "json")
    assert done.returncode == 0, done.stderr
    installed = {item["name"].lower().replace("_", "-"): item["version"] for item in json.loads(done.stdout)}
    wrong = {name: installed.get(name) for name, version in pins().items() if installed.get(name) != version}
    assert not wrong, f"installed versions differ from requirements.txt: {wrong} (expected {pins()})"


def test_java_runtime_for_spark_submit(run_in_image):
    done = run_in_image("java", "-version")
    assert done.returncode == 0, done.stderr
    major = re.search(r'version "(\d+)', done.stderr)
    assert major and int(major.group(1)) >= 17, f"Spark 4 needs Java 17 or newer:\n{done.stderr}"


def test_spark_submit_is_the_pinned_pyspark(run_in_image):
    # Without a network, the container's own hostname does not resolve; a pod's does.
    done = run_in_image("spark-submit", "--version", env={"SPARK_LOCAL_HOSTNAME": "localhost"})
    assert done.returncode == 0, done.stderr
    assert re.search(rf"version {re.escape(pins()['pyspark'])}\b", done.stdout + done.stderr), done.stderr


def test_dag_folder_imports_without_errors(run_in_image):
    # BundleDagBag is what the dag-processor uses for a bundle: it puts the bundle on sys.path,
    # so dags/tripclick/ (the helper package) imports as it does from git-sync's checkout.
    script = (
        "import json; from pathlib import Path; "
        "from airflow.dag_processing.dagbag import BundleDagBag; "
        "b = BundleDagBag(dag_folder='/opt/airflow/dags', bundle_path=Path('/opt/airflow/dags')); "
        "print(json.dumps({'dag_ids': sorted(b.dag_ids), 'import_errors': b.import_errors}))"
    )
    done = run_in_image("python", "-c", script)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["import_errors"] == {}
    assert "tripclick_daily_pipeline" in result["dag_ids"]


def test_runs_as_uid_50000_group_0(run_in_image, daemon, built_image):
    done = run_in_image("id")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("uid=50000(airflow) gid=0(root)"), done.stdout
    user = daemon.docker("image", "inspect", "--format", "{{.Config.User}}", built_image).stdout.strip()
    assert user == "50000", "a numeric USER lets the kubelet enforce runAsNonRoot"


def test_labels_name_the_source_and_the_tagged_version(daemon, built_image):
    labels = json.loads(daemon.docker("image", "inspect", "--format", "{{json .Config.Labels}}", built_image).stdout)
    tag = built_image.split(":", 1)[1]
    assert labels["org.opencontainers.image.version"] == tag
    assert tag.startswith(standin.airflow_pin() + "-")
    assert labels["org.opencontainers.image.revision"] == tag.removeprefix(standin.airflow_pin() + "-")
    remote = subprocess.run(["git", "config", "--get", "remote.origin.url"], cwd=standin.REPO, capture_output=True)
    assert labels["org.opencontainers.image.source"] == (remote.stdout.decode().strip() or "unknown")
    assert labels["org.opencontainers.image.base.name"] == standin.BASE_TAG


def test_pip_ca_secret_is_not_left_in_the_image(run_in_image, daemon, built_image, pip_ca):
    """The build was given a pip_ca secret (a throwaway CA appended to this machine's bundle): nothing of it
    may be in a layer, the image config (env, labels, history) or a container's environment."""
    assert pip_ca.pem_line in pip_ca.bundle.read_text(), "the secret given to the build holds the throwaway CA"
    done = run_in_image("sh", "-c", "ls -A /run/secrets 2>/dev/null; echo; env")
    assert done.returncode == 0, done.stderr
    assert "pip_ca" not in done.stdout and "PIP_CERT" not in done.stdout, done.stdout
    config = daemon.docker("image", "inspect", "--format", "{{json .Config}}", built_image).stdout
    history = daemon.docker("image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", built_image).stdout
    assert "PIP_CERT" not in config
    for text in (config, history):
        assert "BEGIN CERTIFICATE" not in text and pip_ca.common_name not in text and pip_ca.pem_line not in text
    # requirements.txt is copied into the image: it must be found, or the search below reads nothing.
    control = (standin.REPO / "requirements.txt").read_bytes()
    needles = [control, pip_ca.common_name.encode(), pip_ca.pem_line.encode()]
    found = standin.saved_image_contains(daemon, built_image, needles)
    assert control in found, "the search did not find requirements.txt in the saved image"
    assert found == {control}, "the throwaway CA is in the saved image"


def test_spark_standalone_master_worker_and_a_python_job_run_from_the_image(daemon, built_image):
    """What make kind-test's Spark stand-ins run (spark-class master and worker from this image), plus a
    client-mode job whose executor runs Python code in the image too. Everything listens on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    master = f"spark://127.0.0.1:{port}"
    # Host network of the private daemon (it has no bridge); SPARK_LOCAL_IP keeps every listener,
    # the web UIs included, on 127.0.0.1.
    run = ["run", "--rm", "--network", "host", "--env", "SPARK_LOCAL_IP=127.0.0.1",
           # The master's REST submission server has a fixed port (6067); nothing here uses it.
           "--env", "SPARK_MASTER_OPTS=-Dspark.master.rest.enabled=false"]  # fmt: skip
    daemons = [
        ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", "0"],
        ["org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1", "--cores", "1",
         "--memory", "1g", "--webui-port", "0", "--work-dir", "/tmp/spark-work"],
    ]  # fmt: skip
    # The lambda makes the executor start a Python worker: the image's Python and pyspark on both sides.
    job = (
        "from pyspark import SparkContext; sc = SparkContext(); "
        "print('SUM', sc.parallelize(range(1000), 2).map(lambda x: 2 * x).sum())"
    )
    started = []
    try:
        for args in daemons:
            started.append(daemon.docker(*run, "--detach", built_image, "spark-class", *args).stdout.strip())
        submit = (
            f'echo "{job}" > /tmp/job.py && spark-submit --master {master} --conf spark.ui.enabled=false '
            "--conf spark.executor.memory=512m /tmp/job.py"
        )
        name = f"standin-spark-job-{port}"
        started.append(name)
        done = daemon.docker(*run, "--name", name, built_image, "sh", "-c", submit, check=False, timeout=300)
        assert "SUM 999000" in done.stdout, done.stdout[-2000:] + done.stderr[-4000:]
    finally:
        for container in started:
            daemon.docker("stop", "--time", "5", container, check=False)

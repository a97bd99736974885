"""`make kind-test`: what can be checked without a cluster, and the run itself where one can be made.

Here (no kind, no helm, no registry for the node image) the run skips with the script's own reason.
Everything it applies is still validated: the stand-in manifests against Kubernetes' schemas (strict),
the test overlay against the chart's schemas, the scripts with shellcheck, and its step list against
docs/testing.md "Test on Kubernetes locally".
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.chart import chartlib

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kind-test.sh"
KIND_DIR = REPO / "scripts" / "kind"
OVERLAY = KIND_DIR / "values-kind-test.yaml"
SKIP = 3
# The chart's minimum (BRIEF section 3) and the node image kind-test pins.
KUBE_MIN = "1.30"


def node_image() -> str:
    cluster = yaml.safe_load((KIND_DIR / "cluster.yaml").read_text())
    (node,) = cluster["nodes"]
    return node["image"]


def standin_objects() -> list[dict]:
    text = (KIND_DIR / "standins.yaml").read_text().replace("@AIRFLOW_IMAGE@", "tripclick-airflow:3.3.2-0000000")
    return [doc for doc in yaml.safe_load_all(text) if doc]


# ---------------------------------------------------------------- the run, or why it cannot run


def test_kind_test_runs_or_skips_with_its_reason():
    pre = subprocess.run([str(SCRIPT), "--preflight"], cwd=REPO, capture_output=True, text=True, check=False)
    if pre.returncode == SKIP:
        reason = next(line for line in pre.stdout.splitlines() if line.startswith("SKIP:"))
        pytest.skip(reason.removeprefix("SKIP: "))
    assert pre.returncode == 0, pre.stdout + pre.stderr
    if os.environ.get("KIND_TEST") != "1":
        pytest.skip("docker, kind, kubectl and helm are here; the run takes ~15 min: `make kind-test` or KIND_TEST=1")
    done = subprocess.run([str(SCRIPT)], cwd=REPO, check=False)
    assert done.returncode == 0, "make kind-test failed; its diagnostics are above"


def sandbox_path(tmp_path: Path, fakes: dict[str, str]) -> str:
    """A PATH with the basic tools the script needs, plus `fakes` (name -> shell script body), nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sed", "grep", "sort", "head", "dirname", "cat", "awk", "env"):
        found = shutil.which(tool)
        assert found, f"{tool} missing on this machine"
        (bin_dir / tool).symlink_to(found)
    for name, body in fakes.items():
        fake = bin_dir / name
        fake.write_text(f"#!{shutil.which('bash')}\n{body}\n")
        fake.chmod(0o755)
    return str(bin_dir)


def preflight(tmp_path: Path, fakes: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": sandbox_path(tmp_path, fakes), "HOME": str(tmp_path)}
    return subprocess.run(
        [shutil.which("bash"), str(SCRIPT), "--preflight"], cwd=REPO, env=env, capture_output=True, text=True
    )


NEW_ENOUGH = {
    "docker": "case $1 in version) echo 27.5.1 ;; info) exit 0 ;; image) exit 0 ;; esac",
    "kind": "echo kind v0.33.0 go1.25.3 linux/amd64",
    "kubectl": "echo 'Client Version: v1.34.2'",
    "helm": "echo v3.19.0",
    "openssl": "exit 0",
    "ssh-keygen": "exit 0",
    "git": "exit 0",
    "make": "exit 0",
    "curl": "exit 0",
}


def test_preflight_names_every_missing_tool_and_how_to_install_it(tmp_path):
    done = preflight(tmp_path, {})
    assert done.returncode == SKIP, done.stdout + done.stderr
    assert "missing here: docker kind kubectl helm openssl ssh-keygen git make curl" in done.stdout
    for hint in ("kind.sigs.k8s.io", "helm.sh/docs/intro/install", "kubernetes.io/docs/tasks/tools"):
        assert hint in done.stdout


def test_preflight_refuses_a_kind_older_than_the_node_image_needs(tmp_path):
    done = preflight(tmp_path, {**NEW_ENOUGH, "kind": "echo kind v0.20.0 go1.20.4 linux/amd64"})
    assert done.returncode == SKIP
    assert "kind 0.20.0 is older than 0.33.0" in done.stdout


def test_preflight_says_when_the_docker_daemon_does_not_answer(tmp_path):
    docker = "case $1 in version) echo 27.5.1 ;; *) exit 1 ;; esac"
    done = preflight(tmp_path, {**NEW_ENOUGH, "docker": docker})
    assert done.returncode == SKIP
    assert "the Docker daemon does not answer" in done.stdout


def test_preflight_passes_with_every_tool_new_enough(tmp_path):
    done = preflight(tmp_path, NEW_ENOUGH)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "preflight: all tools present" in done.stdout


# ---------------------------------------------------------------- what it applies


@pytest.mark.parametrize("version", [KUBE_MIN, "1.34"])
def test_standin_manifests_validate_strictly(version):
    chartlib.validate_strictly(standin_objects(), version)


def test_third_party_images_are_pinned_and_ours_is_the_built_one():
    ours = theirs = 0
    for obj in standin_objects():
        spec = chartlib.pod_spec(obj) or {}
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            image = container["image"]
            if image.startswith("tripclick-airflow:"):
                ours += 1
                assert container["imagePullPolicy"] == "Never", "the image comes from `kind load`, not a registry"
            else:
                theirs += 1
                assert re.search(r":\d+(\.\d+)+", image), f"{image} is not pinned to a version"
    assert ours and theirs, "the stand-ins run both the project's image and third-party ones"


def test_node_image_is_pinned_by_digest_and_new_enough():
    image = node_image()
    match = re.fullmatch(r"kindest/node:v(\d+)\.(\d+)\.(\d+)@sha256:[0-9a-f]{64}", image)
    assert match, f"{image}: pin the node image by tag and digest (kind's release notes list them)"
    assert (int(match.group(1)), int(match.group(2))) >= tuple(map(int, KUBE_MIN.split("."))), image
    script = SCRIPT.read_text()
    assert "KIND_MIN=0.33.0" in script, "the node image digest above is the one kind v0.33.0 lists"


def test_overlay_opens_the_cluster_pod_range_and_nothing_wider():
    pod_subnet = yaml.safe_load((KIND_DIR / "cluster.yaml").read_text())["networking"]["podSubnet"]
    policies = yaml.safe_load(OVERLAY.read_text())["tripclick"]["networkPolicies"]
    cidrs = [
        *policies["dockerHosts"]["cidrs"],
        *policies["spark"]["masterCidrs"],
        *policies["spark"]["workerCidrs"],
        *policies["git"]["cidrs"],
        *(peer["ipBlock"]["cidr"] for rule in policies["extraTaskEgress"] for peer in rule["to"]),
    ]
    assert cidrs and set(cidrs) == {pod_subnet}


def _get(values: dict, dotted: str):
    for key in dotted.split("."):
        values = values[key]
    return values


def _entries(value):
    """A list value, or the YAML list a template string holds (extraEnvFrom)."""
    return yaml.safe_load(value) if isinstance(value, str) else value


@pytest.mark.parametrize(
    "key",
    ["airflow.extraEnvFrom", "airflow.workers.kubernetes.extraVolumes", "airflow.workers.kubernetes.extraVolumeMounts"],
)
def test_overlay_lists_keep_every_base_entry(key):
    """Helm replaces lists (and extraEnvFrom, a string holding one): an overlay that sets one must repeat
    values/base.yaml's entries, or it silently drops them; one that does not set it keeps base.yaml's."""
    base = _entries(_get(chartlib.load_yaml(REPO / "values" / "base.yaml"), key))
    try:
        ours = _entries(_get(chartlib.load_yaml(OVERLAY), key))
    except KeyError:
        ours = base
    assert base, f"values/base.yaml sets no {key}: nothing to keep"
    missing = [entry for entry in base if entry not in ours]
    assert not missing, f"{key}: values/base.yaml entries missing from {OVERLAY.name}: {missing}"


def merged_values() -> dict:
    values = {}
    for path in (REPO / "values" / "base.yaml", REPO / "values" / "kind.yaml", OVERLAY):
        values = chartlib.deep_merge(values, chartlib.load_yaml(path))
    return values


def test_overlay_is_valid_for_the_wrapper_chart():
    schema = json.loads((chartlib.CHART / "values.schema.json").read_text())
    values = chartlib.deep_merge(chartlib.load_yaml(chartlib.CHART / "values.yaml"), merged_values())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(values)
    ]
    assert errors == []


def test_overlay_is_valid_for_the_official_chart():
    shared = chartlib.SHARED_CHART
    if not (shared / "values.schema.json").is_file():
        pytest.skip(f"{shared} not found: the official chart 1.21.0 values/schema must sit in ../shared")
    schema = copy.deepcopy(json.loads((shared / "values.schema.json").read_text()))
    schema["additionalProperties"] = False
    values = chartlib.deep_merge(chartlib.load_yaml(shared / "values.yaml"), merged_values()["airflow"])
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(values)
    ]
    assert errors == []


# ---------------------------------------------------------------- scripts


def test_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (Debian package shellcheck)")
    scripts = [str(SCRIPT), str(REPO / "scripts" / "kind-down.sh")]
    done = subprocess.run([shellcheck, "--severity=style", *scripts], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


STAGES = ("preflight", "producer_server0", "producer_server1", "streaming_to_silver", "batch_to_bronze", "etl_to_gold")
SUMMARY = (
    ":large_green_circle: *tripclick_daily_pipeline* finished for 2020-06-01\n"
    + "\n".join(f"- {stage}: success, started 2020-06-01T15:00:00+00:00, took 0m05s" for stage in STAGES)
    + "\n- discard_partial_day: skipped, started -, took -"
)  # a good day skips it
ALERT = ":red_circle: *tripclick_daily_pipeline* task *producer_server0* failed\ndate: 2020-06-01   try: 1"


def received(*texts: str) -> list[dict]:
    """What demo/slack_receiver's GET /messages returns."""
    return [{"received_at": 0.0, "path": "/services/T000/B000/XXXX", "payload": {"text": t}} for t in texts]


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (received(SUMMARY), 0),
        (received(), 1),
        (received(SUMMARY.replace("2020-06-01", "2020-06-02")), 1),
        (received(SUMMARY.replace("etl_to_gold: success", "etl_to_gold: failed")), 1),
        (received(SUMMARY.replace("discard_partial_day: skipped", "discard_partial_day: success")), 1),
        (received(ALERT, SUMMARY), 1),
        (received(SUMMARY, SUMMARY), 1),
    ],
)
def test_slack_check_wants_one_all_success_summary_for_the_day_and_no_alert(messages, expected):
    done = subprocess.run(
        [str(REPO / ".venv/bin/python"), str(KIND_DIR / "pipeline.py"), "slack-check", "--date", "2020-06-01"],
        input=json.dumps(messages),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == expected, done.stdout + done.stderr


# ---------------------------------------------------------------- the step list and docs/testing.md


def script_steps() -> list[tuple[int, str]]:
    return [(int(n), text.strip()) for n, text in re.findall(r"^\s*# step (\d+): (.+)$", SCRIPT.read_text(), re.M)]


def test_steps_are_numbered_in_order_and_each_is_announced():
    steps = script_steps()
    assert steps, "scripts/kind-test.sh has no `# step N: ...` lines"
    assert [n for n, _ in steps] == list(range(1, len(steps) + 1))
    for n, _ in steps:
        assert re.search(rf'say "step {n}: ', SCRIPT.read_text()), f"step {n} prints no progress line"


def documented_steps() -> list[tuple[int, str]]:
    testing = (REPO / "docs" / "testing.md").read_text()
    section = re.search(r"^#+ Test on Kubernetes locally\s*$(.*?)(?=^#+ |\Z)", testing, re.M | re.S)
    assert section, 'docs/testing.md has no "Test on Kubernetes locally" section: it documents `make kind-test`'
    return [(int(n), text.strip()) for n, text in re.findall(r"^(\d+)\. (.+)$", section.group(1), re.M)]


def test_docs_list_the_same_steps():
    documented = documented_steps()
    assert documented, "docs/testing.md 'Test on Kubernetes locally' lists no numbered steps"
    assert documented == script_steps(), "docs/testing.md's kind steps and scripts/kind-test.sh disagree"


def test_make_kind_test_is_the_script():
    done = subprocess.run(["make", "-n", "kind-test", "kind-down"], cwd=REPO, capture_output=True, text=True)
    assert "scripts/kind-test.sh" in done.stdout and "scripts/kind-down.sh" in done.stdout
    assert os.access(SCRIPT, os.X_OK) and os.access(REPO / "scripts" / "kind-down.sh", os.X_OK)


# ---------------------------------------------------------------- step 4's generated values


@pytest.fixture(scope="module")
def dev_values(tmp_path_factory) -> Path:
    for tool in ("openssl", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian packages openssl, openssh-client)")
    folder = tmp_path_factory.mktemp("kind-state")
    done = subprocess.run([str(SCRIPT), "--dev-values", str(folder)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def test_generated_secrets_input_passes_make_secrets_validation(dev_values):
    """The interface with scripts/make_secrets.py: its own checks accept what step 4 writes."""
    done = subprocess.run(
        [str(REPO / ".venv/bin/python"), str(REPO / "scripts/make_secrets.py"), "--file",
         str(dev_values / "secrets-kind.yaml"), "--dry-run"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    names = {doc["metadata"]["name"] for doc in yaml.safe_load_all(done.stdout) if doc}
    assert {"tripclick-connections", "tripclick-docker-tls", "tripclick-admin"} <= names
    assert "BEGIN" not in done.stdout, "a dry run must not print key material"


def test_docker_host_certificate_names_both_servers_as_the_dag_connects_to_them(dev_values):
    tls = dev_values / "tls"
    certs = [str(tls / "server-cert.pem"), str(tls / "client-cert.pem")]
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tls / "ca.pem"), *certs], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    san = subprocess.run(
        ["openssl", "x509", "-in", str(tls / "server-cert.pem"), "-noout", "-ext", "subjectAltName"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    connections = yaml.safe_load((dev_values / "secrets-kind.yaml").read_text())["connections"]
    for conn_id in ("docker_server0", "docker_server1"):
        host = re.fullmatch(r"tcp://([^:]+):2376", connections[conn_id]).group(1)
        assert f"DNS:{host}" in san, f"docker-py ignores tls_hostname: the certificate must name {host}"
    assert oct((dev_values / "secrets-kind.yaml").stat().st_mode & 0o777) == "0o600"

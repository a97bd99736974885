"""checkov over what the release creates; every finding it keeps is listed, with its reason, in
tests/chart/checkov-accepted.yaml. A new finding fails, and so does a listed one that no longer occurs.

- wrapper: the wrapper's own objects for the production overlay (CI: no official chart needed);
- release: the full base+k3s-ec2 release plus the pod the KubernetesExecutor builds for every task
  (test_executor_view.build_pods), scanned together so the graph checks see the NetworkPolicies.

checkov's dependencies clash with Airflow's pins, so it lives in its own venv (`make checkov-venv`,
requirements-checkov.txt) and runs as a subprocess.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.chart import chartlib

CHECKOV = chartlib.REPO / ".venv-checkov" / "bin" / "checkov"
ACCEPTED = chartlib.REPO / "tests" / "chart" / "checkov-accepted.yaml"
COMBO = "base+k3s-ec2"
SCANS = ("wrapper", "release")


def accepted(scans: tuple[str, ...]) -> dict[tuple[str, str], str]:
    """(check id, resource) -> reason, for the given scans."""
    found = {}
    for entry in chartlib.load_yaml(ACCEPTED):
        if entry["scan"] in scans:
            for resource in entry["resources"]:
                found[(entry["check"], resource)] = entry["reason"]
    return found


def compare(findings: set[tuple[str, str]], allowed: dict[tuple[str, str], str]) -> list[str]:
    new = [f"new finding {check} on {resource}" for check, resource in sorted(findings - set(allowed))]
    gone = [f"accepted {check} on {resource} no longer occurs" for check, resource in sorted(set(allowed) - findings)]
    return new + gone


def in_namespace(obj: dict) -> dict:
    """The object as `helm install -n airflow` creates it (`helm template` leaves the namespace out)."""
    obj = copy.deepcopy(chartlib.strip_source(obj))
    obj.setdefault("metadata", {})["namespace"] = chartlib.NAMESPACE
    return obj


def scan(objs: list[dict], workdir: Path) -> tuple[dict, set[tuple[str, str]], float]:
    """checkov's summary, its failed (check id, resource) pairs, and the seconds it took."""
    (workdir / "objects.yaml").write_text(yaml.safe_dump_all([in_namespace(o) for o in objs]))
    command = [str(CHECKOV), "--directory", str(workdir), "--framework", "kubernetes", "--skip-download"]
    command += ["--output", "json", "--quiet", "--compact"]
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.monotonic() - started
    # Exit code 1 means "findings"; anything else, or no JSON, is checkov itself failing.
    assert run.returncode in (0, 1), f"checkov exited {run.returncode}: {run.stderr[-2000:]}"
    report = json.loads(run.stdout)
    assert isinstance(report, dict) and report.get("check_type") == "kubernetes", run.stdout[:500]
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    failed = {(c["check_id"], c["resource"]) for c in report["results"].get("failed_checks", [])}
    return report["summary"], failed, seconds


@pytest.fixture(scope="module")
def checkov() -> Path:
    if not CHECKOV.is_file():
        pytest.skip(f"{CHECKOV} not found: run `make checkov-venv` (make test-chart does)")
    return CHECKOV


def _report(capsys, name: str, summary: dict, failed: set, allowed: dict, seconds: float) -> None:
    with capsys.disabled():
        print(
            f"\ncheckov {summary['checkov_version']} {name}: {summary['resource_count']} resources, "
            f"{summary['passed']} passed, {summary['failed']} failed "
            f"({len(failed & set(allowed))} accepted), {seconds:.1f} s"
        )


def test_the_wrapper_objects(checkov, wrapper_renders, tmp_path, capsys):
    objs = chartlib.objects(wrapper_renders[COMBO])
    summary, failed, seconds = scan(objs, tmp_path)
    allowed = accepted(("wrapper",))
    _report(capsys, "wrapper objects", summary, failed, allowed, seconds)
    # checkov 3.3 counts a Job twice in resource_count (seen with the first-admin hook Job), every other
    # object once.
    jobs = sum(1 for o in objs if o["kind"] == "Job")
    assert summary["resource_count"] == len(objs) + jobs, "checkov did not read every object"
    assert compare(failed, allowed) == []


def test_the_release_and_the_task_pods(checkov, full_renders, pipeline_dag, tmp_path, capsys):
    from tests.chart.test_executor_view import build_pods

    objs = chartlib.objects(full_renders[COMBO])
    pods = build_pods(full_renders, pipeline_dag, tmp_path)
    assert len(pods) == len(pipeline_dag.tasks)
    scandir = tmp_path / "scan"
    scandir.mkdir()
    summary, failed, seconds = scan(objs + [{"apiVersion": "v1", "kind": "Pod"} | p for p in pods.values()], scandir)
    allowed = accepted(SCANS)
    _report(capsys, "release + task pods", summary, failed, allowed, seconds)
    # Every workload and every task pod was read (checkov counts only the kinds it has checks for).
    resources = {resource for _, resource in failed}
    assert {f"Pod.{chartlib.NAMESPACE}.{p['metadata']['name']}" for p in pods.values()} <= resources
    assert compare(failed, allowed) == []


def test_the_accepted_list_is_well_formed():
    seen = set()
    for entry in chartlib.load_yaml(ACCEPTED):
        assert set(entry) == {"scan", "check", "reason", "resources"}, entry
        assert entry["scan"] in SCANS and entry["check"].startswith("CKV")
        assert len(entry["reason"].split()) >= 8, f"{entry['check']}: give the reason, not a label"
        for resource in entry["resources"]:
            assert resource.count(".") >= 2 and (entry["check"], resource) not in seen, resource
            seen.add((entry["check"], resource))


def test_the_comparison_fails_both_ways():
    allowed = {("CKV_K8S_43", "Deployment.airflow.a"): "r", ("CKV_K8S_15", "Deployment.airflow.a"): "r"}
    found = {("CKV_K8S_43", "Deployment.airflow.a"), ("CKV_K8S_20", "Deployment.airflow.b")}
    assert compare(found, allowed) == [
        "new finding CKV_K8S_20 on Deployment.airflow.b",
        "accepted CKV_K8S_15 on Deployment.airflow.a no longer occurs",
    ]
    assert compare(set(allowed), allowed) == []

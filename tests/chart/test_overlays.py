"""Overlay layer: every documented overlay order is valid before anything renders.

Runs in CI without the official chart's source: it needs only ../shared/airflow-chart/1.21.0
(values.yaml, values.schema.json, Chart.yaml) next to the clone.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.chart import chartlib
from tripclick import config

COMBOS = list(chartlib.OVERLAYS)


def _shared(name: str) -> Path:
    path = chartlib.SHARED_CHART / name
    if not path.is_file():
        pytest.skip(f"{path} not found: the official chart 1.21.0 values/schema must sit in ../shared")
    return path


@pytest.fixture(scope="module")
def official_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(_shared("values.schema.json").read_text())
    # The official schema lets any unknown top-level key through (a typo like `executorr` would
    # be ignored by the chart); nested sections already forbid them.
    schema = copy.deepcopy(schema)
    schema["additionalProperties"] = False
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def official_defaults() -> dict:
    return chartlib.load_yaml(_shared("values.yaml"))


@pytest.fixture(scope="module")
def wrapper_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((chartlib.CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(validator: jsonschema.Draft7Validator, instance: dict) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<top>'}: {err.message}"
        for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    ]


def _airflow_values(official_defaults: dict, overlay: dict) -> dict:
    """What Helm validates for the subchart: its defaults coalesced with the overlays' `airflow:`."""
    return chartlib.deep_merge(official_defaults, overlay.get("airflow", {}))


@pytest.mark.parametrize("combo", COMBOS)
def test_overlay_is_valid_for_the_official_chart(combo, official_validator, official_defaults):
    values = _airflow_values(official_defaults, chartlib.overlay_values(chartlib.OVERLAYS[combo]))
    assert _errors(official_validator, values) == []


def test_a_misspelt_official_key_fails(official_validator, official_defaults):
    overlay = chartlib.overlay_values(("base",))
    overlay["airflow"]["executorr"] = "KubernetesExecutor"
    errors = _errors(official_validator, _airflow_values(official_defaults, overlay))
    assert any("executorr" in e for e in errors), errors


def test_a_wrong_type_in_a_nested_official_key_fails(official_validator, official_defaults):
    overlay = chartlib.overlay_values(("base",))
    overlay["airflow"]["dags"]["gitSync"]["depth"] = "one"
    errors = _errors(official_validator, _airflow_values(official_defaults, overlay))
    assert any(e.startswith("dags/gitSync/depth") for e in errors), errors


@pytest.mark.parametrize("combo", COMBOS)
def test_overlay_is_valid_for_the_wrapper(combo, wrapper_validator):
    defaults = chartlib.load_yaml(chartlib.CHART / "values.yaml")
    values = chartlib.deep_merge(defaults, chartlib.overlay_values(chartlib.OVERLAYS[combo]))
    assert _errors(wrapper_validator, values) == []


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"tripclik": {}}, "'tripclik' was unexpected"),
        ({"tripclick": {"variables": {"tripclick_lake_rot": "s3a://x"}}}, "'tripclick_lake_rot' was unexpected"),
        ({"tripclick": {"variables": {"tripclick_spark_driver_port": "41000"}}}, "is not of type 'integer'"),
        ({"tripclick": {"variables": {"tripclick_transport": "ftp"}}}, "is not one of"),
        ({"tripclick": {"networkPolicies": {"dockerHosts": {"cidrs": ["server0"]}}}}, "does not match"),
    ],
)
def test_wrapper_schema_rejects_typos_and_wrong_types(wrapper_validator, patch, expected):
    defaults = chartlib.load_yaml(chartlib.CHART / "values.yaml")
    values = chartlib.deep_merge(chartlib.deep_merge(defaults, chartlib.overlay_values(("base",))), patch)
    errors = _errors(wrapper_validator, values)
    assert any(expected in e for e in errors), errors


def test_duplicate_keys_in_an_overlay_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("airflow:\n  triggerer: {replicas: 1}\n  triggerer: {persistence: {size: 1Gi}}\n")
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'triggerer'"):
        chartlib.load_yaml(bad)
    for path in sorted(chartlib.VALUES.glob("*.yaml")):
        chartlib.load_yaml(path)  # raises on a duplicate key


def _airflow_pin() -> str:
    for line in (chartlib.REPO / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"apache-airflow==(\S+)", line.strip())
        if match:
            return match.group(1)
    raise AssertionError("requirements.txt does not pin apache-airflow==<version>")


def test_image_matches_the_airflow_pin():
    pin = _airflow_pin()
    base = chartlib.overlay_values(("base",))["airflow"]
    assert base["airflowVersion"] == pin
    for image in ("airflow", "pod_template"):
        assert base["images"][image]["repository"] == "tripclick-airflow"
        assert base["images"][image]["tag"].startswith(f"{pin}-"), base["images"][image]
    assert base["defaultAirflowTag"] == base["images"]["airflow"]["tag"]
    kind = chartlib.overlay_values(chartlib.OVERLAYS["base+kind"])["airflow"]
    assert kind["airflowVersion"] == pin
    assert kind["images"]["airflow"] == kind["images"]["pod_template"]
    assert kind["images"]["airflow"]["tag"] == "dev"
    assert kind["images"]["airflow"]["pullPolicy"] == "IfNotPresent"


def test_variables_schema_matches_the_dag():
    """Every Variable the DAG reads can be set from values with its type, and no other."""
    schema = json.loads((chartlib.CHART / "values.schema.json").read_text())
    props = schema["properties"]["tripclick"]["properties"]["variables"]["properties"]
    kinds = {"str": "string", "choice": "string", "int": "integer", "bool": "boolean"}
    kinds |= {"json-object": "object", "json-list": "array"}
    assert sorted(props) == sorted(spec.name for spec in config.VARIABLES)
    for spec in config.VARIABLES:
        assert props[spec.name]["type"] == kinds[spec.kind], spec.name
        if spec.kind == "choice":
            assert sorted(props[spec.name]["enum"]) == sorted(spec.choices), spec.name


def test_the_admin_comes_from_the_secret_make_secrets_writes():
    """Values name only the Secret; its name and keys are the ones `make secrets` writes."""
    import importlib.util
    import sys

    values = chartlib.deep_merge(chartlib.load_yaml(chartlib.CHART / "values.yaml"), chartlib.overlay_values(("base",)))
    admin = values["tripclick"]["admin"]
    assert set(admin) == {"createUser", "secretName", "resources"}, "no user name or password in values"
    assert admin["createUser"] is True
    module = sys.modules.get("make_secrets")
    if module is None:
        spec = importlib.util.spec_from_file_location("make_secrets", chartlib.REPO / "scripts" / "make_secrets.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["make_secrets"] = module
        spec.loader.exec_module(module)
    assert admin["secretName"] == module.ADMIN
    assert set(module.SECRET_KEYS[module.ADMIN]) == {"username", "password"}
    example = chartlib.load_yaml(chartlib.REPO / "secrets" / "production.yaml.example")
    assert example["admin"]["username"] != "admin"


def _hash_req(req: list[dict], lock: list[dict]) -> str:
    """Helm's resolver.HashReq: sha256 of Go's json.Marshal of [Chart.yaml deps, lock deps]."""
    fields = ("name", "version", "repository", "condition", "tags", "enabled", "import-values", "alias")

    def encode(dep: dict) -> dict:
        return {f: dep.get(f, "") for f in fields if f in ("name", "repository") or dep.get(f)}

    data = json.dumps([[encode(d) for d in req], [encode(d) for d in lock]], separators=(",", ":"))
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def test_chart_lock_is_in_sync_with_chart_yaml():
    """`helm dependency build` refuses an out-of-sync lock; catch that before a user does."""
    chart = chartlib.load_yaml(chartlib.CHART / "Chart.yaml")
    lock = chartlib.load_yaml(chartlib.CHART / "Chart.lock")
    assert [(d["name"], d["version"], d["repository"]) for d in chart["dependencies"]] == [
        ("airflow", chartlib.OFFICIAL_VERSION, "https://airflow.apache.org")
    ]
    assert [(d["name"], d["version"]) for d in lock["dependencies"]] == [("airflow", chartlib.OFFICIAL_VERSION)]
    assert _hash_req(chart["dependencies"], lock["dependencies"]) == lock["digest"]
    shared = _shared("Chart.yaml")
    assert chartlib.load_yaml(shared)["version"] == chartlib.OFFICIAL_VERSION


def test_lock_digest_algorithm_matches_helm(official_source):
    """The digest function reproduces the official chart's own Chart.lock (written by helm)."""
    chart = chartlib.official_file(official_source, "Chart.yaml")
    lock = chartlib.official_file(official_source, "Chart.lock")
    assert chart["dependencies"], "the official chart has a dependency (PostgreSQL): the digest covers it"
    assert _hash_req(chart["dependencies"], lock["dependencies"]) == lock["digest"]


SECRET_PATTERNS = {
    "PEM block": re.compile(r"-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)-----"),
    "credentials in a URI": re.compile(r"://[^/\s:@]+:[^/\s@]+@"),
    "Slack webhook": re.compile(r"hooks\.slack\.com/services/T[A-Z0-9]{6,}"),
    "password-like key with a value": re.compile(
        r"^\s*(password|pass|fernetKey|jwtSecret|apiSecretKey|sshKey|postgresPassword)\s*:\s*\S", re.I | re.M
    ),
}


@pytest.mark.parametrize("path", sorted(chartlib.VALUES.glob("*.yaml")) + [chartlib.CHART / "values.yaml"])
def test_values_files_hold_no_secret(path):
    text = path.read_text()
    found = [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(text)]
    assert found == [], f"{path.name}: {found}"


def test_task_token_lifetimes_are_set_deliberately():
    """Long producers and streams renew their execution token; a pending pod starts on its workload
    token, which lives task_queued_timeout: both are chosen in production values, with the reason."""
    prod = chartlib.overlay_values(chartlib.OVERLAYS["base+k3s-ec2"])["airflow"]["config"]
    assert int(prod["execution_api"]["jwt_expiration_time"]) == 600
    assert int(prod["scheduler"]["task_queued_timeout"]) >= 900
    text = (chartlib.REPO / "values" / "base.yaml").read_text()
    for key in ("jwt_expiration_time", "task_queued_timeout"):
        before = text.split(f"      {key}:", 1)[0].splitlines()[-1].strip()
        assert before.startswith("#"), f"values/base.yaml: say why {key} has its value, in a comment above it"

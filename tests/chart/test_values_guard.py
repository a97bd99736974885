"""What the wrapper refuses in values before anything is installed.

- Unknown top-level keys of the official chart: its own schema lets them through (a typo such as
  `executorr` is silently ignored), so the wrapper's schema lists the official keys under `airflow`.
- Secrets: every place where a value in values reaches a pod's environment or Airflow's config
  (official values.yaml: env lists, extraEnv, extraSecrets, secret, extraConfigMaps, config, the
  password fields, the key fields) fails the render, naming the key, never echoing the value.
"""

from __future__ import annotations

import json

import helm_python
import jsonschema
import pytest

from tests.chart import chartlib

COMBO = "base+k3s-ec2"
# Not a valid Kubernetes name, no credential shape of its own: only the place it is put in can give it away.
FAKE = "Tr1pFake/Secret+Value="
HINT = "make secrets"


def _refusal(chart, patch: dict, *, full: bool = False) -> str:
    with pytest.raises(helm_python.HelmError) as caught:
        chartlib.render_chart(chart, COMBO, patch, full=full)
    return str(caught.value)


# --- official top-level keys ---------------------------------------------------------------------


def _official_keys() -> set[str]:
    path = chartlib.SHARED_CHART / "values.schema.json"
    if not path.is_file():
        pytest.skip(f"{path} not found: the official chart 1.21.0 schema must sit in ../shared")
    return set(json.loads(path.read_text())["properties"])


def _wrapper_schema() -> dict:
    return json.loads((chartlib.CHART / "values.schema.json").read_text())


def test_the_wrapper_knows_exactly_the_official_top_level_keys():
    airflow = _wrapper_schema()["properties"]["airflow"]
    assert airflow["additionalProperties"] is False
    # Helm copies the top-level `global` into every subchart's values before validating them.
    assert set(airflow["properties"]) == _official_keys() | {"global"}, (
        "chart/values.schema.json's airflow keys differ from the official chart's: regenerate them on a chart upgrade"
    )


def test_a_misspelt_official_key_fails_the_schema_and_the_render(wrapper_chart):
    values = chartlib.deep_merge(
        chartlib.load_yaml(chartlib.CHART / "values.yaml"), chartlib.overlay_values(chartlib.OVERLAYS[COMBO])
    )
    values["airflow"]["executorr"] = "KubernetesExecutor"
    errors = [e.message for e in jsonschema.Draft7Validator(_wrapper_schema()).iter_errors(values)]
    assert any("'executorr' was unexpected" in e for e in errors), errors
    message = _refusal(wrapper_chart, {"airflow": {"executorr": "KubernetesExecutor"}})
    assert "additional properties 'executorr' not allowed" in message


def test_a_misspelt_official_key_fails_the_full_release_and_lint(full_chart):
    message = _refusal(full_chart, {"airflow": {"executorr": "KubernetesExecutor"}}, full=True)
    assert "additional properties 'executorr' not allowed" in message
    values = chartlib.deep_merge(chartlib.overlay_values(chartlib.OVERLAYS[COMBO]), {"airflow": {"executorr": "x"}})
    report = helm_python.lint(str(full_chart), values, strict=True, namespace=chartlib.NAMESPACE)
    assert any("executorr" in str(m) for m in report["messages"] + report["errors"]), report
    # The release itself, with Helm's coalesced defaults (`global` included), still passes.
    chartlib.render_chart(full_chart, COMBO, full=True)


# --- secrets in values ----------------------------------------------------------------------------

PLACES = [
    ("env", {"airflow": {"env": [{"name": "SLACK_TOKEN", "value": FAKE}]}}, "airflow.env[0] sets SLACK_TOKEN"),
    (
        "env value",
        {"airflow": {"env": [{"name": "GOLD_DB", "value": f"postgresql://gold:{FAKE}@10.20.3.10/tripclick_gold"}]}},
        "airflow.env[0].value holds a credential",
    ),
    (
        "task pod env",
        {"airflow": {"workers": {"kubernetes": {"env": [{"name": "PGPASSWORD", "value": FAKE}]}}}},
        "airflow.workers.kubernetes.env[0] sets PGPASSWORD",
    ),
    (
        "scheduler env",
        {"airflow": {"scheduler": {"env": [{"name": "AIRFLOW__CORE__FERNET_KEY", "value": FAKE}]}}},
        "airflow.scheduler.env[0] sets AIRFLOW__CORE__FERNET_KEY",
    ),
    (
        "git-sync env",
        {"airflow": {"dags": {"gitSync": {"env": [{"name": "GITSYNC_PASSWORD", "value": FAKE}]}}}},
        "airflow.dags.gitSync.env[0] sets GITSYNC_PASSWORD",
    ),
    (
        "init container env",
        {
            "airflow": {
                "apiServer": {"extraInitContainers": [{"name": "x", "env": [{"name": "API_KEY", "value": FAKE}]}]}
            }
        },
        "airflow.apiServer.extraInitContainers[0].env[0] sets API_KEY",
    ),
    (
        "extraEnv",
        {"airflow": {"extraEnv": f"- name: AIRFLOW_CONN_GOLD\n  value: '{FAKE}'\n"}},
        "airflow.extraEnv sets AIRFLOW_CONN_GOLD",
    ),
    (
        "extraSecrets",
        {"airflow": {"extraSecrets": {"tripclick-extra": {"stringData": f"SLACK_TOKEN: {FAKE}"}}}},
        "airflow.extraSecrets.tripclick-extra has data",
    ),
    (
        "extraSecrets data",
        {"airflow": {"extraSecrets": {"tripclick-extra": {"data": f"TOKEN: {FAKE}"}}}},
        "airflow.extraSecrets.tripclick-extra has data",
    ),
    (
        "secret",
        {"airflow": {"secret": [{"envName": "AIRFLOW_CONN_GOLD", "secretName": FAKE}]}},
        "airflow.secret[0].secretName is not a Secret's name",
    ),
    (
        "secret key",
        {"airflow": {"secret": [{"envName": "X", "secretName": "tripclick-connections", "secretKey": FAKE}]}},
        "airflow.secret[0].secretKey is not a key",
    ),
    (
        "extraConfigMaps",
        {"airflow": {"extraConfigMaps": {"extra": {"data": f"AIRFLOW_CONN_GOLD: '{FAKE}'\n"}}}},
        "airflow.extraConfigMaps.extra.data sets AIRFLOW_CONN_GOLD",
    ),
    (
        "sql_alchemy_conn",
        {"airflow": {"config": {"database": {"sql_alchemy_conn": f"postgresql://airflow:{FAKE}@10.20.3.10/airflow"}}}},
        "airflow.config.database.sql_alchemy_conn is a secret option",
    ),
    (
        "smtp_password",
        {"airflow": {"config": {"smtp": {"smtp_password": FAKE}}}},
        "airflow.config.smtp.smtp_password is a secret option",
    ),
    (
        "metadataConnection.pass",
        {"airflow": {"data": {"metadataConnection": {"pass": FAKE}}}},
        "airflow.data.metadataConnection.pass holds a password",
    ),
    (
        "resultBackendConnection.pass",
        {"airflow": {"data": {"resultBackendConnection": {"user": "a", "pass": FAKE}}}},
        "airflow.data.resultBackendConnection.pass holds a password",
    ),
    ("brokerUrl", {"airflow": {"data": {"brokerUrl": FAKE}}}, "airflow.data.brokerUrl holds a password"),
    (
        "postgresql password",
        {"airflow": {"postgresql": {"auth": {"password": FAKE}}}},
        "airflow.postgresql.auth.password holds a password",
    ),
    ("redis password", {"airflow": {"redis": {"password": FAKE}}}, "airflow.redis.password holds a password"),
    ("flower password", {"airflow": {"flower": {"password": FAKE}}}, "airflow.flower.password holds a password"),
    (
        "elasticsearch",
        {"airflow": {"elasticsearch": {"connection": {"pass": FAKE}}}},
        "airflow.elasticsearch.connection.pass holds a password",
    ),
    (
        "registry",
        {"airflow": {"registry": {"connection": {"pass": FAKE}}}},
        "airflow.registry.connection.pass holds a password",
    ),
    (
        "keytab",
        {"airflow": {"kerberos": {"keytabBase64Content": FAKE}}},
        "airflow.kerberos.keytabBase64Content holds a password",
    ),
    (
        "git repository URL",
        {"airflow": {"dags": {"gitSync": {"repo": f"https://deploy:{FAKE}@github.com/tripclick/repo.git"}}}},
        "airflow.dags.gitSync.repo holds a credential",
    ),
    (
        "Variable",
        {"tripclick": {"variables": {"tripclick_spark_conf": {"spark.x": f"s3a://AKIA:{FAKE}@lake"}}}},
        "tripclick.variables.tripclick_spark_conf.spark.x holds a credential",
    ),
]
# The places named when this guard was written; each also goes through the full release.
FULL_PLACES = {"env", "extraEnv", "extraSecrets", "secret", "sql_alchemy_conn", "metadataConnection.pass"}


def _check_refusal(message: str, key: str) -> None:
    assert key in message, message
    assert HINT in message and "Kubernetes Secret" in message
    assert FAKE not in message, "the refusal must not echo the secret"


@pytest.mark.parametrize(("patch", "key"), [p[1:] for p in PLACES], ids=[p[0] for p in PLACES])
def test_a_secret_in_values_is_refused(wrapper_chart, patch, key):
    _check_refusal(_refusal(wrapper_chart, patch), key)


@pytest.mark.parametrize(
    ("patch", "key"), [p[1:] for p in PLACES if p[0] in FULL_PLACES], ids=[p[0] for p in PLACES if p[0] in FULL_PLACES]
)
def test_a_secret_in_values_is_refused_by_the_full_release(full_chart, patch, key):
    """With the official chart present (its defaults coalesced, its own templates and schema)."""
    _check_refusal(_refusal(full_chart, patch, full=True), key)


def test_every_sensitive_airflow_option_is_refused(wrapper_chart):
    """Airflow's own list of sensitive options (core and the installed providers), each set in config."""
    from airflow.configuration import conf

    options = sorted(conf.sensitive_config_values)
    assert ("database", "sql_alchemy_conn") in options
    for section, key in options:
        message = _refusal(wrapper_chart, {"airflow": {"config": {section: {key: FAKE}}}})
        _check_refusal(message, f"airflow.config.{section}.{key} is a secret option")
        # The same option as an environment variable.
        env = {"airflow": {"env": [{"name": f"AIRFLOW__{section.upper()}__{key.upper()}", "value": FAKE}]}}
        _check_refusal(_refusal(wrapper_chart, env), "airflow.env[0] sets")


def test_every_problem_is_listed_at_once(wrapper_chart):
    patch = {"airflow": {"env": [{"name": "SLACK_TOKEN", "value": FAKE}], "redis": {"password": FAKE}}}
    message = _refusal(wrapper_chart, patch)
    assert "airflow.env[0] sets SLACK_TOKEN" in message and "airflow.redis.password" in message


def test_what_is_not_a_secret_still_renders(wrapper_chart):
    """Names of Secrets and files, and ordinary settings, are not mistaken for secrets."""
    patch = {
        "airflow": {
            "env": [
                {"name": "GOMEMLIMIT", "value": "48MiB"},
                {"name": "ADMIN_PASSWORD_FILE", "value": "/opt/airflow/secrets/admin/password"},
                {"name": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD", "value": "cat /run/conn"},
            ],
            "extraEnv": "- name: AIRFLOW__CORE__LOAD_EXAMPLES\n  value: 'False'\n",
            "secret": [
                {"envName": "AIRFLOW_CONN_GOLD", "secretName": "tripclick-gold", "secretKey": "AIRFLOW_CONN_GOLD"}
            ],
            "extraSecrets": {"tripclick-annotated": {"type": "Opaque"}},
            "extraConfigMaps": {"extra": {"data": "AIRFLOW_VAR_GREETING: hello\n"}},
            "config": {"database": {"sql_alchemy_conn": ""}, "logging": {"remote_base_log_folder": "s3://b/logs"}},
            "data": {"metadataConnection": {"pass": "postgres"}},
        }
    }
    objs = chartlib.objects(chartlib.render_chart(wrapper_chart, COMBO, patch, full=False))
    assert {o["kind"] for o in objs} == {"ConfigMap", "NetworkPolicy", "Job"}

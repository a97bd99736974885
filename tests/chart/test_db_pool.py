"""Metadata-database connections of the production overlay (base + k3s-ec2): enough for the api-server,
and never more together than PostgreSQL accepts.

The api-server runs its synchronous request handlers and their database sessions on anyio's thread pool,
while its event loop checks every bearer token against the database (RevokedToken.is_revoked, called
from the async BaseAuthManager.get_user_from_token). If pool + overflow is not above the thread pool, the
threads can hold every connection while the loop waits for one; the threads' sessions are closed only
when the loop runs again, so each request stalls until pool_timeout (docs/architecture.md, "Sizing
the api-server").

A component's effective setting is what Airflow reads in its pod: the component's env (the chart's
`<component>.env`), else airflow.cfg (the chart's `config:`), else Airflow's own default (config.yml of
the installed Airflow); the local stack gives its processes the same, and both read that rule from
demo/stack/values.py. The full render, when the official chart's source is present, is checked to
give each pod exactly those settings.
"""

from __future__ import annotations

import pytest

from demo.stack import values as stack_values
from tests.chart import chartlib

# PostgreSQL's default max_connections, which the bundled chart keeps and the external database must
# have at least (docs/install.md); 25 stay free for the migration job, an operator's psql, the async
# engines' short uses and the superuser's reserved slots.
PG_MAX_CONNECTIONS = 100
CONNECTION_BUDGET = 75
# The api-server's event loop needs a connection of its own for the token check, besides every thread.
EVENT_LOOP = 1
# Local component name -> its section in the official chart's values.
COMPONENTS = stack_values.CHART_SECTIONS


def anyio_threads() -> int:
    """Threads of anyio's default limiter, the pool Starlette runs sync endpoints and dependencies on."""
    import anyio
    import anyio.to_thread

    async def tokens() -> int:
        return int(anyio.to_thread.current_default_thread_limiter().total_tokens)

    return anyio.run(tokens)


def from_values(values: dict) -> dict[str, dict[str, str]]:
    """Effective pool settings per component of an overlay combination, as the chart gives them to each pod."""
    return {component: stack_values.component_pool(component, values["airflow"]) for component in COMPONENTS}


def max_connections(values: dict, effective: dict[str, dict[str, str]]) -> dict[str, int]:
    """Most connections each component can hold: pool + overflow per process, times its processes."""
    af = values["airflow"]
    out = {}
    for component, section in COMPONENTS.items():
        s = effective[component]
        processes = (af.get(section, {}).get("replicas") or 1) * (
            int(s["api_workers"]) if component == "api-server" else 1
        )
        out[component] = processes * (int(s["sql_alchemy_pool_size"]) + int(s["sql_alchemy_max_overflow"]))
    return out


@pytest.fixture(scope="module")
def production_values() -> dict:
    return chartlib.overlay_values(chartlib.OVERLAYS[chartlib.PRODUCTION])


def test_the_api_server_pool_covers_its_threads_and_the_event_loop(production_values):
    s = from_values(production_values)["api-server"]
    threads = anyio_threads()
    # Each uvicorn worker is a process with its own threads and its own pool.
    per_process = int(s["sql_alchemy_pool_size"]) + int(s["sql_alchemy_max_overflow"])
    assert per_process >= threads + EVENT_LOOP, (
        f"api-server pool {s['sql_alchemy_pool_size']} + overflow {s['sql_alchemy_max_overflow']} = {per_process} "
        f"connections per worker, below its {threads} threads + the event loop"
    )
    # One worker: a second would double the memory and the connections for no more users.
    assert s["api_workers"] == "1"


def test_the_other_components_keep_small_healthy_pools(production_values):
    effective = from_values(production_values)
    for component in ("scheduler", "dag-processor", "triggerer"):
        s = effective[component]
        assert (s["sql_alchemy_pool_size"], s["sql_alchemy_max_overflow"]) == ("5", "5"), component
        assert s["sql_alchemy_pool_pre_ping"] == "True", component
        assert s["sql_alchemy_pool_recycle"] == "1800", component


@pytest.mark.parametrize("overlay", ["base+k3s-ec2", "base+kind"])
def test_all_pools_together_fit_postgresql(overlay, capsys):
    values = chartlib.overlay_values(chartlib.OVERLAYS[overlay])
    per_component = max_connections(values, from_values(values))
    total = sum(per_component.values())
    with capsys.disabled():
        print(
            f"\n{overlay}: metadata DB connections at most " + ", ".join(f"{k} {v}" for k, v in per_component.items())
        )
        print(f"total {total} (budget {CONNECTION_BUDGET}, PostgreSQL max_connections {PG_MAX_CONNECTIONS})")
    assert total <= CONNECTION_BUDGET < PG_MAX_CONNECTIONS, per_component


def test_the_release_gives_each_pod_these_settings(full_renders, production_values):
    """The chart puts `config:` into airflow.cfg for every pod and `apiServer.env` into the api-server only."""
    objs = chartlib.objects(full_renders[chartlib.PRODUCTION])
    parser = chartlib.airflow_cfg(objs)
    cfg = {section: dict(parser[section]) for section in parser.sections()}
    env = {}
    for obj in objs:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        component = obj["metadata"]["name"].removeprefix(f"{chartlib.RELEASE}-")
        if component not in COMPONENTS:
            continue
        (main,) = [c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == component]
        env[component] = {e["name"]: str(e["value"]) for e in main.get("env", []) if "value" in e}
    assert set(env) == set(COMPONENTS)
    rendered = {component: stack_values.pool_settings(cfg, env[component]) for component in COMPONENTS}
    assert rendered == from_values(production_values)

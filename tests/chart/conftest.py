"""Chart layer fixtures: each overlay combination is rendered once per session.

Full renders need the official chart's source ($AIRFLOW_CHART_SOURCE or chart/charts/ after
`helm dependency build chart`); without it those tests skip and say how to run them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart import chartlib


@pytest.fixture(scope="session")
def official_source() -> Path:
    source, reason = chartlib.official_chart_source()
    if source is None:
        pytest.skip(reason)
    return source


@pytest.fixture(scope="session")
def full_chart(tmp_path_factory, official_source) -> Path:
    """The wrapper assembled with the official chart under charts/, outside the repository."""
    return chartlib.assemble(tmp_path_factory.mktemp("full"), official_source)


@pytest.fixture(scope="session")
def wrapper_chart(tmp_path_factory) -> Path:
    """The wrapper alone: only its own templates render (the dependency is absent on purpose)."""
    return chartlib.assemble(tmp_path_factory.mktemp("wrapper"), None)


@pytest.fixture(scope="session")
def full_renders(full_chart) -> dict[str, dict[str, str]]:
    return {combo: chartlib.render_chart(full_chart, combo, full=True) for combo in chartlib.OVERLAYS}


@pytest.fixture(scope="session")
def wrapper_renders(wrapper_chart) -> dict[str, dict[str, str]]:
    return {combo: chartlib.render_chart(wrapper_chart, combo, full=False) for combo in chartlib.OVERLAYS}


def parse_pipeline_dag(manifests: dict[str, str]):
    """The DAG parsed with the Variables a render gives every pod (its ConfigMap's data as env), as the
    dag-processor of that release would parse it (the task policy is read at parse time)."""
    from tests.dags.dev_config import DEV_ENV

    variables = chartlib.variables(chartlib.objects(manifests))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**DEV_ENV, **variables}.items():
            patch.setenv(key, value)
        from airflow.dag_processing.dagbag import DagBag

        dags = chartlib.REPO / "dags"
        bag = DagBag(dag_folder=str(dags), bundle_path=dags)
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags["tripclick_daily_pipeline"]


@pytest.fixture(scope="session")
def pipeline_dag(wrapper_renders):
    """The DAG with the production overlay's Variables. The Variables ConfigMap is the wrapper's own
    template, so the wrapper render gives it without the official chart's source."""
    return parse_pipeline_dag(wrapper_renders[chartlib.PRODUCTION])

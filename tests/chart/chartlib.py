"""Rendering the wrapper chart without a helm binary (helm-python-sdk), the way `helm install` would, and
finding objects in a render: the one helper module of the chart tests (tests/kind and tests/monitoring use it too).

- Overlays are deep-merged with Helm's semantics (maps merge, everything else replaces, null deletes),
  because helm-python renders one values document.
- The official chart is never copied into the repository: the wrapper is assembled in a temporary
  directory with the official chart under its charts/, taken from $AIRFLOW_CHART_SOURCE or from
  chart/charts/ (after `helm dependency build chart`).
- helm-python silently renders without a dependency missing from charts/, so every render checks
  `dependency_list` first and refuses to go on unless each one is present.
"""

from __future__ import annotations

import configparser
import copy
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
VALUES = REPO / "values"
SHARED_CHART = REPO.parent / "shared" / "airflow-chart" / "1.21.0"
SOURCE_ENV = "AIRFLOW_CHART_SOURCE"
OFFICIAL_VERSION = "1.21.0"
RELEASE = "tripclick"
NAMESPACE = "airflow"
KUBE_VERSIONS = ("1.30", "1.31", "1.32", "1.33")

# The documented overlay orders (docs/install.md): base first, then the environment.
OVERLAYS = {
    "base": ("base",),
    "base+k3s-ec2": ("base", "k3s-ec2"),
    "base+kind": ("base", "kind"),
}
PRODUCTION = "base+k3s-ec2"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A repeated key in an overlay silently drops the first block in PyYAML; Helm refuses it."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of two -f files: maps merge key by key, lists and scalars replace, null deletes."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def overlay_values(names: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in names:
        values = deep_merge(values, load_yaml(VALUES / f"{name}.yaml") or {})
    return values


def official_chart_source() -> tuple[Path | None, str]:
    """Where the official chart's full source is, or why it is not available."""
    configured = os.environ.get(SOURCE_ENV)
    if configured:
        path = Path(configured)
        if not (path / "Chart.yaml").is_file() and not path.is_file():
            raise FileNotFoundError(
                f"{SOURCE_ENV}={configured} is neither a chart directory nor a .tgz: "
                "point it at the official Airflow chart 1.21.0 source (the folder holding Chart.yaml)"
            )
        return path, ""
    for candidate in (CHART / "charts" / "airflow", CHART / "charts" / f"airflow-{OFFICIAL_VERSION}.tgz"):
        if candidate.exists():
            return candidate, ""
    return None, (
        f"official Airflow chart {OFFICIAL_VERSION} source not found: set {SOURCE_ENV}=<chart dir> "
        "or run `helm dependency build chart` (fills chart/charts/)"
    )


def official_file(official: Path, name: str) -> Any:
    """A YAML file of the official chart (Chart.yaml, Chart.lock, ...), from its folder or its packaged .tgz."""
    if official.is_dir():
        return load_yaml(official / name)
    with tarfile.open(official) as packaged:
        member = packaged.extractfile(f"airflow/{name}")
        if member is None:
            raise FileNotFoundError(f"{official} has no airflow/{name}")
        return yaml.load(member, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass


def assemble(workdir: Path, official: Path | None) -> Path:
    """A throw-away copy of the wrapper, with the official chart under charts/ when given."""
    target = workdir / "tripclick-orchestration"
    shutil.copytree(CHART, target, ignore=shutil.ignore_patterns("charts", "*.tgz"))
    if official is not None:
        (target / "charts").mkdir()
        if official.is_file():
            shutil.copy2(official, target / "charts" / official.name)
        else:
            shutil.copytree(official, target / "charts" / "airflow")
    return target


def check_dependencies(chart_dir: Path) -> None:
    """Fail loudly where helm-python would render a partial release."""
    import helm_python

    problems = [
        f"{dep['name']} {dep['version']}: {dep['status']}"
        for dep in helm_python.dependency_list(str(chart_dir))
        if dep["status"] not in ("ok", "unpacked")
    ]
    if problems:
        raise RuntimeError(
            f"chart {chart_dir} has unusable dependencies ({'; '.join(problems)}): "
            f"the render would silently leave them out"
        )


def render(chart_dir: Path, values: dict[str, Any], *, full: bool) -> dict[str, str]:
    """Template path -> rendered text. `full` demands every dependency be present first."""
    import helm_python

    if full:
        check_dependencies(chart_dir)
    with helm_python.Chart.load(str(chart_dir)) as chart:
        if full:
            loaded = {dep["name"]: dep["version"] for dep in chart.dependencies}
            if loaded.get("airflow") != OFFICIAL_VERSION:
                raise RuntimeError(f"expected airflow {OFFICIAL_VERSION} under charts/, loaded {loaded}")
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def render_chart(
    chart_dir: Path, combo: str = PRODUCTION, patch: dict[str, Any] | None = None, *, full: bool
) -> dict[str, str]:
    """An overlay combination of OVERLAYS, with `patch` merged over it as one more -f file, rendered."""
    values = overlay_values(OVERLAYS[combo])
    if patch:
        values = deep_merge(values, patch)
    return render(chart_dir, values, full=full)


def objects(manifests: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render (NOTES.txt and empty documents left out)."""
    found = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                found.append(doc | {"__source": path})
    return found


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of this kind and name; fails naming the objects of that kind the render does have."""
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(matches) != 1:
        present = sorted(o["metadata"]["name"] for o in objs if o["kind"] == kind)
        raise AssertionError(
            f"{kind}/{name}: {len(matches)} rendered; the {kind} objects are: {', '.join(present) or 'none'}"
        )
    return matches[0]


def by_kind_and_name(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Objects by (kind, name). helm install refuses a release that renders one object twice, so two objects
    with one kind and name fail here, naming the template of each."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in objs:
        key = (obj["kind"], obj["metadata"]["name"])
        if key in found:
            raise AssertionError(f"{key} rendered by {found[key]['__source']} and {obj['__source']}")
        found[key] = obj
    return found


def mappings(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every mapping in a nested document with its path (`spec.containers[0]`), a parent before its children."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from mappings(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from mappings(value, f"{where}[{index}]")


def strip_source(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "__source"}


def validate_strictly(objs: list[dict[str, Any]], kube: str) -> None:
    """Every object against Kubernetes `kube`'s schemas, unknown fields refused; fails naming each invalid
    object, where it came from (its `__source`) and the first line of why."""
    import kubernetes_validate

    invalid = []
    for obj in objs:
        try:
            kubernetes_validate.validate(strip_source(obj), kube, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = f" ({obj['__source']})" if "__source" in obj else ""
            invalid.append(f"{obj['kind']}/{obj['metadata']['name']}{where}: {str(err).splitlines()[0]}")
    if invalid:
        raise AssertionError(f"invalid for Kubernetes {kube}:\n" + "\n".join(invalid))


def notes(manifests: dict[str, str]) -> str:
    return next(
        (text for path, text in manifests.items() if path == "tripclick-orchestration/templates/NOTES.txt"),
        "",
    )


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    if kind == "Pod":
        return obj["spec"]
    if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def pod_template(objs: list[dict[str, Any]]) -> dict[str, Any]:
    """The KubernetesExecutor's pod template, from the <release>-config ConfigMap."""
    return yaml.safe_load(find(objs, "ConfigMap", f"{RELEASE}-config")["data"]["pod_template_file.yaml"])


def airflow_cfg(objs: list[dict[str, Any]]) -> configparser.ConfigParser:
    """airflow.cfg as every Airflow pod of the release reads it, from the <release>-config ConfigMap."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(find(objs, "ConfigMap", f"{RELEASE}-config")["data"]["airflow.cfg"])
    return parser


def variables(objs: list[dict[str, Any]]) -> dict[str, str]:
    """The wrapper's Variables ConfigMap's data: AIRFLOW_VAR_* env of every pod of the release."""
    return find(objs, "ConfigMap", f"{RELEASE}-variables").get("data") or {}

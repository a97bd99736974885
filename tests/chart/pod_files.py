"""Which files a task reads, and where each comes from in the pod the KubernetesExecutor builds for it.

A path is provided when it lies under a volume mount of the task container: a Secret volume provides
the keys `make secrets` writes into that Secret, the git-sync volume provides what the git-sync init
container checks out of this repository (a file tracked in git, at the mapped path). A path under no
mount must be in the image, which adds only what image/Dockerfile copies to the base image. An
emptyDir that nothing fills provides no file at all.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import PurePosixPath
from typing import Any

from tests.chart import chartlib
from tripclick import config

TASK_CONTAINER = "base"
# Any day: paths do not depend on it.
DAY = "2020-10-01"
DOCKER_TASKS = ("preflight", "producer_server0", "producer_server1")


def production_variables(objs: list[dict[str, Any]]) -> dict[str, Any]:
    """Typed Variables as a task of this release reads them: the rendered ConfigMap, else the DAG's defaults."""
    data = chartlib.variables(objs)
    values = {}
    for spec in config.VARIABLES:
        raw = data.get(f"AIRFLOW_VAR_{spec.name.upper()}")
        values[spec.name] = spec.default if raw is None else spec.parse(raw)
    return values


def task_reads(task_id: str, values: dict[str, Any]) -> list[str]:
    """The files a task opens, computed by the DAG's own code from the Variables."""
    from tripclick import spark_jobs

    if task_id in spark_jobs.DEFAULT_JOBS:
        problems: list[str] = []
        spec = spark_jobs.spark_job(task_id, DAY, values, problems, in_driver=False)
        assert problems == [], problems
        return [spec.application]
    if task_id in DOCKER_TASKS and not values["tripclick_docker_allow_plain_tcp"]:
        endpoint = config.DockerEndpoint(
            "server0", "tcp://unused:2376", PurePosixPath(values["tripclick_docker_tls_dir"])
        )
        return sorted(endpoint.tls_paths().values())
    return []


@cache
def secret_keys() -> dict[str, frozenset[str]]:
    """Secret name -> the keys `make secrets` writes (scripts/make_secrets.py is the only writer)."""
    module = sys.modules.get("make_secrets")
    if module is None:
        spec = importlib.util.spec_from_file_location("make_secrets", chartlib.REPO / "scripts" / "make_secrets.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["make_secrets"] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return {name: frozenset(keys) for name, keys in module.SECRET_KEYS.items()}


def env_names(container: dict[str, Any]) -> set[str]:
    """The environment variables a container gets by name: its env entries, and every key `make secrets` writes
    into each Secret its envFrom loads whole (a ConfigMap's keys are not counted)."""
    names = {e["name"] for e in container.get("env") or []}
    for source in container.get("envFrom") or []:
        if "secretRef" in source:
            names |= {source.get("prefix", "") + key for key in secret_keys().get(source["secretRef"]["name"], ())}
    return names


@cache
def repo_files() -> frozenset[str]:
    """What a clone of this repository holds: the tracked files (git-sync checks out a commit)."""
    out = subprocess.run(["git", "ls-files"], cwd=chartlib.REPO, capture_output=True, text=True, check=True).stdout
    return frozenset(out.splitlines())


def image_files() -> set[str]:
    """Absolute paths image/Dockerfile adds to the official base image."""
    text = (chartlib.REPO / "image" / "Dockerfile").read_text()
    return {m.group(2) for m in re.finditer(r"^COPY\s+(?:--\S+\s+)*(\S+)\s+(\S+)\s*$", text, flags=re.M)}


def _under(path: str, root: str) -> str | None:
    """path relative to root, or None when path is not below root."""
    root = root.rstrip("/")
    if path == root:
        return ""
    if path.startswith(root + "/"):
        return path[len(root) + 1 :]
    return None


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env") or [] if "value" in e}


def _from_git_sync(pod: dict[str, Any], volume: str, relative: str) -> str:
    """Why the git-sync checkout in this volume does (or does not) hold the file ('' when it does)."""
    for container in pod["spec"].get("initContainers") or []:
        mount = next((m for m in container.get("volumeMounts") or [] if m["name"] == volume), None)
        env = _env(container)
        if mount is None or "GITSYNC_ROOT" not in env:
            continue
        seen_as = str(PurePosixPath(mount["mountPath"]) / mount.get("subPath", "") / relative)
        in_checkout = _under(seen_as, f"{env['GITSYNC_ROOT'].rstrip('/')}/{env['GITSYNC_LINK']}")
        if in_checkout is None:
            return f"volume {volume!r} is git-sync's, but {seen_as} is outside its checkout"
        if in_checkout not in repo_files():
            return f"git-sync checks out this repository, which has no file {in_checkout}"
        return ""
    return f"volume {volume!r} is an emptyDir no init container fills"


def why_missing(pod: dict[str, Any], path: str) -> str:
    """'' when the pod provides the file at path, else the reason it does not."""
    container = next(c for c in pod["spec"]["containers"] if c["name"] == TASK_CONTAINER)
    mounts = [(m, _under(path, m["mountPath"])) for m in container.get("volumeMounts") or []]
    mounts = [(m, rel) for m, rel in mounts if rel is not None]
    if not mounts:
        if path in image_files():
            return ""
        return "no volume of the pod is mounted there, and image/Dockerfile does not add it to the image"
    mount, relative = max(mounts, key=lambda found: len(found[0]["mountPath"]))
    relative = str(PurePosixPath(mount.get("subPath", "")) / relative) if mount.get("subPath") else relative
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    if "secret" in volume:
        name = volume["secret"]["secretName"]
        items = {i["path"]: i["key"] for i in volume["secret"].get("items") or []}
        key = items.get(relative, relative if not items else None)
        if key is None or key not in secret_keys().get(name, ()):
            return f"Secret {name!r} (as `make secrets` writes it) has no key for {relative!r}"
        return ""
    if "emptyDir" in volume:
        return _from_git_sync(pod, mount["name"], relative)
    return f"volume {mount['name']!r} is of a kind this check cannot see into: {json.dumps(volume)}"

"""tripclick_ops, the operator's client, stands on its own: it imports nothing else of the repository, so it
reaches the local stack exactly as it reaches production (a URL and a password file) and runs from any copy of
the package."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import DAGS, REPO
from tests.dags.imports import imported_modules, top_level_modules

PACKAGE = "tripclick_ops"


def repository_imports(root: Path) -> list[tuple[str, str]]:
    """(file, module) for every import in root/tripclick_ops of a module the repository holds: a top-level
    package or module of the repository's root or of its DAG folder (on sys.path in Airflow and the tests)."""
    ours = (top_level_modules(root) | top_level_modules(root / "dags")) - {PACKAGE}
    found = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        for name in imported_modules(path, root):
            if name.split(".")[0] in ours:
                found.append((path.relative_to(root).as_posix(), name))
    return found


def test_tripclick_ops_imports_nothing_else_of_the_repository():
    assert repository_imports(REPO) == []


def test_an_import_of_the_repository_from_tripclick_ops_is_caught(tmp_path):
    """The check above on a copy that breaks the rule: at the top, inside a function, relative past the package."""
    shutil.copytree(REPO / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("demo/stack", "scripts/kind", "tests"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    shutil.copytree(DAGS, tmp_path / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / PACKAGE / "extra.py").write_text(
        "import json\n"
        "from tripclick_ops import outcomes\n"
        "import tests.conftest\n"
        "from .. import scripts\n"
        "def connect():\n"
        "    from demo.stack import config\n"
        "    from tripclick.notify import SUMMARY_STAGES\n"
    )
    assert [found for found in repository_imports(tmp_path) if found[0].endswith("/extra.py")] == [
        ("tripclick_ops/extra.py", "tests.conftest"),
        ("tripclick_ops/extra.py", "scripts"),
        ("tripclick_ops/extra.py", "demo.stack"),
        ("tripclick_ops/extra.py", "tripclick.notify"),
    ]

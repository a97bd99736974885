"""What a source tree imports, read from its files' syntax: an import inside a function counts as much as one at
the top, though it only runs when the function does."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_modules(path: Path, root: Path) -> list[str]:
    """The absolute names of the modules `path` imports, a relative import resolved against the package `path` is
    in (`root` is the folder on sys.path that holds it): `from .. import x` in root/pkg/mod.py is `x`."""
    package = path.relative_to(root).parent.parts
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: max(0, len(package) - node.level + 1)]) if node.level else []
            if node.module:
                names.append(".".join([*base, node.module]))
            else:
                names += [".".join([*base, alias.name]) for alias in node.names]
    return names


def top_level_modules(root: Path) -> set[str]:
    """Every name `import <name>` finds in `root` when it is on sys.path: packages (namespace ones too: any folder
    with a .py file under it) and modules."""
    names = {path.stem for path in root.glob("*.py")}
    names |= {
        folder.name
        for folder in root.iterdir()
        if folder.is_dir() and folder.name.isidentifier() and next(folder.rglob("*.py"), None) is not None
    }
    return names

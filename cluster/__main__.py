"""python -m cluster build|images|up|down|status|leftovers"""

from __future__ import annotations

import sys

from . import build, components, down, images, proc, up


def status() -> int:
    for c in components.COMPONENTS:
        pid = proc.running(c.name)
        print(f"  {c.name:24} {'pid ' + str(pid) if pid else 'stopped'}")
    return 0


def leftovers() -> int:
    left = down.leftovers()
    for line in left:
        print(f"  - {line}")
    print("nothing of the cluster is on the host" if not left else f"{len(left)} leftovers")
    return 1 if left else 0


def main(argv: list[str]) -> int:
    commands = {
        "build": lambda: build.main(argv[1:]),
        "images": lambda: print(images.ensure_tarballs()) or 0,
        "up": up.up,
        "down": down.down,
        "status": status,
        "leftovers": leftovers,
    }
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        return commands[argv[0]]()
    except (proc.ClusterError, build.BuildError) as e:
        print(f"cluster {argv[0]}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

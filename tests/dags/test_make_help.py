"""`make help` lists every target once, under the heading of its group, in the Makefile's heading order."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import REPO

MAKEFILE = REPO / "Makefile"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def make_help(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "-f", "Makefile", *extra, "help"],
        capture_output=True,
        text=True,
        check=False,
    )


def sections(output: str) -> dict[str, list[str]]:
    listed: dict[str, list[str]] = {}
    heading = None
    for line in ANSI.sub("", output).splitlines():
        if line and not line.startswith(" "):
            heading = line
            listed[heading] = []
        elif line.strip():
            listed[heading].append(line.split()[0])
    return listed


def test_every_target_is_listed_once_under_its_group():
    done = make_help()
    assert done.returncode == 0, done.stderr
    listed = sections(done.stdout)
    order = re.search(r"^HELP_SECTIONS := (.+)$", MAKEFILE.read_text(), re.M).group(1).split("|")
    assert list(listed) == order == ["Set up", "Run", "Test", "Deploy", "Operate"]
    targets = [t for names in listed.values() for t in names]
    phony = set(re.findall(r"^\.PHONY: ([\w-]+)$", MAKEFILE.read_text(), re.M))
    assert sorted(targets) == sorted(phony), "every .PHONY target needs a `## ` description, listed once"
    assert "demo" in listed["Run"] and "test" in listed["Test"] and "image" in listed["Deploy"]


def test_a_heading_outside_the_list_fails_help(tmp_path):
    extra = tmp_path / "extra.mk"
    extra.write_text("##@ Elsewhere\n.PHONY: stray\nstray: ## A target under an unknown heading\n\ttrue\n")
    done = make_help("-f", str(extra))
    assert done.returncode != 0 and "no heading Elsewhere" in done.stderr

"""docs/install.md's k3s install command sets up what the release assumes of the cluster.

k3s keeps Secrets unencrypted in its datastore unless the server starts with `--secrets-encryption`,
and it cannot be turned on for a server that started without it: the documented command must carry it.
"""

from __future__ import annotations

import re
import shlex

from tests.chart import chartlib

INSTALLER = "get.k3s.io"


def install_commands(readme: str) -> list[str]:
    """Every documented `curl ... get.k3s.io | ... sh -s - <server flags>` command (inline code or block)."""
    commands = []
    for line in readme.splitlines():
        if INSTALLER not in line:
            continue
        spans = re.findall(r"`([^`]*" + re.escape(INSTALLER) + r"[^`]*)`", line)
        commands.extend(spans or [line.strip()])
    return commands


def server_flags(command: str) -> list[str]:
    """The arguments the install script passes to `k3s server`: what follows `sh -s -`."""
    _, _, script = command.partition("|")
    words = shlex.split(script)
    assert "sh" in words, f"not piped into sh: {command}"
    args = words[words.index("sh") + 1 :]
    assert args[:2] == ["-s", "-"], f"no `sh -s -` to pass server flags: {command}"
    return args[2:]


def test_the_documented_k3s_install_encrypts_secrets_at_rest():
    commands = install_commands((chartlib.REPO / "docs" / "install.md").read_text())
    assert commands, "docs/install.md documents no k3s install command"
    for command in commands:
        flags = server_flags(command)
        assert "--secrets-encryption" in flags or "--secrets-encryption=true" in flags, (
            f"the k3s install command lacks --secrets-encryption (Secrets would sit in plain text): {command}"
        )


def test_the_flag_is_found_only_where_k3s_reads_it():
    """The parser is not fooled by the flag elsewhere on the line, nor by a command without flags."""
    piped_late = "curl -sfL https://get.k3s.io --secrets-encryption | sh -s - --disable traefik"
    assert "--secrets-encryption" not in server_flags(piped_late)
    assert install_commands(f"run `{piped_late}` first") == [piped_late]
    assert server_flags("curl -sfL https://get.k3s.io | sh -s - server --secrets-encryption") == [
        "server",
        "--secrets-encryption",
    ]

"""Docker's ENTRYPOINT x CMD table and the docker run overrides."""

from __future__ import annotations

import pytest

from lamina.errors import InvalidArgument
from lamina.runtime import resolve_command, shell_form

EXEC_ENTRY = ["exec_entry", "p1_entry"]
SHELL_ENTRY = list(shell_form("exec_entry p1_entry"))
EXEC_CMD = ["exec_cmd", "p1_cmd"]
SHELL_CMD = list(shell_form("exec_cmd p1_cmd"))
SH = ["/bin/sh", "-c"]

# Docker's documented table: rows are CMD forms, columns ENTRYPOINT forms.
TABLE = [
    # (entrypoint, cmd, expected argv)
    (None, EXEC_CMD, ["exec_cmd", "p1_cmd"]),
    (None, SHELL_CMD, [*SH, "exec_cmd p1_cmd"]),
    (SHELL_ENTRY, None, [*SH, "exec_entry p1_entry"]),
    (SHELL_ENTRY, EXEC_CMD, [*SH, "exec_entry p1_entry", "exec_cmd", "p1_cmd"]),
    (SHELL_ENTRY, SHELL_CMD, [*SH, "exec_entry p1_entry", *SH, "exec_cmd p1_cmd"]),
    (EXEC_ENTRY, None, ["exec_entry", "p1_entry"]),
    (EXEC_ENTRY, EXEC_CMD, ["exec_entry", "p1_entry", "exec_cmd", "p1_cmd"]),
    (EXEC_ENTRY, SHELL_CMD, ["exec_entry", "p1_entry", *SH, "exec_cmd p1_cmd"]),
]


@pytest.mark.parametrize(("entrypoint", "cmd", "expected"), TABLE)
def test_docker_table(
    entrypoint: list[str] | None, cmd: list[str] | None, expected: list[str]
) -> None:
    assert resolve_command(entrypoint, cmd) == tuple(expected)


def test_shell_entrypoint_ignores_cmd_words_as_the_shell_does() -> None:
    # With a shell-form ENTRYPOINT, CMD words become $0.. of `sh -c`, never run.
    argv = resolve_command(SHELL_ENTRY, EXEC_CMD)
    assert argv[:3] == ("/bin/sh", "-c", "exec_entry p1_entry")


def test_no_entrypoint_no_cmd_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        resolve_command(None, None)
    with pytest.raises(InvalidArgument):
        resolve_command([], [])


def test_run_args_replace_cmd_only() -> None:
    assert resolve_command(None, EXEC_CMD, args=["ls", "-l"]) == ("ls", "-l")
    assert resolve_command(EXEC_ENTRY, EXEC_CMD, args=["x"]) == ("exec_entry", "p1_entry", "x")


def test_entrypoint_override_resets_image_cmd() -> None:
    assert resolve_command(EXEC_ENTRY, EXEC_CMD, entrypoint_override="/bin/true") == ("/bin/true",)
    assert resolve_command(None, EXEC_CMD, entrypoint_override="echo", args=["hi"]) == (
        "echo",
        "hi",
    )


def test_entrypoint_override_is_one_word_never_split() -> None:
    assert resolve_command(None, None, entrypoint_override="my tool") == ("my tool",)


def test_empty_entrypoint_override_clears_both() -> None:
    assert resolve_command(EXEC_ENTRY, EXEC_CMD, entrypoint_override="", args=["sh"]) == ("sh",)
    with pytest.raises(InvalidArgument, match="no command specified"):
        resolve_command(EXEC_ENTRY, EXEC_CMD, entrypoint_override="")


def test_shell_form_uses_given_shell() -> None:
    assert shell_form("dir", ["cmd", "/S", "/C"]) == ("cmd", "/S", "/C", "dir")

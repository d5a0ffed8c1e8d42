"""The click-free ``run`` parser (:mod:`lamina.cli._runfast`) against click's own.

For every argument list the hand parser accepts, it must produce exactly the keyword
arguments click passes to the ``run`` command; for everything else it must decline
(``None``) so that click runs the command -- which for these lists means a usage
error or ``--help``.
"""

from __future__ import annotations

from typing import Any

import click
import pytest

from lamina.cli import FAST_PATHS
from lamina.cli._runfast import CREATE_OPTIONS, RUN_OPTIONS, fast_main, parse_args
from lamina.cli.cmd_container import create_cmd, run_cmd


def click_params(argv: list[str]) -> dict[str, Any]:
    ctx = run_cmd.make_context("run", list(argv), obj={"root": "/nonexistent"})
    return dict(ctx.params)


ACCEPTED = [
    ["img"],
    ["img", "true"],
    ["--rm", "img", "echo", "hi"],
    ["--rm", "-d", "--name", "web", "img"],
    ["-it", "img", "sh"],
    ["-dit", "--rm", "img"],
    ["-ti", "img", "sh", "-c", "echo $X"],
    ["-e", "A=1", "-eB=2", "--env", "C=3", "--env=D=4", "-e", "E", "img"],
    ["-e=A", "img"],  # click: the value of -e is "=A"
    ["-ie", "K=V", "img"],
    ["-ieK=V", "img"],
    ["-w", "/tmp", "-u", "1:2", "--workdir=/srv", "img", "pwd"],
    ["--name", "a", "--name", "b", "img"],  # the last one wins
    ["--name=", "img"],
    ["--name", "--rm", "img"],  # a value that looks like a flag is still the value
    ["-v", "/a:/b", "-v", "vol:/c:ro", "--volume=/d", "--mount", "type=tmpfs,target=/t", "img"],
    ["--tmpfs", "/run:size=1m", "--read-only", "img"],
    ["-p", "8080:80", "-p127.0.0.1::53/udp", "--publish=9000:90", "-P", "img"],
    ["--entrypoint", "", "img", "a", "b"],
    ["--entrypoint=/bin/sh", "img", "-c", "exit 3"],
    ["--network", "host", "img"],
    ["--net=none", "img"],
    ["-h", "box", "--hostname=box2", "img"],
    ["--cap-add", "NET_ADMIN", "--cap-drop=ALL", "img"],
    ["-m", "32m", "--memory-swap", "-1", "--cpus", "0.5", "--pids-limit", "20", "img"],
    ["--cpus=1e0", "--pids-limit", "+7", "--stop-timeout", " 3 ", "img"],
    ["--runtime", "crun", "--stop-signal", "SIGINT", "--stop-timeout=5", "img"],
    ["-l", "a=b", "--label", "c", "--env-file", "/dev/null", "img"],
    ["-i", "-t", "--interactive", "img"],  # a repeated flag
    ["img", "--rm", "--help", "-x"],  # after IMAGE everything is the command's
    ["--", "img", "--help"],
    ["--rm", "--", "-img", "x"],
    ["-", "x"],  # "-" is a positional, as for click
    ["--rm", "img", "--", "x"],
]


@pytest.mark.parametrize("argv", ACCEPTED, ids=" ".join)
def test_same_keyword_arguments_as_click(argv: list[str]) -> None:
    assert parse_args(argv) == click_params(argv)


REFUSED_BY_CLICK = [
    [],
    ["--rm"],
    ["--"],
    ["--rm", "--"],
    ["--bogus", "img"],
    ["-x", "img"],
    ["-itx", "img"],
    ["--rm=1", "img"],
    ["--detach=yes", "img"],
    ["--name"],
    ["-e"],
    ["-it", "-e"],
    ["--cpus", "lots", "img"],
    ["--pids-limit", "1.5", "img"],
    ["--stop-timeout=", "img"],
    ["--re", "img"],  # no abbreviations
    ["--env-files", "x", "img"],
]


@pytest.mark.parametrize("argv", REFUSED_BY_CLICK, ids=" ".join)
def test_declines_what_click_rejects(argv: list[str]) -> None:
    assert parse_args(argv) is None
    with pytest.raises(click.UsageError):
        click_params(argv)


@pytest.mark.parametrize("argv", [["--help"], ["--rm", "--help", "img"], ["-d", "--help"]])
def test_help_goes_to_click(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(argv) is None
    assert fast_main(argv) is None
    with pytest.raises(click.exceptions.Exit):
        click_params(argv)
    assert "Usage: run [OPTIONS] IMAGE [ARGS]..." in capsys.readouterr().out


def test_fast_main_declines_without_touching_a_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMINA_ROOT", "/nonexistent/lamina-root")
    assert fast_main(["--bogus", "img"]) is None


def test_run_is_a_fast_path() -> None:
    assert FAST_PATHS["run"] == "lamina.cli._runfast"


def test_option_table_is_the_click_commands() -> None:
    """Every click option of ``run`` and ``create`` comes from the shared table, in order
    (the defaults are compared by ``test_same_keyword_arguments_as_click``)."""
    def options(cmd: click.Command) -> list[tuple[tuple[str, ...], str | None]]:
        return [(tuple(p.opts + p.secondary_opts), p.name) for p in cmd.params
                if isinstance(p, click.Option) and p.name != "help"]

    assert options(run_cmd) == [(decls, dest) for decls, dest, *_ in RUN_OPTIONS]
    assert options(create_cmd) == [(decls, dest) for decls, dest, *_ in CREATE_OPTIONS]

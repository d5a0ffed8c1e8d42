"""shellcheck's comments on RUN scripts, at the right place in the Dockerfile.

Two halves: the engine's side (which scripts it hands over, in one batch, and how a
position in a script maps back to a Dockerfile line and column) is tested with a
recording checker; the CLI adapter is tested against the real ``shellcheck`` binary
(skipped when it is not installed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import parse_df
from lamina.cli.cmd_lint import command, shellcheck_adapter
from lamina.lint.engine import joined_positions, lint_document
from lamina.lint.model import Finding, LintOptions, ShellComment, ShellScript
from lamina.lint.runner import LintSettings, lint_source

SHELLCHECK = shutil.which("shellcheck")
needs_shellcheck = pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck is not installed")

U = "USER 1000\n"


class Recorder:
    """A checker that records its batches and answers with canned comments per script."""

    def __init__(self, answer: dict[str, list[ShellComment]] | None = None) -> None:
        self.batches: list[list[ShellScript]] = []
        self.answer = answer or {}

    def __call__(self, scripts: Sequence[ShellScript]) -> list[list[ShellComment]]:
        self.batches.append(list(scripts))
        return [self.answer.get(s.text, []) for s in scripts]


def _sc(text: str, checker: Any) -> list[Finding]:
    return [f for f in lint_document(parse_df(text), LintOptions(), shellcheck=checker)
            if f.source == "shellcheck"]


# --- engine side ---------------------------------------------------------------------


def test_one_batch_with_every_shell_script_and_its_dialect() -> None:
    text = ("FROM debian:12\nARG mode=dev\nENV home=/srv\nRUN echo a\nRUN [\"echo\", \"exec\"]\n"
            "RUN <<EOF\necho body\nEOF\nRUN python3 <<EOF\nprint(1)\nEOF\n"
            "SHELL [\"/bin/bash\", \"-c\"]\nRUN echo b\nONBUILD RUN echo c\n"
            "RUN <<EOF\n#!/bin/dash\necho d\nEOF\n" + U)
    rec = Recorder()
    _sc(text, rec)
    assert len(rec.batches) == 1
    got = [(s.text, s.shell) for s in rec.batches[0]]
    # exec form and a heredoc fed to python are not shell scripts
    assert got == [("echo a", "sh"), ("echo body\n", "sh"), ("echo b", "bash"),
                   ("#!/bin/dash\necho d\n", "dash"), ("echo c", "bash")]
    assert rec.batches[0][0].defined == ("mode", "home")


def test_no_checker_call_without_shell_scripts() -> None:
    rec = Recorder()
    _sc('FROM alpine:3.20\nRUN ["true"]\n' + U, rec)
    assert rec.batches == []


def test_positions_map_through_continuations_comments_and_tabs() -> None:
    text = ("FROM debian:12\n"
            "RUN --mount=type=cache,target=/var/cache/apt \\\n"
            "    apt-get update && \\\n"
            "    # a comment line the parser drops\n"
            "\techo $x && \\\n"
            "    cd /src\n" + U)
    doc = parse_df(text)
    script = doc.nodes[1].args[0]
    joined, where = joined_positions(doc, doc.nodes[1])
    assert joined.endswith(script)
    assert where[joined.rindex("$x")] == (5, 7)  # the tab counts as one column
    col_x = script.index("$x") + 1
    col_cd = script.index("cd /src") + 1
    rec = Recorder({script: [ShellComment(2086, "info", "quote it", 1, col_x),
                             ShellComment(2164, "warning", "cd may fail", 1, col_cd)]})
    found = _sc(text, rec)
    assert [(f.code, f.line, f.column) for f in found] == [("SC2086", 5, 7), ("SC2164", 6, 5)]
    assert found[1].doc == "https://www.shellcheck.net/wiki/SC2164"


def test_heredoc_body_positions_start_below_the_run_line() -> None:
    text = "FROM debian:12\nRUN <<EOF\nset -e\necho $y\nEOF\n" + U
    rec = Recorder({"set -e\necho $y\n": [ShellComment(2154, "warning", "y unset", 2, 6)]})
    assert [(f.line, f.column) for f in _sc(text, rec)] == [(4, 6)]


def test_ignores_apply_to_sc_codes() -> None:
    text = "FROM debian:12\n# lamina ignore=SC2164\nRUN cd /x\nRUN cd /y\n" + U
    rec = Recorder({"cd /x": [ShellComment(2164, "warning", "m", 1, 1)],
                    "cd /y": [ShellComment(2164, "warning", "m", 1, 1)]})
    assert [f.line for f in _sc(text, rec)] == [4]


# --- the real shellcheck -------------------------------------------------------------


@needs_shellcheck
def test_real_shellcheck_codes_at_their_dockerfile_lines() -> None:
    assert SHELLCHECK is not None
    text = ("FROM debian:12\n"                              # 1
            "ENV app_home=/srv/app\n"                       # 2
            "RUN apt-get update && \\\n"                    # 3
            "    # fetch nothing\n"                         # 4
            "    echo $app_home $undefined_thing && \\\n"   # 5
            "    cd /tmp\n"                                 # 6
            "RUN <<EOF\n"                                   # 7
            "set -e\n"                                      # 8
            "echo `date`\n"                                 # 9
            "EOF\n"                                         # 10
            "SHELL [\"/bin/bash\", \"-c\"]\n"               # 11
            "RUN [[ -n \"$HOME\" ]] && echo ok\n"           # 12
            "ONBUILD RUN cd /x\n"                           # 13
            + U)
    settings = LintSettings(shellcheck=shellcheck_adapter(SHELLCHECK))
    found = {(f.code, f.line, f.column) for f in lint_source(text, "Dockerfile", settings).findings
             if f.source == "shellcheck"}
    assert ("SC2086", 5, 10) in found             # $app_home unquoted, on its physical line
    assert ("SC2154", 5, 20) in found             # a lower-case name nobody sets
    assert not any(c == "SC2154" and col == 10 for c, _, col in found)  # ENV sets app_home
    assert ("SC2164", 6, 5) in found              # cd without || exit
    assert ("SC2006", 9, 6) in found              # backticks in the heredoc body
    assert ("SC2164", 13, 13) in found            # the ONBUILD trigger
    assert not any(line == 12 for _, line, _ in found)  # [[ ]] is fine under bash


@needs_shellcheck
def test_real_shellcheck_runs_once_per_dockerfile(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SHELLCHECK is not None
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(args: list[str], **kw: Any) -> Any:
        calls.append(list(args))
        return real_run(args, **kw)

    monkeypatch.setattr(subprocess, "run", counting_run)
    text = "FROM debian:12\n" + "".join(f"RUN cd /d{i}\n" for i in range(6)) + U
    settings = LintSettings(shellcheck=shellcheck_adapter(SHELLCHECK))
    found = [f for f in lint_source(text, "Dockerfile", settings).findings if f.code == "SC2164"]
    assert [f.line for f in found] == [2, 3, 4, 5, 6, 7]
    assert len(calls) == 1 and calls[0][0] == SHELLCHECK


def test_adapter_survives_a_broken_checker(tmp_path: Path) -> None:
    fake = tmp_path / "shellcheck"
    fake.write_text("#!/bin/sh\necho 'not json'\n")
    fake.chmod(0o755)
    out = shellcheck_adapter(str(fake))([ShellScript("cd /x")])
    assert [list(c) for c in out] == [[]]
    assert shellcheck_adapter(str(tmp_path / "missing"))([ShellScript("ls")]) == [[]]


@needs_shellcheck
def test_cli_reports_sc_codes_and_honours_ignore(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text("FROM debian:12\nRUN cd /x; echo `pwd`\n" + U)
    res = CliRunner().invoke(command, [str(df), "--format", "json"])
    items = json.loads(res.output)
    sc = {(i["code"], i["line"], i["source"]) for i in items if i["code"].startswith("SC")}
    assert {("SC2164", 2, "shellcheck"), ("SC2006", 2, "shellcheck")} <= sc
    res = CliRunner().invoke(command, [str(df), "--format", "json", "--ignore", "sc2006"])
    assert "SC2006" not in {i["code"] for i in json.loads(res.output)}
    res = CliRunner().invoke(command, [str(df), "--format", "json", "--no-shellcheck"])
    assert not any(i["code"].startswith("SC") for i in json.loads(res.output))

"""The classic example, pragmas, configuration, --fix, output formats, CLI and runner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import codes, lint
from lamina.cli.cmd_lint import command
from lamina.errors import InvalidArgument
from lamina.lint.config import parse_pyproject, parse_yaml
from lamina.lint.model import LintConfig, LintOptions, Severity
from lamina.lint.render import render_github, render_json, render_sarif, render_text
from lamina.lint.runner import fix_file, lint_file, lint_for_build, scan_context

CLASSIC = """\
FROM python:alpine3.17
RUN apt-get update && apt-get install -y \\
    build-essential curl libsqlite3-dev \\
    && rm -rf /var/lib/apt/lists/*
USER work
WOKRDIR /home/work
COPY requirements.txt .
RUN pip install --requirement requirements.txt
COPY app .
EXPOSE 8000
CMD ["python", "manage.py", "runserver", "0.0.0.0:8000"]
"""


def test_classic_example_exact_findings() -> None:
    found = lint(CLASSIC)
    assert sorted((f.code, f.line) for f in found) == [
        ("LM201", 6), ("LM301", 2), ("LM307", 8), ("LM402", 5)]
    typo = next(f for f in found if f.code == "LM201")
    assert "did you mean 'WORKDIR'" in typo.message
    for f in found:
        assert f.fix and f.doc == f"docs/lint/{f.code}.md"
        assert Path(__file__).parents[3].joinpath(f.doc).is_file()


# --- pragmas and configuration ---------------------------------------------------------


def test_hadolint_and_lamina_pragmas_on_the_line_above() -> None:
    base = "FROM ubuntu:24.04\n{p}RUN apt-get update && apt-get install -y curl\nUSER 1\n"
    assert {"LM305", "LM306"} <= codes(base.format(p=""))
    got = codes(base.format(p="# hadolint ignore=DL3015\n# lamina ignore=LM306\n"))
    assert "LM305" not in got and "LM306" not in got
    # a pragma two instructions up does not apply
    far = "FROM ubuntu:24.04\n# lamina ignore=LM305\nRUN true\nRUN apt-get update && apt-get install -y x\nUSER 1\n"
    assert "LM305" in codes(far)


def test_global_pragma() -> None:
    assert "LM102" not in codes("# hadolint global ignore=DL3007\nFROM ubuntu:latest\nUSER 1\n")


def test_config_ignore_and_severity_override() -> None:
    text = "FROM ubuntu:latest\nUSER 1\n"
    opts = LintOptions(config=LintConfig(ignore=frozenset({"DL3007"})))
    assert "LM102" not in codes(text, opts)
    opts = LintOptions(config=LintConfig(severity={"LM102": Severity.ERROR}))
    assert [f.severity for f in lint(text, opts) if f.code == "LM102"] == [Severity.ERROR]


def test_config_files_parse() -> None:
    cfg = parse_yaml("ignore: [lm210]\nseverity: {LM305: warning}\n"
                     "trusted-registries: [ghcr.io]\nfailure-threshold: error\n")
    assert cfg == LintConfig(frozenset({"LM210"}), {"LM305": Severity.WARNING}, ("ghcr.io",),
                             Severity.ERROR)
    py = parse_pyproject('[tool.lamina.lint]\nignore = ["LM101"]\nfailure_threshold = "none"\n')
    assert py is not None and py.ignore == {"LM101"} and py.failure_threshold is Severity.NONE
    assert parse_pyproject("[tool.other]\nx = 1\n") is None
    with pytest.raises(InvalidArgument, match="unknown lint setting"):
        parse_yaml("ignroe: [LM1]\n")
    with pytest.raises(InvalidArgument, match="severity of LM1"):
        parse_yaml("severity: {LM1: loud}\n")


# --- --fix -----------------------------------------------------------------------------


def test_fix_rewrites_mechanical_problems(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text("FROM debian:12\nMAINTAINER Jane <j@example.com>\nWOKRDIR /app\n"
                  "RUN apt-get update\nRUN apt-get install curl\nADD run.sh /run.sh\nUSER 1\n")
    os.chmod(df, 0o640)
    applied = fix_file(df)
    assert applied
    assert df.read_text() == (
        'FROM debian:12\nLABEL org.opencontainers.image.authors="Jane <j@example.com>"\n'
        "WORKDIR /app\nRUN apt-get update && apt-get install --no-install-recommends -y curl"
        " && rm -rf /var/lib/apt/lists/*\nCOPY run.sh /run.sh\nUSER 1\n")
    assert oct(df.stat().st_mode & 0o777) == "0o640"
    left = {f.code for f in lint_file(df).findings}
    assert not left & {"LM201", "LM202", "LM207", "LM303", "LM304", "LM305", "LM306"}
    assert [p.name for p in tmp_path.iterdir()] == ["Dockerfile"]  # no temp file left


def test_fix_leaves_unfixable_findings(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text(CLASSIC)
    fix_file(df)
    text = df.read_text()
    assert "WORKDIR /home/work" in text and "pip install --no-cache-dir --requirement" in text
    assert {f.code for f in lint_file(df).findings} == {"LM301", "LM402"}


# --- output formats --------------------------------------------------------------------


def test_text_output_has_caret_under_column() -> None:
    found = lint(CLASSIC)
    out = render_text(found, {"Dockerfile": CLASSIC.splitlines()})
    lines = out.splitlines()
    i = lines.index(next(x for x in lines if "LM307" in x))
    assert lines[i + 1].endswith("RUN pip install --requirement requirements.txt")
    assert lines[i + 2].index("^") == lines[i + 1].index("pip")
    assert lines[-1] == "4 findings (3 error, 1 warning)"


def test_json_output_fields() -> None:
    data = json.loads(render_json(lint(CLASSIC)))
    assert {d["code"] for d in data} == {"LM201", "LM301", "LM307", "LM402"}
    assert set(data[0]) >= {"code", "severity", "file", "line", "column", "message", "fix", "doc"}


def test_sarif_structure() -> None:
    log = json.loads(render_sarif(lint(CLASSIC)))
    assert log["version"] == "2.1.0" and "sarif-2.1.0" in log["$schema"]
    run = log["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for res in run["results"]:
        assert ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        region = res["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1


def test_github_annotations() -> None:
    out = render_github(lint(CLASSIC)).splitlines()
    assert out[0].startswith("::error file=Dockerfile,line=2,col=5,title=LM301::LM301 ")
    assert any(x.startswith("::warning file=Dockerfile,line=8,") for x in out)


# --- runner and CLI ----------------------------------------------------------------------


def test_scan_context_reports_unignored_risks(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "node_modules" / "x").mkdir(parents=True)
    (tmp_path / ".env").write_text("A=1")
    (tmp_path / "id_rsa").write_text("k")
    (tmp_path / "big.bin").write_bytes(b"0" * 2048)
    (tmp_path / "app.py").write_text("print()")
    facts = scan_context(tmp_path, large_file_bytes=1024)
    assert not facts.has_dockerignore
    assert {(i.path, i.kind) for i in facts.exposed} == {
        (".git", "git"), ("node_modules", "node_modules"), (".env", "env"),
        ("id_rsa", "key"), ("big.bin", "large")}
    (tmp_path / ".dockerignore").write_text(".git\nnode_modules\n.env\n*.bin\n")
    facts = scan_context(tmp_path, large_file_bytes=1024)
    assert facts.has_dockerignore and [i.path for i in facts.exposed] == ["id_rsa"]


def test_config_file_next_to_dockerfile(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text("FROM ubuntu:latest\nUSER 1\n")
    assert "LM102" in {f.code for f in lint_file(df).findings}
    (tmp_path / ".lamina-lint.yaml").write_text("ignore: [LM102]\n")
    assert "LM102" not in {f.code for f in lint_file(df).findings}


def test_lint_for_build_library_entry() -> None:
    found = lint_for_build("ARG V=3.20\nFROM alpine:${V}\nRUN apt-get install -y x\nUSER 1\n",
                           build_args={"V": "3.19"})
    assert [f.code for f in found] == ["LM301"]


def test_syntax_error_is_a_finding() -> None:
    found = lint_for_build("FROM alpine:3.20\nENV ONLYKEY\n")
    assert [f.code for f in found] == ["LM001"]


def test_cli_exit_status_threshold_and_formats(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text(CLASSIC)
    runner = CliRunner()
    res = runner.invoke(command, [str(df), "--no-shellcheck"])
    assert res.exit_code == 1 and "LM402" in res.output and "^" in res.output
    res = runner.invoke(command, [str(df), "--format", "json", "--no-shellcheck",
                                  "--ignore", "LM301", "--ignore", "LM402", "--ignore", "LM201",
                                  "--failure-threshold", "error"])
    assert res.exit_code == 0
    assert [d["code"] for d in json.loads(res.output)] == ["LM307"]
    res = runner.invoke(command, ["-", "--format", "github", "--no-shellcheck",
                                  "--failure-threshold", "none"], input="FROM node\nUSER node\n")
    assert res.exit_code == 0 and res.output.startswith("::warning file=-,line=1")
    res = runner.invoke(command, [str(df), "--build-arg", "novalue", "--no-shellcheck"])
    assert isinstance(res.exception, InvalidArgument)


def test_cli_fix(tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text("FROM alpine:3.20\nWOKRDIR /app\nUSER nobody\n")
    res = CliRunner().invoke(command, [str(df), "--fix", "--no-shellcheck"])
    assert res.exit_code == 0, res.output
    assert df.read_text() == "FROM alpine:3.20\nWORKDIR /app\nUSER nobody\n"

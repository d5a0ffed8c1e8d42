"""``lamina parse``: output formats, input sources and the error report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lamina.cli.cmd_parse import command

DOCKERFILE = "FROM alpine AS base\nRUN --mount=type=cache,target=/c \\\n    echo hi\nCOPY <<EOF /x\nbody\nEOF\n"


@pytest.fixture
def dockerfile(tmp_path: Path) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(DOCKERFILE)
    return path


def test_json_is_the_default(dockerfile: Path) -> None:
    result = CliRunner().invoke(command, [str(dockerfile)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["cmd"] for d in data] == ["from", "run", "copy"]
    assert data[1]["flags"] == ["--mount=type=cache,target=/c"]
    assert data[1]["value"] == ["echo hi"]  # the text after the flags is trimmed
    assert (data[1]["start_line"], data[1]["end_line"]) == (2, 3)
    assert data[2]["heredocs"][0]["content"] == "body\n"


def test_buildkit_format_and_file_option(dockerfile: Path) -> None:
    result = CliRunner().invoke(command, ["--format", "buildkit", "-f", str(dockerfile)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        '(from "alpine" "AS" "base")',
        '(run ["--mount=type=cache,target=/c"] "echo hi")',
        '(copy "<<EOF" "/x")',
    ]


def test_stdin() -> None:
    result = CliRunner().invoke(command, ["--format", "buildkit", "-"], input="FROM scratch\n")
    assert result.exit_code == 0
    assert result.stdout == '(from "scratch")\n'


def test_default_path_is_dockerfile_in_cwd(
    dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(dockerfile.parent)
    result = CliRunner().invoke(command, ["--format", "buildkit"])
    assert result.exit_code == 0
    assert result.stdout.startswith('(from "alpine"')


def test_syntax_error_report(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text('FROM x\n\tCMD ["a", 42]\n')
    result = CliRunner().invoke(command, [str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:2:12: error: JSON array element 2 is a number (42)")
    assert lines[1] == '  \tCMD ["a", 42]'
    assert lines[2] == "  \t" + " " * 10 + "^"
    assert lines[3].startswith("hint: ")


def test_file_with_no_instructions_report(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("# nothing here\n")
    result = CliRunner().invoke(command, [str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"{path}: error: file with no instructions"


def test_warnings_go_to_stderr(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM x\nRUN a \\\n\n  b\n")
    result = CliRunner().invoke(command, ["--format", "buildkit", str(path)])
    assert result.exit_code == 0
    assert result.stdout == '(from "x")\n(run "a   b")\n'
    assert f"{path}:4: warning: Empty continuation line found in: RUN a   b" in result.stderr


def test_both_file_and_argument_is_a_usage_error(dockerfile: Path) -> None:
    result = CliRunner().invoke(command, ["-f", str(dockerfile), "other"])
    assert result.exit_code == 2


def test_console_script_end_to_end(dockerfile: Path) -> None:
    """Through the real entry point: missing files are a one-line error, not a traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "lamina", "parse", str(dockerfile.parent / "nope")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "no such Dockerfile" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "lamina", "parse", "--format", "buildkit", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0] == '(from "alpine" "AS" "base")'

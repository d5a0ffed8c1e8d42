"""``lamina lint``: check Dockerfiles against best practices (see docs/lint/index.md).

Exit status: 0 when no finding reaches the failure threshold, 1 when one does,
125 for bad arguments.  ``--fix`` rewrites the mechanical problems in place (atomically)
and then reports what is left.

When ``shellcheck`` is on ``PATH`` its comments on each RUN script and RUN heredoc
body are included (codes ``SCxxxx``, at their own line and column in the
Dockerfile); one ``shellcheck`` process checks all the RUNs of a Dockerfile.  The
adapter lives here because the lint package itself runs no subprocesses (it is a
pure package by contract).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import click

from lamina.errors import InvalidArgument
from lamina.lint.model import Severity, ShellChecker, ShellComment, ShellScript

_HEADER_LINES = 2


def _with_header(script: ShellScript) -> str:
    """The script as shellcheck reads it: two header lines, then the text unchanged.

    Line 1 is a ``shell=`` directive (a batch mixes dialects, and one process takes one
    ``--shell``); line 2 ``export``s the ARG/ENV names so that a variable the
    Dockerfile sets is not "referenced but not assigned".  Comments are shifted back
    by :data:`_HEADER_LINES`.
    """
    names = " ".join(n for n in script.defined if n.isidentifier())
    return f"# shellcheck shell={script.shell}\n{'export ' + names if names else ':'}\n" + (
        script.text if script.text.endswith("\n") else script.text + "\n")


def shellcheck_adapter(binary: str, timeout: float = 120.0) -> ShellChecker:
    """A :data:`ShellChecker` running ``binary`` once for a whole batch of scripts.

    Each script goes to its own file in a temporary directory (each RUN is a separate
    shell, so they must not be checked as one script); shellcheck checks them all in
    one process and its ``json1`` output names the file of every comment.  A checker
    that cannot run (missing, killed, timed out, unreadable output) yields no comments
    rather than failing the lint.
    """

    def check(scripts: Sequence[ShellScript]) -> Sequence[Sequence[ShellComment]]:
        found: list[list[ShellComment]] = [[] for _ in scripts]
        if not scripts:
            return found
        with tempfile.TemporaryDirectory(prefix="lamina-shellcheck-") as tmp:
            paths = []
            for k, script in enumerate(scripts):
                path = os.path.join(tmp, f"run{k}.sh")
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(_with_header(script))
                paths.append(path)
            index = {p: k for k, p in enumerate(paths)}
            try:
                proc = subprocess.run([binary, "--norc", "--format=json1", "--", *paths],
                                      capture_output=True, text=True, timeout=timeout,
                                      check=False)
                data = json.loads(proc.stdout or "{}")
            except (OSError, subprocess.TimeoutExpired, ValueError):
                return found
        for c in data.get("comments", []) if isinstance(data, dict) else []:
            k = index.get(str(c.get("file", "")), -1)
            line = int(c.get("line", 1)) - _HEADER_LINES
            if k < 0 or line < 1:
                continue  # a comment on the header itself
            found[k].append(ShellComment(int(c.get("code", 0)), str(c.get("level", "info")),
                                         str(c.get("message", "")), line,
                                         int(c.get("column", 1))))
        return found

    return check


def _build_args(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        if "=" not in v:
            raise InvalidArgument(f"--build-arg {v!r} is not KEY=VALUE",
                                  hint="write --build-arg NAME=value")
        k, val = v.split("=", 1)
        out[k] = val
    return out


def _store_facts(ctx: click.Context) -> Any:
    """Facts about base images in the local store, when there is one (never creates it)."""
    root = ctx.obj.get("root") if ctx.obj else None
    if not root or not os.path.exists(os.path.join(root, "metadata.db")):
        return None
    from lamina.engine.sources import base_facts_from_store

    return base_facts_from_store(root)


@click.command("lint")
@click.argument("dockerfiles", nargs=-1, required=True, metavar="DOCKERFILE...|-")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "github"]),
              default="text", show_default=True, help="Output format.")
@click.option("--context", "context", default=None, metavar="DIR",
              help="Build context to check (.dockerignore, secrets, large files).")
@click.option("--ignore", "ignore", multiple=True, metavar="CODE",
              help="Ignore a code (LMxxx, hadolint DLxxxx or shellcheck SCxxxx); repeatable.")
@click.option("--failure-threshold", "threshold",
              type=click.Choice(["error", "warning", "info", "style", "none"]), default=None,
              help="Exit 1 when a finding is at least this severe (default: info).")
@click.option("--fix", "fix", is_flag=True, help="Rewrite mechanical problems in place.")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V",
              help="Value of a build ARG (used to resolve FROM ${ARG}); repeatable.")
@click.option("--shellcheck/--no-shellcheck", "use_shellcheck", default=True,
              show_default=True, help="Include shellcheck's findings when it is installed.")
@click.pass_context
def command(ctx: click.Context, dockerfiles: tuple[str, ...], fmt: str, context: str | None,
            ignore: tuple[str, ...], threshold: str | None, fix: bool,
            build_args: tuple[str, ...], use_shellcheck: bool) -> None:
    """Check Dockerfiles against best practices and common bugs."""
    from lamina.lint.registry import rules_by_code
    from lamina.lint.render import render
    from lamina.lint.runner import LintSettings, fix_file, lint_file, lint_source

    binary = shutil.which("shellcheck") if use_shellcheck else None
    settings = LintSettings(
        build_args=_build_args(build_args),
        context_dir=context,
        ignore=frozenset(c.upper() for c in ignore),
        failure_threshold=Severity.parse(threshold) if threshold else None,
        shellcheck=shellcheck_adapter(binary) if binary else None,
        base_image_facts=_store_facts(ctx),
    )
    reports = []
    for path in dockerfiles:
        if path == "-":
            if fix:
                raise InvalidArgument("--fix cannot rewrite standard input",
                                      hint="pass the Dockerfile's path")
            reports.append(lint_source(sys.stdin.buffer.read(), "-", settings))
            continue
        if fix:
            for line in fix_file(path, settings):
                click.echo(f"fixed {line}", err=True)
        reports.append(lint_file(path, settings))
    findings = [f for r in reports for f in r.findings]
    sources = {r.path: r.source_lines for r in reports}
    summaries = {code: r.summary for code, r in rules_by_code().items()}
    click.echo(render(fmt, findings, sources, summaries), nl=False)
    if any(r.failed for r in reports):
        ctx.exit(1)

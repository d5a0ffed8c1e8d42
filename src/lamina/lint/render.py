"""Render findings as text, JSON, SARIF 2.1.0 or GitHub Actions annotations.

Each renderer is a pure function returning a string; the CLI prints it.

``text`` shows each finding with its source line and a caret under the column::

    Dockerfile:6:1: error LM201 unknown instruction 'WOKRDIR'; did you mean 'WORKDIR'?
        6 | WOKRDIR /home/work
          | ^
      fix: rename it to WORKDIR  [fixable]  (docs/lint/LM201.md)

``json`` is a list of :meth:`Finding.as_dict` objects; ``sarif`` a SARIF 2.1.0
log with one run, the rules that fired as ``tool.driver.rules`` and one result
per finding; ``github`` one ``::error file=…,line=…,col=…,title=…::message`` line
per finding (info and style become ``::notice``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from lamina.lint.model import Finding, Severity

__all__ = ["FORMATS", "render", "render_github", "render_json", "render_sarif", "render_text"]

FORMATS = ("text", "json", "sarif", "github")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def render_text(findings: Sequence[Finding],
                sources: Mapping[str, Sequence[str]] | None = None) -> str:
    """Human-readable report with the source line and a caret for each finding."""
    sources = sources or {}
    out: list[str] = []
    for f in findings:
        out.append(f"{f.file}:{f.line}:{f.column}: {f.severity.label} {f.code} {f.message}")
        lines = sources.get(f.file, ())
        if 1 <= f.line <= len(lines):
            src = lines[f.line - 1].expandtabs(1)
            gutter = f"{f.line:>5} | "
            out.append(gutter + src)
            out.append(" " * (len(gutter) - 2) + "| " + " " * max(f.column - 1, 0) + "^")
        tag = "  [fixable]" if f.autofix is not None else ""
        out.append(f"  fix: {f.fix}{tag}  ({f.doc})")
    if findings:
        counts: dict[str, int] = {}
        for f in findings:
            counts[f.severity.label] = counts.get(f.severity.label, 0) + 1
        order = [s.label for s in sorted(Severity, reverse=True)]
        summary = ", ".join(f"{counts[k]} {k}" for k in order if k in counts)
        out.append(f"{len(findings)} finding{'s' if len(findings) != 1 else ''} ({summary})")
    return "\n".join(out) + ("\n" if out else "")


def render_json(findings: Sequence[Finding]) -> str:
    """A JSON array of finding objects (see :meth:`Finding.as_dict`)."""
    return json.dumps([f.as_dict() for f in findings], indent=2) + "\n"


_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note",
                Severity.STYLE: "note", Severity.NONE: "none"}


def render_sarif(findings: Sequence[Finding], rule_summaries: Mapping[str, str] | None = None,
                 version: str = "0") -> str:
    """A SARIF 2.1.0 log (``rule_summaries`` gives each rule's short description)."""
    summaries = rule_summaries or {}
    rule_ids = sorted({f.code for f in findings})
    index = {code: i for i, code in enumerate(rule_ids)}
    first = {f.code: f for f in reversed(findings)}
    rules = []
    for code in rule_ids:
        f = first[code]
        rules.append({
            "id": code,
            "shortDescription": {"text": summaries.get(code, f.message)},
            "helpUri": f.doc,
            "defaultConfiguration": {"level": _SARIF_LEVEL[f.severity]},
        })
    results = []
    for f in findings:
        results.append({
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.message} (fix: {f.fix})"},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": f.file},
                    "region": {"startLine": max(f.line, 1), "startColumn": max(f.column, 1)},
                }
            }],
        })
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "lamina-lint", "version": version,
                                "informationUri": "docs/lint/index.md", "rules": rules}},
            "results": results,
        }],
    }
    return json.dumps(log, indent=2) + "\n"


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def render_github(findings: Sequence[Finding]) -> str:
    """GitHub Actions workflow commands, one annotation per finding."""
    out = []
    for f in findings:
        kind = {Severity.ERROR: "error", Severity.WARNING: "warning"}.get(f.severity, "notice")
        props = (f"file={_gh_escape(f.file, True)},line={f.line},col={f.column},"
                 f"title={_gh_escape(f.code, True)}")
        out.append(f"::{kind} {props}::{_gh_escape(f'{f.code} {f.message} (fix: {f.fix})')}")
    return "\n".join(out) + ("\n" if out else "")


def render(fmt: str, findings: Sequence[Finding],
           sources: Mapping[str, Sequence[str]] | None = None,
           rule_summaries: Mapping[str, str] | None = None) -> str:
    """Dispatch to the renderer named ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "text":
        return render_text(findings, sources)
    if fmt == "json":
        return render_json(findings)
    if fmt == "sarif":
        return render_sarif(findings, rule_summaries)
    if fmt == "github":
        return render_github(findings)
    raise ValueError(f"unknown output format {fmt!r} (expected one of: {', '.join(FORMATS)})")

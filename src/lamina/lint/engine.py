"""Run the rules over a parsed Dockerfile and turn their hits into findings.

This is the pure core of the linter::

    doc = parse(text, path="Dockerfile")
    findings = lint_document(doc, LintOptions(build_args={"BASE": "python:3.12"}))

It (1) analyses the document once (:func:`lamina.lint.analysis.analyze`), (2) runs
every registered rule, (3) applies inline pragmas and the configuration, and (4)
returns the findings sorted by line.

**Pragmas.**  A comment line directly above an instruction (other comment lines
may sit between) can silence codes for that instruction::

    # lamina ignore=LM305,LM306
    # hadolint ignore=DL3008
    RUN apt-get update && apt-get install -y curl

hadolint codes are translated to the lamina rules that mean the same thing (see
``docs/lint/index.md``).  ``# lamina global ignore=…`` and ``# hadolint global
ignore=…`` anywhere silence codes for the whole file.

**Configuration.**  :class:`~lamina.lint.model.LintConfig` ignores codes (lamina,
hadolint or shellcheck) and overrides severities.

:func:`lint_text` wraps parsing: a syntax error becomes one ``LM001`` finding, and
parser warnings become ``LM002`` findings, so a caller always gets findings back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from lamina.build.dockerfile.ast import Dockerfile, Node
from lamina.lint.analysis import Analysis, RunInfo, analyze
from lamina.lint.model import Finding, LintOptions, Severity, ShellChecker, ShellScript
from lamina.lint.registry import Hit, Rule, rules_by_code

__all__ = ["META_RULES", "hadolint_map", "joined_positions", "lint_document", "lint_text"]

_PRAGMA = re.compile(r"#\s*(lamina|hadolint)\s+(global\s+)?ignore\s*=\s*([A-Za-z0-9_,\s]+)",
                     re.IGNORECASE)

# Findings the engine itself produces (not from a rule module).
META_RULES: dict[str, tuple[Severity, str]] = {
    "LM001": (Severity.ERROR, "the Dockerfile cannot be parsed"),
    "LM002": (Severity.INFO, "the parser warned about the Dockerfile"),
}


def hadolint_map() -> dict[str, set[str]]:
    """hadolint code → the lamina codes that implement it."""
    out: dict[str, set[str]] = {}
    for r in rules_by_code().values():
        for dl in r.hadolint:
            out.setdefault(dl, set()).add(r.code)
    return out


def _codes(text: str) -> set[str]:
    return {c.strip().upper() for c in text.split(",") if c.strip()}


def _translate(codes: Iterable[str], dl: dict[str, set[str]]) -> set[str]:
    out: set[str] = set()
    for c in codes:
        out.add(c)
        out |= dl.get(c, set())
    return out


def _pragmas(doc: Dockerfile, dl: dict[str, set[str]]) -> tuple[set[str], dict[int, set[str]]]:
    """(codes ignored file-wide, instruction start line → codes ignored there)."""
    file_wide: set[str] = set()
    per_line: dict[int, set[str]] = {}
    lines = doc.source_lines
    for text in lines:
        m = _PRAGMA.search(text) if text.lstrip().startswith("#") else None
        if m and m.group(2):
            file_wide |= _translate(_codes(m.group(3)), dl)
    for node in doc.nodes:
        j = node.span.start_line - 2
        codes: set[str] = set()
        while 0 <= j < len(lines) and lines[j].lstrip().startswith("#"):
            m = _PRAGMA.search(lines[j])
            if m and not m.group(2):
                codes |= _translate(_codes(m.group(3)), dl)
            j -= 1
        if codes:
            per_line[node.span.start_line] = codes
    return file_wide, per_line


def _to_finding(rule: Rule, hit: Hit, a: Analysis, severity: Severity) -> Finding:
    node = hit.node
    line = hit.line if hit.line is not None else (node.span.start_line if node else 1)
    col = hit.column if hit.column is not None else (a.keyword_column(node) if node else 1)
    return Finding(rule.code, severity, a.doc.path, line, col, hit.message, hit.fix, rule.doc,
                   autofix=hit.autofix)


def joined_positions(doc: Dockerfile, node: Node) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The instruction's physical text joined like the parser joins it, and where each
    character of it sits in the file as ``(line, column)``.

    The parser turns continuation lines into one line: it drops the escape character
    and the line break, and skips comment lines and blank lines in between.  A shell
    checker sees that joined text (it is what ``/bin/sh -c`` runs), so its columns
    refer to it; walking the physical lines the same way maps them back::

        RUN apt-get update && \\        ← line 2
            cd /src                     ← line 3: "cd" is at (3, 5)
    """
    lines = doc.source_lines
    text: list[str] = []
    where: list[tuple[int, int]] = []
    last = min(node.span.end_line, len(lines))
    for lineno in range(node.span.start_line, last + 1):
        raw = lines[lineno - 1]
        stripped = raw.strip()
        if lineno != node.span.start_line and (not stripped or stripped.startswith("#")):
            continue
        body = raw.rstrip(" \t")
        body = body[: -len(doc.escape)] if lineno < last and body.endswith(doc.escape) else raw
        text.append(body)
        where.extend((lineno, col) for col in range(1, len(body) + 1))
    return "".join(text), tuple(where)


def _script_locator(a: Analysis, info: RunInfo) -> Callable[[int, int], tuple[int, int]]:
    """A function from a position in ``info``'s script to its position in the Dockerfile."""
    node = info.node
    fallback = (node.span.start_line, a.keyword_column(node))
    if info.body_line:
        return lambda line, col: (info.body_line + line - 1, col)
    assert info.script is not None
    joined, where = joined_positions(a.doc, node)
    script = info.script.text.rstrip()
    start = joined.rstrip().rfind(script)
    if not script or start < 0 or start + len(script) != len(joined.rstrip()):
        return lambda line, col: fallback

    def locate(line: int, col: int) -> tuple[int, int]:
        k = start + col - 1
        return where[k] if line == 1 and 0 <= k < len(where) else fallback

    return locate


_LEVELS = {"error": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO,
           "style": Severity.STYLE}


def _shellcheck(a: Analysis, checker: ShellChecker) -> list[tuple[int, Finding]]:
    """Run the external checker once over every checkable RUN script (triggers included)."""
    infos = [i for i in a.runs.values()
             if i.script is not None and i.script.parser != "exec" and i.shell
             and i.script.text.strip()
             and (i.body_line or not i.node.heredocs)]  # not `RUN python3 <<EOF`
    if not infos:
        return []
    batch = [ShellScript(i.script.text, i.shell, i.env_names) for i in infos
             if i.script is not None]
    out: list[tuple[int, Finding]] = []
    for info, comments in zip(infos, checker(batch), strict=False):
        locate = _script_locator(a, info)
        for c in comments:
            line, col = locate(c.line, c.column)
            code = f"SC{c.code}"
            out.append((info.node.span.start_line, Finding(
                code, _LEVELS.get(c.level, Severity.INFO), a.doc.path, line, col, c.message,
                f"see the shellcheck wiki for {code}",
                f"https://www.shellcheck.net/wiki/{code}", source="shellcheck")))
    return out


def lint_document(doc: Dockerfile, options: LintOptions | None = None, *,
                  shellcheck: ShellChecker | None = None) -> tuple[Finding, ...]:
    """All findings for ``doc`` after pragmas and configuration, sorted by position."""
    options = options or LintOptions()
    rules = rules_by_code()
    dl = hadolint_map()
    file_wide, per_line = _pragmas(doc, dl)
    cfg = options.config
    ignored = file_wide | _translate({c.upper() for c in cfg.ignore}, dl)
    overrides = {}
    for code, sev in cfg.severity.items():
        for c in _translate({code.upper()}, dl):
            overrides[c] = sev

    a = analyze(doc, options.build_args, options.base_facts)
    results: list[tuple[int, Finding]] = []
    for rule in rules.values():
        if rule.code in ignored:
            continue
        sev = overrides.get(rule.code, rule.severity)
        for hit in rule.check(a, options):
            anchor = hit.node.span.start_line if hit.node else 0
            results.append((anchor, _to_finding(rule, hit, a, sev)))
    if shellcheck is not None:
        for anchor, f in _shellcheck(a, shellcheck):
            if f.code not in ignored:
                sev = overrides.get(f.code, f.severity)
                results.append((anchor, Finding(f.code, sev, f.file, f.line, f.column,
                                                f.message, f.fix, f.doc, f.source)))
    for w in doc.warnings:
        results.append((w.line, Finding("LM002", overrides.get("LM002", Severity.INFO),
                                        doc.path, max(w.line, 1), 1, w.message,
                                        "fix the line the parser warns about",
                                        "docs/lint/LM002.md")))
    kept = [f for anchor, f in results
            if f.code not in ignored and f.code not in per_line.get(anchor, set())]
    kept.sort(key=lambda f: (f.line, f.column, f.code))
    # one finding per (code, line, message)
    seen: set[tuple[str, int, str]] = set()
    unique: list[Finding] = []
    for f in kept:
        key = (f.code, f.line, f.message)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return tuple(unique)


def lint_text(text: str | bytes, path: str = "Dockerfile", options: LintOptions | None = None,
              *, shellcheck: ShellChecker | None = None) -> tuple[Finding, ...]:
    """Parse and lint; a syntax error becomes a single ``LM001`` finding."""
    from lamina.build.dockerfile.parser import parse  # type: ignore[import-not-found,unused-ignore]
    from lamina.errors import DockerfileSyntaxError

    try:
        doc = parse(text, path=path)
    except DockerfileSyntaxError as exc:
        return (Finding("LM001", Severity.ERROR, path, max(exc.line, 1), max(exc.column, 1),
                        exc.message, exc.hint or "fix the syntax error", "docs/lint/LM001.md"),)
    return lint_document(doc, options, shellcheck=shellcheck)


def failing(findings: Sequence[Finding], threshold: Severity) -> bool:
    """Whether any finding is at or above ``threshold`` (never for ``Severity.NONE``)."""
    if threshold is Severity.NONE:
        return False
    return any(f.severity >= threshold for f in findings)

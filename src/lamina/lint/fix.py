"""Apply the mechanical fixes of findings to Dockerfile text.

Fixes are data (:class:`~lamina.lint.model.Autofix`, a list of
:class:`~lamina.lint.model.Edit`), so applying them is plain text surgery:

1. take the fixable findings, in source order;
2. accept a fix only if none of its edits overlaps an edit already accepted in
   this pass (two fixes of one RUN may both want to touch the same spot);
3. apply the accepted edits from the end of the file backwards, so positions
   computed on the original text stay valid;
4. parse and lint the new text again and repeat, until nothing fixable is left or
   a pass changes nothing (at most :data:`MAX_PASSES` passes).

:func:`fix_text` is pure; writing the file (atomically) is the runner's job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lamina.lint.model import Edit, Finding

__all__ = ["MAX_PASSES", "FixResult", "apply_edits", "fix_text"]

MAX_PASSES = 8


@dataclass(frozen=True)
class FixResult:
    """The rewritten text and the descriptions of the fixes applied, in order."""

    text: str
    applied: tuple[str, ...]


def _offset(lines: list[str], line: int, col: int) -> int:
    """Character offset of 1-based (line, col) in ``"\\n".join(lines)``."""
    if line > len(lines):
        return sum(len(x) + 1 for x in lines)
    base = sum(len(x) + 1 for x in lines[: line - 1])
    return base + min(col - 1, len(lines[line - 1]) + 1)


def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """Apply non-overlapping ``edits`` to ``text`` (positions refer to the original)."""
    lines = text.split("\n")
    spans = sorted(((_offset(lines, e.line, e.col), _offset(lines, e.end_line, e.end_col), e.text)
                    for e in edits), reverse=True)
    out = text
    for start, end, new in spans:
        out = out[:start] + new + out[end:]
    return out


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    if a[0] == a[1] == b[0] == b[1]:
        return True  # two insertions at one point: order would be arbitrary
    return (a[0] < b[1] and b[0] < a[1]) or (a[0] == a[1] and b[0] < a[0] < b[1]) or (
        b[0] == b[1] and a[0] < b[0] < a[1])


def fix_text(text: str, lint: Callable[[str], Sequence[Finding]]) -> FixResult:
    """Fix ``text`` repeatedly with the findings ``lint(text)`` returns (see module doc)."""
    applied: list[str] = []
    for _ in range(MAX_PASSES):
        findings = [f for f in lint(text) if f.autofix is not None]
        if not findings:
            break
        lines = text.split("\n")
        taken: list[tuple[int, int]] = []
        edits: list[Edit] = []
        for f in findings:
            assert f.autofix is not None
            spans = [(_offset(lines, e.line, e.col), _offset(lines, e.end_line, e.end_col))
                     for e in f.autofix.edits]
            if any(_overlaps(s, t) for s in spans for t in taken):
                continue
            taken.extend(spans)
            edits.extend(f.autofix.edits)
            applied.append(f"{f.file}:{f.line}: {f.code} {f.autofix.description}")
        new = apply_edits(text, edits)
        if new == text:
            break
        text = new
    return FixResult(text, tuple(applied))

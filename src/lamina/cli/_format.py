"""Rendering helpers shared by the CLI verbs: Docker's sizes, durations, tables and
``--format`` Go-template subset.

Docker formats its listings with Go templates (``--format '{{.ID}}\\t{{.Size}}'``,
``table {{.Repository}}``, ``{{json .}}``).  :func:`render_template` implements the part
of that language people use on the command line: field access (``{{.A.B}}``), ``json``,
``upper``/``lower``/``title``, ``join . SEP``, ``index . KEY``, ``println`` and literal
text with ``\\t``/``\\n`` escapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "TemplateError",
    "emit_inspect",
    "human_duration",
    "human_size",
    "render_table",
    "render_template",
]


def human_size(size: float, precision: int = 3) -> str:
    """Decimal size as Docker prints it: ``4.26MB``, ``1.24kB``, ``100B``."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    value = float(size)
    while value >= 1000 and i < len(units) - 1:
        value /= 1000.0
        i += 1
    return f"{value:.{precision}g}{units[i]}"


def human_duration(seconds: float) -> str:
    """A coarse duration as Docker prints it (``About an hour``, ``3 days``)."""
    if seconds < 1:
        return "Less than a second"
    s = int(seconds)
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600 / 24 / 365)} years"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                 *, minwidth: int = 10, padding: int = 3) -> str:
    """Columns aligned like Go's tabwriter as Docker configures it (minwidth 10, padding 3)."""
    table = [list(headers), *[list(r) for r in rows]]
    ncols = max(len(r) for r in table)
    widths = [0] * ncols
    for r in table:
        for i, cell in enumerate(r[:-1] if len(r) == ncols else r):
            widths[i] = max(widths[i], len(cell) + padding, minwidth)
    out = []
    for r in table:
        parts = []
        for i, cell in enumerate(r):
            parts.append(cell if i == len(r) - 1 else cell.ljust(widths[i]))
        out.append("".join(parts).rstrip())
    return "\n".join(out) + "\n"


class TemplateError(ValueError):
    """A ``--format`` template that cannot be parsed or evaluated."""


_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


def _lookup(obj: Any, path: str) -> Any:
    if path in ("", "."):
        return obj
    cur = obj
    for part in path.lstrip(".").split("."):
        if isinstance(cur, Mapping):
            if part not in cur:
                raise TemplateError(f"template: can't evaluate field {part}")
            cur = cur[part]
        elif hasattr(cur, part):
            cur = getattr(cur, part)
        else:
            raise TemplateError(f"template: can't evaluate field {part}")
    return cur


def _to_text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_to_text(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_to_text(v) for v in value) + "]"
    return str(value)


def _split_args(expr: str) -> list[str]:
    return [m.group(0) for m in re.finditer(r'"(?:[^"\\]|\\.)*"|\S+', expr)]


def _eval(expr: str, data: Any) -> Any:
    words = _split_args(expr)
    if not words:
        raise TemplateError("template: empty action")

    def arg(w: str) -> Any:
        if w.startswith('"'):
            return json.loads(w)
        if w.startswith("."):
            return _lookup(data, w)
        raise TemplateError(f"template: unexpected {w!r}")

    funcs: dict[str, Callable[..., Any]] = {
        "json": lambda v: json.dumps(v, separators=(",", ":")),
        "upper": lambda v: _to_text(v).upper(),
        "lower": lambda v: _to_text(v).lower(),
        "title": lambda v: _to_text(v).title(),
        "join": lambda v, sep: sep.join(_to_text(x) for x in v),
        "index": lambda v, k: v[k] if not isinstance(v, Mapping) else v.get(k),
        "println": lambda *v: " ".join(_to_text(x) for x in v) + "\n",
        "len": lambda v: len(v),
    }
    head = words[0]
    if head in funcs:
        return funcs[head](*[arg(w) for w in words[1:]])
    if len(words) != 1:
        raise TemplateError(f"template: can't evaluate {expr!r}")
    return arg(head)


def render_template(template: str, data: Any) -> str:
    """Render one object with a Docker ``--format`` template (without the ``table`` prefix)."""
    text = template.replace("\\t", "\t").replace("\\n", "\n")
    out: list[str] = []
    pos = 0
    for m in _ACTION.finditer(text):
        out.append(text[pos:m.start()])
        out.append(_to_text(_eval(m.group(1), data)) if not m.group(1).startswith("json") else
                   str(_eval(m.group(1), data)))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def emit_inspect(ctx: Any, results: Sequence[Any], errors: Sequence[str],
                 fmt: str | None) -> None:
    """Print ``inspect`` output as Docker does: each result through ``--format`` (or all of
    them as one indented JSON array), then the error lines on stderr; exit 1 if any."""
    import click

    if fmt:
        for r in results:
            click.echo(render_template(fmt, r))
    else:
        click.echo(json.dumps(list(results), indent=4))
    for e in errors:
        click.echo(e, err=True)
    if errors:
        ctx.exit(1)

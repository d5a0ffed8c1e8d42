"""A self-contained HTML report: no scripts, no fonts, no external anything.

The page holds

* a stacked bar of layer sizes: one ``div.layer-bar`` per layer (``data-layer``,
  ``data-size`` and ``data-wasted`` attributes; width proportional to size), each with a
  ``div.waste`` part sized to the layer's unreachable bytes; base layers carry the extra
  class ``base``;
* the summary figures, the layer table, the top wasted paths and the advice;
* one ``<details class="layer">`` per layer with its file tree, directories as nested
  ``<details>``, each entry marked ``A``/``M``/``D``.

Every string from the image is escaped.  A layer's tree is cut after
:data:`TREE_LIMIT` entries (the JSON output has them all).
"""

from __future__ import annotations

from html import escape
from typing import Any

from lamina.analyze.ci import CiResult
from lamina.analyze.instruction import display_instruction
from lamina.analyze.model import Analysis, Change, LayerReport
from lamina.analyze.render import build_tree
from lamina.analyze.units import human_size

__all__ = ["TREE_LIMIT", "render_html"]

TREE_LIMIT = 3000

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}
code,.tree,td.path{font-family:ui-monospace,monospace;font-size:13px}
.stack{display:flex;height:48px;border:1px solid #999;background:#f4f4f4;margin:.5em 0}
.layer-bar{position:relative;min-width:3px;flex-basis:0;background:#4a7fc1;
 border-right:1px solid #fff;overflow:hidden;box-sizing:border-box}
.layer-bar.base{background:#9aa4ae}
.layer-bar .waste{position:absolute;left:0;bottom:0;height:100%;
 background:repeating-linear-gradient(45deg,#d9534f 0 6px,#e88 6px 12px)}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
table{border-collapse:collapse;margin:.5em 0}
td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;white-space:nowrap}
.figures td:first-child{color:#555}
details.layer{margin:.3em 0;border:1px solid #ccc;padding:.3em .6em}
details.layer>summary{cursor:pointer}
.tree ul{list-style:none;margin:0;padding-left:1.2em}
.tree>ul{padding-left:0}
.mark{display:inline-block;width:1.3em;font-weight:bold}
.A{color:#1a7f37}.M{color:#9a6700}.D{color:#cf222e}
.size{color:#555;margin-left:.6em}.detail{color:#777;margin-left:.6em}
.fail{color:#cf222e;font-weight:bold}.pass{color:#1a7f37;font-weight:bold}
"""


def _bar(layer: LayerReport, total: int) -> str:
    grow = layer.size / total * 1000 if total else 1
    waste_pct = layer.wasted_bytes / layer.size * 100 if layer.size else 0
    cls = "layer-bar base" if layer.is_base else "layer-bar"
    title = (f"layer {layer.index}: {human_size(layer.size)}, wasted "
             f"{human_size(layer.wasted_bytes)} - {display_instruction(layer.created_by)}")
    return (f'<div class="{cls}" data-layer="{layer.index}" data-size="{layer.size}" '
            f'data-wasted="{layer.wasted_bytes}" style="flex-grow:{grow:.3f}" '
            f'title="{escape(title)}"><div class="waste" style="width:{waste_pct:.2f}%"></div>'
            f"</div>")


def _entry(name: str, change: Change | None, is_dir: bool) -> str:
    mark = change.kind.mark if change is not None else ""
    parts = [f'<span class="mark {mark}">{mark}</span>{escape(name)}{"/" if is_dir else ""}']
    if change is not None and change.entry_type != "dir":
        parts.append(f'<span class="size">{human_size(change.size)}</span>')
    if change is not None and change.detail:
        parts.append(f'<span class="detail">{escape(change.detail)}</span>')
    return "".join(parts)


def _tree(tree: dict[str, Any], out: list[str], budget: list[int]) -> None:
    out.append("<ul>")
    for name, (change, kids) in tree.items():
        if budget[0] <= 0:
            break
        budget[0] -= 1
        is_dir = bool(kids) or (change is not None and change.entry_type == "dir")
        if kids:
            out.append(f"<li><details open><summary>{_entry(name, change, True)}</summary>")
            _tree(kids, out, budget)
            out.append("</details></li>")
        else:
            out.append(f"<li>{_entry(name, change, is_dir)}</li>")
    out.append("</ul>")


def render_html(analysis: Analysis, ci: tuple[CiResult, ...] | list[CiResult] = ()) -> str:
    """The whole report page as one string."""
    a = analysis
    total = a.total_bytes
    o: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>lamina analyze: {escape(a.image)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>lamina analyze: <code>{escape(a.image)}</code></h1>",
        '<div class="stack" id="layers-bar">',
        *(_bar(layer, total) for layer in a.layers),
        "</div>",
        '<p class="legend"><span style="background:#9aa4ae"></span>base layer'
        '<span style="background:#4a7fc1"></span>your layer'
        '<span style="background:#d9534f"></span>wasted (unreachable in the final filesystem)</p>',
        '<table class="figures">',
    ]
    figures = [
        ("Total stored", human_size(a.total_bytes)),
        ("Final filesystem", f"{human_size(a.final_bytes)} in {a.final_files} files"),
        ("Wasted", human_size(a.wasted_bytes)),
        ("Efficiency", f"{a.efficiency:.2%}"),
        ("Base layers", f"{a.base_layers} ({'first layer, by convention' if a.base_source == 'first-layer' else a.base_source}): "
                        f"{human_size(a.base_bytes)}, wasted {human_size(a.base_wasted_bytes)}"),
        ("Your layers", f"{human_size(a.user_bytes)}, wasted {human_size(a.user_wasted_bytes)} "
                        f"({a.user_wasted_ratio:.2%})"),
    ]
    o += [f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in figures]
    o.append("</table>")
    if ci:
        failed = any(r.failed for r in ci)
        o.append(f'<h2>CI: <span class="{"fail" if failed else "pass"}">'
                 f'{"FAIL" if failed else "PASS"}</span></h2><ul>')
        o += [f'<li><span class="{"fail" if r.failed else "pass"}">{r.status.upper()}</span> '
              f"{escape(r.rule)}: {escape(r.message)}</li>" for r in ci]
        o.append("</ul>")

    o += ["<h2>Layers</h2><table><tr><th class=num>#</th><th class=num>Size</th>"
          "<th class=num>Wasted</th><th>Changes</th><th></th><th>Instruction</th></tr>"]
    for layer in a.layers:
        o.append(
            f"<tr><td class=num>{layer.index}</td><td class=num>{human_size(layer.size)}</td>"
            f"<td class=num>{human_size(layer.wasted_bytes)}</td>"
            f"<td>+{layer.added_files} ~{layer.modified_files} -{layer.removed_files}</td>"
            f"<td>{'base' if layer.is_base else ''}</td>"
            f"<td><code>{escape(display_instruction(layer.created_by))}</code></td></tr>"
        )
    o.append("</table>")

    if a.top_wasted:
        o += ["<h2>Top wasted paths</h2><table><tr><th class=num>Wasted</th><th class=num>Copies"
              "</th><th>In layers</th><th>Hidden by</th><th>Reason</th><th>Path</th></tr>"]
        for t in a.top_wasted:
            o.append(
                f"<tr><td class=num>{human_size(t.wasted_bytes)}</td><td class=num>{t.copies}</td>"
                f"<td>{','.join(map(str, t.layers))}</td><td>{','.join(map(str, t.by_layers))}</td>"
                f"<td>{escape(', '.join(r.value for r in t.reasons))}</td>"
                f'<td class="path">{escape(t.path)}</td></tr>'
            )
        o.append("</table>")

    if a.advice:
        o.append("<h2>Advice</h2><ul>")
        for v in a.advice:
            rules = f" (lint: {escape(', '.join(v.related_rules))})" if v.related_rules else ""
            o.append(f"<li><b>{escape(v.practice)}</b>{rules}: {escape(v.message)}</li>")
        o.append("</ul>")

    o.append("<h2>Files per layer</h2>")
    for layer in a.layers:
        o.append(
            f'<details class="layer" data-layer="{layer.index}"><summary>Layer {layer.index}: '
            f"<code>{escape(display_instruction(layer.created_by) or '-')}</code> "
            f"({human_size(layer.size)}; +{layer.added_files} ~{layer.modified_files} "
            f"-{layer.removed_files})</summary>"
        )
        budget = [TREE_LIMIT]
        body: list[str] = []
        _tree(build_tree(layer.changes), body, budget)
        o.append('<div class="tree">' + "".join(body) + "</div>")
        if budget[0] <= 0 and len(layer.changes) > TREE_LIMIT:
            o.append(f"<p>... cut after {TREE_LIMIT} entries of {len(layer.changes)}; "
                     "the JSON output lists them all.</p>")
        o.append("</details>")
    if a.notes:
        o.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in a.notes) + "</ul>")
    o.append("</body></html>")
    return "\n".join(o) + "\n"

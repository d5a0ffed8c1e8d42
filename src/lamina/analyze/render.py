"""Turn an :class:`~lamina.analyze.model.Analysis` into text or JSON-ready data.

Everything here returns strings or plain dicts; printing is the CLI's business.
The JSON field names are a stable contract, documented in ``docs/analyze.md``; add
fields freely, never rename or re-type one without bumping :data:`SCHEMA`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lamina.analyze.ci import CiResult
from lamina.analyze.instruction import display_instruction
from lamina.analyze.model import Analysis, Change, LayerReport
from lamina.analyze.units import human_size

__all__ = ["SCHEMA", "build_tree", "render_ci", "render_layer", "render_text", "render_tree", "to_json"]

SCHEMA = "lamina.analyze/v1"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def _layer_row(layer: LayerReport, width: int) -> str:
    changes = f"+{layer.added_files} ~{layer.modified_files} -{layer.removed_files}"
    tag = "base" if layer.is_base else ""
    head = (f"{layer.index:>3}  {human_size(layer.size):>10}  {human_size(layer.wasted_bytes):>10}  "
            f"{changes:<15} {tag:<4}  ")
    return head + _clip(display_instruction(layer.created_by) or "-", max(20, width - len(head)))


def render_text(analysis: Analysis, ci: Sequence[CiResult] = (), width: int = 100,
                top: int = 10) -> str:
    """The human report: layers, totals, top wasted paths, advice, CI verdicts."""
    a = analysis
    base_how = "first layer, by convention" if a.base_source == "first-layer" else a.base_source
    lines = [
        f"Image: {a.image}",
        f"Layers: {len(a.layers)} ({a.base_layers} from the base: {base_how})",
        "",
        f"{'#':>3}  {'Size':>10}  {'Wasted':>10}  {'Changes':<15} {'':<4}  Instruction",
    ]
    lines += [_layer_row(layer, width) for layer in a.layers]
    lines += [
        "",
        f"Total {human_size(a.total_bytes)}, final {human_size(a.final_bytes)} in "
        f"{a.final_files} files, wasted {human_size(a.wasted_bytes)}, "
        f"efficiency {a.efficiency:.2%}",
        f"Base layers: {human_size(a.base_bytes)}, wasted {human_size(a.base_wasted_bytes)}",
        f"Your layers: {human_size(a.user_bytes)}, wasted {human_size(a.user_wasted_bytes)} "
        f"({a.user_wasted_ratio:.2%} of your layers)",
    ]
    if a.top_wasted:
        lines += ["", "Top wasted paths (unreachable copies; surviving copies are not counted):",
                  f"  {'Wasted':>10}  {'Copies':>6}  {'In layers':<10} {'Hidden by':<10} "
                  f"{'Reason':<14} Path"]
        for row in a.top_wasted[:top]:
            reasons = ",".join(r.value for r in row.reasons)
            lines.append(
                f"  {human_size(row.wasted_bytes):>10}  {row.copies:>6}  "
                f"{','.join(map(str, row.layers)):<10} {','.join(map(str, row.by_layers)):<10} "
                f"{reasons:<14} {row.path}"
            )
    if a.advice:
        lines += ["", "Advice:"]
        for adv in a.advice:
            rules = f" (lint: {', '.join(adv.related_rules)})" if adv.related_rules else ""
            lines.append(f"  - [{adv.practice}] {adv.title}{rules}: {adv.message}")
    if a.notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in a.notes]
    text = "\n".join(lines) + "\n"
    return text + "\n" + render_ci(ci) if ci else text


def render_ci(ci: Sequence[CiResult]) -> str:
    """The CI verdict and one line per rule (``PASS``/``FAIL``/``SKIP``)."""
    verdict = "FAIL" if any(r.failed for r in ci) else "PASS"
    lines = [f"CI: {verdict}"]
    lines += [f"  {r.status.upper():<4} {r.rule}: {r.message}" for r in ci]
    return "\n".join(lines) + "\n"


def render_layer(layer: LayerReport) -> str:
    """One layer's header and flat list of changes (``A``/``M``/``D`` marks)."""
    lines = [_layer_header(layer)]
    for c in layer.changes:
        lines.append(_change_line(c.kind.mark, c.path, c))
    return "\n".join(lines) + "\n"


def _layer_header(layer: LayerReport) -> str:
    where = "base" if layer.is_base else "yours"
    return (f"Layer {layer.index} ({where}): {display_instruction(layer.created_by) or '-'}\n"
            f"  size {human_size(layer.size)}, wasted {human_size(layer.wasted_bytes)}, "
            f"{layer.entries} entries: +{layer.added_files} files ({human_size(layer.added_bytes)}), "
            f"~{layer.modified_files} ({human_size(layer.modified_bytes)}), "
            f"-{layer.removed_files} ({human_size(layer.removed_bytes)})")


def _change_line(mark: str, label: str, c: Change | None) -> str:
    if c is None or c.entry_type == "dir":
        return f"{mark} {label}" + (f"  ({c.detail})" if c is not None and c.detail else "")
    detail = f"  {c.detail}" if c.detail else ""
    return f"{mark} {label}  [{human_size(c.size)}]{detail}"


class _TreeNode:
    __slots__ = ("change", "children")

    def __init__(self) -> None:
        self.children: dict[str, _TreeNode] = {}
        self.change: Change | None = None


def build_tree(changes: Sequence[Change]) -> dict[str, Any]:
    """Nest *changes* by path: ``{name: (change_or_None, {child...})}``."""
    root = _TreeNode()
    for c in changes:
        node = root
        for part in c.path.strip("/").split("/"):
            node = node.children.setdefault(part, _TreeNode())
        node.change = c
    return _export(root)


def _export(node: _TreeNode) -> dict[str, Any]:
    return {name: (child.change, _export(child)) for name, child in sorted(node.children.items())}


def render_tree(layer: LayerReport) -> str:
    """The layer's changes as a file tree with ``A``/``M``/``D`` marks in the first column
    (a blank mark is a directory shown only for context)."""
    lines = [_layer_header(layer), "/"]

    def walk(tree: dict[str, Any], prefix: str) -> None:
        items = list(tree.items())
        for i, (name, (change, kids)) in enumerate(items):
            last = i == len(items) - 1
            mark = change.kind.mark if change is not None else " "
            is_dir = bool(kids) or (change is not None and change.entry_type == "dir")
            label = f"{prefix}{'└── ' if last else '├── '}{name}{'/' if is_dir else ''}"
            lines.append(_change_line(mark, label, change))
            walk(kids, prefix + ("    " if last else "│   "))

    walk(build_tree(layer.changes), "")
    return "\n".join(lines) + "\n"


def to_json(analysis: Analysis, ci: Sequence[CiResult] | None = None,
            include_changes: bool = True) -> dict[str, Any]:
    """The JSON document (a dict of JSON types); see docs/analyze.md for every field."""
    a = analysis
    return {
        "schema": SCHEMA,
        "image": a.image,
        "summary": {
            "layers": len(a.layers),
            "total_bytes": a.total_bytes,
            "final_bytes": a.final_bytes,
            "final_files": a.final_files,
            "wasted_bytes": a.wasted_bytes,
            "efficiency": a.efficiency,
            "base_layers": a.base_layers,
            "base_source": a.base_source,
            "base_bytes": a.base_bytes,
            "base_wasted_bytes": a.base_wasted_bytes,
            "user_bytes": a.user_bytes,
            "user_wasted_bytes": a.user_wasted_bytes,
            "user_wasted_ratio": a.user_wasted_ratio,
        },
        "layers": [
            {
                "index": layer.index,
                "diff_id": layer.diff_id,
                "blob_digest": layer.blob_digest,
                "stored_size": layer.stored_size,
                "size": layer.size,
                "entries": layer.entries,
                "created_by": layer.created_by,
                "instruction": display_instruction(layer.created_by),
                "created": layer.created,
                "comment": layer.comment,
                "is_base": layer.is_base,
                "added": {"files": layer.added_files, "bytes": layer.added_bytes},
                "modified": {"files": layer.modified_files, "bytes": layer.modified_bytes},
                "removed": {"files": layer.removed_files, "bytes": layer.removed_bytes},
                "wasted_bytes": layer.wasted_bytes,
                **({"changes": [
                    {"path": c.path, "change": c.kind.value, "type": c.entry_type,
                     "size": c.size, "detail": c.detail}
                    for c in layer.changes
                ]} if include_changes else {}),
            }
            for layer in a.layers
        ],
        "history": [
            {"created_by": h.created_by, "created": h.created, "comment": h.comment,
             "empty_layer": h.empty_layer, "layer": h.layer}
            for h in a.history
        ],
        "wasted": [
            {"path": w.path, "size": w.size, "layer": w.layer, "by_layer": w.by_layer,
             "reason": w.reason.value, "detail": w.detail}
            for w in a.wasted
        ],
        "top_wasted": [
            {"path": t.path, "wasted_bytes": t.wasted_bytes, "copies": t.copies,
             "layers": list(t.layers), "by_layers": list(t.by_layers),
             "reasons": [r.value for r in t.reasons], "survives": t.survives}
            for t in a.top_wasted
        ],
        "advice": [
            {"practice": v.practice, "title": v.title, "message": v.message, "bytes": v.bytes,
             "layers": list(v.layers), "paths": list(v.paths),
             "related_rules": list(v.related_rules)}
            for v in a.advice
        ],
        "notes": list(a.notes),
        "ci": None if ci is None else {
            "passed": not any(r.failed for r in ci),
            "rules": [{"rule": r.rule, "status": r.status, "actual": r.actual,
                       "threshold": r.threshold, "message": r.message} for r in ci],
        },
    }

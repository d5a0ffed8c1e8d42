"""The analysis pipeline: source → merged layers → waste, base split, advice.

::

    config JSON ──► history ↔ layers, diff_ids ──────────────┐
    layer 0..n-1 ─► tar headers ─► LayerMerger (changes,     │
                                   unreachable copies)       ├─► Analysis
    same-size overwrites ─► hash just those members ─────────┤
    --base config ─► longest shared diff_id chain ───────────┘

Each layer is read once, headers only where the stream allows it; a second, partial
read happens only for layers holding a file that a later layer overwrote with a file of
identical size (to tell a chmod from an edit).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lamina.analyze._tarwalk import hash_members, iter_entries
from lamina.analyze.advice import advise
from lamina.analyze.merge import LayerMerger, settle
from lamina.analyze.model import (
    Analysis,
    Change,
    ChangeKind,
    HistoryStep,
    LayerReport,
    WastedCopy,
    WastedPath,
)
from lamina.analyze.source import ImageSource
from lamina.analyze.verify import open_layer_checked
from lamina.errors import InvalidManifest

__all__ = ["AnalyzeOptions", "ImageConfigInfo", "analyze", "parse_config", "shared_chain"]


@dataclass(frozen=True)
class AnalyzeOptions:
    """Knobs of :func:`analyze`.

    ``top`` caps :attr:`Analysis.top_wasted`; ``advice_min_bytes`` is the smallest waste
    worth an advice (see :mod:`lamina.analyze.advice`).  ``verify_digests`` checks each
    layer against the digests its source names while it is read (see
    :mod:`lamina.analyze.verify`); turning it off lets a plain in-place archive skip
    file contents instead of reading them.
    """

    top: int = 20
    advice_min_bytes: int = 1 << 20
    verify_digests: bool = True


@dataclass(frozen=True)
class ImageConfigInfo:
    """The parts of an image config analysis reads."""

    history: tuple[HistoryStep, ...]
    diff_ids: tuple[str, ...]


def parse_config(raw: bytes, name: str = "image config") -> ImageConfigInfo:
    """Read ``history`` and ``rootfs.diff_ids`` from a config JSON.

    History entries are matched to layers in order, skipping ``empty_layer`` ones, so
    ``HistoryStep.layer`` is the index of the layer a step made (``None`` if none).
    """
    try:
        doc: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidManifest(f"{name} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise InvalidManifest(f"{name} is not a JSON object")
    rootfs = doc.get("rootfs") or {}
    diff_ids = tuple(str(d) for d in (rootfs.get("diff_ids") or []) if isinstance(d, str))
    steps = []
    layer = 0
    for h in doc.get("history") or []:
        if not isinstance(h, dict):
            continue
        empty = bool(h.get("empty_layer", False))
        steps.append(HistoryStep(
            created_by=str(h.get("created_by", "")),
            created=str(h.get("created", "")),
            comment=str(h.get("comment", "")),
            empty_layer=empty,
            layer=None if empty else layer,
        ))
        if not empty:
            layer += 1
    return ImageConfigInfo(tuple(steps), diff_ids)


def shared_chain(ours: Sequence[str], base: Sequence[str]) -> int:
    """How many bottom layers two diff_id chains share (the longest common prefix)."""
    n = 0
    for a, b in zip(ours, base, strict=False):
        if a != b:
            break
        n += 1
    return n


def _top_wasted(wasted: Sequence[WastedCopy], merger: LayerMerger, top: int
                ) -> tuple[WastedPath, ...]:
    by_path: dict[str, list[WastedCopy]] = defaultdict(list)
    for w in wasted:
        if w.size > 0:
            by_path[w.path].append(w)
    rows = []
    for path, copies in by_path.items():
        rows.append(WastedPath(
            path=path,
            wasted_bytes=sum(c.size for c in copies),
            copies=len(copies),
            layers=tuple(sorted({c.layer for c in copies})),
            by_layers=tuple(sorted({c.by_layer for c in copies})),
            reasons=tuple(dict.fromkeys(c.reason for c in copies)),
            survives=merger.exists(path),
        ))
    rows.sort(key=lambda r: (-r.wasted_bytes, r.path))
    return tuple(rows[:top])


def _counts(changes: Sequence[Change], kind: ChangeKind) -> tuple[int, int]:
    files = [c for c in changes if c.kind is kind and c.entry_type != "dir"]
    return len(files), sum(c.size for c in files)


def analyze(
    source: ImageSource,
    *,
    base: ImageSource | None = None,
    options: AnalyzeOptions | None = None,
) -> Analysis:
    """Analyse the image *source*; *base* (optional) names its base image.

    Without *base*, the first layer alone counts as the base (``dive``'s convention), so
    "user" figures cover everything above it.
    """
    opts = options or AnalyzeOptions()
    config = parse_config(source.config_bytes(), f"{source.description}: config")
    blobs = source.layers()
    notes: list[str] = []
    made_by = [s for s in config.history if s.layer is not None]
    if config.history and len(made_by) != len(blobs):
        notes.append(f"history names {len(made_by)} layer-making steps for {len(blobs)} layers; "
                     "instructions are matched bottom-up")
    if config.diff_ids and len(config.diff_ids) != len(blobs):
        raise InvalidManifest(
            f"{source.description}: config lists {len(config.diff_ids)} diff_ids "
            f"but the manifest {len(blobs)} layers"
        )

    merger = LayerMerger()
    totals = []
    for blob in blobs:
        name = f"{source.description} layer {blob.index}"
        diff_id = config.diff_ids[blob.index] if config.diff_ids else ""
        with open_layer_checked(source, blob, name, diff_id,
                                verify=opts.verify_digests) as layer:
            totals.append(merger.apply(blob.index, iter_entries(layer.stream, name)))
            layer.finish()

    digests: dict[tuple[int, int], bytes] = {}
    for index, ranges in sorted(merger.hash_requests().items()):
        name = f"{source.description} layer {index}"
        with open_layer_checked(source, blobs[index], name, "", verify=False) as layer:
            for offset, digest in hash_members(layer.stream, ranges).items():
                digests[(index, offset)] = digest
    changes, wasted = settle(merger, digests)
    wasted.sort(key=lambda w: (-w.size, w.path, w.layer))

    if base is not None:
        base_info = parse_config(base.config_bytes(), f"{base.description}: config")
        base_layers = shared_chain(config.diff_ids, base_info.diff_ids)
        base_source = base.description
        if base_layers == 0:
            notes.append(f"no layer is shared with the base {base.description}")
    else:
        base_layers = min(1, len(blobs))
        base_source = "first-layer"

    wasted_in = [0] * len(blobs)
    for w in wasted:
        wasted_in[w.layer] += w.size
    reports = []
    for blob, total, layer_changes in zip(blobs, totals, changes, strict=True):
        step = made_by[blob.index] if blob.index < len(made_by) else None
        added = _counts(layer_changes, ChangeKind.ADDED)
        modified = _counts(layer_changes, ChangeKind.MODIFIED)
        removed = _counts(layer_changes, ChangeKind.REMOVED)
        reports.append(LayerReport(
            index=blob.index,
            diff_id=config.diff_ids[blob.index] if config.diff_ids else "",
            blob_digest=blob.digest,
            stored_size=blob.stored_size,
            size=total.size,
            entries=total.entries,
            created_by=step.created_by if step else "",
            created=step.created if step else "",
            comment=step.comment if step else "",
            is_base=blob.index < base_layers,
            added_files=added[0], added_bytes=added[1],
            modified_files=modified[0], modified_bytes=modified[1],
            removed_files=removed[0], removed_bytes=removed[1],
            wasted_bytes=wasted_in[blob.index],
            changes=tuple(layer_changes),
        ))

    total_bytes = merger.total_bytes()
    wasted_bytes = sum(w.size for w in wasted)
    final_bytes = total_bytes - wasted_bytes
    base_bytes = sum(r.size for r in reports if r.is_base)
    user_bytes = total_bytes - base_bytes
    base_wasted = sum(w.size for w in wasted if w.layer < base_layers)
    user_wasted = wasted_bytes - base_wasted
    final_leaves = list(merger.final_leaves())
    advice = advise(reports, wasted, final_leaves, base_layers=base_layers,
                    min_bytes=opts.advice_min_bytes)

    return Analysis(
        image=source.description,
        layers=tuple(reports),
        history=config.history,
        base_layers=base_layers,
        base_source=base_source,
        total_bytes=total_bytes,
        final_bytes=final_bytes,
        wasted_bytes=wasted_bytes,
        efficiency=final_bytes / total_bytes if total_bytes else 1.0,
        base_bytes=base_bytes,
        user_bytes=user_bytes,
        base_wasted_bytes=base_wasted,
        user_wasted_bytes=user_wasted,
        user_wasted_ratio=user_wasted / user_bytes if user_bytes else 0.0,
        final_files=len(final_leaves),
        wasted=tuple(wasted),
        top_wasted=_top_wasted(wasted, merger, opts.top),
        advice=advice,
        notes=tuple(notes),
    )

"""Advice that the layers themselves prove: each finding points at bytes and steps.

The rules look only at what analysis saw -- surviving files and unreachable copies --
and at the ``created_by`` of the steps involved; they never guess from a Dockerfile.
Only your layers are judged (not the base image's, which you cannot change here).

=====================  ==========================================  ======  ===============
practice               what is seen                                lint    hadolint
=====================  ==========================================  ======  ===============
apt-lists-cleanup      files under ``/var/lib/apt/lists``          LM306   DL3009
apt-cache-cleanup      ``.deb`` files etc. under ``/var/cache/apt``
apk-no-cache           files under ``/var/cache/apk``              LM308   DL3019
pip-no-cache-dir       files under ``/root/.cache/pip``            LM307   DL3042
rpm-cache              files under ``/var/cache/dnf``, ``yum``,    LM309   DL3040, DL3032,
                       ``zypp``                                            DL3036
cleanup-in-same-run    files written by one step and deleted by a
                       later ``RUN``
copy-with-chmod        a file copied, then ``chmod``/``chown``-ed
                       in a later step
=====================  ==========================================  ======  ===============

``related_rules`` of an advice lists the ``lamina lint`` rule that catches the same
habit in the Dockerfile first (``LM306`` …, see docs/lint/index.md), then the hadolint
codes; an advice that no Dockerfile rule can foresee has none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lamina.analyze.instruction import display_instruction, instruction_kind
from lamina.analyze.model import Advice, LayerReport, WastedCopy, WasteReason
from lamina.analyze.units import human_size

__all__ = ["CACHE_RULES", "CacheRule", "advise"]


@dataclass(frozen=True)
class CacheRule:
    """A directory that should not be left in an image, and what to do instead."""

    prefix: str
    practice: str
    title: str
    fix: str
    related_rules: tuple[str, ...] = ()


CACHE_RULES: tuple[CacheRule, ...] = (
    CacheRule("/var/lib/apt/lists/", "apt-lists-cleanup", "apt package lists left in the image",
              "add `&& rm -rf /var/lib/apt/lists/*` to the RUN that runs `apt-get update`",
              ("LM306", "DL3009")),
    CacheRule("/var/cache/apt/", "apt-cache-cleanup", "apt's package cache left in the image",
              "run `apt-get clean` in the same RUN as `apt-get install` (or use a cache mount)"),
    CacheRule("/var/cache/apk/", "apk-no-cache", "apk's package cache left in the image",
              "use `apk add --no-cache` instead of `apk update`/`apk add`", ("LM308", "DL3019")),
    CacheRule("/root/.cache/pip/", "pip-no-cache-dir", "pip's download cache left in the image",
              "use `pip install --no-cache-dir` (or a cache mount)", ("LM307", "DL3042")),
    CacheRule("/var/cache/dnf/", "rpm-cache", "dnf's package cache left in the image",
              "end the RUN that installs with `&& dnf clean all` (or use a cache mount)",
              ("LM309", "DL3040")),
    CacheRule("/var/cache/yum/", "rpm-cache", "yum's package cache left in the image",
              "end the RUN that installs with `&& yum clean all` (or use a cache mount)",
              ("LM309", "DL3032")),
    CacheRule("/var/cache/zypp/", "rpm-cache", "zypper's package cache left in the image",
              "end the RUN that installs with `&& zypper clean --all`", ("LM309", "DL3036")),
)

_SAMPLE = 5


def _step(layers: Sequence[LayerReport], index: int) -> str:
    shown = display_instruction(layers[index].created_by) if index < len(layers) else ""
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"layer {index} (`{shown}`)" if shown else f"layer {index}"


def advise(
    layers: Sequence[LayerReport],
    wasted: Iterable[WastedCopy],
    final_leaves: Iterable[tuple[str, int, int]],
    *,
    base_layers: int,
    min_bytes: int = 1 << 20,
) -> tuple[Advice, ...]:
    """Collect advice, largest saving first.

    *final_leaves* are ``(path, size, layer)`` of the final filesystem's non-directories;
    *min_bytes* is the smallest waste worth advice (the cache rules fire at any size,
    since leaving a cache behind is a habit worth fixing before it grows).
    """
    found: list[Advice] = []

    # caches and package lists that survive in your layers
    per_rule: dict[CacheRule, list[tuple[str, int, int]]] = defaultdict(list)
    for path, size, layer in final_leaves:
        if layer < base_layers or size <= 0 or not path.startswith(("/var/", "/root/")):
            continue
        for rule in CACHE_RULES:
            if path.startswith(rule.prefix):
                per_rule[rule].append((path, size, layer))
                break
    for rule, hits in per_rule.items():
        total = sum(s for _, s, _ in hits)
        in_layers = tuple(sorted({layer for _, _, layer in hits}))
        hits.sort(key=lambda h: -h[1])
        where = ", ".join(_step(layers, i) for i in in_layers)
        found.append(Advice(
            practice=rule.practice,
            title=rule.title,
            message=f"{len(hits)} file(s), {human_size(total)} under {rule.prefix} from {where}: "
                    f"{rule.fix}",
            bytes=total,
            layers=in_layers,
            paths=tuple(p for p, _, _ in hits[:_SAMPLE]),
            related_rules=rule.related_rules,
        ))

    # files written by one step and deleted by a later RUN, or copied then chmod-ed
    removed: dict[tuple[int, int], list[WastedCopy]] = defaultdict(list)
    rechmod: dict[tuple[int, int], list[WastedCopy]] = defaultdict(list)
    for w in wasted:
        if w.by_layer < base_layers or w.by_layer == w.layer:
            continue
        if w.reason is WasteReason.REMOVED and w.layer >= base_layers:
            if instruction_kind(layers[w.by_layer].created_by) in ("RUN", ""):
                removed[(w.layer, w.by_layer)].append(w)
        elif w.reason is WasteReason.METADATA_ONLY:
            rechmod[(w.layer, w.by_layer)].append(w)

    for (made, gone), copies in removed.items():
        total = sum(c.size for c in copies)
        if total < min_bytes:
            continue
        copies.sort(key=lambda c: -c.size)
        copied = instruction_kind(layers[made].created_by) in ("COPY", "ADD")
        fix = ("leave them out of the build context (.dockerignore) or copy only what is needed"
               if copied else
               "delete them in the same RUN that creates them, or build in another stage "
               "and COPY only the result")
        found.append(Advice(
            practice="cleanup-in-same-run",
            title="files deleted in a later step still take space",
            message=f"{len(copies)} file(s), {human_size(total)} written by {_step(layers, made)} "
                    f"are deleted by {_step(layers, gone)}; deleting in a later step only hides "
                    f"them, their bytes stay in layer {made}: {fix}",
            bytes=total,
            layers=(made, gone),
            paths=tuple(c.path for c in copies[:_SAMPLE]),
        ))

    for (made, changed), copies in rechmod.items():
        total = sum(c.size for c in copies)
        if total < min_bytes:
            continue
        copies.sort(key=lambda c: -c.size)
        copied = instruction_kind(layers[made].created_by) in ("COPY", "ADD")
        fix = ("use `COPY --chmod=...` / `COPY --chown=...` so the file is stored once"
               if copied else "set mode and owner in the step that creates the file")
        found.append(Advice(
            practice="copy-with-chmod" if copied else "set-mode-when-creating",
            title="a mode or owner change stored whole files again",
            message=f"{len(copies)} file(s), {human_size(total)} from {_step(layers, made)} are "
                    f"stored again by {_step(layers, changed)} only to change mode or owner: {fix}",
            bytes=total,
            layers=(made, changed),
            paths=tuple(c.path for c in copies[:_SAMPLE]),
        ))

    found.sort(key=lambda a: (-a.bytes, a.practice))
    return tuple(found)

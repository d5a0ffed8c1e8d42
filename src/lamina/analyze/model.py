"""What an image analysis finds: frozen records, no behaviour.

Vocabulary, used the same way in the code, the JSON output and ``docs/analyze.md``:

*size* of an entry
    What Docker's ``history`` counts: a regular file's length, a symlink's target
    length, nothing for directories, devices, whiteouts or hard links (whose bytes are
    counted once, at the file they link to).
*copy*
    One stored version of a path: the bytes some layer's tar holds for it.
*reachable*
    A copy is reachable when some path in the final, merged filesystem still shows it.
*waste*
    The size of every copy that is **not** reachable: earlier versions a later layer
    overwrote or deleted.  The surviving copy of a path is never waste, so
    ``total_bytes == final_bytes + wasted_bytes`` always holds.
*efficiency*
    ``final_bytes / total_bytes`` (1.0 for an empty image).
*base layers*
    The bottom layers shared with the base image (``--base``); without ``--base`` the
    first layer alone is the base, the convention ``dive`` uses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "Advice",
    "Analysis",
    "Change",
    "ChangeKind",
    "HistoryStep",
    "LayerReport",
    "WasteReason",
    "WastedCopy",
    "WastedPath",
]


class ChangeKind(enum.StrEnum):
    """What a layer did to a path, relative to the layers below it."""

    ADDED = "added"
    MODIFIED = "modified"
    REMOVED = "removed"

    @property
    def mark(self) -> str:
        """The one-letter mark of a tree view: ``A``, ``M`` or ``D``."""
        return {"added": "A", "modified": "M", "removed": "D"}[self.value]


@dataclass(frozen=True, slots=True)
class Change:
    """One path a layer added, modified or removed.

    ``path`` is absolute (``/etc/passwd``).  ``entry_type`` is ``file``, ``dir``,
    ``symlink``, ``hardlink`` or ``other``.  ``size`` is the size the layer stores for
    the path (added/modified) or the size of the version it hid (removed).  ``detail``
    says more when there is more to say: ``mode 0644 -> 0755 (content unchanged)``,
    ``under /opt, made opaque``, ``directory replaced by a file``.
    """

    path: str
    kind: ChangeKind
    entry_type: str
    size: int
    detail: str = ""


class WasteReason(enum.StrEnum):
    """Why a copy is unreachable."""

    REMOVED = "removed"
    """A later layer deleted the path: a whiteout, an opaque directory, or a parent
    directory that was deleted or replaced by a file."""

    OVERWRITTEN = "overwritten"
    """A later layer put different content (or another kind of entry) at the path."""

    METADATA_ONLY = "metadata-only"
    """A later layer stored identical content with another mode or owner: a ``chmod``
    or ``chown`` in a later step copies the whole file into that layer."""

    DUPLICATE = "duplicate"
    """A later layer stored the same content and metadata again (``touch``, a repeated
    ``COPY``)."""


@dataclass(frozen=True, slots=True)
class WastedCopy:
    """One unreachable copy: *size* bytes of *path* stored in layer *layer*, hidden by
    layer *by_layer* for *reason* (``detail`` tells how)."""

    path: str
    size: int
    layer: int
    by_layer: int
    reason: WasteReason
    detail: str


@dataclass(frozen=True)
class WastedPath:
    """All the waste under one path, across layers (the "top wasted paths" rows)."""

    path: str
    wasted_bytes: int
    copies: int
    layers: tuple[int, ...]
    """Layers holding an unreachable copy of the path, bottom first."""
    by_layers: tuple[int, ...]
    """Layers that hid those copies."""
    reasons: tuple[WasteReason, ...]
    survives: bool
    """Whether the path still exists in the final filesystem."""


@dataclass(frozen=True)
class HistoryStep:
    """One entry of the config's ``history``; ``layer`` is the layer index it made, or
    ``None`` for an ``empty_layer`` step (``ENV``, ``CMD``, ...)."""

    created_by: str
    created: str
    comment: str
    empty_layer: bool
    layer: int | None


@dataclass(frozen=True)
class LayerReport:
    """One layer: where it came from, its size, what it changed and what of it is waste.

    ``size`` counts file bytes as ``docker history`` does; ``stored_size`` is the blob
    in the source (compressed when the source compresses).  ``wasted_bytes`` is the part
    of *this layer's* ``size`` that is unreachable in the final filesystem.  The
    ``*_files`` counters leave directories out; ``changes`` lists everything.
    """

    index: int
    diff_id: str
    blob_digest: str
    stored_size: int
    size: int
    entries: int
    created_by: str
    created: str
    comment: str
    is_base: bool
    added_files: int
    added_bytes: int
    modified_files: int
    modified_bytes: int
    removed_files: int
    removed_bytes: int
    wasted_bytes: int
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class Advice:
    """A fix the layers make visible.

    ``practice`` is a stable slug naming the Dockerfile practice; ``related_rules``
    names the ``lamina lint`` rule that catches it in a Dockerfile (``LM306``), then
    hadolint's codes, when they exist.  ``bytes`` is what following the advice would save.
    """

    practice: str
    title: str
    message: str
    bytes: int
    layers: tuple[int, ...]
    paths: tuple[str, ...]
    related_rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Analysis:
    """The whole result of analysing one image.

    ``user_wasted_bytes`` is the waste stored in *your* layers (above the base),
    ``user_wasted_ratio`` that over your layers' size: both exclude what the base
    image brings, which you cannot reclaim by changing your Dockerfile.
    """

    image: str
    layers: tuple[LayerReport, ...]
    history: tuple[HistoryStep, ...]
    base_layers: int
    base_source: str
    total_bytes: int
    final_bytes: int
    wasted_bytes: int
    efficiency: float
    base_bytes: int
    user_bytes: int
    base_wasted_bytes: int
    user_wasted_bytes: int
    user_wasted_ratio: float
    final_files: int
    wasted: tuple[WastedCopy, ...]
    top_wasted: tuple[WastedPath, ...]
    advice: tuple[Advice, ...]
    notes: tuple[str, ...]

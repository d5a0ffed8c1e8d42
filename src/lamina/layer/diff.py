"""What an overlay upper dir changed: ``docker diff`` and the layer's own view.

A container (or a ``RUN`` step) runs on overlayfs: read-only *lower* dirs (the
image's layers, top first, as in ``lowerdir=top:...:bottom``) under a writable
*upper* dir.  Everything the container changed is in the upper dir: new and
modified files (copied up whole, with their parent directories), whiteouts for
deletions, opaque directories for "deleted and made again".  So the diff needs no
comparison of file contents, only a walk of the upper dir and a look-up of each
path in the lower layers (:class:`LowerView`, which honours the lowers' own
whiteouts and opaque directories).  A single directory may stand for the lower
side too: a merged view, or any plain root filesystem.

Two readings of the same walk:

:func:`changes` -- ``docker diff``: ``A`` added, ``C`` changed, ``D`` deleted, one
line per path, sorted.  A directory that was only copied up because something in
it changed, and whose own mode, owner and mtime are as below, is not itself a
change -- but every parent of a change is shown as ``C``, as Docker does
(``touch /etc/new`` gives ``C /etc`` and ``A /etc/new``).  A deleted directory is
one ``D``, not one per file in it.

:func:`diff_dirs` -- the layer's view: every path the layer tar will carry (all of
the upper dir, unchanged copied-up directories included, as ``C``) plus a ``D``
for each lower path the layer hides.

Whiteouts that hide nothing (a file created and deleted in the same container
may leave one) are not reported.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lamina.errors import InvalidArgument
from lamina.layer import _fs
from lamina.layer.whiteout import is_overlay_opaque, is_overlay_whiteout

__all__ = ["Change", "ChangeKind", "LowerView", "changes", "diff_dirs"]


class ChangeKind(enum.Enum):
    """The letter ``docker diff`` prints."""

    ADD = "A"
    MODIFY = "C"
    DELETE = "D"


@dataclass(frozen=True, slots=True)
class Change:
    """One changed path: ``path`` is absolute in the container (``/etc/hosts``)."""

    kind: ChangeKind
    path: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.path}"


class LowerView:
    """Looks paths up in a stack of overlay lower dirs as overlayfs would see them.

    ``lowers`` are top first.  A path is visible if the topmost layer that has it
    (or has a whiteout for it) has it, unless an ancestor in a higher layer is a
    whiteout, a non-directory, or an opaque directory (which hides everything of
    the layers under it).
    """

    def __init__(self, lowers: Sequence[Path]) -> None:
        self._layers = [os.fsencode(os.path.abspath(p)) for p in lowers]
        self._cache: dict[tuple[int, bytes], tuple[os.stat_result | None, bool]] = {}

    def _probe(self, index: int, rel: bytes) -> tuple[os.stat_result | None, bool]:
        """(lstat or None, opaque) of ``rel`` in one layer, memoised."""
        key = (index, rel)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        path = self._layers[index] + b"/" + rel
        try:
            st: os.stat_result | None = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        opaque = st is not None and stat.S_ISDIR(st.st_mode) and is_overlay_opaque(path)
        self._cache[key] = (st, opaque)
        return st, opaque

    def lookup(self, rel: bytes) -> os.stat_result | None:
        """The lstat of ``rel`` (relative, no leading slash) in the merged lower view."""
        parts = rel.split(b"/")
        for index in range(len(self._layers)):
            hides_below = False
            reachable = True
            prefix = b""
            for part in parts[:-1]:
                prefix = prefix + b"/" + part if prefix else part
                st, opaque = self._probe(index, prefix)
                if st is None:
                    reachable = False
                    break
                if not stat.S_ISDIR(st.st_mode):
                    return None  # a file or whiteout here hides the rest of the path
                hides_below = hides_below or opaque
            if reachable:
                st, _ = self._probe(index, rel)
                if st is not None:
                    return None if is_overlay_whiteout(st) else st
            if hides_below:
                return None
        return None

    def children(self, rel: bytes) -> list[bytes]:
        """The names visible in directory ``rel`` of the merged lower view, sorted."""
        names: set[bytes] = set()
        for layer in self._layers:
            try:
                with os.scandir(layer + b"/" + rel if rel else layer) as it:
                    names.update(e.name for e in it)
            except (FileNotFoundError, NotADirectoryError):
                continue
        prefix = rel + b"/" if rel else b""
        return sorted(n for n in names if self.lookup(prefix + n) is not None)


def _as_view(lower: Path | Sequence[Path]) -> LowerView:
    if isinstance(lower, (str, os.PathLike)):
        return LowerView([Path(lower)])
    return LowerView(list(lower))


def _display(rel: bytes) -> str:
    return "/" + os.fsdecode(rel)


@dataclass(frozen=True, slots=True)
class _Found:
    rel: bytes
    kind: ChangeKind
    unchanged_dir: bool  # a copied-up directory with the lower's own metadata


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    return (
        stat.S_ISDIR(b.st_mode)
        and a.st_mode == b.st_mode
        and a.st_uid == b.st_uid
        and a.st_gid == b.st_gid
        and a.st_mtime_ns == b.st_mtime_ns
    )


def _walk_upper(upper: Path, view: LowerView) -> list[_Found]:
    root = os.fsencode(os.path.abspath(upper))
    if not os.path.isdir(root):
        raise InvalidArgument(f"upper dir {upper} is not a directory")
    found: list[_Found] = []
    absent: set[bytes] = set()  # upper dirs with nothing below them in the lowers
    for rel, path, st in _fs.walk(root):
        parent = rel.rpartition(b"/")[0]
        lower = None if parent in absent else view.lookup(rel)
        if is_overlay_whiteout(st):
            if lower is not None:
                found.append(_Found(rel, ChangeKind.DELETE, False))
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if lower is None:
            found.append(_Found(rel, ChangeKind.ADD, False))
            if is_dir:
                absent.add(rel)
            continue
        opaque = is_dir and is_overlay_opaque(path)
        same = is_dir and not opaque and _same_dir(st, lower)
        found.append(_Found(rel, ChangeKind.MODIFY, same))
        if opaque and stat.S_ISDIR(lower.st_mode):
            # "deleted and made again": what the lowers had here and the upper
            # does not have any more is deleted
            for name in view.children(rel):
                child = rel + b"/" + name
                try:
                    os.lstat(os.path.join(path, name))
                except FileNotFoundError:
                    found.append(_Found(child, ChangeKind.DELETE, False))
    return found


def changes(upper: Path, lowers: Path | Sequence[Path]) -> list[Change]:
    """``docker diff`` of an overlay upper dir against its lowers (top first) or a merged view.

    Sorted by path; see the module doc for what counts as a change.
    """
    found = _walk_upper(upper, _as_view(lowers))
    kinds: dict[bytes, ChangeKind] = {}
    for item in found:
        if not item.unchanged_dir:
            kinds[item.rel] = item.kind
    for rel in list(kinds):
        parent = rel.rpartition(b"/")[0]
        while parent and parent not in kinds:
            kinds[parent] = ChangeKind.MODIFY
            parent = parent.rpartition(b"/")[0]
    return [Change(kinds[rel], _display(rel)) for rel in sorted(kinds)]


def diff_dirs(lower: Path | Sequence[Path], upper: Path) -> list[Change]:
    """The layer's view of an overlay upper dir: all its paths, plus what it deletes.

    ``lower`` is the stack of lower dirs (top first) or one merged view.  Paths in
    the upper dir are ``A`` (new) or ``C`` (present below); whiteouts, and lower
    content hidden by opaque directories, are ``D``.  Sorted by path.
    """
    found = _walk_upper(upper, _as_view(lower))
    return sorted((Change(item.kind, _display(item.rel)) for item in found), key=lambda c: c.path)

"""Replay layers one on top of another, as overlayfs would, and keep the books.

:class:`LayerMerger` holds the merged filesystem *so far* as two dictionaries -- path →
node, directory → set of child paths -- and applies each layer's tar entries in turn:

* ``dir/.wh.NAME`` (a **whiteout**) deletes ``dir/NAME`` and everything beneath it,
  as far as lower layers put it there;
* ``dir/.wh..wh..opq`` (an **opaque** marker) hides every lower-layer entry beneath
  ``dir`` -- the layer's own entries there stay;
* any other entry adds a path or replaces the one below; a file replacing a
  directory deletes the directory's whole subtree.

Every regular file or symlink version is a *copy* with a count of the names that
still show it (hard links add names).  When the count drops to zero the copy is
unreachable and recorded as a :class:`_Death` -- that is waste, and exactly that: the
surviving version of a path is never counted.  Whether an overwrite was a real edit or
only a ``chmod``/``chown`` is settled later, by hashing just the same-sized pairs
(:meth:`LayerMerger.hash_requests`), because a header cannot tell.

Per-entry work is a few dictionary operations; deletes cost what they delete.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lamina.analyze._tarwalk import EntryKind, TarEntry
from lamina.analyze.model import Change, ChangeKind, WastedCopy, WasteReason

__all__ = ["LayerMerger", "LayerTotals"]

_FILE = EntryKind.FILE
_DIR = EntryKind.DIR
_SYMLINK = EntryKind.SYMLINK
_HARDLINK = EntryKind.HARDLINK
_OPAQUE = ".wh..wh..opq"


def _parent(path: str) -> str:
    i = path.rfind("/")
    return path[:i] if i >= 0 else ""


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class _Copy:
    """One stored version of a file or symlink: where its bytes are, how many names show it."""

    __slots__ = ("alive", "gid", "kind", "layer", "link", "mode", "offset", "size", "uid")

    def __init__(self, e: TarEntry, layer: int) -> None:
        self.kind = e.kind
        self.layer = layer
        self.offset = e.offset
        self.mode = e.mode & 0o7777
        self.uid = e.uid
        self.gid = e.gid
        self.link = e.link if e.kind is _SYMLINK else ""
        self.size = e.size if e.kind is _FILE else len(e.link.encode("utf-8", "surrogateescape"))
        self.alive = 1


class _Node:
    """A path of the merged filesystem: its kind, the layer that last wrote it, its copy."""

    __slots__ = ("copy", "gid", "kind", "layer", "mode", "uid")

    def __init__(self, kind: EntryKind, layer: int, copy: _Copy | None, mode: int, uid: int,
                 gid: int) -> None:
        self.kind = kind
        self.layer = layer
        self.copy = copy
        self.mode = mode
        self.uid = uid
        self.gid = gid


class _Death:
    """A copy that became unreachable (waste), with the copy that replaced it, if any."""

    __slots__ = ("by_layer", "copy", "detail", "path", "reason", "successor")

    def __init__(self, copy: _Copy, path: str, by_layer: int, reason: WasteReason, detail: str,
                 successor: _Copy | None) -> None:
        self.copy = copy
        self.path = path
        self.by_layer = by_layer
        self.reason = reason
        self.detail = detail
        self.successor = successor


class _PendingChange:
    """A change whose detail may wait on a content comparison."""

    __slots__ = ("detail", "etype", "kind", "new", "old", "path", "size")

    def __init__(self, path: str, kind: ChangeKind, etype: EntryKind, size: int, detail: str = "",
                 old: _Copy | None = None, new: _Copy | None = None) -> None:
        self.path = path
        self.kind = kind
        self.etype = etype
        self.size = size
        self.detail = detail
        self.old = old
        self.new = new


@dataclass(frozen=True)
class LayerTotals:
    """What one layer's tar held: entries and the bytes it stores (Docker's layer size)."""

    entries: int
    size: int


def _meta_diff(old: _Copy, new: _Copy) -> str:
    parts = []
    if old.mode != new.mode and old.kind is not _SYMLINK:
        parts.append(f"mode {old.mode:04o} -> {new.mode:04o}")
    if (old.uid, old.gid) != (new.uid, new.gid):
        parts.append(f"owner {old.uid}:{old.gid} -> {new.uid}:{new.gid}")
    return ", ".join(parts)


class LayerMerger:
    """Applies layers bottom-up and records changes and unreachable copies.

    >>> from lamina.analyze._tarwalk import TarEntry, EntryKind
    >>> f = lambda p, n: TarEntry(p, EntryKind.FILE, n, 0o644, 0, 0, "", 0)
    >>> m = LayerMerger()
    >>> m.apply(0, [f("big", 100), f("keep", 7)])
    LayerTotals(entries=2, size=107)
    >>> m.apply(1, [f(".wh.big", 0)])
    LayerTotals(entries=1, size=0)
    >>> m.final_bytes(), [(d.path, d.copy.size) for d in m.deaths]
    (7, [('big', 100)])
    """

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}
        self.kids: dict[str, set[str]] = {"": set()}
        self.deaths: list[_Death] = []
        self.changes: list[list[_PendingChange]] = []
        self._all_copies_bytes = 0

    # --- applying ----------------------------------------------------------------------

    def apply(self, layer: int, entries: Iterable[TarEntry]) -> LayerTotals:
        """Apply one layer's entries (layers must come bottom first, numbered 0, 1, ...)."""
        changes: list[_PendingChange] = []
        self.changes.append(changes)
        count = 0
        size = 0
        for e in entries:
            count += 1
            path = e.path
            name = path[path.rfind("/") + 1 :]
            if name.startswith(".wh."):
                parent = _parent(path)
                if name == _OPAQUE:
                    self._ensure_dir(parent, layer, changes)
                    self._opaque(parent, layer, changes)
                elif not name.startswith(".wh..wh.") and len(name) > 4:
                    self._whiteout(_join(parent, name[4:]), layer, changes)
                # other .wh..wh.* names are aufs bookkeeping: nothing to apply
                continue
            if e.kind is _DIR:
                self._add_dir(e, layer, changes)
            else:
                size += self._add_leaf(e, layer, changes)
        self._all_copies_bytes += size
        return LayerTotals(count, size)

    def _ensure_dir(self, path: str, layer: int, changes: list[_PendingChange]) -> None:
        """Make *path* an existing directory, creating (or replacing) what is missing."""
        if not path:
            return
        node = self.nodes.get(path)
        if node is not None and node.kind is _DIR:
            return
        missing = []
        q = path
        while q:
            node = self.nodes.get(q)
            if node is not None and node.kind is _DIR:
                break
            missing.append(q)
            q = _parent(q)
        for q in reversed(missing):
            old = self.nodes.get(q)
            if old is None:
                self.kids[_parent(q)].add(q)
                changes.append(_PendingChange("/" + q, ChangeKind.ADDED, _DIR, 0, "implied"))
            else:
                self._kill(old, q, layer, WasteReason.OVERWRITTEN,
                           f"replaced by a directory in layer {layer}", None)
                changes.append(_PendingChange("/" + q, ChangeKind.MODIFIED, _DIR, 0,
                                              f"{old.kind.label} replaced by a directory"))
            self.nodes[q] = _Node(_DIR, layer, None, 0o755, 0, 0)
            self.kids[q] = set()

    def _add_dir(self, e: TarEntry, layer: int, changes: list[_PendingChange]) -> None:
        path = e.path
        parent = _parent(path)
        if parent:
            pnode = self.nodes.get(parent)
            if pnode is None or pnode.kind is not _DIR:
                self._ensure_dir(parent, layer, changes)
        mode = e.mode & 0o7777
        old = self.nodes.get(path)
        if old is None:
            self.nodes[path] = _Node(_DIR, layer, None, mode, e.uid, e.gid)
            self.kids[path] = set()
            self.kids[parent].add(path)
            changes.append(_PendingChange("/" + path, ChangeKind.ADDED, _DIR, 0))
        elif old.kind is _DIR:
            if (old.mode, old.uid, old.gid) != (mode, e.uid, e.gid):
                parts = []
                if old.mode != mode:
                    parts.append(f"mode {old.mode:04o} -> {mode:04o}")
                if (old.uid, old.gid) != (e.uid, e.gid):
                    parts.append(f"owner {old.uid}:{old.gid} -> {e.uid}:{e.gid}")
                changes.append(
                    _PendingChange("/" + path, ChangeKind.MODIFIED, _DIR, 0, ", ".join(parts))
                )
            old.layer, old.mode, old.uid, old.gid = layer, mode, e.uid, e.gid
        else:
            self._kill(old, path, layer, WasteReason.OVERWRITTEN,
                       f"replaced by a directory in layer {layer}", None)
            self.nodes[path] = _Node(_DIR, layer, None, mode, e.uid, e.gid)
            self.kids[path] = set()
            changes.append(_PendingChange("/" + path, ChangeKind.MODIFIED, _DIR, 0,
                                          f"{old.kind.label} replaced by a directory"))

    def _add_leaf(self, e: TarEntry, layer: int, changes: list[_PendingChange]) -> int:
        """Add a file, symlink, hard link or device; return the bytes it stores."""
        path = e.path
        parent = _parent(path)
        if parent:
            pnode = self.nodes.get(parent)
            if pnode is None or pnode.kind is not _DIR:
                self._ensure_dir(parent, layer, changes)
        copy: _Copy | None = None
        stored = 0
        if e.kind is _FILE or e.kind is _SYMLINK:
            copy = _Copy(e, layer)
            stored = copy.size
        elif e.kind is _HARDLINK:
            target = self.nodes.get(e.link)
            if target is not None and target.copy is not None:
                copy = target.copy
                copy.alive += 1
        old = self.nodes.get(path)
        new = _Node(e.kind, layer, copy, e.mode & 0o7777, e.uid, e.gid)
        if old is None:
            self.nodes[path] = new
            self.kids[parent].add(path)
            changes.append(_PendingChange("/" + path, ChangeKind.ADDED, e.kind, stored))
            return stored
        if old.kind is _DIR:
            self._remove_tree(path, layer, changes, lower_only=False, children_only=True,
                              how=f"directory /{path} replaced by a {e.kind.label} in layer {layer}")
            del self.kids[path]
            self.nodes[path] = new
            changes.append(_PendingChange("/" + path, ChangeKind.MODIFIED, e.kind, stored,
                                          f"directory replaced by a {e.kind.label}"))
            return stored
        self.nodes[path] = new
        self._kill(old, path, layer, WasteReason.OVERWRITTEN, "", copy)
        detail = "" if old.kind is e.kind else f"{old.kind.label} replaced by a {e.kind.label}"
        changes.append(_PendingChange("/" + path, ChangeKind.MODIFIED, e.kind, stored, detail,
                                      old.copy, copy))
        return stored

    def _whiteout(self, path: str, layer: int, changes: list[_PendingChange]) -> None:
        if path in self.nodes:
            self._remove_tree(path, layer, changes, lower_only=True, children_only=False,
                              how=f"deleted in layer {layer}")

    def _opaque(self, path: str, layer: int, changes: list[_PendingChange]) -> None:
        self._remove_tree(path, layer, changes, lower_only=True, children_only=True,
                          how=f"directory /{path} made opaque in layer {layer}")

    def _remove_tree(self, root: str, layer: int, changes: list[_PendingChange], *,
                     lower_only: bool, children_only: bool, how: str) -> None:
        """Delete *root*'s subtree (post-order).  *lower_only* spares entries this layer
        wrote; *children_only* keeps *root* itself."""
        nodes, kids = self.nodes, self.kids
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            path, expanded = stack.pop()
            node = nodes.get(path)
            if node is None:
                continue
            if node.kind is _DIR and not expanded:
                stack.append((path, True))
                stack.extend((child, False) for child in kids[path])
                continue
            if path == root and children_only:
                continue
            if lower_only and node.layer >= layer:
                continue
            if node.kind is _DIR and kids[path]:
                continue  # keeps entries this layer wrote beneath it
            del nodes[path]
            kids[_parent(path)].discard(path)
            if node.kind is _DIR:
                del kids[path]
            detail = f"under /{root}, {how}" if path != root and how.startswith("deleted") else how
            self._kill(node, path, layer, WasteReason.REMOVED, detail, None)
            size = node.copy.size if node.copy is not None and node.kind is not _HARDLINK else 0
            changes.append(_PendingChange("/" + path, ChangeKind.REMOVED, node.kind, size, detail))

    def _kill(self, node: _Node, path: str, layer: int, reason: WasteReason, detail: str,
              successor: _Copy | None) -> None:
        copy = node.copy
        if copy is None:
            return
        copy.alive -= 1
        if copy.alive == 0:
            self.deaths.append(_Death(copy, path, layer, reason, detail, successor))

    # --- afterwards ----------------------------------------------------------------------

    def hash_requests(self) -> dict[int, set[tuple[int, int]]]:
        """The ``(offset, size)`` ranges to hash, per layer, to tell edits from chmods.

        Only pairs that a header cannot settle: a file overwritten by a file of the very
        same (non-zero) size.
        """
        wanted: dict[int, set[tuple[int, int]]] = {}
        for layer_changes in self.changes:
            for pc in layer_changes:
                old, new = pc.old, pc.new
                if (old is not None and new is not None and old is not new
                        and old.kind is _FILE and new.kind is _FILE
                        and old.size == new.size and old.size > 0):
                    wanted.setdefault(old.layer, set()).add((old.offset, old.size))
                    wanted.setdefault(new.layer, set()).add((new.offset, new.size))
        return wanted

    def final_bytes(self) -> int:
        """Bytes reachable in the merged filesystem (each copy once)."""
        return self._all_copies_bytes - sum(d.copy.size for d in self.deaths)

    def total_bytes(self) -> int:
        """Bytes stored by all layers together."""
        return self._all_copies_bytes

    def final_leaves(self) -> Iterator[tuple[str, int, int]]:
        """``(path, size, layer)`` of every non-directory in the merged filesystem."""
        for path, node in self.nodes.items():
            if node.kind is not _DIR:
                size = node.copy.size if node.copy is not None and node.kind is not _HARDLINK else 0
                yield "/" + path, size, node.layer

    def exists(self, path: str) -> bool:
        """Whether the absolute *path* exists in the merged filesystem."""
        return path.lstrip("/") in self.nodes


def _same(old: _Copy, new: _Copy, digests: dict[tuple[int, int], bytes]) -> bool | None:
    """Whether two copies hold the same content; ``None`` when it cannot be told."""
    if old.kind is not new.kind or old.size != new.size:
        return False
    if old.kind is _SYMLINK:
        return old.link == new.link
    if old.size == 0:
        return True
    a = digests.get((old.layer, old.offset))
    b = digests.get((new.layer, new.offset))
    if a is None or b is None:
        return None
    return a == b


def settle(merger: LayerMerger, digests: dict[tuple[int, int], bytes]
           ) -> tuple[list[list[Change]], list[WastedCopy]]:
    """Turn pending records into final ones, using content *digests* keyed by
    ``(layer, offset)`` for the pairs :meth:`LayerMerger.hash_requests` asked about."""
    layers: list[list[Change]] = []
    for layer_changes in merger.changes:
        out = []
        for pc in layer_changes:
            detail = pc.detail
            if pc.old is not None and pc.new is not None and not detail:
                same = _same(pc.old, pc.new, digests)
                meta = _meta_diff(pc.old, pc.new)
                if same:
                    detail = f"{meta} (content unchanged)" if meta else "content and metadata unchanged"
                elif pc.old.kind is _SYMLINK:
                    detail = f"target {pc.old.link} -> {pc.new.link}"
                else:
                    detail = "content changed" + (f"; {meta}" if meta else "")
            out.append(Change(pc.path, pc.kind, pc.etype.label, pc.size, detail))
        layers.append(out)

    wasted: list[WastedCopy] = []
    for d in merger.deaths:
        reason, detail = d.reason, d.detail
        if d.successor is not None and reason is WasteReason.OVERWRITTEN:
            same = _same(d.copy, d.successor, digests)
            meta = _meta_diff(d.copy, d.successor)
            where = f"in layer {d.by_layer}"
            if same and meta:
                reason = WasteReason.METADATA_ONLY
                detail = f"{meta} {where}: same content stored again"
            elif same:
                reason = WasteReason.DUPLICATE
                detail = f"identical copy stored again {where}"
            elif d.successor.kind is not d.copy.kind:
                detail = f"replaced by a {d.successor.kind.label} {where}"
            else:
                detail = f"overwritten with new content {where}"
        elif reason is WasteReason.OVERWRITTEN and not detail:
            detail = f"overwritten in layer {d.by_layer}"
        wasted.append(WastedCopy("/" + d.path, d.copy.size, d.copy.layer, d.by_layer, reason,
                                 detail))
    return layers, wasted

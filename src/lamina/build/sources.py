"""Selecting COPY/ADD sources from the build context, and checksumming them.

The context is read in place: :class:`ContextIndex` walks it once (lazily, on the
first COPY that needs it) with the ``.dockerignore`` patterns applied while walking,
so excluded directories are never opened.  The walk is depth-first with sorted
children, so a directory's subtree is one contiguous run of entries.

:meth:`ContextIndex.select` resolves a COPY's source words the way BuildKit does:

* paths are relative to the context root (a leading ``/`` or ``./`` is dropped);
  anything that leaves it (``../x``, a top-level symlink pointing out) is refused;
* a word with ``*``, ``?`` or ``[`` is a Go ``filepath.Match`` pattern matched against
  entries at the same depth; no match is not an error (BuildKit's behaviour);
* a top-level symlink is followed (inside the context), inner symlinks are copied as
  links; a directory source means *its contents*;
* an excluded or missing plain path is an error naming it.

:func:`checksum` digests a selection from each entry's relative path, type,
permission bits, link target and content -- never its mtime or owner (COPY resets
owners to 0:0 anyway) -- using :class:`~lamina.cache.FileDigests` so unchanged files
are not re-read.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lamina.build.dockerfile.context import ContextEntry, EntryKind, walk_context
from lamina.build.dockerfile.dockerignore import PatternMatcher, go_path_match
from lamina.errors import BuildError

if TYPE_CHECKING:
    from lamina.cache import FileDigests

__all__ = ["ContextIndex", "Selected", "SourceError", "checksum", "clean_source", "has_wildcard"]

_WILDCARDS = "*?["


class SourceError(BuildError):
    """A COPY/ADD source that is missing, excluded or outside the context."""

    code = "build-source"


def has_wildcard(text: str) -> bool:
    return any(c in text for c in _WILDCARDS)


def clean_source(src: str) -> str:
    """A source word as a clean context-relative path (``"."`` for the root).

    Raises :class:`SourceError` for paths that leave the context.
    """
    if src.startswith("/"):
        rel = posixpath.normpath(src).lstrip("/")
    else:
        rel = posixpath.normpath(src)
        if rel == ".." or rel.startswith("../"):
            raise SourceError(f"forbidden path outside the build context: {src}",
                              hint="COPY and ADD can only read files inside the context directory")
    return rel or "."


@dataclass(frozen=True)
class Selected:
    """One resolved source: ``entry`` (``None`` for the context root) and its subtree.

    ``name`` is the base name a file source keeps at the destination; ``parents_path``
    is its context-relative path (for ``COPY --parents``).  ``subtree`` holds the
    entries below a directory source, paths relative to the context root.
    """

    name: str
    entry: ContextEntry | None
    subtree: tuple[ContextEntry, ...]
    is_dir: bool
    parents_path: str


class ContextIndex:
    """The kept entries of a context directory, walked once (see the module docstring)."""

    def __init__(self, root: Path, patterns: Sequence[str],
                 entries: list[ContextEntry] | None = None) -> None:
        """``entries``: the walk of ``root`` with ``patterns`` if already done (a build memo
        probe walks the context first); otherwise it is walked on first use."""
        self.root = root.resolve()
        self.patterns = list(patterns)
        self._entries: list[ContextEntry] | None = None
        self._pos: dict[str, int] = {}
        if entries is not None:
            self._entries = entries
            self._pos = {e.path: i for i, e in enumerate(entries)}

    @property
    def entries(self) -> list[ContextEntry]:
        if self._entries is None:
            self._entries = list(walk_context(self.root, self.patterns))
            self._pos = {e.path: i for i, e in enumerate(self._entries)}
        return self._entries

    def get(self, rel: str) -> ContextEntry | None:
        """The kept entry at context-relative ``rel`` (``None`` if missing or excluded)."""
        entries = self.entries
        i = self._pos.get(rel)
        return entries[i] if i is not None else None

    def subtree(self, rel: str) -> tuple[ContextEntry, ...]:
        """Every kept entry below directory ``rel`` (``"."``: the whole context)."""
        entries = self.entries
        if rel == ".":
            return tuple(entries)
        i = self._pos.get(rel)
        if i is None:
            return ()
        prefix = rel + "/"
        j = i + 1
        while j < len(entries) and entries[j].path.startswith(prefix):
            j += 1
        return tuple(entries[i + 1:j])

    def _follow(self, entry: ContextEntry, src: str) -> ContextEntry:
        """Resolve a top-level symlink inside the context (refusing links that leave it)."""
        seen = 0
        while entry.kind is EntryKind.SYMLINK:
            seen += 1
            target = entry.link_target or ""
            joined = target if target.startswith("/") else posixpath.join(
                posixpath.dirname("/" + entry.path), target)
            norm = posixpath.normpath("/" + joined.lstrip("/")) if target.startswith("/") else \
                posixpath.normpath(joined)
            real = os.path.realpath(entry.abspath)
            if seen > 40 or not (real == str(self.root) or real.startswith(str(self.root) + "/")):
                raise SourceError(
                    f"COPY source {src!r} is a symlink to {target!r}, outside the build context",
                    hint="copy the file into the context instead of linking to it")
            rel = norm.lstrip("/") or "."
            nxt = self.get(rel) if rel != "." else None
            if rel == ".":
                return ContextEntry(".", EntryKind.DIR, stat.S_IFDIR | 0o755, 0, None, 0, 0, 0,
                                    str(self.root))
            if nxt is None:
                raise SourceError(f"COPY source {src!r} links to {target!r}, which is not in the "
                                  "build context", hint="is it excluded by .dockerignore?")
            entry = nxt
        return entry

    def select(self, sources: Sequence[str], excludes: Sequence[str] = ()) -> list[Selected]:
        """Resolve source words (see the module docstring); ``excludes`` are ``--exclude``."""
        ex = PatternMatcher(excludes) if excludes else None
        out: list[Selected] = []
        for src in sources:
            rel = clean_source(src)
            if has_wildcard(rel):
                depth = rel.count("/")
                matches = [e for e in self.entries
                           if e.path.count("/") == depth and go_path_match(rel, e.path)]
                for e in matches:
                    if ex is not None and ex.matches(e.path):
                        continue
                    out.append(self._selected(e, src, ex))
                continue
            if rel == ".":
                subtree = self.subtree(".")
                if ex is not None:
                    subtree = tuple(e for e in subtree if not ex.matches(e.path))
                out.append(Selected(".", None, subtree, True, "."))
                continue
            entry = self.get(rel)
            if entry is None:
                raise SourceError(
                    f'"/{rel}" not found: not found',
                    hint=f"{src!r} is missing from the build context"
                    + (" or excluded by .dockerignore" if self.patterns else ""))
            out.append(self._selected(entry, src, ex))
        return out

    def _selected(self, entry: ContextEntry, src: str, ex: PatternMatcher | None) -> Selected:
        name = posixpath.basename(entry.path)
        parents_path = entry.path
        resolved = self._follow(entry, src) if entry.kind is EntryKind.SYMLINK else entry
        if resolved.kind is EntryKind.DIR:
            subtree = self.subtree(resolved.path)
            if ex is not None:  # --exclude patterns are relative to the source directory
                cut = len(resolved.path) + 1
                subtree = tuple(e for e in subtree if not ex.matches(e.path[cut:]))
            return Selected(name, resolved, subtree, True, parents_path)
        return Selected(name, resolved, (), False, parents_path)


def _entry_line(rel: str, e: ContextEntry, digests: FileDigests | None) -> tuple[str, str]:
    content = ""
    if e.kind is EntryKind.FILE:
        st = os.lstat(e.abspath)
        content = digests.digest(e.abspath, st) if digests is not None else _hash(e.abspath)
    elif e.kind is EntryKind.SYMLINK:
        content = "->" + (e.link_target or "")
    return rel, f"{e.kind.value} {stat.S_IMODE(e.mode):o} {content}"


def _hash(path: str) -> str:
    from lamina.cache import hash_file

    return hash_file(path)


def checksum(selection: Sequence[Selected], digests: FileDigests | None,
             files: dict[str, str] | None = None) -> str:
    """sha256 hex over the selection's paths, types, modes, link targets and contents.

    When ``files`` is given it is filled with ``context path -> line`` for every entry
    (what a cache miss is explained from).
    """
    h = hashlib.sha256()
    for sel in selection:
        h.update(f"source {sel.parents_path} {sel.name} {int(sel.is_dir)}\n".encode())
        items: list[tuple[str, ContextEntry]] = []
        if sel.entry is not None:
            items.append((sel.entry.path, sel.entry))
        items.extend((e.path, e) for e in sel.subtree)
        base = sel.entry.path + "/" if sel.entry is not None and sel.is_dir else ""
        for path, e in items:
            rel, line = _entry_line(path, e, digests)
            short = rel[len(base):] if base and rel.startswith(base) else rel
            h.update(f"{short}\x00{line}\n".encode())
            if files is not None:
                files[rel] = line
    return h.hexdigest()

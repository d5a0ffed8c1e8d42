"""Directory walking shared by the layer writer and the differ."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from operator import attrgetter


def scandir_sorted(path: bytes) -> list[os.DirEntry[bytes]]:
    """The entries of ``path`` sorted by name (bytes order, as Go's filepath.Walk)."""
    with os.scandir(path) as it:
        return sorted(it, key=attrgetter("name"))


def walk(root: bytes) -> Iterator[tuple[bytes, bytes, os.stat_result]]:
    """Yield ``(relative name, absolute path, lstat)`` depth first, sorted, dirs first.

    A directory is yielded before its content.  The walk is iterative, so a deep
    tree cannot exhaust Python's recursion limit; ``root`` itself is not yielded.
    """
    stack: list[tuple[bytes, Iterator[os.DirEntry[bytes]]]] = [(b"", iter(scandir_sorted(root)))]
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        rel = prefix + entry.name
        st = entry.stat(follow_symlinks=False)
        yield rel, entry.path, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((rel + b"/", iter(scandir_sorted(entry.path))))

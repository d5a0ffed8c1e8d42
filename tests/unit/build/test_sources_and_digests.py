"""Selecting COPY sources from a context and checksumming them by content, not mtime."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamina.build.sources import ContextIndex, SourceError, checksum, clean_source
from lamina.cache import FileDigests
from lamina.metadata import MetadataStore


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    for rel, text in {"a.txt": "a", "b.txt": "b", "dir/x": "x", "dir/sub/y": "y",
                      "skip.log": "no", "dir/z.log": "kept: *.log is root-only"}.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (root / "link").symlink_to("dir")
    (root / "out").symlink_to("../..")
    return root


def test_clean_source_refuses_paths_outside() -> None:
    assert clean_source("./a/../b") == "b"
    assert clean_source("/abs/x") == "abs/x"
    assert clean_source(".") == "."
    with pytest.raises(SourceError, match="outside the build context"):
        clean_source("../etc/passwd")


def test_select_wildcards_dirs_symlinks_and_ignores(ctx: Path) -> None:
    index = ContextIndex(ctx, ["*.log"])
    sel = index.select(["*.txt"])
    assert [s.name for s in sel] == ["a.txt", "b.txt"]
    assert index.select(["nomatch*"]) == []  # BuildKit: an empty match is a no-op
    [d] = index.select(["dir"])
    assert d.is_dir and [e.path for e in d.subtree] == ["dir/sub", "dir/sub/y", "dir/x", "dir/z.log"]
    [ex] = index.select(["dir"], excludes=["*.log"])
    assert [e.path for e in ex.subtree] == ["dir/sub", "dir/sub/y", "dir/x"]
    [linked] = index.select(["link"])  # a top-level symlink is followed
    assert linked.is_dir and linked.name == "link"
    with pytest.raises(SourceError, match="not found"):
        index.select(["skip.log"])  # excluded by .dockerignore
    with pytest.raises(SourceError, match="outside the build context"):
        index.select(["out"])


def test_checksum_uses_content_and_mode_not_mtime(ctx: Path, tmp_path: Path) -> None:
    meta = MetadataStore(tmp_path / "m.db")
    index = ContextIndex(ctx, [])
    digests = FileDigests.load(meta, str(index.root))
    files: dict[str, str] = {}
    first = checksum(index.select(["dir", "a.txt"]), digests, files)
    assert digests.hashed == 4 and sorted(files) == ["a.txt", "dir", "dir/sub", "dir/sub/y",
                                                     "dir/x", "dir/z.log"]
    digests.save()
    again = FileDigests.load(meta, str(index.root))
    assert checksum(ContextIndex(ctx, []).select(["dir", "a.txt"]), again) == first
    assert again.hashed == 0  # remembered by (size, mtime, ctime, inode)
    os.utime(ctx / "a.txt", (5, 5))  # touch: re-read, same content, same checksum
    touched = FileDigests.load(meta, str(index.root))
    assert checksum(ContextIndex(ctx, []).select(["dir", "a.txt"]), touched) == first
    assert touched.hashed == 1
    os.chmod(ctx / "dir/x", 0o600)
    assert checksum(ContextIndex(ctx, []).select(["dir", "a.txt"]), touched) != first
    os.chmod(ctx / "dir/x", 0o644)
    (ctx / "a.txt").write_text("A")
    assert checksum(ContextIndex(ctx, []).select(["dir", "a.txt"]), touched) != first
    meta.close()

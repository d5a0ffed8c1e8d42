"""The context walker: fsutil's walk cases plus pruning, ordering and metadata."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.build.dockerfile.context import (
    ContextEntry,
    ContextError,
    EntryKind,
    find_ignore_file,
    load_ignore_patterns,
    walk_context,
)
from lamina.build.dockerfile.dockerignore import IgnorePatternError, PatternMatcher
from lamina.errors import NotFound

DATA = Path("/work/shared/conformance/dockerignore/walk-cases.json")
WALK_CASES = json.loads(DATA.read_text("utf-8"))["cases"]


def _make_tree(root: Path, tree: list[str]) -> None:
    for line in tree:
        kind, rel = line.split(" ", 1)
        target = root / rel
        if kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rel)


def _listing(entries: Iterator[ContextEntry] | list[ContextEntry]) -> list[str]:
    return [f"{'dir' if e.is_dir else 'file'} {e.path}" for e in entries]


@pytest.mark.parametrize("case", WALK_CASES, ids=[c["name"] for c in WALK_CASES])
def test_walk_cases(case: dict[str, Any], tmp_path: Path) -> None:
    _make_tree(tmp_path, case["tree"])
    if "exclude_stacked" in case:
        # Separate filters applied one after another: exceptions never cross lists.
        entries = list(walk_context(tmp_path, case["exclude_stacked"][0]))
        for patterns in case["exclude_stacked"][1:]:
            matcher = PatternMatcher(patterns)
            entries = [e for e in entries if not matcher.matches(e.path)]
    else:
        entries = list(walk_context(tmp_path, case["exclude"]))
    if "expect_walk" in case:
        assert _listing(entries) == case["expect_walk"]
    kept = {e.path for e in entries}
    for path, can_open in case.get("expect_open", {}).items():
        assert (path in kept) is can_open
        assert (not PatternMatcher(case["exclude"]).matches(path)) is can_open


def test_order_is_depth_first_by_name(tmp_path: Path) -> None:
    _make_tree(tmp_path, ["dir foo", "file foo/a", "file foo-x", "file b", "dir A"])
    assert [e.path for e in walk_context(tmp_path)] == ["A", "b", "foo", "foo/a", "foo-x"]


def test_metadata_and_symlinks(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_bytes(b"#!/bin/sh\n")
    os.chmod(tmp_path / "run.sh", 0o755)
    (tmp_path / "sub").mkdir()
    os.symlink("../run.sh", tmp_path / "sub" / "link")
    os.symlink("/nonexistent", tmp_path / "dangling")
    entries = {e.path: e for e in walk_context(tmp_path)}
    assert set(entries) == {"dangling", "run.sh", "sub", "sub/link"}
    script = entries["run.sh"]
    assert script.kind is EntryKind.FILE and script.size == 10 and script.perm == 0o755
    assert script.link_target is None
    assert entries["sub"].kind is EntryKind.DIR and entries["sub"].size == 0
    assert entries["sub/link"].kind is EntryKind.SYMLINK
    assert entries["sub/link"].link_target == "../run.sh"
    assert entries["dangling"].link_target == "/nonexistent"


def test_symlinked_directory_is_not_followed(tmp_path: Path) -> None:
    _make_tree(tmp_path, ["file real/x"])
    os.symlink("real", tmp_path / "alias")
    assert [e.path for e in walk_context(tmp_path)] == ["alias", "real", "real/x"]


class _ScandirSpy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, deny: frozenset[str] = frozenset()) -> None:
        self.calls: list[str] = []
        self._real = os.scandir
        self._deny = deny
        monkeypatch.setattr(os, "scandir", self)

    def __call__(self, path: str) -> Any:
        self.calls.append(os.path.basename(path))
        if os.path.basename(path) in self._deny:
            raise PermissionError(13, "Permission denied", path)
        return self._real(path)


def test_excluded_directory_is_never_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_tree(tmp_path, ["file node_modules/a/b", "file src/x", "file keep"])
    spy = _ScandirSpy(monkeypatch)
    paths = [e.path for e in walk_context(tmp_path, ["node_modules", "!keep"])]
    assert paths == ["keep", "src", "src/x"]
    assert "node_modules" not in spy.calls
    assert "src" in spy.calls


def test_literal_exception_elsewhere_still_prunes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_tree(tmp_path, ["file cache/x", "file docs/README.md", "file docs/other"])
    spy = _ScandirSpy(monkeypatch)
    paths = [e.path for e in walk_context(tmp_path, ["cache", "docs", "!docs/README.md"])]
    assert paths == ["docs", "docs/README.md"]
    assert "cache" not in spy.calls and "docs" in spy.calls


def test_wildcard_exception_forces_descent_and_unreadable_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_tree(tmp_path, ["file data/secret/x.txt", "file data/y.go", "file a.go"])
    spy = _ScandirSpy(monkeypatch, deny=frozenset({"secret"}))
    paths = [e.path for e in walk_context(tmp_path, ["data", "!**/*.go"])]
    assert paths == ["a.go", "data", "data/y.go"]
    assert "secret" in spy.calls  # had to look (a wildcard exception) but denial is fine


def test_trailing_glob_exception_counts_as_literal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_tree(tmp_path, ["file vendor/keep/a", "file vendor/drop/b", "file other/c"])
    spy = _ScandirSpy(monkeypatch)
    paths = [e.path for e in walk_context(tmp_path, ["*", "!vendor/keep/**"])]
    assert paths == ["vendor", "vendor/keep", "vendor/keep/a"]
    # "vendor" must be opened (the exception lies below it); "vendor/drop" and
    # "other" cannot contain "vendor/keep/..." and are pruned.
    assert spy.calls[1:] == ["vendor", "keep"]


def test_unreadable_kept_directory_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_tree(tmp_path, ["file locked/x"])
    _ScandirSpy(monkeypatch, deny=frozenset({"locked"}))
    with pytest.raises(ContextError, match="locked"):
        list(walk_context(tmp_path))


def test_pending_parent_emitted_once_before_first_kept_child(tmp_path: Path) -> None:
    _make_tree(tmp_path, ["file a/b/c/one", "file a/b/c/two", "file a/b/skip", "file a/z"])
    paths = [e.path for e in walk_context(tmp_path, ["a", "!a/b/c/*", "a/b/c/two"])]
    assert paths == ["a", "a/b", "a/b/c", "a/b/c/one"]


def test_bad_root_and_bad_pattern(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        list(walk_context(tmp_path / "missing"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ContextError):
        list(walk_context(tmp_path / "f"))
    with pytest.raises(IgnorePatternError):
        list(walk_context(tmp_path, ["[a-"]))


def test_find_ignore_file_prefers_dockerfile_specific(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    build = ctx / "build"
    build.mkdir(parents=True)
    assert find_ignore_file(ctx) is None
    (ctx / ".dockerignore").write_text("*.log\n")
    assert find_ignore_file(ctx) == ctx / ".dockerignore"
    assert find_ignore_file(ctx, build / "app.Dockerfile") == ctx / ".dockerignore"
    (build / "app.Dockerfile.dockerignore").write_text("# only this\nsecret\n")
    assert find_ignore_file(ctx, build / "app.Dockerfile") == build / "app.Dockerfile.dockerignore"
    assert load_ignore_patterns(ctx, build / "app.Dockerfile") == ["secret"]
    assert load_ignore_patterns(ctx) == ["*.log"]

"""The build memo key (:func:`lamina.build.memo.probe`): what changes it and what does not."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lamina.build import memo
from lamina.build.dockerfile.context import find_ignore_file, find_ignore_path
from lamina.errors import BuildError


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    d = tmp_path / "ctx"
    (d / "src").mkdir(parents=True)
    (d / "Dockerfile").write_text("FROM bb:1\nCOPY src /src\n")
    (d / "src" / "a.py").write_text("print(1)\n")
    (d / ".dockerignore").write_text("*.log\n")
    (d / "debug.log").write_text("noise\n")
    return d


def key(ctx: Path, **kw: Any) -> str:
    args: dict[str, Any] = {"context": str(ctx), "dockerfile": None, "build_args": {},
                            "target": None, "labels": {}, "network": "host", "secrets": [],
                            "source_date_epoch": None, "runtime": "runc"}
    args.update(kw)
    return memo.probe(str(ctx.parent / "root"), **args).key


def test_same_request_same_key(ctx: Path) -> None:
    assert key(ctx) == key(ctx)


@pytest.mark.parametrize("change", [
    {"build_args": {"V": "1"}}, {"labels": {"a": "b"}}, {"target": "t"}, {"network": "none"},
    {"source_date_epoch": 0}, {"secrets": [("s", "/etc/hostname")]}, {"runtime": "crun"},
])
def test_every_option_is_in_the_key(ctx: Path, change: dict[str, Any]) -> None:
    assert key(ctx, **change) != key(ctx)


def test_build_arg_values_matter_not_their_order(ctx: Path) -> None:
    assert key(ctx, build_args={"A": "1", "B": "2"}) == key(ctx, build_args={"B": "2", "A": "1"})
    assert key(ctx, build_args={"A": "1"}) != key(ctx, build_args={"A": "2"})


def test_context_stamps_are_in_the_key(ctx: Path) -> None:
    before = key(ctx)
    st = os.stat(ctx / "src" / "a.py")
    os.utime(ctx / "src" / "a.py", ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # a touch
    assert key(ctx) != before
    touched = key(ctx)
    (ctx / "src" / "b.py").write_text("new\n")
    assert key(ctx) != touched


def test_excluded_files_are_not(ctx: Path) -> None:
    before = key(ctx)
    (ctx / "debug.log").write_text("more noise\n")
    (ctx / "other.log").write_text("x\n")
    assert key(ctx) == before


def test_dockerfile_and_ignore_bytes_are_in_the_key(ctx: Path, tmp_path: Path) -> None:
    before = key(ctx)
    outside = tmp_path / "Other.Dockerfile"
    outside.write_text("FROM bb:1\n")
    assert key(ctx, dockerfile=str(outside)) != before
    (ctx / ".dockerignore").write_text("*.log\n*.tmp\n")
    assert key(ctx) != before


def test_probe_keeps_what_the_builder_reuses(ctx: Path) -> None:
    (ctx / "Dockerfile").write_bytes(b"FROM bb:1\r\nCOPY src /src\r\n")
    p = memo.probe(str(ctx.parent / "root"), context=str(ctx), dockerfile=None, build_args={},
                   target=None, labels={}, network="host", secrets=[], source_date_epoch=None,
                   runtime="runc")
    assert p.dockerfile_text == "FROM bb:1\nCOPY src /src\n"  # as Path.read_text gives it
    assert p.patterns == ["*.log"]
    assert p.entries is not None
    assert [e.path for e in p.entries] == [".dockerignore", "Dockerfile", "src", "src/a.py"]


def test_fresh_files_are_racy(ctx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = str(ctx.parent / "root")
    args: dict[str, Any] = {"context": str(ctx), "dockerfile": None, "build_args": {},
                            "target": None, "labels": {}, "network": "host", "secrets": [],
                            "source_date_epoch": None, "runtime": "runc"}
    assert memo.probe(root, **args).racy  # written by the fixture just now
    monkeypatch.setattr(memo, "RACY_NS", 0)
    assert not memo.probe(root, **args).racy


def test_unreadable_dockerfile_is_a_build_error(ctx: Path) -> None:
    (ctx / "Dockerfile").unlink()
    with pytest.raises(BuildError, match="cannot read Dockerfile"):
        key(ctx)


def test_a_store_without_a_database_misses(ctx: Path) -> None:
    p = memo.probe(str(ctx.parent / "no-store"), context=str(ctx), dockerfile=None,
                   build_args={}, target=None, labels={}, network="host", secrets=[],
                   source_date_epoch=None, runtime="runc")
    assert p.usable
    assert p.lookup(["app:1"]) is None
    assert not (ctx.parent / "no-store").exists()


def test_find_ignore_path_matches_find_ignore_file(ctx: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_ignore_path(ctx) == str(ctx / ".dockerignore")
    other = tmp_path / "build" / "app.Dockerfile"
    other.parent.mkdir()
    other.write_text("FROM bb:1\n")
    assert find_ignore_path(ctx, other) == str(ctx / ".dockerignore")
    (tmp_path / "build" / "app.Dockerfile.dockerignore").write_text("x\n")
    assert find_ignore_path(ctx, other) == str(other) + ".dockerignore"
    assert find_ignore_file(ctx, other) == Path(str(other) + ".dockerignore")
    monkeypatch.chdir(tmp_path / "build")
    assert find_ignore_path(ctx, "app.Dockerfile") == "app.Dockerfile.dockerignore"
    (ctx / ".dockerignore").unlink()
    assert find_ignore_path(ctx) is None and find_ignore_file(ctx) is None

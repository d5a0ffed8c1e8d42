"""The build memo through the CLI's click-free path (``lamina build`` → ``lamina.cli._buildfast``).

A repeated build must be answered without running the builder, give the same image
and print every step as CACHED; any change the memo key or its checks cover (a touch,
an edit, a retagged base, a removed image, a prune) must fall back to the full cache
path.  The racy-file guard is turned off for most tests (their context files are
seconds old at most) and checked on its own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina import _linux
from lamina.build import builder as builder_mod
from lamina.build import memo as memo_mod
from lamina.cli import main
from lamina.cli._buildfast import parse_args
from lamina.images.store import ImageStore

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not _linux.overlay_supported(), reason="kernel has no overlayfs"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed"),
]

DOCKERFILE = """\
FROM bb:1
WORKDIR /app
COPY a.txt .
RUN cat a.txt > copy.txt
COPY b.txt .
"""


@pytest.fixture
def root(lamina_root: Path, busybox_rootfs_tar: Path) -> Iterator[Path]:
    with ImageStore(lamina_root) as s, open(busybox_rootfs_tar, "rb") as f:
        s.import_tar(f, names=["bb:1"])
    yield lamina_root
    try:
        assert _linux.mounts_under(lamina_root) == [], "a build left a mount behind"
    finally:
        _linux.unmount(lamina_root, lazy=True)


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "Dockerfile").write_text(DOCKERFILE)
    (d / "a.txt").write_text("a\n")
    (d / "b.txt").write_text("b\n")
    return d


@pytest.fixture
def no_racy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memo_mod, "RACY_NS", 0)


class Spy:
    """Counts full builder runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs = 0
        real = builder_mod.Builder.build

        def counted(this: builder_mod.Builder) -> object:
            self.runs += 1
            return real(this)

        monkeypatch.setattr(builder_mod.Builder, "build", counted)


def lamina_build(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["build", *args]) is None
    return capsys.readouterr().err


def image_id(root: Path, name: str) -> str:
    with ImageStore(root) as s:
        return str(s.resolve(name).id)


def test_repeat_is_answered_by_the_memo(root: Path, ctx: Path, no_racy: None,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    spy = Spy(monkeypatch)
    first = lamina_build(capsys, "-t", "app:1", str(ctx))
    assert "(4 steps ran, 0 cached)" in first
    assert "Successfully tagged app:1" in first  # the familiar name, as Docker prints it
    built = image_id(root, "app:1")
    second = lamina_build(capsys, "-t", "app:1", "-t", "other", str(ctx))
    assert spy.runs == 1, "the repeat ran the builder"
    assert "(0 steps ran, 4 cached)" in second
    assert second.count("CACHED") == 4
    assert "[2/5] WORKDIR /app" in second and "[4/5] RUN cat a.txt > copy.txt" in second
    assert "naming to docker.io/library/other:latest" in second
    assert "Successfully tagged other:latest" in second
    assert image_id(root, "other") == built == image_id(root, "app:1")


def test_touch_falls_back_to_the_cache(root: Path, ctx: Path, no_racy: None,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    lamina_build(capsys, "-t", "app:1", str(ctx))
    built = image_id(root, "app:1")
    spy = Spy(monkeypatch)
    os.utime(ctx / "a.txt", ns=(1, 1))  # a touch: the stamp changes, the content not
    out = lamina_build(capsys, "-t", "app:1", str(ctx))
    assert spy.runs == 1
    assert "(0 steps ran, 4 cached)" in out
    assert image_id(root, "app:1") == built
    lamina_build(capsys, "-t", "app:1", str(ctx))  # the full path saved a new memo row
    assert spy.runs == 1


def test_edit_runs_the_step(root: Path, ctx: Path, no_racy: None,
                            capsys: pytest.CaptureFixture[str]) -> None:
    lamina_build(capsys, "-t", "app:1", str(ctx))
    before = image_id(root, "app:1")
    (ctx / "b.txt").write_text("changed\n")
    out = lamina_build(capsys, "-t", "app:1", str(ctx))
    assert "(1 steps ran, 3 cached)" in out
    assert image_id(root, "app:1") != before


def test_options_and_dockerfile_are_in_the_key(root: Path, ctx: Path, no_racy: None,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    lamina_build(capsys, "-t", "app:1", str(ctx))
    spy = Spy(monkeypatch)
    out = lamina_build(capsys, "-t", "app:1", "--label", "x=1", str(ctx))
    assert spy.runs == 1 and "(0 steps ran, 4 cached)" in out
    (ctx / "Dockerfile").write_text(DOCKERFILE + "ENV X=1\n")
    lamina_build(capsys, "-t", "app:1", str(ctx))
    assert spy.runs == 2
    (ctx / ".dockerignore").write_text("nothing-here\n")
    lamina_build(capsys, "-t", "app:1", str(ctx))
    assert spy.runs == 3


def test_removed_image_retagged_base_and_prune_miss(root: Path, ctx: Path, no_racy: None,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    lamina_build(capsys, "-t", "app:1", str(ctx))
    built = image_id(root, "app:1")
    spy = Spy(monkeypatch)
    with ImageStore(root) as s:
        s.remove("app:1")
    lamina_build(capsys, "-t", "app:1", str(ctx))
    assert spy.runs == 1 and image_id(root, "app:1") == built  # rebuilt from the cache

    # bb:1 now names another image: the memo must not answer with the old base
    (ctx / "Dockerfile.base").write_text("FROM bb:1\nENV NEWBASE=1\n")
    lamina_build(capsys, "-t", "bb:1", "-f", str(ctx / "Dockerfile.base"), str(ctx))
    assert spy.runs == 2
    out = lamina_build(capsys, "-t", "app:1", str(ctx))
    assert spy.runs == 3
    assert image_id(root, "app:1") != built
    assert "(4 steps ran, 0 cached)" in out

    assert main(["builder", "prune", "-af"]) is None
    with ImageStore(root) as s:
        rows = s.meta._q("SELECT count(*) FROM build_steps WHERE slot LIKE 'memo:%'").fetchone()
    assert rows[0] == 0


def test_no_cache_never_uses_the_memo(root: Path, ctx: Path, no_racy: None,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    lamina_build(capsys, "-t", "app:1", str(ctx))
    spy = Spy(monkeypatch)
    out = lamina_build(capsys, "--no-cache", "-t", "app:1", str(ctx))
    assert spy.runs == 1 and "(4 steps ran, 0 cached)" in out


def test_racy_context_is_not_memoised(root: Path, ctx: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    spy = Spy(monkeypatch)
    lamina_build(capsys, "-t", "app:1", str(ctx))  # files changed within the last second
    lamina_build(capsys, "-t", "app:1", str(ctx))
    assert spy.runs == 2


def test_quiet_and_iidfile_on_a_hit(root: Path, ctx: Path, no_racy: None, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    lamina_build(capsys, "-t", "app:1", str(ctx))
    built = image_id(root, "app:1")
    assert main(["build", "-q", "--iidfile", str(tmp_path / "id"), "-t", "app:1",
                 str(ctx)]) is None
    captured = capsys.readouterr()
    assert captured.out.strip() == built
    assert (tmp_path / "id").read_text() == built


def test_parse_args_leaves_the_unusual_to_click() -> None:
    p = parse_args(["-t", "a:1", "--tag=b", "-tc", "--build-arg", "X=1", "-f", "F",
                    "--progress=tty", "--no-cache", "-q", "."])
    assert p is not None
    assert (p.tags, p.build_args, p.file, p.progress, p.no_cache, p.quiet, p.context) == (
        ["a:1", "b", "c"], ["X=1"], "F", "tty", True, True, ".")
    assert parse_args(["--help"]) is None
    assert parse_args(["--bogus", "."]) is None
    assert parse_args(["--progress", "fancy", "."]) is None
    assert parse_args(["a", "b"]) is None
    assert parse_args(["-f", "A", "-f", "B", "."]) is None
    assert parse_args(["-t"]) is None

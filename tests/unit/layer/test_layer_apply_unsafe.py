"""Hostile layers: every way out of the target directory is refused, and nothing escapes.

Each test builds a tar with :mod:`tarfile`, applies it to ``tmp/dest`` next to a
``tmp/outside`` directory that holds a ``victim`` file, and checks both that the
expected error (naming the entry) was raised and that ``outside`` is untouched.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest
from layer_helpers import E, build_tar

from lamina.errors import InvalidArchive, UnsafeArchive
from lamina.layer import apply_layer

DIR = tarfile.DIRTYPE
SYM = tarfile.SYMTYPE
LNK = tarfile.LNKTYPE


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "victim").write_text("untouched")
    return out


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


def _state(path: Path) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(dp, f), path): Path(dp, f).read_bytes()
        for dp, _, fs in os.walk(path)
        for f in fs
        if not os.path.islink(os.path.join(dp, f))
    }


def _refused(
    data: bytes, dest: Path, outside: Path, error: type[Exception], entry: str, **kw: object
) -> None:
    before = _state(outside)
    with pytest.raises(error) as info:
        apply_layer(io.BytesIO(data), dest, **kw)  # type: ignore[arg-type]
    assert entry in str(info.value)
    assert _state(outside) == before
    assert os.listdir(outside) == ["victim"]


@pytest.mark.parametrize("overlay", [False, True])
@pytest.mark.parametrize("name", ["../outside/victim", "a/../../outside/victim", "./../x", ".."])
def test_dotdot_names_are_unsafe(dest: Path, outside: Path, name: str, overlay: bool) -> None:
    data = build_tar([E("ok", data=b"1"), E(name, data=b"pwned")])
    _refused(data, dest, outside, UnsafeArchive, name, overlay=overlay)


def test_absolute_names_are_unsafe(dest: Path, outside: Path) -> None:
    name = str(outside / "victim")
    _refused(build_tar([E(name, data=b"pwned")]), dest, outside, UnsafeArchive, name)


def test_write_through_an_existing_symlinked_directory_is_unsafe(dest: Path, outside: Path) -> None:
    os.symlink(outside, dest / "escape")
    _refused(
        build_tar([E("escape/victim", data=b"pwned")]),
        dest,
        outside,
        UnsafeArchive,
        "escape/victim",
    )


def test_write_through_a_symlink_made_earlier_in_the_same_tar_is_unsafe(
    dest: Path, outside: Path
) -> None:
    data = build_tar([E("escape", type=SYM, link=str(outside)), E("escape/victim", data=b"pwned")])
    _refused(data, dest, outside, UnsafeArchive, "escape/victim")


def test_relative_symlink_chain_out_of_dest_is_unsafe(dest: Path, outside: Path) -> None:
    data = build_tar(
        [
            E("a/", type=DIR),
            E("a/up", type=SYM, link="../../outside"),
            E("a/up/new-file", data=b"pwned"),
        ]
    )
    _refused(data, dest, outside, UnsafeArchive, "a/up/new-file")
    assert not (outside / "new-file").exists()


def test_symlink_replacing_a_directory_cannot_be_written_through(dest: Path, outside: Path) -> None:
    data = build_tar(
        [
            E("d/", type=DIR),
            E("d/x", data=b"fine"),
            E("d", type=SYM, link=str(outside)),  # replaces the directory
            E("d/victim", data=b"pwned"),
        ]
    )
    _refused(data, dest, outside, UnsafeArchive, "d/victim")


def test_directory_metadata_is_not_applied_through_a_later_symlink(
    dest: Path, outside: Path
) -> None:
    """A dir entry's deferred chmod/utime must not follow a symlink that replaced its parent."""
    os.chmod(outside, 0o755)
    data = build_tar(
        [
            E("p/", type=DIR),
            E("p/outside/", type=DIR, mode=0o777),
            E("p", type=SYM, link=str(outside.parent)),
        ]
    )
    apply_layer(io.BytesIO(data), dest)
    assert oct(os.stat(outside).st_mode & 0o777) == oct(0o755)


@pytest.mark.parametrize("target", ["../outside/victim", "/etc/passwd"])
def test_hardlink_out_of_dest_is_unsafe(dest: Path, outside: Path, target: str) -> None:
    _refused(build_tar([E("h", type=LNK, link=target)]), dest, outside, UnsafeArchive, "'h'")


def test_hardlink_through_a_symlink_is_unsafe(dest: Path, outside: Path) -> None:
    data = build_tar([E("s", type=SYM, link=str(outside)), E("h", type=LNK, link="s/victim")])
    _refused(data, dest, outside, UnsafeArchive, "'h'")
    assert not (dest / "h").exists()


def test_hardlink_to_a_missing_target_is_unsafe(dest: Path, outside: Path) -> None:
    _refused(
        build_tar([E("h", type=LNK, link="not/there")]), dest, outside, UnsafeArchive, "not/there"
    )


def test_hardlink_to_a_directory_is_unsafe(dest: Path, outside: Path) -> None:
    data = build_tar([E("d/", type=DIR), E("h", type=LNK, link="d")])
    _refused(data, dest, outside, UnsafeArchive, "directory")


@pytest.mark.parametrize("name", [".wh...", "sub/.wh..", ".wh."])
def test_whiteouts_of_dot_names_are_unsafe(dest: Path, outside: Path, name: str) -> None:
    (dest / "sub").mkdir()
    _refused(build_tar([E(name)]), dest, outside, UnsafeArchive, name)
    assert (dest / "sub").is_dir()


def test_whiteout_through_a_symlink_is_unsafe(dest: Path, outside: Path) -> None:
    os.symlink(outside, dest / "escape")
    _refused(build_tar([E("escape/.wh.victim")]), dest, outside, UnsafeArchive, "escape/.wh.victim")


def test_opaque_marker_through_a_symlink_is_unsafe(dest: Path, outside: Path) -> None:
    os.symlink(outside, dest / "escape")
    _refused(
        build_tar([E("escape/.wh..wh..opq")]), dest, outside, UnsafeArchive, "escape/.wh..wh..opq"
    )


def test_whiteout_of_a_symlink_removes_the_link_not_its_target(dest: Path, outside: Path) -> None:
    os.symlink(outside, dest / "escape")
    apply_layer(io.BytesIO(build_tar([E(".wh.escape")])), dest)
    assert not os.path.lexists(dest / "escape")
    assert (outside / "victim").read_text() == "untouched"


def test_dangerous_symlinks_themselves_may_exist(dest: Path, outside: Path) -> None:
    """A symlink's *target* is just text; only using it as a path is dangerous."""
    apply_layer(
        io.BytesIO(
            build_tar([E("etc-link", type=SYM, link="/etc"), E("up", type=SYM, link="../..")])
        ),
        dest,
    )
    assert os.readlink(dest / "etc-link") == "/etc"
    assert os.readlink(dest / "up") == "../.."


def test_parent_that_is_a_file_is_invalid(dest: Path, outside: Path) -> None:
    _refused(
        build_tar([E("f", data=b"x"), E("f/child", data=b"y")]),
        dest,
        outside,
        InvalidArchive,
        "f/child",
    )


def test_corrupt_and_truncated_tars_are_invalid(dest: Path, outside: Path) -> None:
    data = build_tar([E("a", data=b"x" * 2000), E("b", data=b"y")])
    corrupt = bytearray(data)
    corrupt[2560 + 5] ^= 0xFF  # second header (after 512 + 2000 bytes, padded)
    _refused(bytes(corrupt), dest, outside, InvalidArchive, "checksum")
    _refused(data[:1000], dest / "2", outside, InvalidArchive, "'a'")
    _refused(gzip.compress(data)[:-30], dest / "3", outside, InvalidArchive, "gzip")
    _refused(
        b"not a tar at all, not even close" * 20, dest / "4", outside, InvalidArchive, "checksum"
    )

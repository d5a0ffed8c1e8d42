"""changes / diff_dirs on hand-made overlay dirs, and chain IDs."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.digest import Digest
from lamina.layer import Change, ChangeKind, chain_id, chain_ids, changes, diff_dirs
from lamina.layer.diff import LowerView

A, C, D = ChangeKind.ADD, ChangeKind.MODIFY, ChangeKind.DELETE


def _whiteout(path: Path) -> None:
    os.mknod(path, 0o020000, 0)


def _copy_up_dir(lower: Path, upper: Path) -> None:
    """Make ``upper`` a directory with ``lower``'s metadata, as overlayfs copy-up does."""
    upper.mkdir(parents=True, exist_ok=True)
    st = os.stat(lower)
    os.chmod(upper, st.st_mode & 0o7777)
    os.utime(upper, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture
def stack(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two lower layers and an empty upper dir."""
    bottom, top, upper = tmp_path / "l0", tmp_path / "l1", tmp_path / "upper"
    for rel, text in {
        "etc/passwd": "root",
        "etc/hosts": "localhost",
        "etc/ssl/certs/ca.pem": "ca",
        "var/lib/db/data": "rows",
        "var/lib/db/log": "log",
        "usr/bin/old": "old",
    }.items():
        (bottom / rel).parent.mkdir(parents=True, exist_ok=True)
        (bottom / rel).write_text(text)
    (top / "usr" / "bin").mkdir(parents=True)
    (top / "usr" / "bin" / "tool").write_text("tool")
    upper.mkdir()
    for d in (bottom, top):
        for dirpath, _, _ in os.walk(d):
            os.utime(dirpath, (1_000, 1_000))
    return bottom, top, upper


@pytest.mark.root
def test_docker_diff_semantics(stack: tuple[Path, Path, Path]) -> None:
    bottom, top, upper = stack
    # modify /etc/hosts: copied-up /etc keeps its metadata
    _copy_up_dir(bottom / "etc", upper / "etc")
    (upper / "etc" / "hosts").write_text("changed")
    # add a deep new file under an existing dir: /usr and /usr/bin copied up
    _copy_up_dir(top / "usr", upper / "usr")
    _copy_up_dir(top / "usr" / "bin", upper / "usr" / "bin")
    (upper / "usr" / "bin" / "new").write_text("new")
    # delete /usr/bin/old (from the bottom layer) and a whole directory
    _whiteout(upper / "usr" / "bin" / "old")
    _copy_up_dir(bottom / "etc" / "ssl", upper / "etc" / "ssl")
    _whiteout(upper / "etc" / "ssl" / "certs")
    # a whiteout that hides nothing is not a change
    _whiteout(upper / "etc" / "never-existed")
    # a brand-new directory tree
    (upper / "opt" / "app").mkdir(parents=True)
    (upper / "opt" / "app" / "run").write_text("run")

    got = changes(upper, [top, bottom])
    assert [str(c) for c in got] == [
        "C /etc",
        "C /etc/hosts",
        "C /etc/ssl",
        "D /etc/ssl/certs",
        "A /opt",
        "A /opt/app",
        "A /opt/app/run",
        "C /usr",
        "C /usr/bin",
        "A /usr/bin/new",
        "D /usr/bin/old",
    ]


@pytest.mark.root
def test_recreated_directory_reports_hidden_lower_content_as_deleted(
    stack: tuple[Path, Path, Path],
) -> None:
    bottom, top, upper = stack
    # rm -rf /var/lib/db && mkdir /var/lib/db && echo > /var/lib/db/data
    _copy_up_dir(bottom / "var", upper / "var")
    _copy_up_dir(bottom / "var" / "lib", upper / "var" / "lib")
    (upper / "var" / "lib" / "db").mkdir()
    os.setxattr(upper / "var" / "lib" / "db", "trusted.overlay.opaque", b"y")
    (upper / "var" / "lib" / "db" / "data").write_text("fresh")

    assert changes(upper, [top, bottom]) == [
        Change(C, "/var"),
        Change(C, "/var/lib"),
        Change(C, "/var/lib/db"),
        Change(C, "/var/lib/db/data"),
        Change(D, "/var/lib/db/log"),
    ]
    # the layer's own view also lists the copied-up directories
    assert [str(c) for c in diff_dirs([top, bottom], upper)] == [
        "C /var",
        "C /var/lib",
        "C /var/lib/db",
        "C /var/lib/db/data",
        "D /var/lib/db/log",
    ]


def test_unchanged_copied_up_directory_is_not_a_change(stack: tuple[Path, Path, Path]) -> None:
    bottom, top, upper = stack
    _copy_up_dir(bottom / "etc", upper / "etc")
    assert changes(upper, [top, bottom]) == []
    assert diff_dirs([top, bottom], upper) == [Change(C, "/etc")]
    os.chmod(upper / "etc", 0o700)
    assert changes(upper, [top, bottom]) == [Change(C, "/etc")]


@pytest.mark.root
def test_lower_whiteouts_and_opaque_dirs_are_honoured(stack: tuple[Path, Path, Path]) -> None:
    bottom, top, upper = stack
    (top / "etc").mkdir()
    _whiteout(top / "etc" / "passwd")  # deleted in the top lower layer
    (top / "var").mkdir()
    os.setxattr(top / "var", "trusted.overlay.opaque", b"y")  # hides the bottom's /var
    view = LowerView([top, bottom])
    assert view.lookup(b"etc/passwd") is None
    assert view.lookup(b"etc/hosts") is not None
    assert view.lookup(b"var/lib/db/data") is None
    assert view.lookup(b"usr/bin/tool") is not None and view.lookup(b"usr/bin/old") is not None
    assert view.children(b"etc") == [b"hosts", b"ssl"]

    _copy_up_dir(top / "etc", upper / "etc")
    (upper / "etc" / "passwd").write_text("back again")  # re-created: an addition
    _whiteout(upper / "etc" / "hosts")
    (upper / "var").mkdir()
    (upper / "var" / "lib").mkdir()  # not in the merged lower any more
    assert [str(c) for c in changes(upper, [top, bottom])] == [
        "C /etc",
        "D /etc/hosts",
        "A /etc/passwd",
        "C /var",
        "A /var/lib",
    ]


def test_a_merged_view_can_stand_for_the_lowers(
    tmp_path: Path, stack: tuple[Path, Path, Path]
) -> None:
    bottom, top, upper = stack
    merged = tmp_path / "merged"
    shutil.copytree(bottom, merged)
    shutil.copytree(top, merged, dirs_exist_ok=True)
    (upper / "srv").mkdir()
    (upper / "srv" / "x").write_text("x")
    assert (
        changes(upper, merged)
        == changes(upper, [top, bottom])
        == [Change(A, "/srv"), Change(A, "/srv/x")]
    )


def test_change_renders_like_docker_diff() -> None:
    assert str(Change(ChangeKind.DELETE, "/etc/x")) == "D /etc/x"


# --- chain IDs -----------------------------------------------------------------------------


def _d(text: str) -> Digest:
    return Digest.from_bytes(text.encode())


def test_chain_id_of_one_layer_is_its_diff_id() -> None:
    assert chain_ids([_d("a")]) == [_d("a")]
    assert chain_id([]) is None


def test_chain_id_follows_the_oci_formula() -> None:
    a, b, c = _d("a"), _d("b"), _d("c")
    ab = Digest("sha256", hashlib.sha256(f"sha256:{a.hex} sha256:{b.hex}".encode()).hexdigest())
    abc = Digest("sha256", hashlib.sha256(f"sha256:{ab.hex} sha256:{c.hex}".encode()).hexdigest())
    assert chain_ids([a, b, c]) == [a, ab, abc]
    assert chain_id([a, b, c]) == abc


@given(st.lists(st.text(max_size=5), min_size=1, max_size=6))
def test_chain_ids_of_a_prefix_are_a_prefix(texts: list[str]) -> None:
    ids = [_d(t) for t in texts]
    full = chain_ids(ids)
    assert len(full) == len(ids)
    for n in range(1, len(ids) + 1):
        assert chain_ids(ids[:n]) == full[:n]


def test_order_matters() -> None:
    a, b = _d("a"), _d("b")
    assert chain_id([a, b]) != chain_id([b, a])

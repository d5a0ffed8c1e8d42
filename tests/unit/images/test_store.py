"""The image store: import, save/load round trips, sharing, and bad input leaving no trace."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from lamina.digest import Digest
from lamina.errors import (
    Conflict,
    DigestMismatch,
    ImageNotFound,
    InvalidArchive,
    InvalidManifest,
    UnsafeArchive,
)
from lamina.images.archive import SaveImage, SaveLayer, write_archive
from lamina.images.store import ImageStore


def _tar(entries: list[tuple[str, bytes | None]], *, extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tar.addfile(ti, io.BytesIO(data))
        for ti in extra:
            tar.addfile(ti)
    return buf.getvalue()


def _listing(root: Path) -> list[str]:
    """Everything that makes up the store's visible state."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if rel.parts[0] in ("tmp", "ingest") or p.name.endswith((".lock", "-wal", "-shm")):
            continue
        out.append(str(rel))
    with ImageStore(root) as s:
        out += [f"image {i.id}" for i in s.meta.images()]
        out += [f"ref {r.name}" for r in s.meta.references()]
        out += [f"layer {x.chain_id}" for x in s.meta.layers()]
        out += [f"snap {x.name}" for x in s.snapshots.walk()]
    return out


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    s = ImageStore(tmp_path / "root")
    yield s
    s.close()


def test_import_keeps_the_tar_bytes_so_diff_id_is_their_digest(store: ImageStore) -> None:
    data = _tar([("etc", None), ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")])
    rec = store.import_tar(io.BytesIO(data), names=["base:1"])
    img = store.resolve("base:1")
    assert img.id == rec.id
    assert img.config.rootfs.diff_ids == (Digest.from_bytes(data),)
    assert store.content.read_bytes(img.layers[0].blob_digest) == data
    fs = store.snapshots.fs_path(str(img.layers[0].chain_id))
    assert (fs / "etc/passwd").read_bytes().startswith(b"root:")
    assert rec.size == len(b"root:x:0:0::/root:/bin/sh\n")
    assert store.resolve(img.id.hex[:8]).id == img.id


def test_import_with_changes_sets_the_config(store: ImageStore) -> None:
    from lamina.images.changes import apply_change_lines

    cfg = apply_change_lines({}, ['CMD ["sh"]', "ENV A=1 B=two", "WORKDIR /srv", "EXPOSE 80"])
    store.import_tar(io.BytesIO(_tar([("f", b"x")])), names=["c:1"], container_config=cfg,
                     message="hello")
    raw = json.loads(store.resolve("c:1").config_bytes)
    assert raw["config"]["Cmd"] == ["sh"]
    assert raw["config"]["Env"] == ["A=1", "B=two"]
    assert raw["config"]["WorkingDir"] == "/srv"
    assert raw["config"]["ExposedPorts"] == {"80/tcp": {}}
    assert raw["comment"] == "hello" and raw["history"][0]["comment"] == "hello"


def _two_layer_archive(tmp_path: Path, top_files: list[tuple[str, bytes | None]],
                       name: str = "docker.io/library/app:1") -> Path:
    base = _tar([("bin", None), ("bin/tool", b"T" * 1000), ("etc", None), ("etc/conf", b"c")])
    top = _tar(top_files)
    diff_ids = [str(Digest.from_bytes(b)) for b in (base, top)]
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                      "history": [{"created_by": "base"}, {"created_by": "top"}],
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    img = SaveImage(cfg, tuple(SaveLayer(Digest.from_bytes(b), len(b), (lambda b=b: io.BytesIO(b)))
                               for b in (base, top)), ((name, name.split("/")[-1]),))
    path = tmp_path / "app.tar"
    with open(path, "wb") as fh:
        write_archive(fh, [img])
    return path


@pytest.mark.root
def test_load_applies_whiteouts_and_save_round_trips(store: ImageStore, tmp_path: Path) -> None:
    path = _two_layer_archive(tmp_path, [("etc", None), ("etc/.wh.conf", b""), ("new", b"n")])
    assert store.load(path) == ["Loaded image: app:1"]
    img = store.resolve("app:1")
    top = store.snapshots.fs_path(str(img.layers[1].chain_id))
    st = os.lstat(top / "etc/conf")
    assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0  # overlay whiteout
    out = io.BytesIO()
    store.save(out, ["app:1"])
    saved = tmp_path / "again.tar"
    saved.write_bytes(out.getvalue())
    other = ImageStore(tmp_path / "other")
    try:
        other.load(saved)
        assert other.resolve("app:1").id == img.id
    finally:
        other.close()


@pytest.mark.root
def test_two_images_on_one_base_share_its_blob_and_snapshot(store: ImageStore, tmp_path: Path) -> None:
    a = _two_layer_archive(tmp_path, [("a", b"A")], "docker.io/library/a:1")
    store.load(a)
    b = _two_layer_archive(tmp_path, [("b", b"B")], "docker.io/library/b:1")
    store.load(b)
    ia, ib = store.resolve("a:1"), store.resolve("b:1")
    assert ia.layers[0].chain_id == ib.layers[0].chain_id
    base_snaps = [s for s in store.snapshots.walk() if s.name == str(ia.layers[0].chain_id)]
    assert len(base_snaps) == 1
    usage = store.usage()
    assert usage.images == 2 and usage.layers == 3
    assert usage.shared_savings == store.layer_size(ia.layers[0].chain_id) == 1001


def test_rmi_untags_then_deletes_and_keeps_shared_layers(store: ImageStore) -> None:
    store.import_tar(io.BytesIO(_tar([("f", b"x")])), names=["x:1"])
    store.tag("x:1", "y:2")
    with pytest.raises(Conflict, match="must be forced"):
        store.remove(store.resolve("x:1").id.hex[:12])
    res = store.remove("x:1")
    assert res.untagged == ("x:1",) and not res.deleted
    res = store.remove("y:2")
    assert res.deleted and not store.meta.images()
    assert not list(store.content.walk()) and not list(store.snapshots.walk())
    with pytest.raises(ImageNotFound):
        store.resolve("y:2")


@pytest.mark.root
@pytest.mark.parametrize("case", ["truncated", "hostile", "tampered-config", "unknown-media",
                                  "diff-id-mismatch"])
def test_bad_input_leaves_the_store_exactly_as_it_was(store: ImageStore, tmp_path: Path,
                                                      case: str) -> None:
    store.import_tar(io.BytesIO(_tar([("keep", b"k")])), names=["keep:1"])
    root = store.root
    before = _listing(root)
    good = _two_layer_archive(tmp_path, [("new", b"n" * 5000)])
    bad = tmp_path / "bad.tar"
    if case == "truncated":
        bad.write_bytes(good.read_bytes()[: 6000])
        expected: type[Exception] = InvalidArchive
    elif case == "hostile":
        sym = tarfile.TarInfo("escape")
        sym.type, sym.linkname = tarfile.SYMTYPE, "/"
        body = io.BytesIO()
        with tarfile.open(fileobj=body, mode="w") as t:
            t.addfile(sym)
            ti = tarfile.TarInfo("escape/etc/owned")
            ti.size = 1
            t.addfile(ti, io.BytesIO(b"x"))
        evil = body.getvalue()
        cfg = json.dumps({"architecture": "amd64", "os": "linux",
                          "rootfs": {"type": "layers",
                                     "diff_ids": [str(Digest.from_bytes(evil))]}}).encode()
        with open(bad, "wb") as fh:
            write_archive(fh, [SaveImage(cfg, (SaveLayer(Digest.from_bytes(evil), len(evil),
                                                         lambda: io.BytesIO(evil)),), ())])
        expected = UnsafeArchive
    elif case == "tampered-config":
        with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
            for m in src.getmembers():
                data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
                if data and data.startswith(b'{"architecture"'):
                    data = data.replace(b"amd64", b"arm64")
                dst.addfile(m, io.BytesIO(data) if data is not None else None)
        expected = DigestMismatch
    elif case == "unknown-media":
        layer = _tar([("f", b"x")])
        cfg = json.dumps({"architecture": "amd64", "os": "linux",
                          "rootfs": {"type": "layers",
                                     "diff_ids": [str(Digest.from_bytes(layer))]}}).encode()
        with open(bad, "wb") as fh:
            write_archive(fh, [SaveImage(cfg, (SaveLayer(Digest.from_bytes(layer), len(layer),
                                                         lambda: io.BytesIO(layer),
                                                         "application/x-strange"),), ())],
                          docker=False)
        expected = InvalidManifest
    else:
        layer = _tar([("f", b"x")])
        cfg = json.dumps({"architecture": "amd64", "os": "linux",
                          "rootfs": {"type": "layers",
                                     "diff_ids": [str(Digest.from_bytes(b"other"))]}}).encode()
        with open(bad, "wb") as fh:
            write_archive(fh, [SaveImage(cfg, (SaveLayer(Digest.from_bytes(layer), len(layer),
                                                         lambda: io.BytesIO(layer)),), ())])
        expected = DigestMismatch
    with pytest.raises(expected):
        store.load(bad)
    assert _listing(root) == before
    assert not (root.parent / "etc").exists()


@pytest.mark.root
def test_legacy_archive_with_a_gzip_layer_records_its_media_type(store: ImageStore,
                                                                 tmp_path: Path) -> None:
    import gzip

    layer = _tar([("f", b"x" * 100)])
    blob = gzip.compress(layer, mtime=0)
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers",
                                 "diff_ids": [str(Digest.from_bytes(layer))]}}).encode()
    cfg_name = f"{Digest.from_bytes(cfg).hex}.json"
    archive = tmp_path / "legacy.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in ((cfg_name, cfg), ("abc/layer.tar", blob),
                           ("manifest.json", json.dumps([{"Config": cfg_name, "RepoTags": ["g:1"],
                                                          "Layers": ["abc/layer.tar"]}]).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    store.load(archive)
    rec = store.resolve("g:1").layers[0]
    assert rec.blob_media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert rec.blob_digest == Digest.from_bytes(blob)

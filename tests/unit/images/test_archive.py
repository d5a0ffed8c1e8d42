from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from lamina.digest import Digest
from lamina.errors import DigestMismatch, InvalidArchive, InvalidManifest
from lamina.images.archive import SaveImage, SaveLayer, open_archive, write_archive


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _image(layers: list[bytes], names: tuple[tuple[str, str], ...]) -> SaveImage:
    diff_ids = [str(Digest.from_bytes(b)) for b in layers]
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    return SaveImage(cfg, tuple(SaveLayer(Digest.from_bytes(b), len(b),
                                          (lambda b=b: io.BytesIO(b))) for b in layers), names)


def _write(path: Path, images: list[SaveImage]) -> None:
    with open(path, "wb") as out:
        write_archive(out, images)


def test_roundtrip_two_images_share_base_blob(tmp_path: Path) -> None:
    base, top = _layer({"a": b"base"}), _layer({"b": b"top"})
    img1 = _image([base], (("docker.io/library/one:1", "one:1"),))
    img2 = _image([base, top], (("docker.io/library/two:2", "two:2"),))
    path = tmp_path / "x.tar"
    _write(path, [img1, img2])
    with tarfile.open(path) as tar:
        names = tar.getnames()
        repositories = json.loads(tar.extractfile("repositories").read())  # type: ignore[union-attr]
    assert names.count(f"blobs/sha256/{Digest.from_bytes(base).hex}") == 1
    assert repositories == {"one": {"1": Digest.from_bytes(base).hex},
                            "two": {"2": Digest.from_bytes(top).hex}}
    with open_archive(path) as arch:
        assert [i.repo_tags for i in arch.images] == [("one:1",), ("two:2",)]
        got = arch.images[1]
        assert got.config == img2.config
        assert [arch.read(layer.member) for layer in got.layers] == [base, top]
        assert got.layers[1].digest == Digest.from_bytes(top)


def test_same_input_gives_same_bytes(tmp_path: Path) -> None:
    img = _image([_layer({"f": b"x"})], (("docker.io/library/a:b", "a:b"),))
    _write(tmp_path / "1.tar", [img])
    _write(tmp_path / "2.tar", [img])
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()


def test_reads_the_oci_index_when_there_is_no_manifest_json(tmp_path: Path) -> None:
    layer = _layer({"f": b"x"})
    buf = io.BytesIO()
    write_archive(buf, [_image([layer], (("docker.io/library/o:1", "o:1"),))], docker=False)
    path = tmp_path / "oci.tar"
    path.write_bytes(buf.getvalue())
    with open_archive(path) as arch:
        assert not arch.has("manifest.json")
        assert arch.images[0].repo_tags == ("docker.io/library/o:1",)
        assert arch.images[0].manifest is not None


def test_gzip_compressed_archive_is_read(tmp_path: Path) -> None:
    layer = _layer({"f": b"x"})
    buf = io.BytesIO()
    write_archive(buf, [_image([layer], ())])
    path = tmp_path / "x.tar.gz"
    path.write_bytes(gzip.compress(buf.getvalue()))
    with open_archive(path) as arch:
        assert arch.read(arch.images[0].layers[0].member) == layer


def test_not_a_tar_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.tar"
    path.write_bytes(b"hello, this is not a tar file" * 40)
    with pytest.raises(InvalidArchive, match="junk.tar"):
        open_archive(path)


def test_archive_without_manifest_or_index(tmp_path: Path) -> None:
    path = tmp_path / "plain.tar"
    path.write_bytes(_layer({"etc/passwd": b"root"}))
    with pytest.raises(InvalidArchive, match="neither manifest.json"):
        open_archive(path)


def test_tampered_blob_is_a_digest_mismatch(tmp_path: Path) -> None:
    layer = _layer({"f": b"x"})
    buf = io.BytesIO()
    write_archive(buf, [_image([layer], ())], docker=False)
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as src, \
            tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if data is not None and data.startswith(b'{"architecture"'):
                data = data.replace(b"amd64", b"arm64")
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    path = tmp_path / "bad.tar"
    path.write_bytes(out.getvalue())
    with pytest.raises(DigestMismatch):
        open_archive(path)


def test_unknown_layer_media_type_is_rejected(tmp_path: Path) -> None:
    layer = _layer({"f": b"x"})
    img = _image([layer], ())
    img = SaveImage(img.config, (SaveLayer(img.layers[0].digest, img.layers[0].size,
                                           img.layers[0].open, "application/x-weird"),), ())
    buf = io.BytesIO()
    write_archive(buf, [img], docker=False)
    path = tmp_path / "weird.tar"
    path.write_bytes(buf.getvalue())
    with pytest.raises(InvalidManifest, match="application/x-weird"):
        open_archive(path)

"""Image sources: archive formats, compression by magic, spec parsing, clear errors."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
from imagekit import File, Layer, build_docker_archive, build_oci_archive, content

from lamina.analyze import Compression, ImageSource, detect_compression, open_source
from lamina.analyze._tarwalk import EntryKind, hash_members, iter_entries
from lamina.analyze.source import split_spec
from lamina.errors import ImageNotFound, InvalidArchive, InvalidArgument


def _steps(compression: str = "none") -> list[Layer]:
    return [Layer([File("a/one", 1000, seed=1)], "first", compression),
            Layer([File("b/two", 3000, seed=2)], "second", compression)]


def _read_layers(spec: str) -> list[list[tuple[str, EntryKind, int]]]:
    with open_source(spec) as src:
        assert isinstance(src, ImageSource)
        out = []
        for layer in src.layers():
            with src.open_layer(layer) as stream:
                out.append([(e.path, e.kind, e.size) for e in iter_entries(stream)])
        return out


EXPECTED = [[("a", EntryKind.DIR, 0), ("a/one", EntryKind.FILE, 1000)],
            [("b", EntryKind.DIR, 0), ("b/two", EntryKind.FILE, 3000)]]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_docker_archive_layers_read_in_place(tmp_path: Path, compression: str) -> None:
    built = build_docker_archive(tmp_path / "d.tar", _steps(compression))
    assert _read_layers(f"docker-archive:{built.path}") == EXPECTED
    with open_source(f"docker-archive:{built.path}") as src:
        cfg = json.loads(src.config_bytes())
        assert cfg["rootfs"]["diff_ids"] == built.diff_ids
        assert [layer.index for layer in src.layers()] == [0, 1]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_oci_archive_layers_read_in_place(tmp_path: Path, compression: str) -> None:
    built = build_oci_archive(tmp_path / "o.tar", _steps(compression), nested_index=True)
    assert _read_layers(f"oci-archive:{built.path}") == EXPECTED
    with open_source(f"oci-archive:{built.path}") as src:
        assert [layer.digest for layer in src.layers()] == built.blob_digests
        assert src.layers()[0].media_type.endswith("tar" if compression == "none" else compression)


def test_docker_archive_in_the_blobs_layout_of_newer_engines(tmp_path: Path) -> None:
    """Docker 25+ saves layers as blobs/sha256/<hex>; manifest.json points there."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tf:
        info = tarfile.TarInfo("hello")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    data = layer.getvalue()
    import hashlib

    hexd = hashlib.sha256(data).hexdigest()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [f"sha256:{hexd}"]},
                         "history": [{"created_by": "ADD hello /"}]}).encode()
    chex = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"blobs/sha256/{chex}", "RepoTags": ["x:1"],
                            "Layers": [f"blobs/sha256/{hexd}"]}]).encode()
    out = tmp_path / "new.tar"
    with tarfile.open(out, "w") as tf:
        for name, blob in [(f"blobs/sha256/{hexd}", data), (f"blobs/sha256/{chex}", config),
                           ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    with open_source(f"docker-archive:{out}") as src:
        (only,) = src.layers()
        assert only.digest == f"sha256:{hexd}"
        with src.open_layer(only) as stream:
            assert [(e.path, e.size) for e in iter_entries(stream)] == [("hello", 5)]


def test_detect_compression_by_magic() -> None:
    assert detect_compression(gzip.compress(b"x")) is Compression.GZIP
    import zstandard

    assert detect_compression(zstandard.ZstdCompressor().compress(b"x")) is Compression.ZSTD
    assert detect_compression(b"") is Compression.NONE


def test_split_spec_handles_colons_in_paths_and_references(tmp_path: Path) -> None:
    odd = tmp_path / "a:b.tar"
    odd.write_bytes(b"")
    assert split_spec(f"docker-archive:{odd}") == ("docker-archive", str(odd), "")
    assert split_spec(f"docker-archive:{odd}:repo:tag") == ("docker-archive", str(odd), "repo:tag")
    assert split_spec("registry:5000/app:1") == ("", "registry:5000/app:1", "")


def test_store_images_need_the_store_seam() -> None:
    with pytest.raises(ImageNotFound) as err:
        open_source("busybox:latest")
    assert "docker-archive:FILE" in err.value.hint
    opened: list[str] = []

    def store(name: str) -> ImageSource:
        opened.append(name)
        raise ImageNotFound(f"no {name}")

    with pytest.raises(ImageNotFound):
        open_source("busybox:latest", store=store)
    assert opened == ["busybox:latest"]


def test_several_images_need_a_reference(tmp_path: Path) -> None:
    a = build_docker_archive(tmp_path / "a.tar", _steps(), tag="one:1")
    with tarfile.open(a.path) as tf:
        files = {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}  # type: ignore[union-attr]
    entry = json.loads(files["manifest.json"])[0]
    files["manifest.json"] = json.dumps([entry, {**entry, "RepoTags": ["two:2"]}]).encode()
    out = tmp_path / "two.tar"
    with tarfile.open(out, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(InvalidArgument, match="holds 2 images") as err:
        open_source(f"docker-archive:{out}")
    assert "one:1" in err.value.hint
    with open_source(f"docker-archive:{out}:two:2") as src:
        assert src.description.endswith(":two:2")
    with pytest.raises(ImageNotFound):
        open_source(f"docker-archive:{out}:three:3")


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        open_source(f"docker-archive:{tmp_path}/missing.tar")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InvalidArchive):
        open_source(f"docker-archive:{junk}")
    built = build_docker_archive(tmp_path / "d.tar", _steps())
    gz = tmp_path / "d.tar.gz"
    gz.write_bytes(gzip.compress(built.path.read_bytes())[:-200])  # cut short
    with pytest.raises(InvalidArchive, match="gzip compression of the archive is damaged"):
        open_source(f"docker-archive:{gz}")
    with pytest.raises(InvalidArchive, match="not a docker-archive"):
        open_source(f"docker-archive:{build_oci_archive(tmp_path / 'o.tar', _steps()).path}")
    with pytest.raises(InvalidArchive, match="not an OCI layout"):
        open_source(f"oci-archive:{built.path}")


def test_truncated_layer_is_reported(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo("big")
        info.size = 100_000
        tf.addfile(info, io.BytesIO(b"x" * 100_000))
    cut = io.BytesIO(raw.getvalue()[:50_000])
    with pytest.raises(InvalidArchive):
        list(iter_entries(cut))
    cut_stream = io.BufferedReader(io.BytesIO(gzip.decompress(gzip.compress(raw.getvalue()[:50_000]))))
    with pytest.raises(InvalidArchive):
        list(iter_entries(cut_stream))


def test_hash_members_on_forward_only_stream(tmp_path: Path) -> None:
    built = build_docker_archive(tmp_path / "g.tar", _steps("gzip"))
    with open_source(f"docker-archive:{built.path}") as src:
        layer = src.layers()[1]
        with src.open_layer(layer) as stream:
            assert not stream.seekable()
            entries = list(iter_entries(stream))
        target = next(e for e in entries if e.path == "b/two")
        with src.open_layer(layer) as stream:
            got = hash_members(stream, [(target.offset, target.size)])
    import hashlib

    assert got == {target.offset: hashlib.sha256(content(3000, 2)).digest()}

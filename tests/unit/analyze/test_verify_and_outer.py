"""Layers are checked against their digests as they are read; whole-archive compression.

* A layer whose bytes do not match the ``diff_id`` in the config (or, when the source
  hands over the stored blob, its blob digest) stops the analysis with
  ``DigestMismatch`` naming the layer; ``verify_digests=False`` reads it anyway.
* ``docker save | gzip`` (or zstd, xz, bzip2) is analysed like the plain archive, through
  an unlinked temporary file that leaves nothing behind.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
import zstandard
from imagekit import Layer, MiB, build_docker_archive, build_oci_archive, waste_image_steps

from lamina.analyze import AnalyzeOptions, LayerBlob, analyze, open_source
from lamina.analyze.verify import HashingReader, open_layer_checked
from lamina.errors import DigestMismatch


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "waste.tar"
    build_docker_archive(out, waste_image_steps())
    return out


def _tamper(archive: Path, out: Path, layer_index: int, path: str) -> None:
    """Copy ``archive`` to ``out`` with one byte of ``path`` in layer ``layer_index`` flipped."""
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as outer:
        listing = outer.extractfile("manifest.json")
        assert listing is not None
        member = outer.getmember(json.loads(listing.read())[0]["Layers"][layer_index])
        with tarfile.open(fileobj=io.BytesIO(
                data[member.offset_data:member.offset_data + member.size])) as inner:
            target = inner.getmember(path)
            at = member.offset_data + target.offset_data + 100
    data[at] ^= 0xFF
    out.write_bytes(bytes(data))


def test_tampered_layer_is_named(archive: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    _tamper(archive, bad, 2, "app/config.bin")
    with open_source(f"docker-archive:{bad}") as src, \
            pytest.raises(DigestMismatch) as err:
        analyze(src)
    msg = str(err.value)
    assert "layer 2" in msg and "diff_id" in msg
    with open_source(f"docker-archive:{archive}") as src:
        want = analyze(src)
    assert want.layers[2].diff_id.removeprefix("sha256:") in msg
    # trusting the input: the same figures as the intact image (same sizes, other bytes)
    with open_source(f"docker-archive:{bad}") as src:
        got = analyze(src, options=AnalyzeOptions(verify_digests=False))
    assert got.wasted_bytes == want.wasted_bytes == 7 * MiB


def test_intact_compressed_oci_layers_verify(tmp_path: Path) -> None:
    steps = waste_image_steps()
    zsteps = [Layer(s.entries, s.created_by, "zstd") if isinstance(s, Layer) else s
              for s in steps]
    built = build_oci_archive(tmp_path / "z.tar", zsteps)
    with open_source(f"oci-archive:{built.path}") as src:
        assert analyze(src).wasted_bytes == 7 * MiB


class _BlobSource:
    """A source handing over stored (compressed) blobs as they are, like a store does."""

    description = "blobs"

    def __init__(self, config: bytes, blobs: list[tuple[bytes, str]]) -> None:
        self._config = config
        self._blobs = blobs

    def config_bytes(self) -> bytes:
        return self._config

    def layers(self) -> tuple[LayerBlob, ...]:
        return tuple(LayerBlob(i, str(i), digest, len(data), "application/vnd.oci.image.layer.v1.tar")
                     for i, (data, digest) in enumerate(self._blobs))

    @contextlib.contextmanager
    def open_layer(self, layer: LayerBlob) -> Iterator[BinaryIO]:
        yield io.BytesIO(self._blobs[layer.index][0])

    def close(self) -> None:
        pass

    def __enter__(self) -> _BlobSource:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _one_layer_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("srv/data")
        ti.size = 5000
        tf.addfile(ti, io.BytesIO(os.urandom(5000)))
    return buf.getvalue()


def _config(diff_id: str) -> bytes:
    return (b'{"rootfs":{"type":"layers","diff_ids":["' + diff_id.encode() + b'"]},'
            b'"history":[{"created_by":"COPY data"}]}')


@pytest.mark.parametrize("compress", [gzip.compress, zstandard.ZstdCompressor().compress])
def test_stored_blob_is_decompressed_and_both_digests_checked(compress: object) -> None:
    assert callable(compress)
    plain = _one_layer_tar()
    blob: bytes = compress(plain)
    diff_id = "sha256:" + hashlib.sha256(plain).hexdigest()
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    # the media type says "tar" but the bytes are compressed: sniffed and inflated
    got = analyze(_BlobSource(_config(diff_id), [(blob, digest)]))
    assert got.layers[0].size == 5000
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch, match="layer 0: content does not match its blob digest"):
        analyze(_BlobSource(_config(diff_id), [(blob, wrong)]))
    with pytest.raises(DigestMismatch, match="layer 0: content does not match its diff_id"):
        analyze(_BlobSource(_config(wrong), [(blob, digest)]))
    # not verifying: neither is checked
    assert analyze(_BlobSource(_config(wrong), [(blob, wrong)]),
                   options=AnalyzeOptions(verify_digests=False)).layers[0].size == 5000


def test_checked_stream_without_digests_stays_seekable() -> None:
    src = _BlobSource(_config(""), [(_one_layer_tar(), "")])
    with open_layer_checked(src, src.layers()[0], "x", "", verify=True) as layer:
        assert layer.stream.seekable()  # nothing to verify: contents can be skipped
        layer.finish()


def test_hashing_reader_counts_prefix_and_drains() -> None:
    r = HashingReader(io.BytesIO(b"cdef"), b"ab")
    assert r.read(3) == b"ab"  # the prefix first (already hashed), then the stream
    assert r.read(1) == b"c"
    r.drain()
    assert r.count == 6 and r.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


@pytest.mark.parametrize(("kind", "compress"), [
    ("gzip", gzip.compress),
    ("zstd", zstandard.ZstdCompressor().compress),
    ("xz", lzma.compress),
    ("bzip2", bz2.compress),
])
def test_compressed_outer_archive_gives_the_same_report(
        archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str,
        compress: object) -> None:
    assert callable(compress)
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    packed = tmp_path / f"waste.tar.{kind}"
    packed.write_bytes(compress(archive.read_bytes()))
    with open_source(f"docker-archive:{archive}") as src:
        want = analyze(src)
    with open_source(f"docker-archive:{packed}") as src:
        got = analyze(src)
        assert list(spool.iterdir()) == []  # unlinked at once, even while open
    assert got.wasted == want.wasted and got.layers == want.layers
    assert got.wasted_bytes == 7 * MiB


def test_cli_verify_flag(archive: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lamina.cli.cmd_analyze import command

    bad = tmp_path / "bad.tar"
    _tamper(archive, bad, 3, "app/script.bin")
    res = CliRunner().invoke(command, [f"docker-archive:{bad}", "--format", "json"], obj={})
    assert isinstance(res.exception, DigestMismatch) and "layer 3" in str(res.exception)
    res = CliRunner().invoke(command, [f"docker-archive:{bad}", "--format", "json",
                                       "--no-verify"], obj={})
    assert res.exit_code == 0 and json.loads(res.output)["summary"]["wasted_bytes"] == 7 * MiB

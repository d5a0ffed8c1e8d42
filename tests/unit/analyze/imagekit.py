"""Build small (or big) test images as real archives, layer by layer, with tarfile.

Used by the analyze unit tests, tests/compat/test_analyze_compat.py and
bench/bench_analyze.py (which put this folder on ``sys.path``).  The archives are what
``docker load`` accepts: a ``docker save``-style tar (``manifest.json``, config, one tar
per layer) or an OCI image layout tar.  Each layer tar gets its parent directories, and
whiteouts are written the OCI way (``.wh.NAME`` files, ``.wh..wh..opq`` markers).

File contents are pseudo-random bytes derived from ``(seed, size)``, so two ``File``
specs with the same seed and size hold identical content (that is how a test says "the
same file, chmod-ed"), and different seeds give different content.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20
_BLOCK = 1 << 20


@dataclass(frozen=True)
class File:
    path: str
    size: int
    seed: int = 0
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Dir:
    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Symlink:
    path: str
    target: str


@dataclass(frozen=True)
class Hardlink:
    path: str
    target: str


@dataclass(frozen=True)
class Whiteout:
    """Delete ``path`` (and all beneath it) from the layers below."""

    path: str


@dataclass(frozen=True)
class Opaque:
    """Hide everything the layers below put in directory ``path``."""

    path: str


Entry = File | Dir | Symlink | Hardlink | Whiteout | Opaque


@dataclass(frozen=True)
class Layer:
    entries: Sequence[Entry]
    created_by: str = ""
    compression: str = "none"  # none | gzip | zstd


@dataclass(frozen=True)
class Step:
    """A history step that makes no layer (ENV, CMD, ...)."""

    created_by: str


@dataclass(frozen=True)
class Built:
    path: Path
    diff_ids: list[str]
    blob_digests: list[str]
    config_digest: str
    extra: dict[str, str] = field(default_factory=dict)


class _Content(io.RawIOBase):
    """``size`` deterministic pseudo-random bytes for ``seed``, generated on the fly."""

    def __init__(self, size: int, seed: int) -> None:
        super().__init__()
        self._left = size
        rng = random.Random(f"{seed}:{size}")
        self._block = rng.randbytes(min(size, _BLOCK)) if size else b""
        self._n = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        chunk = self._block
        if self._n:  # vary each block a little so blocks are not all identical
            chunk = self._n.to_bytes(8, "little") + chunk[8:]
        want = min(len(buf), self._left, len(chunk))
        buf[:want] = chunk[:want]
        self._left -= want
        self._n += 1
        return want


def content(size: int, seed: int = 0) -> bytes:
    """The exact bytes a ``File(size=size, seed=seed)`` holds."""
    reader = io.BufferedReader(_Content(size, seed), buffer_size=_BLOCK)
    return reader.read(size) if size else b""


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def write_layer_tar(entries: Sequence[Entry], out: Path) -> None:
    """Write one uncompressed layer tar (GNU format, fixed mtimes)."""
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tf:
        have: set[str] = set()

        def dir_entry(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
            info = tarfile.TarInfo(path + "/")
            info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, mode, uid, gid, 1
            tf.addfile(info)
            have.add(path)

        for e in entries:
            rel = e.path.strip("/")
            for parent in _parents(rel):
                if parent not in have:
                    dir_entry(parent)
            if isinstance(e, Dir):
                dir_entry(rel, e.mode, e.uid, e.gid)
                continue
            if isinstance(e, Whiteout | Opaque):
                name = (f"{rel}/.wh..wh..opq" if isinstance(e, Opaque)
                        else "/".join([*rel.split("/")[:-1], ".wh." + rel.split("/")[-1]]))
                if isinstance(e, Opaque) and rel not in have:
                    dir_entry(rel)
                info = tarfile.TarInfo(name)
                info.mtime = 1
                tf.addfile(info, io.BytesIO(b""))
                continue
            info = tarfile.TarInfo(rel)
            info.mtime = 1
            if isinstance(e, File):
                info.size, info.mode, info.uid, info.gid = e.size, e.mode, e.uid, e.gid
                tf.addfile(info, io.BufferedReader(_Content(e.size, e.seed), buffer_size=_BLOCK))
            elif isinstance(e, Symlink):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, e.target, 0o777
                tf.addfile(info)
            else:
                info.type, info.linkname = tarfile.LNKTYPE, e.target.strip("/")
                tf.addfile(info)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_BLOCK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _compress(src: Path, how: str) -> Path:
    if how == "none":
        return src
    dst = src.with_suffix(src.suffix + "." + how)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        if how == "gzip":
            with gzip.GzipFile(fileobj=fout, mode="wb", compresslevel=1, mtime=0) as gz:
                while chunk := fin.read(_BLOCK):
                    gz.write(chunk)
        elif how == "zstd":
            import zstandard

            zstandard.ZstdCompressor(level=1).copy_stream(fin, fout)
        else:
            raise ValueError(how)
    return dst


def _config(history: list[dict[str, object]], diff_ids: list[str]) -> bytes:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    return json.dumps(doc, sort_keys=True).encode()


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 1, 0o644
    tf.addfile(info, io.BytesIO(data))


def _add_file(tf: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = path.stat().st_size, 1, 0o644
    with open(path, "rb") as f:
        tf.addfile(info, f)


def _prepare(steps: Sequence[Layer | Step], work: Path
             ) -> tuple[list[tuple[Path, str, str]], bytes]:
    blobs: list[tuple[Path, str, str]] = []
    history: list[dict[str, object]] = []
    diff_ids: list[str] = []
    for i, step in enumerate(steps):
        entry: dict[str, object] = {"created": "2024-01-01T00:00:00Z", "created_by": step.created_by}
        if isinstance(step, Step):
            entry["empty_layer"] = True
        else:
            raw = work / f"layer{i}.tar"
            write_layer_tar(step.entries, raw)
            diff_id = _sha256_file(raw)
            stored = _compress(raw, step.compression)
            if stored != raw:
                raw.unlink()
            diff_ids.append(diff_id)
            blobs.append((stored, diff_id, _sha256_file(stored)))
        history.append(entry)
    return blobs, _config(history, diff_ids)


def build_docker_archive(out: Path, steps: Sequence[Layer | Step], tag: str = "lamina-analyze-test:latest"
                         ) -> Built:
    """Write a ``docker save``-style archive (legacy layout: ``<id>/layer.tar``)."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        blobs, config = _prepare(steps, Path(tmp))
        config_hex = hashlib.sha256(config).hexdigest()
        layer_names = [f"{digest.split(':')[1]}/layer.tar" for _, _, digest in blobs]
        manifest = [{"Config": f"{config_hex}.json", "RepoTags": [tag], "Layers": layer_names}]
        with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tf:
            _add_bytes(tf, f"{config_hex}.json", config)
            for (path, _, _), name in zip(blobs, layer_names, strict=True):
                _add_file(tf, name, path)
                os.unlink(path)
            _add_bytes(tf, "manifest.json", json.dumps(manifest).encode())
    return Built(out, [d for _, d, _ in blobs], [b for _, _, b in blobs], "sha256:" + config_hex)


_OCI_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def build_oci_archive(out: Path, steps: Sequence[Layer | Step], ref: str = "latest",
                      nested_index: bool = False) -> Built:
    """Write an OCI image layout tar; *nested_index* puts the manifest behind an index."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        blobs, config = _prepare(steps, Path(tmp))
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        comps = [s.compression for s in steps if isinstance(s, Layer)]
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": _OCI_LAYER[c], "digest": digest, "size": p.stat().st_size}
                       for (p, _, digest), c in zip(blobs, comps, strict=True)],
        }).encode()
        manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        top = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": manifest_digest, "size": len(manifest),
               "platform": {"os": "linux", "architecture": "amd64"},
               "annotations": {"org.opencontainers.image.ref.name": ref}}
        extra_blobs: list[bytes] = []
        if nested_index:
            inner = json.dumps({"schemaVersion": 2,
                                "mediaType": "application/vnd.oci.image.index.v1+json",
                                "manifests": [top]}).encode()
            extra_blobs.append(inner)
            top = {"mediaType": "application/vnd.oci.image.index.v1+json",
                   "digest": "sha256:" + hashlib.sha256(inner).hexdigest(), "size": len(inner),
                   "annotations": {"org.opencontainers.image.ref.name": ref}}
        index = json.dumps({"schemaVersion": 2, "manifests": [top]}).encode()
        with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tf:
            _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            _add_bytes(tf, "index.json", index)
            for data in [config, manifest, *extra_blobs]:
                _add_bytes(tf, "blobs/sha256/" + hashlib.sha256(data).hexdigest(), data)
            for path, _, digest in blobs:
                _add_file(tf, "blobs/sha256/" + digest.split(":")[1], path)
                os.unlink(path)
    return Built(out, [d for _, d, _ in blobs], [b for _, _, b in blobs], config_digest,
                 {"manifest": manifest_digest})


def waste_image_steps() -> list[Layer | Step]:
    """The acceptance image: 5 MiB written then deleted, 1 MiB overwritten, 1 MiB chmod-ed."""
    return [
        Layer([Dir("etc"), File("etc/os-release", 200, seed=1), File("bin/tool", 300_000, seed=2)],
              "/bin/sh -c #(nop) ADD file:base in / "),
        Step("/bin/sh -c #(nop)  ENV APP=/app"),
        Layer([File("app/data.bin", 5 * MiB, seed=3), File("app/config.bin", MiB, seed=4),
               File("app/script.bin", MiB, seed=5, mode=0o644)],
              "COPY app /app # buildkit"),
        Layer([File("app/config.bin", MiB, seed=40)],
              "RUN /bin/sh -c generate-config > /app/config.bin # buildkit"),
        Layer([Whiteout("app/data.bin"), File("app/script.bin", MiB, seed=5, mode=0o755)],
              "RUN /bin/sh -c rm /app/data.bin && chmod +x /app/script.bin # buildkit"),
        Step('/bin/sh -c #(nop)  CMD ["/app/script.bin"]'),
    ]

"""Where an analysed image comes from: an :class:`ImageSource`.

The analyser needs exactly two things from an image:

1. its **config JSON** -- for ``history`` (which instruction made which layer) and
   ``rootfs.diff_ids`` (the layer chain, used to tell base layers from yours), and
2. its **layers, in order**, each openable as an *uncompressed* tar stream.

:class:`ImageSource` is that narrow interface.  Two backends read archives in place,
without extracting anything to disk:

``docker-archive:FILE``
    What ``docker save`` writes: ``manifest.json`` names the config and the layer tars
    (``<id>/layer.tar`` in old engines, ``blobs/sha256/<hex>`` since Docker 25).
    ``docker-archive:FILE:REPO:TAG`` picks one image when the archive holds several.
``oci-archive:FILE``
    A tar of an OCI image layout: ``index.json`` → manifest (descending through nested
    indexes, choosing the host's platform) → config and layer blobs.

Both open the outer archive once with :mod:`tarfile` to learn where each member's
bytes lie, then read a layer by ``os.pread`` on those byte ranges: random access,
thread-safe, nothing copied.  An archive that is itself compressed (``docker save |
gzip``; gzip, zstd, xz or bzip2, told by its first bytes) is first inflated once into
an unlinked temporary file, which is then read the same way.  A layer's compression is detected from its first bytes
(gzip ``1f 8b``, zstd ``28 b5 2f fd``, otherwise a plain tar), never trusted from a
media type.

A third backend, images in lamina's own store (a bare ``IMAGE`` name), plugs in
through the ``store`` argument of :func:`open_source` once the image store exists.

>>> with open_source("docker-archive:/tmp/app.tar") as src:     # doctest: +SKIP
...     for layer in src.layers():
...         with src.open_layer(layer) as tar_stream:
...             first_block = tar_stream.read(512)
"""

from __future__ import annotations

import enum
import io
import json
import os
import platform
import tarfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast, runtime_checkable

from lamina.errors import ImageNotFound, InvalidArchive, InvalidArgument, InvalidManifest

__all__ = [
    "Compression",
    "DockerArchiveSource",
    "ImageSource",
    "LayerBlob",
    "OciArchiveSource",
    "StoreOpener",
    "detect_compression",
    "open_source",
    "split_spec",
]

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
_READ_BLOCK = 1 << 20

_INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}


class Compression(enum.Enum):
    """How a layer blob is compressed, as its magic bytes say."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


def detect_compression(head: bytes) -> Compression:
    """Tell the compression of a blob from (at least) its first four bytes.

    >>> detect_compression(b"\\x1f\\x8b\\x08\\x00")
    <Compression.GZIP: 'gzip'>
    >>> detect_compression(b"\\x28\\xb5\\x2f\\xfd")
    <Compression.ZSTD: 'zstd'>
    >>> detect_compression(b"etc/")
    <Compression.NONE: 'none'>
    """
    if head.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.NONE


@dataclass(frozen=True)
class LayerBlob:
    """One layer of an image, as its source stores it.

    ``index`` is the position in the layer chain (0 = bottom).  ``digest`` is the blob
    digest if the source knows one (``sha256:...``), else ``""``.  ``stored_size`` is the
    number of bytes the blob occupies in the source (compressed, if it is).
    ``location`` is source-specific (the member name inside an archive).
    """

    index: int
    location: str
    digest: str
    stored_size: int
    media_type: str = ""


@runtime_checkable
class ImageSource(Protocol):
    """An image to analyse: its config JSON and its ordered layers.

    Use it as a context manager (``with open_source(spec) as src``); ``close`` releases
    the open archive.  ``open_layer`` is a context manager too, yielding a readable
    binary stream of the layer's *uncompressed* tar.  When that stream reports
    ``seekable()``, seeking on it is cheap (the analyser then skips file contents
    without reading them); otherwise it is read strictly forwards.
    """

    @property
    def description(self) -> str:
        """How the user named the image (``docker-archive:/tmp/a.tar``)."""
        ...

    def config_bytes(self) -> bytes:
        """The raw image config JSON (holding ``history`` and ``rootfs.diff_ids``)."""
        ...

    def layers(self) -> tuple[LayerBlob, ...]:
        """The layers, bottom first."""
        ...

    def open_layer(self, layer: LayerBlob) -> AbstractContextManager[BinaryIO]:
        """A context manager yielding the layer's uncompressed tar as a ``BinaryIO``."""
        ...

    def close(self) -> None:
        """Release the archive; the source is unusable afterwards."""
        ...

    def __enter__(self) -> ImageSource: ...

    def __exit__(self, *exc: object) -> None: ...


StoreOpener = Callable[[str], ImageSource]
"""Opens a bare image name from lamina's local store (the seam for the image store)."""


# --- byte ranges of the outer archive -------------------------------------------------


class _FileSlice(io.RawIOBase):
    """A read-only, seekable window ``[start, start+size)`` of an open file descriptor.

    Reads use ``os.pread``, so several slices of one archive can be read concurrently
    (the threaded gzip reader reads in a worker thread) without sharing a file position.
    """

    def __init__(self, fd: int, start: int, size: int, name: str) -> None:
        super().__init__()
        self._fd = fd
        self._start = start
        self._size = size
        self._pos = 0
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._start + self._pos)
        if not data:
            raise InvalidArchive(f"{self.name}: archive is truncated")
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n


@dataclass(frozen=True)
class _Member:
    """Where one regular file's bytes lie inside the outer archive."""

    offset: int
    size: int


class _Archive:
    """An uncompressed outer tar, indexed once: member name → byte range."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise InvalidArgument(f"archive {str(path)!r} does not exist") from exc
        except OSError as exc:
            raise InvalidArgument(f"cannot open archive {str(path)!r}: {exc.strerror}") from exc
        self.fd = fd
        self.spooled = ""
        try:
            head = os.pread(fd, 6, 0)
            kind = _outer_compression(head)
            if kind:
                self.fd = _spool_decompressed(fd, kind, path)
                self.spooled = kind
                os.close(fd)
                os.lseek(self.fd, 0, os.SEEK_SET)
            self.members = self._index(self.fd, path)
        except BaseException:
            os.close(self.fd)
            if self.fd != fd:
                os.close(fd)
            raise

    @staticmethod
    def _index(fd: int, path: Path) -> dict[str, _Member]:
        members: dict[str, _Member] = {}
        try:
            with io.FileIO(fd, "rb", closefd=False) as raw, tarfile.open(
                    fileobj=raw, mode="r:") as tf:  # FileIO starts where fd is: at 0
                for info in tf:
                    if info.isreg():
                        members[_clean_member(info.name)] = _Member(info.offset_data, info.size)
        except tarfile.TarError as exc:
            raise InvalidArchive(f"{path}: not a readable tar archive ({exc})") from exc
        return members

    def member(self, name: str) -> _Member:
        found = self.members.get(_clean_member(name))
        if found is None:
            raise InvalidArchive(f"{self.path}: member {name!r} is missing from the archive")
        return found

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        m = self.member(name)
        if m.size > limit:
            raise InvalidArchive(f"{self.path}: member {name!r} is implausibly large")
        data = os.pread(self.fd, m.size, m.offset)
        if len(data) != m.size:
            raise InvalidArchive(f"{self.path}: member {name!r} is truncated")
        return data

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidManifest(f"{self.path}: {name} is not valid JSON ({exc})") from exc

    def slice(self, name: str) -> _FileSlice:
        m = self.member(name)
        return _FileSlice(self.fd, m.offset, m.size, f"{self.path}:{name}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


_OUTER_MAGIC = (
    (_GZIP_MAGIC, "gzip"),
    (_ZSTD_MAGIC, "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)


def _outer_compression(head: bytes) -> str:
    """How a whole archive is compressed (``docker save | gzip``), ``""`` when it is not.

    >>> _outer_compression(b"\\x1f\\x8b\\x08\\x00\\x00\\x00"), _outer_compression(b"manife")
    ('gzip', '')
    """
    return next((kind for magic, kind in _OUTER_MAGIC if head.startswith(magic)), "")


def _spool_decompressed(fd: int, kind: str, path: Path) -> int:
    """Decompress the archive open at ``fd`` into an anonymous temporary file.

    The analyser reads members by byte range, which a compressed stream cannot give, so a
    compressed archive is inflated once, sequentially, into a file in the temporary
    directory (``$TMPDIR``) that is unlinked at once: it disappears with its descriptor,
    whatever happens.  Returns that descriptor, positioned anywhere (reads use ``pread``).
    """
    import shutil
    import tempfile

    try:
        with tempfile.TemporaryFile(prefix="lamina-analyze-") as out, \
                _decompressor(io.FileIO(fd, "rb", closefd=False), kind) as stream:
            shutil.copyfileobj(stream, out, _READ_BLOCK)
            out.flush()
            return os.dup(out.fileno())
    except OSError as exc:
        if exc.errno is not None:  # the disk, not the data (ENOSPC in $TMPDIR…)
            raise InvalidArgument(f"cannot decompress {path}: {exc.strerror}") from exc
        raise _damaged(path, kind, exc) from exc
    except Exception as exc:  # EOFError, lzma/zstd/isal errors: the data is damaged
        raise _damaged(path, kind, exc) from exc


def _damaged(path: Path, kind: str, exc: BaseException) -> InvalidArchive:
    return InvalidArchive(f"{path}: the {kind} compression of the archive is damaged ({exc})",
                          hint="check the file (e.g. `gzip -t`), or save the image again")


def _decompressor(src: io.FileIO, kind: str) -> Any:
    """A readable, closable decompressing stream over ``src``."""
    if kind == "gzip":
        from isal import igzip

        return igzip.IGzipFile(fileobj=src, mode="rb")  # type: ignore[no-untyped-call]
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(
            src, read_size=_READ_BLOCK, read_across_frames=True)
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(src)
    import bz2

    return bz2.BZ2File(src)


def _clean_member(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


@contextmanager
def _decompressed(raw: _FileSlice) -> Iterator[BinaryIO]:
    """Yield *raw* decompressed according to its magic bytes.

    A plain tar comes back as a buffered, seekable reader over the archive range.  gzip
    is decompressed by ISA-L in a worker thread (so inflating overlaps tar parsing);
    zstd by the ``zstandard`` stream reader.  Both of those are forward-only streams.
    """
    head = os.pread(raw._fd, 4, raw._start) if raw._size >= 4 else b""
    kind = detect_compression(head)
    stream: BinaryIO
    if kind is Compression.NONE:
        stream = io.BufferedReader(raw, buffer_size=16 << 10)
    elif kind is Compression.GZIP:
        from isal import igzip_threaded

        stream = cast(
            BinaryIO,
            igzip_threaded.open(raw, "rb", threads=1, block_size=_READ_BLOCK),  # type: ignore[no-untyped-call]
        )
    else:
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(BinaryIO, raw), read_size=_READ_BLOCK, read_across_frames=True
        )
        stream = io.BufferedReader(_NonSeekable(reader), buffer_size=_READ_BLOCK)
    try:
        yield stream
    finally:
        stream.close()


class _NonSeekable(io.RawIOBase):
    """Adapts a decompressor's reader to a plain forward-only raw stream."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data: bytes = self._inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


# --- docker-archive -------------------------------------------------------------------


class _ArchiveSource:
    """Shared plumbing of the two archive backends."""

    _archive: _Archive
    _description: str
    _config: bytes
    _layers: tuple[LayerBlob, ...]

    @property
    def description(self) -> str:
        return self._description

    def config_bytes(self) -> bytes:
        return self._config

    def layers(self) -> tuple[LayerBlob, ...]:
        return self._layers

    @contextmanager
    def open_layer(self, layer: LayerBlob) -> Iterator[BinaryIO]:
        with _decompressed(self._archive.slice(layer.location)) as stream:
            yield stream

    def close(self) -> None:
        self._archive.close()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DockerArchiveSource(_ArchiveSource):
    """An image inside a ``docker save`` archive, read in place.

    ``manifest.json`` is a list of ``{"Config": ..., "RepoTags": [...], "Layers": [...]}``;
    *reference* (``repo:tag``) selects one entry when there are several.
    """

    def __init__(self, path: str | os.PathLike[str], reference: str = "") -> None:
        self._archive = _Archive(Path(path))
        try:
            self._load(reference)
        except BaseException:
            self._archive.close()
            raise
        self._description = f"docker-archive:{path}" + (f":{reference}" if reference else "")

    def _load(self, reference: str) -> None:
        a = self._archive
        if "manifest.json" not in a.members:
            raise InvalidArchive(
                f"{a.path}: no manifest.json, so not a docker-archive",
                hint="for an OCI layout tar use oci-archive:FILE",
            )
        manifest = a.read_json("manifest.json")
        if not isinstance(manifest, list) or not manifest:
            raise InvalidManifest(f"{a.path}: manifest.json lists no images")
        entry = _pick_docker_entry(manifest, reference, a.path)
        config_name = entry.get("Config")
        layer_names = entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layer_names, list):
            raise InvalidManifest(f"{a.path}: manifest.json entry lacks Config or Layers")
        self._config = a.read(config_name)
        sources = entry.get("LayerSources") or {}
        layers = []
        for i, name in enumerate(layer_names):
            if not isinstance(name, str):
                raise InvalidManifest(f"{a.path}: manifest.json has a non-string layer name")
            m = a.member(name)
            digest = ""
            if name.startswith("blobs/"):
                parts = name.split("/")
                if len(parts) == 3:
                    digest = f"{parts[1]}:{parts[2]}"
            media = ""
            if digest and isinstance(sources, dict) and isinstance(sources.get(digest), dict):
                media = str(sources[digest].get("mediaType", ""))
            layers.append(LayerBlob(i, name, digest, m.size, media))
        self._layers = tuple(layers)


def _pick_docker_entry(manifest: list[Any], reference: str, path: Path) -> dict[str, Any]:
    entries = [e for e in manifest if isinstance(e, dict)]
    if not reference:
        if len(entries) > 1:
            tags = sorted(t for e in entries for t in (e.get("RepoTags") or []))
            raise InvalidArgument(
                f"{path} holds {len(entries)} images; say which one",
                hint="use docker-archive:FILE:REPO:TAG, one of: " + ", ".join(tags[:10]),
            )
        return entries[0]
    wanted = {reference, f"{reference}:latest"}
    for e in entries:
        if wanted & set(e.get("RepoTags") or []):
            return e
    raise ImageNotFound(f"{path} holds no image tagged {reference!r}")


# --- oci-archive ----------------------------------------------------------------------


class OciArchiveSource(_ArchiveSource):
    """An image inside a tar of an OCI image layout, read in place.

    ``index.json`` may list several manifests or nested indexes: the one for the host's
    platform (``linux/amd64`` on x86-64) is chosen, attestation manifests are ignored.
    *reference* matches the ``org.opencontainers.image.ref.name`` annotation.
    """

    def __init__(self, path: str | os.PathLike[str], reference: str = "") -> None:
        self._archive = _Archive(Path(path))
        try:
            self._load(reference)
        except BaseException:
            self._archive.close()
            raise
        self._description = f"oci-archive:{path}" + (f":{reference}" if reference else "")

    def _blob_name(self, desc: Mapping[str, Any]) -> str:
        digest = desc.get("digest")
        if not isinstance(digest, str) or ":" not in digest:
            raise InvalidManifest(f"{self._archive.path}: descriptor without a valid digest")
        algo, _, hexpart = digest.partition(":")
        return f"blobs/{algo}/{hexpart}"

    def _load(self, reference: str) -> None:
        a = self._archive
        if "index.json" not in a.members:
            raise InvalidArchive(
                f"{a.path}: no index.json, so not an OCI layout archive",
                hint="for a `docker save` tar use docker-archive:FILE",
            )
        index = a.read_json("index.json")
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(manifests, list) or not manifests:
            raise InvalidManifest(f"{a.path}: index.json lists no manifests")
        if reference:
            manifests = [
                d for d in manifests
                if isinstance(d, dict)
                and (d.get("annotations") or {}).get("org.opencontainers.image.ref.name")
                in (reference, reference.rpartition(":")[2])
            ]
            if not manifests:
                raise ImageNotFound(f"{a.path} holds no image named {reference!r}")
        manifest = self._resolve(manifests, depth=0)
        config_desc = manifest.get("config")
        layer_descs = manifest.get("layers")
        if not isinstance(config_desc, dict) or not isinstance(layer_descs, list):
            raise InvalidManifest(f"{a.path}: image manifest lacks config or layers")
        self._config = a.read(self._blob_name(config_desc))
        layers = []
        for i, d in enumerate(layer_descs):
            if not isinstance(d, dict):
                raise InvalidManifest(f"{a.path}: malformed layer descriptor")
            name = self._blob_name(d)
            layers.append(
                LayerBlob(i, name, str(d["digest"]), a.member(name).size, str(d.get("mediaType", "")))
            )
        self._layers = tuple(layers)

    def _resolve(self, descs: list[Any], depth: int) -> dict[str, Any]:
        if depth > 4:
            raise InvalidManifest(f"{self._archive.path}: indexes nest too deeply")
        usable = [d for d in descs if isinstance(d, dict) and not _is_attestation(d)]
        if not usable:
            raise InvalidManifest(f"{self._archive.path}: index lists no image manifest")
        chosen = _pick_platform(usable) if len(usable) > 1 else usable[0]
        doc = self._archive.read_json(self._blob_name(chosen))
        if not isinstance(doc, dict):
            raise InvalidManifest(f"{self._archive.path}: manifest is not a JSON object")
        media = doc.get("mediaType") or chosen.get("mediaType", "")
        if media in _INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
            return self._resolve(list(doc.get("manifests") or []), depth + 1)
        return doc


def _is_attestation(desc: Mapping[str, Any]) -> bool:
    ann = desc.get("annotations") or {}
    plat = desc.get("platform") or {}
    return (
        ann.get("vnd.docker.reference.type") == "attestation-manifest"
        or (plat.get("os") == "unknown" and plat.get("architecture") == "unknown")
    )


_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


def _pick_platform(descs: list[dict[str, Any]]) -> dict[str, Any]:
    arch = _ARCH.get(platform.machine(), platform.machine())
    for d in descs:
        plat = d.get("platform") or {}
        if plat.get("os", "linux") == "linux" and plat.get("architecture") == arch:
            return d
    return descs[0]


# --- specs ----------------------------------------------------------------------------


def split_spec(spec: str) -> tuple[str, str, str]:
    """Split ``TRANSPORT:FILE[:REF]`` into ``(transport, file, ref)``.

    A bare name (no known transport) comes back as ``("", spec, "")``.  FILE may itself
    hold colons: the shortest prefix that names an existing file wins, and what follows
    the next colon is the reference.

    >>> split_spec("busybox:latest")
    ('', 'busybox:latest', '')
    >>> split_spec("oci-archive:/nonexistent/x.tar")
    ('oci-archive', '/nonexistent/x.tar', '')
    """
    transport, sep, rest = spec.partition(":")
    if not sep or transport not in ("docker-archive", "oci-archive"):
        return "", spec, ""
    if os.path.isfile(rest):
        return transport, rest, ""
    pos = rest.find(":")
    while pos != -1:
        if os.path.isfile(rest[:pos]):
            return transport, rest[:pos], rest[pos + 1 :]
        pos = rest.find(":", pos + 1)
    return transport, rest, ""


def open_source(spec: str, *, store: StoreOpener | None = None) -> ImageSource:
    """Open the image named by *spec* for analysis.

    ``docker-archive:FILE[:REF]`` and ``oci-archive:FILE[:REF]`` read archives in place.
    Anything else is an image name for lamina's local store, opened through *store*;
    until the image store exists the CLI passes ``None`` and such names are refused
    with a hint.
    """
    transport, path, ref = split_spec(spec)
    if transport == "docker-archive":
        return DockerArchiveSource(path, ref)
    if transport == "oci-archive":
        return OciArchiveSource(path, ref)
    if store is None:
        raise ImageNotFound(
            f"cannot analyse {spec!r}: images in the local store cannot be opened yet",
            hint="name an archive instead: docker-archive:FILE or oci-archive:FILE",
        )
    return store(spec)

"""Image archives: ``docker save`` tarballs and OCI image layouts, read and written.

Two formats carry images as a single tar:

* the **docker archive** (``docker save``): ``manifest.json`` lists, per image, its
  config file, its ``RepoTags`` and its layer tars (uncompressed, or compressed in newer
  Docker), in order;
* the **OCI image layout**: ``oci-layout``, ``index.json`` pointing to manifests, and
  every blob under ``blobs/<alg>/<hex>``.

:func:`write_archive` writes one tar that is *both* (as Docker 25 does): blobs in the OCI
layout, plus a ``manifest.json`` whose paths point at those blobs, so ``docker load``,
``skopeo … oci-archive:`` and ``umoci`` all read it.  :class:`ImageArchive` reads either
format (and a legacy ``<id>/layer.tar`` docker archive) with random access, never
extracting the whole archive; :func:`open_archive` first undoes any outer compression.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from lamina.digest import Digest
from lamina.errors import DigestMismatch, InvalidArchive, InvalidManifest
from lamina.oci._json import canonical_json
from lamina.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    LAYER_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
)

__all__ = [
    "ArchiveImage",
    "ArchiveLayer",
    "ImageArchive",
    "SaveImage",
    "SaveLayer",
    "image_manifest",
    "open_archive",
    "write_archive",
]

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


# --- reading -----------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveLayer:
    """One layer inside an archive: the member holding it and what is known of it."""

    member: str
    media_type: str = OCI_LAYER
    digest: Digest | None = None  # the blob digest when the format names it (OCI)
    size: int | None = None


@dataclass(frozen=True)
class ArchiveImage:
    """One image inside an archive: its config bytes, layers (base first) and names."""

    config: bytes
    config_digest: Digest
    layers: tuple[ArchiveLayer, ...]
    repo_tags: tuple[str, ...] = ()
    manifest: bytes | None = None  # the OCI/Docker manifest bytes, when the archive has one

    def config_json(self) -> dict[str, Any]:
        data = json.loads(self.config)
        if not isinstance(data, dict):
            raise InvalidManifest(f"image config {self.config_digest} is not a JSON object")
        return data


class ImageArchive:
    """An uncompressed image archive on disk, opened for random access."""

    def __init__(self, path: Path, *, display_name: str | None = None) -> None:
        self.path = path
        self.name = display_name or str(path)
        try:
            self._tar = tarfile.open(path, mode="r:")  # noqa: SIM115 (closed by close())
            self._members = {self._norm(m.name): m for m in self._tar.getmembers()}
        except (tarfile.TarError, EOFError) as exc:
            raise InvalidArchive(
                f"{self.name}: not a readable tar archive ({exc})",
                hint="pass a file written by `docker save`, `lamina save` or an OCI image layout tar",
            ) from exc
        self.images: list[ArchiveImage] = self._read_images()

    @staticmethod
    def _norm(name: str) -> str:
        while name.startswith("./"):
            name = name[2:]
        return name.rstrip("/")

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> ImageArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, member: str) -> bool:
        return self._norm(member) in self._members

    def read(self, member: str) -> bytes:
        with self.open(member) as fh:
            return fh.read()

    def open(self, member: str) -> IO[bytes]:
        """Open a member for reading; raises InvalidArchive if it is missing or not a file."""
        info = self._members.get(self._norm(member))
        if info is None:
            raise InvalidArchive(f"{self.name}: missing {member!r}",
                                 hint="the archive is incomplete or truncated; save it again")
        if info.issym() or info.islnk():
            target = info.linkname if info.islnk() else os.path.normpath(
                os.path.join(os.path.dirname(info.name), info.linkname))
            return self.open(target)
        fh = self._tar.extractfile(info)
        if fh is None:
            raise InvalidArchive(f"{self.name}: {member!r} is not a regular file")
        return fh

    def member_size(self, member: str) -> int:
        info = self._members.get(self._norm(member))
        return info.size if info is not None else 0

    def _json(self, member: str) -> Any:
        try:
            return json.loads(self.read(member))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArchive(f"{self.name}: {member} is not valid JSON ({exc})") from exc

    def _blob_path(self, dgst: Digest) -> str:
        return f"blobs/{dgst.algorithm}/{dgst.hex}"

    def _verified_blob(self, dgst: Digest) -> bytes:
        data = self.read(self._blob_path(dgst))
        got = hashlib.new(dgst.algorithm, data).hexdigest()
        if got != dgst.hex:
            raise DigestMismatch(f"{self.name}: blob {dgst} has digest {dgst.algorithm}:{got}",
                                 hint="the archive was modified or corrupted")
        return data

    def _read_images(self) -> list[ArchiveImage]:
        if self.has("manifest.json"):
            return self._read_docker()
        if self.has("index.json"):
            return self._read_oci()
        raise InvalidArchive(
            f"{self.name}: neither manifest.json (docker archive) nor index.json (OCI layout) found",
            hint="pass a file written by `docker save`, `lamina save` or an OCI image layout tar")

    def _read_docker(self) -> list[ArchiveImage]:
        entries = self._json("manifest.json")
        if not isinstance(entries, list):
            raise InvalidArchive(f"{self.name}: manifest.json is not a list")
        images = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                    or not isinstance(entry.get("Layers"), list):
                raise InvalidArchive(f"{self.name}: manifest.json entry {i} lacks Config or Layers")
            config = self.read(entry["Config"])
            config_digest = Digest.from_bytes(config)
            base = os.path.basename(entry["Config"]).removesuffix(".json")
            if len(base) == 64 and all(c in "0123456789abcdef" for c in base) and base != config_digest.hex:
                raise DigestMismatch(
                    f"{self.name}: config {entry['Config']} has digest {config_digest}",
                    hint="the archive was modified or corrupted")
            descs: dict[str, dict[str, Any]] = {}
            for k, v in (entry.get("LayerSources") or {}).items():
                if isinstance(v, dict):
                    descs[k] = v
            layers = []
            for member in entry["Layers"]:
                if not isinstance(member, str):
                    raise InvalidArchive(f"{self.name}: manifest.json entry {i} has a non-string layer")
                dgst = None
                parts = self._norm(member).split("/")
                if len(parts) == 3 and parts[0] == "blobs":
                    try:
                        dgst = Digest(parts[1], parts[2])
                    except Exception:
                        dgst = None
                layers.append(ArchiveLayer(member=member, digest=dgst, size=self.member_size(member)))
            tags = tuple(t for t in entry.get("RepoTags") or () if isinstance(t, str))
            images.append(ArchiveImage(config, config_digest, tuple(layers), tags))
        return images

    def _read_oci(self) -> list[ArchiveImage]:
        index = self._json("index.json")
        images: list[ArchiveImage] = []
        self._walk_index(index, None, images)
        return images

    def _walk_index(self, index: Any, name: str | None, out: list[ArchiveImage]) -> None:
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise InvalidArchive(f"{self.name}: index has no manifests list")
        for desc in index["manifests"]:
            if not isinstance(desc, dict):
                raise InvalidManifest(f"{self.name}: index entry is not an object")
            mt = desc.get("mediaType")
            ann = desc.get("annotations") or {}
            ref = ann.get(CONTAINERD_NAME) or ann.get(REF_NAME) or name
            dgst = Digest.parse(str(desc.get("digest")))
            data = self._verified_blob(dgst)
            body = json.loads(data)
            mt = mt or body.get("mediaType")
            if mt in (OCI_INDEX, DOCKER_MANIFEST_LIST):
                self._walk_index(body, ref, out)
                continue
            if mt not in (OCI_MANIFEST, DOCKER_MANIFEST):
                raise InvalidManifest(f"{self.name}: unknown manifest media type {mt!r}",
                                      hint="lamina reads OCI and Docker schema2 manifests")
            cfg_desc = body.get("config") or {}
            cfg_digest = Digest.parse(str(cfg_desc.get("digest")))
            config = self._verified_blob(cfg_digest)
            layers = []
            for ld in body.get("layers") or []:
                lmt = ld.get("mediaType", "")
                if lmt not in LAYER_TYPES:
                    raise InvalidManifest(f"{self.name}: unknown layer media type {lmt!r}",
                                          hint="lamina reads tar, tar+gzip and tar+zstd layers")
                ldg = Digest.parse(str(ld.get("digest")))
                layers.append(ArchiveLayer(self._blob_path(ldg), lmt, ldg, ld.get("size")))
            tags = (ref,) if ref else ()
            out.append(ArchiveImage(config, cfg_digest, tuple(layers), tags, data))


def open_archive(path: Path | str, *, tmpdir: Path | None = None,
                 display_name: str | None = None) -> ImageArchive:
    """Open an archive file, undoing gzip/zstd/xz/bzip2 compression into a temp file first."""
    from lamina.layer import Compression, detect_compression, open_decompressed

    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(6)
    if detect_compression(head) is Compression.NONE:
        return ImageArchive(path, display_name=display_name)
    fd, tmp = tempfile.mkstemp(prefix="lamina-load-", suffix=".tar", dir=tmpdir)
    try:
        with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
            plain, _ = open_decompressed(src)
            with plain:
                shutil.copyfileobj(plain, dst, 1 << 20)
        arch = ImageArchive(Path(tmp), display_name=display_name or str(path))
    except (OSError, EOFError, InvalidArchive) as exc:
        os.unlink(tmp)
        if isinstance(exc, InvalidArchive) and exc.message.startswith(display_name or str(path)):
            raise
        reason = exc.message if isinstance(exc, InvalidArchive) else str(exc)
        raise InvalidArchive(f"{display_name or path}: cannot decompress ({reason})") from exc
    except BaseException:
        os.unlink(tmp)
        raise
    os.unlink(tmp)  # the open tarfile keeps the data reachable until closed
    return arch


# --- writing -----------------------------------------------------------------


@dataclass(frozen=True)
class SaveLayer:
    """A layer to write: its blob digest and size, its media type and how to open it."""

    digest: Digest
    size: int
    open: Callable[[], BinaryIO]
    media_type: str = OCI_LAYER


@dataclass(frozen=True)
class SaveImage:
    """An image to write: config bytes, layers base first, names.

    ``names`` are pairs of (full reference, familiar ``name:tag``), e.g.
    ``("docker.io/library/busybox:latest", "busybox:latest")``.
    """

    config: bytes
    layers: tuple[SaveLayer, ...]
    names: tuple[tuple[str, str], ...] = field(default=())


def image_manifest(config: bytes, layers: Sequence[tuple[str, Digest, int]]) -> bytes:
    """The OCI manifest (canonical JSON) of an image: its config blob and its layer blobs,
    each given as (media type, digest, size), base first.  The store records this manifest
    and ``save`` writes the same bytes, so both name the image by one manifest digest."""
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": str(Digest.from_bytes(config)),
                   "size": len(config)},
        "layers": [{"mediaType": media_type, "digest": str(dgst), "size": size}
                   for media_type, dgst, size in layers],
    }
    return canonical_json(body)


def _oci_manifest(img: SaveImage) -> bytes:
    return image_manifest(img.config, [(lay.media_type, lay.digest, lay.size) for lay in img.layers])


def write_archive(out: BinaryIO, images: Sequence[SaveImage], *, docker: bool = True) -> None:
    """Write ``images`` as one tar to ``out`` (a stream; nothing is seeked).

    The tar is an OCI image layout; with ``docker=True`` it also has the ``manifest.json``
    that ``docker load`` reads and the legacy ``repositories`` file (repository → tag →
    top layer ID) that older readers look at.  Blobs shared by several images are
    written once.  Entries are in a fixed order with fixed headers, so the same images give
    the same bytes.
    """
    tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
    written: set[str] = set()

    def add_bytes(name: str, data: bytes) -> None:
        tar.addfile(_info(name, len(data)), io.BytesIO(data))

    def add_blob_bytes(data: bytes) -> str:
        name = f"blobs/sha256/{hashlib.sha256(data).hexdigest()}"
        if name not in written:
            written.add(name)
            add_bytes(name, data)
        return name

    try:
        tar.addfile(_dir_info("blobs"))
        tar.addfile(_dir_info("blobs/sha256"))
        index_entries: list[dict[str, Any]] = []
        docker_entries: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        for img in images:
            layer_names = []
            for lay in img.layers:
                name = f"blobs/{lay.digest.algorithm}/{lay.digest.hex}"
                layer_names.append(name)
                if name in written:
                    continue
                written.add(name)
                with lay.open() as fh:
                    tar.addfile(_info(name, lay.size), fh)
            cfg_name = add_blob_bytes(img.config)
            manifest = _oci_manifest(img)
            man_name = add_blob_bytes(manifest)
            desc = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + man_name.rsplit("/", 1)[1],
                    "size": len(manifest)}
            if img.names:
                for full, familiar in img.names:
                    tag = full.rsplit(":", 1)[1] if ":" in full.rsplit("/", 1)[-1] else "latest"
                    index_entries.append({**desc, "annotations": {CONTAINERD_NAME: full,
                                                                  REF_NAME: tag}})
                    repo = familiar.rsplit(":", 1)[0] if ":" in familiar.rsplit("/", 1)[-1] \
                        else familiar
                    if img.layers:  # legacy readers: repo -> tag -> the top layer's ID
                        repositories.setdefault(repo, {})[tag] = img.layers[-1].digest.hex
            else:
                index_entries.append(desc)
            docker_entries.append({"Config": cfg_name,
                                   "RepoTags": [f for _, f in img.names] or None,
                                   "Layers": layer_names})
        add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries}
        add_bytes("index.json", json.dumps(index, separators=(",", ":")).encode())
        if docker:
            add_bytes("manifest.json", json.dumps(docker_entries, separators=(",", ":")).encode())
            if repositories:
                add_bytes("repositories", json.dumps(repositories, separators=(",", ":")).encode())
    finally:
        tar.close()


def _info(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = size, 0o644, 0
    ti.uname = ti.gname = ""
    return ti


def _dir_info(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
    ti.uname = ti.gname = ""
    return ti


def iter_members(archive: ImageArchive) -> Iterator[str]:
    """Names of every member (for diagnostics and tests)."""
    yield from archive._members

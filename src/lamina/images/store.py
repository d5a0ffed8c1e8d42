"""The image store: images made of shared, content-addressed layers.

An :class:`ImageStore` over a root directory ties four lower parts together:

* the content store (``blobs/sha256/…``) holds every immutable blob: layer tars,
  configs, manifests;
* the metadata store (``metadata.db``) records names, images and layers (by chain ID);
* the overlay snapshotter (``snapshots/<id>/fs``) holds each layer *unpacked once*,
  keyed by its chain ID, so images built on the same base share its directories;
* :mod:`lamina.layer` turns tar streams into snapshot directories and back.

Adding an image is ordered so that a process killed at any point leaves a consistent
store: blobs first (harmless if orphaned), then the unpacked snapshots (committed under
their chain ID only once complete), then one metadata transaction that makes the image
visible.  A failed operation removes what it created, so bad input leaves the store as it
was.  :meth:`ImageStore.prune` collects anything an earlier crash left behind.

Layers made locally (``import``, ``commit``, ``build``) are stored as uncompressed tars,
so that their blob digest *is* their diff ID, ``save`` is a copy, and ``docker load`` of a
saved image gives the same IDs; pulled layers keep the compressed blob they came in.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any, BinaryIO

from lamina.content import ContentStore
from lamina.digest import Digest
from lamina.errors import (
    Conflict,
    DigestMismatch,
    ImageNotFound,
    InvalidArchive,
    InvalidArgument,
    InvalidManifest,
    LaminaError,
)
from lamina.metadata import ImageRecord, LayerRecord, MetadataStore
from lamina.oci import ImageConfig, mediatypes
from lamina.oci._json import canonical_json
from lamina.reference import Reference, is_image_id, parse_reference
from lamina.snapshot.overlay import OverlaySnapshotter

__all__ = [
    "ImageStore",
    "LayerInput",
    "RemoveResult",
    "ResolvedImage",
    "StoreUsage",
    "docker_arch",
]

SIZE_LABEL = "lamina.size"  # Docker-style content size of one layer, kept on its snapshot


def _uuid4() -> Any:
    import uuid  # imported late: it pulls in ``platform`` and is off the hot paths

    return uuid.uuid4()


def docker_arch() -> str:
    """This machine's architecture as OCI/Docker names it (``amd64``, ``arm64``…)."""
    m = os.uname().machine.lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


def now_rfc3339() -> str:
    """The current time as Docker writes it in configs (UTC, nanoseconds, ``Z``)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


@dataclass(frozen=True)
class LayerInput:
    """A layer to add: how to open its blob, and what is known of it in advance.

    ``media_type`` is the blob's (``…tar``, ``…tar+gzip``…); ``digest`` the blob digest
    when the source names it (verified); ``diff_id`` the expected uncompressed digest
    from the image config (verified; lets a present layer be skipped without reading).
    """

    open: Callable[[], IO[bytes]]
    media_type: str = mediatypes.OCI_LAYER
    digest: Digest | None = None
    diff_id: Digest | None = None


@dataclass(frozen=True)
class ResolvedImage:
    """An image found by name or ID: its record, config bytes, parsed config and names."""

    record: ImageRecord
    config_bytes: bytes
    config: ImageConfig
    names: tuple[str, ...]
    layers: tuple[LayerRecord, ...]

    @property
    def id(self) -> Digest:
        return self.record.id


@dataclass(frozen=True)
class RemoveResult:
    """What ``rmi`` did, in Docker's words: ``Untagged: name`` and ``Deleted: id`` lines."""

    untagged: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoreUsage:
    """Disk use as ``system df`` shows it.

    ``images_size`` adds up every image's size as if each stood alone; ``unique_size``
    counts each layer once; the difference is what sharing saves.
    """

    images: int
    layers: int
    images_size: int
    unique_size: int
    blobs: int
    blobs_size: int
    snapshots: int
    reclaimable_blobs: int = 0
    reclaimable_snapshots: int = 0

    @property
    def shared_savings(self) -> int:
        return self.images_size - self.unique_size


@dataclass
class _Undo:
    """What an operation created, removed again if it fails."""

    blobs: list[Digest] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)


class _Tee:
    """A read-only stream that copies everything read into a content writer."""

    def __init__(self, src: IO[bytes], sink: Any) -> None:
        self._src, self._sink = src, sink

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        if data:
            self._sink.write(data)
        return data

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class ImageStore:
    """Images under ``root``: see the module docstring.  Use as a context manager."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LaminaError(f"cannot create the store root {self.root}: {exc.strerror}",
                              hint="pass --root DIR or set LAMINA_ROOT to a writable folder") from exc
        self.content = ContentStore(self.root)
        self.meta = MetadataStore(self.root / "metadata.db")
        self.snapshots = OverlaySnapshotter(self.root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(exist_ok=True)

    def close(self) -> None:
        self.meta.close()

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _operation(self) -> Iterator[_Undo]:
        """Hold the store lock; on failure remove the blobs and snapshots created."""
        undo = _Undo()
        with self.meta.lock():
            try:
                yield undo
            except BaseException:
                for key in reversed(undo.snapshots):
                    with suppress(LaminaError):
                        self.snapshots.remove(key)
                referenced = self.meta.referenced_blobs()
                for dgst in undo.blobs:
                    if dgst not in referenced:
                        with suppress(LaminaError):
                            self.content.delete(dgst)
                raise

    # --- layers ---------------------------------------------------------------------

    def _snapshot_exists(self, key: str) -> bool:
        try:
            self.snapshots.stat(key)
            return True
        except LaminaError:
            return False

    def ready_layer(self, chain: Digest) -> LayerRecord | None:
        """The layer ``chain`` if it is recorded, unpacked and its blob (if any) stored.

        (Used by registry pulls to skip downloading layers the store already has.)
        """
        return self._layer_ready(chain)

    def _layer_ready(self, chain: Digest) -> LayerRecord | None:
        rec = self.meta.find_layer(chain)
        if rec is None or not self._snapshot_exists(str(chain)):
            return None
        if rec.blob_digest is not None and not self.content.exists(rec.blob_digest):
            return None
        return rec

    def _parent_fs(self, parent: LayerRecord | None) -> list[Path]:
        out: list[Path] = []
        key = str(parent.chain_id) if parent else None
        while key is not None:
            out.append(self.snapshots.fs_path(key))
            key = self.snapshots.stat(key).parent
        return out

    def add_layer(self, layer: LayerInput, parent: LayerRecord | None, undo: _Undo) -> LayerRecord:
        """Store one layer on ``parent``: blob into the content store, unpacked into a
        committed snapshot named by its chain ID.  Returns its (unsaved) record."""
        from lamina.layer import apply_layer

        if layer.diff_id is not None:
            chain = LayerRecord.on_top_of(parent, layer.diff_id, 0).chain_id
            ready = self._layer_ready(chain)
            if ready is not None and (layer.digest is None or layer.digest == ready.blob_digest
                                      or self.content.exists(layer.digest)):
                return ready
        key = f"extract-{_uuid4().hex}"
        self.snapshots.prepare(key, str(parent.chain_id) if parent else None)
        undo.snapshots.append(key)
        dest = self.snapshots.fs_path(key)
        ref = f"layer-{_uuid4().hex}"
        with layer.open() as src:
            if layer.digest is not None and self.content.exists(layer.digest):
                # (registry pull) the blob is already stored and verified -- downloaded
                # before ``open`` returned: unpack it in place instead of copying it again.
                stats = apply_layer(src, dest, overlay=True,  # type: ignore[arg-type]
                                    lowers=self._parent_fs(parent))
                blob = layer.digest
            else:
                with self.content.writer(ref) as writer:
                    tee = _Tee(src, writer)
                    stats = apply_layer(tee, dest, overlay=True,  # type: ignore[arg-type]
                                        lowers=self._parent_fs(parent))
                    tee.drain()
                    blob = writer.commit(expected_digest=layer.digest)
                undo.blobs.append(blob)
        if layer.diff_id is not None and stats.diff_id != layer.diff_id:
            raise DigestMismatch(
                f"layer {blob.short}: its content has diff ID {stats.diff_id}, "
                f"the image config says {layer.diff_id}",
                hint="the image is corrupt or was tampered with; fetch or save it again")
        media_type = layer.media_type
        if layer.digest is None and stats.compression.value in ("gzip", "zstd"):
            # the source did not say (a legacy docker-archive): name what the bytes are
            media_type = mediatypes.OCI_LAYER + stats.compression.media_type_suffix
        record = LayerRecord.on_top_of(
            parent, stats.diff_id, stats.uncompressed_size, blob_digest=blob,
            blob_media_type=media_type, compressed_size=self.content.info(blob).size)
        size = _content_size(dest)
        name = str(record.chain_id)
        undo.snapshots.remove(key)
        if self._snapshot_exists(name):  # someone unpacked it meanwhile (or a retry)
            self.snapshots.remove(key)
        else:
            try:
                self.snapshots.commit(name, key, labels={SIZE_LABEL: str(size)})
            except BaseException:
                undo.snapshots.append(key)
                raise
            undo.snapshots.append(name)
        return record

    def commit_layer(self, key: str, parent: LayerRecord | None, undo: _Undo, *,
                     source_date_epoch: int | None = None,
                     before_commit: Callable[[], None] | None = None) -> LayerRecord:
        """Turn active snapshot ``key`` (an unmounted overlay upper dir over ``parent``)
        into a layer: its changes are written as an uncompressed layer tar (overlay
        whiteouts become OCI ``.wh.`` entries) into the content store, and the snapshot
        is committed under the new chain ID.  If that chain already exists (an identical
        step ran before), ``key`` is removed instead.  Returns the (unsaved) record;
        pass it to :meth:`register_image`.  ``before_commit`` runs after the blob is
        stored and before the snapshot is committed (the builder waits there for the
        upper dir's sync, which it runs alongside the tar write).
        """
        from lamina.layer import Compression, write_layer

        upper = self.snapshots.fs_path(key)
        ref = f"commit-{_uuid4().hex}"
        with self.content.writer(ref) as writer:
            stats = write_layer(upper, writer, compression=Compression.NONE,  # type: ignore[arg-type]
                                source_date_epoch=source_date_epoch, overlay_upper=True)
            blob = writer.commit()
        undo.blobs.append(blob)
        record = LayerRecord.on_top_of(parent, stats.diff_id, stats.uncompressed_size,
                                       blob_digest=blob, blob_media_type=mediatypes.OCI_LAYER,
                                       compressed_size=stats.size)
        name = str(record.chain_id)
        if before_commit is not None:
            before_commit()
        if self._snapshot_exists(name):
            self.snapshots.remove(key)
        else:
            self.snapshots.commit(name, key, labels={SIZE_LABEL: str(_content_size(upper))})
            undo.snapshots.append(name)
        return record

    def register_image(self, config_bytes: bytes, layers: Sequence[LayerRecord], *,
                       names: Sequence[str] = (), parent: Digest | None = None,
                       undo: _Undo | None = None) -> ImageRecord:
        """Record an image whose layers are already stored (from :meth:`commit_layer` or
        an existing image); write its config and manifest blobs; point ``names`` at it."""
        config = ImageConfig.from_json(config_bytes)
        if list(config.rootfs.diff_ids) != [r.diff_id for r in layers]:
            raise InvalidManifest("image config rootfs.diff_ids do not match the layers given")
        config_digest = self.content.put_bytes(config_bytes)
        manifest_digest = self.content.put_bytes(self._manifest(config_bytes, layers))
        if undo is not None:
            undo.blobs.extend([config_digest, manifest_digest])
        size = sum(self.layer_size(r.chain_id) for r in layers)
        with self.meta.transaction():
            image = self.meta.add_image(
                ImageRecord(id=config_digest, manifest_digest=manifest_digest, size=size,
                            created=config.created_at,
                            parent=parent if parent and self.meta.find_image(parent) else None),
                layers)
            for name in names:
                self.meta.set_reference(str(self._parse(name)), config_digest)
        return image

    def operation(self) -> Any:
        """Context manager for a multi-step change: holds the store lock and yields an
        undo record; if the block fails, blobs and snapshots it created are removed."""
        return self._operation()

    def layer_size(self, chain: Digest) -> int:
        """Docker's size of one layer: bytes of the files it holds (0 if unknown)."""
        try:
            labels = dict(self.snapshots.stat(str(chain)).labels)
        except LaminaError:
            return 0
        return int(labels.get(SIZE_LABEL, "0"))

    # --- images ---------------------------------------------------------------------

    def add_image(self, config_bytes: bytes, layers: Sequence[LayerInput], *,
                  names: Sequence[str] = (), parent: Digest | None = None,
                  undo: _Undo | None = None) -> ImageRecord:
        """Store an image from its config and layer blobs (base first); tag it ``names``.

        The layers must match the config's ``rootfs.diff_ids`` (checked).  Call inside
        :meth:`_operation` (``undo`` given) or on its own (it takes the lock itself).
        """
        if undo is None:
            with self._operation() as own:
                return self.add_image(config_bytes, layers, names=names, parent=parent, undo=own)
        config = ImageConfig.from_json(config_bytes)
        diff_ids = list(config.rootfs.diff_ids)
        if len(diff_ids) != len(layers):
            raise InvalidManifest(
                f"image config lists {len(diff_ids)} layers but {len(layers)} were given",
                hint="the archive or manifest does not belong to this config")
        records: list[LayerRecord] = []
        parent_layer: LayerRecord | None = None
        for want, layer in zip(diff_ids, layers, strict=True):
            if layer.diff_id is None:
                layer = LayerInput(layer.open, layer.media_type, layer.digest, want)
            parent_layer = self.add_layer(layer, parent_layer, undo)
            records.append(parent_layer)
        return self.register_image(config_bytes, records, names=names, parent=parent, undo=undo)

    def _manifest(self, config_bytes: bytes, layers: Sequence[LayerRecord]) -> bytes:
        from lamina.images.archive import image_manifest

        return image_manifest(config_bytes, [
            (r.blob_media_type or mediatypes.OCI_LAYER, r.blob_digest, r.compressed_size or 0)
            for r in layers if r.blob_digest is not None])

    def resolve(self, text: str) -> ResolvedImage:
        """Find an image by name (``busybox``, ``x:1``, ``name@sha256:…``) or ID (prefix)."""
        image_id = self._resolve_id(text)
        record = self.meta.get_image(image_id)
        config_bytes = self.content.read_bytes(record.id)
        names = tuple(r.name for r in self.meta.references(record.id))
        layers = tuple(self.meta.image_layers(record.id))
        return ResolvedImage(record, config_bytes, ImageConfig.from_json(config_bytes),
                             names, layers)

    def _resolve_id(self, text: str) -> Digest:
        raw = text[len("sha256:"):] if text.startswith("sha256:") else text
        if raw and all(c in "0123456789abcdef" for c in raw) and (len(raw) == 64 or (
                not self._is_name(text) and len(raw) >= 1)):
            matches = self.meta.images_with_prefix(raw)
            if len(matches) == 1:
                return matches[0].id
            if len(matches) > 1:
                raise InvalidArgument(f"short ID {raw!r} is ambiguous",
                                      hint="give more characters of the image ID")
            if len(raw) == 64 or text.startswith("sha256:"):
                raise ImageNotFound(f"No such image: {text}")
        ref = self._parse(text)
        rec = self.meta.find_reference(str(ref))
        if rec is None and ref.digest is not None:
            for r in self.meta.references():
                if r.digest == ref.digest and r.name.split("@")[0].rsplit(":", 1)[0] == ref.name:
                    return r.image_id
        if rec is None:
            raise ImageNotFound(f"No such image: {text}",
                                hint="list images with `lamina images`, or import/load/pull it")
        return rec.image_id

    def _is_name(self, text: str) -> bool:
        try:
            return self.meta.find_reference(str(parse_reference(text))) is not None
        except LaminaError:
            return False

    @staticmethod
    def _parse(text: str) -> Reference:
        return parse_reference(text)

    def images(self) -> list[ResolvedImage]:
        """Every image, newest first."""
        out = [self.resolve(str(r.id)) for r in self.meta.images()]
        out.sort(key=lambda i: i.record.created or datetime.min.replace(tzinfo=UTC), reverse=True)
        return out

    def tag(self, source: str, target: str) -> str:
        """Point name ``target`` at the image ``source`` names; returns the full name."""
        with self.meta.lock():
            image_id = self._resolve_id(source)
            ref = self._parse(target)
            if ref.digest is not None:
                raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}",
                                      hint="a tag is NAME[:TAG]")
            self.meta.set_reference(str(ref), image_id)
        return str(ref)

    def remove(self, text: str, *, force: bool = False, prune: bool = True) -> RemoveResult:
        """``rmi``: untag a name; delete the image when no name is left (or ``force``).

        Docker's rules: a name that is not the image's last is just untagged; an image
        still used by a container is not deleted (untagging its last name needs
        ``force``, and then the image stays, nameless); an image with several names
        removed by ID needs ``force``.  Nothing changes when the removal is refused.
        """
        from lamina.metadata import ContainerTable

        with self.meta.lock():
            image_id = self._resolve_id(text)
            names = [r.name for r in self.meta.references(image_id)]
            by_name = not is_image_id(text.removeprefix("sha256:")) and self._is_name(text)
            drop = [str(self._parse(text))] if by_name else list(names)
            if not by_name and len(names) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {image_id.short} (must be forced) - image is "
                    "referenced in multiple repositories",
                    hint="remove it by name, or pass -f to remove every name")
            delete_image = len(names) <= len(drop)
            users = ContainerTable(self.meta).using_image(image_id) if delete_image else []
            if users and not force:
                what = (f'remove repository reference "{_familiar(drop[0])}"' if by_name
                        else f"delete {image_id.short}")
                raise Conflict(
                    f"conflict: unable to {what} (must force) - container {users[0][:12]} is "
                    f"using its referenced image {image_id.short}",
                    hint="remove the container first (lamina rm), or pass -f to untag only")
            kids = self.meta.children(image_id) if delete_image and not users else []
            if kids:
                raise Conflict(
                    f"conflict: unable to delete {image_id.short} - image has dependent child images",
                    hint="remove the images built on it first")
            with self.meta.transaction():
                for name in drop:
                    self.meta.delete_reference(name)
                if delete_image and not users:
                    self.meta.delete_image(image_id)
            untagged = tuple(_familiar(n) for n in drop)
            if not delete_image or users:
                return RemoveResult(untagged)
            deleted = [str(image_id)]
            if prune:
                deleted.extend(self._collect())
            return RemoveResult(untagged, tuple(deleted))

    # --- garbage collection -----------------------------------------------------------

    def _collect(self) -> list[str]:
        """Delete layers, snapshots and blobs no image needs (lock held). Returns chain IDs."""
        removed: list[str] = []
        for layer in self.meta.unreferenced_layers():
            key = str(layer.chain_id)
            if self._snapshot_exists(key):
                try:
                    self.snapshots.remove(key, defer=True)
                except Conflict:
                    continue  # a container or build still stands on it
            self.meta.delete_layer(layer.chain_id)
            removed.append(key)
        keep_blobs = self.meta.referenced_blobs()
        for info in list(self.content.walk()):
            if info.digest not in keep_blobs:
                self.content.delete(info.digest)
        keep = {str(r.chain_id) for r in self.meta.layers()}
        for snap in sorted(self.snapshots.walk(), key=lambda s: s.created, reverse=True):
            if snap.kind.value == "committed" and snap.name not in keep:
                try:
                    self.snapshots.remove(snap.name, defer=True)
                except Conflict:
                    continue
            elif snap.kind.value == "active" and snap.name.startswith("extract-"):
                # left by a killed import/load: never committed, never used
                try:
                    self.snapshots.remove(snap.name, defer=True)
                except Conflict:
                    continue
        self.snapshots.cleanup()
        for stale in self.tmp.iterdir():
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        return removed

    def prune_images(self, *, all_images: bool = False) -> list[str]:
        """``image prune``: delete images with no name (``all_images``: also unused named
        ones) that no container uses and no image is built on.  Returns their IDs."""
        from lamina.metadata import ContainerTable

        deleted: list[str] = []
        with self.meta.lock():
            users = ContainerTable(self.meta)
            changed = True
            while changed:  # removing a child can free its parent
                changed = False
                for img in self.meta.images():
                    refs = self.meta.references(img.id)
                    if (refs and not all_images) or users.using_image(img.id) \
                            or self.meta.children(img.id):
                        continue
                    with self.meta.transaction():
                        for r in refs:
                            self.meta.delete_reference(r.name)
                        self.meta.delete_image(img.id)
                    deleted.append(str(img.id))
                    changed = True
            if deleted:
                self._collect()
        return deleted

    def prune(self) -> list[str]:
        """Remove whatever no image references (``system prune``)."""
        with self.meta.lock():
            return self._collect()

    def usage(self) -> StoreUsage:
        images = self.meta.images()
        layers = self.meta.layers()
        per_layer = {str(r.chain_id): self.layer_size(r.chain_id) for r in layers}
        blobs = list(self.content.walk())
        referenced = self.meta.referenced_blobs()
        keep = {str(r.chain_id) for r in layers}
        snaps = list(self.snapshots.walk())
        return StoreUsage(
            images=len(images), layers=len(layers),
            images_size=sum(i.size for i in images),
            unique_size=sum(per_layer.values()),
            blobs=len(blobs), blobs_size=sum(b.size for b in blobs),
            snapshots=len(snaps),
            reclaimable_blobs=sum(1 for b in blobs if b.digest not in referenced),
            reclaimable_snapshots=sum(1 for s in snaps
                                      if s.kind.value == "committed" and s.name not in keep),
        )

    # --- import ---------------------------------------------------------------------

    def import_tar(self, stream: BinaryIO, *, names: Sequence[str] = (),
                   container_config: dict[str, Any] | None = None,
                   message: str = "", source: str = "-") -> ImageRecord:
        """``import``: a rootfs tarball (plain or compressed) becomes a one-layer image.

        The uncompressed tar is stored exactly as given, so the layer's diff ID is the
        sha256 of those bytes, as Docker computes it.
        """
        from lamina.layer import open_decompressed

        tmp = self.tmp / f"import-{_uuid4().hex}.tar"
        try:
            plain, _ = open_decompressed(stream)
            h = hashlib.sha256()
            with open(tmp, "wb") as out:
                while chunk := plain.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            if tmp.stat().st_size == 0:
                raise InvalidArchive(f"{source}: empty input", hint="pass a tar archive of a root filesystem")
            diff_id = Digest("sha256", h.hexdigest())
            created = now_rfc3339()
            comment = message or f"Imported from {source}"
            cfg: dict[str, Any] = {
                "architecture": docker_arch(),
                "comment": comment,
                "config": container_config or {},
                "created": created,
                "history": [{"created": created, "comment": comment}],
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]},
            }
            config_bytes = canonical_json(cfg)
            refs = [str(self._parse(n)) for n in names]
            return self.add_image(config_bytes, [
                LayerInput(lambda: open(tmp, "rb"), mediatypes.OCI_LAYER, diff_id, diff_id)],
                names=refs)
        finally:
            tmp.unlink(missing_ok=True)

    # --- save / load ------------------------------------------------------------------

    def save(self, out: BinaryIO, refs: Sequence[str], *, docker: bool = True) -> None:
        """Write images to ``out`` as one archive (docker-archive + OCI layout)."""
        from lamina.images.archive import SaveImage, SaveLayer, write_archive

        items: list[SaveImage] = []
        for text in refs:
            img = self.resolve(text)
            if self._is_name(text) and not is_image_id(text.removeprefix("sha256:")):
                full = str(self._parse(text))
                names: tuple[tuple[str, str], ...] = ((full, _familiar(full)),)
            else:
                names = ()
            layers = []
            for rec in img.layers:
                if rec.blob_digest is None:
                    raise InvalidArgument(f"layer {rec.chain_id} of {text} has no blob to save")
                dgst = rec.blob_digest
                layers.append(SaveLayer(dgst, self.content.info(dgst).size,
                                        partial(self.content.open, dgst),
                                        rec.blob_media_type or mediatypes.OCI_LAYER))
            items.append(SaveImage(img.config_bytes, tuple(layers), names))
        write_archive(out, items, docker=docker)

    def load(self, path: Path, *, display_name: str | None = None) -> list[str]:
        """``load``: every image in a docker-archive or OCI layout; returns Docker's lines."""
        from lamina.images.archive import open_archive

        lines: list[str] = []
        with open_archive(path, tmpdir=self.tmp, display_name=display_name) as arch, \
                self._operation() as undo:
            for img in arch.images:
                layers = [LayerInput(partial(arch.open, layer.member),
                                     layer.media_type if layer.digest else mediatypes.OCI_LAYER,
                                     layer.digest)
                          for layer in img.layers]
                names = []
                for tag in img.repo_tags:
                    try:
                        names.append(str(self._parse(tag)))
                    except LaminaError:
                        continue
                record = self.add_image(img.config, layers, names=names, undo=undo)
                if names:
                    lines.extend(f"Loaded image: {_familiar(n)}" for n in names)
                else:
                    lines.append(f"Loaded image ID: {record.id}")
        return lines


def _familiar(full: str) -> str:
    try:
        return parse_reference(full).familiar
    except LaminaError:
        return full


def _content_size(root: Path) -> int:
    """Docker's layer size: ``st_size`` of every non-directory (each inode once),
    overlay whiteouts (0/0 character devices) excluded."""
    total = 0
    seen: set[int] = set()
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
                if st.st_nlink > 1:
                    if st.st_ino in seen:
                        continue
                    seen.add(st.st_ino)
                if st.st_rdev == 0 and (st.st_mode & 0o170000) == 0o020000:
                    continue
                total += st.st_size
    return total

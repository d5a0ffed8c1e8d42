"""Push: an image from the local store to a registry.

What goes over the wire, in order (manifest last, so a registry never holds a
manifest whose blobs are missing)::

    for each layer, in parallel:
        HEAD the blob (by its compressed digest, if known)      -> "Layer already exists"
        else POST ?mount=<digest>&from=<repo> for each repository
             of that registry known to hold it                  -> "Mounted from <repo>"
        else upload it                                          -> "Pushed"
    the config blob (HEAD, else a monolithic upload)
    PUT the manifest under the tag                              -> "<tag>: digest: … size: …"

**Compression.**  Layers made locally (import, commit, build) are stored as
uncompressed tars.  A push compresses them with gzip (ISA-L) *while uploading*, in
chunks (``PATCH`` with ``Content-Range``), since the compressed digest is only known
at the end; the digest is then remembered for the layer's diff ID
(:class:`~lamina.metadata._registry.BlobHistory`), so the next push of that layer
asks the registry for it by digest and uploads nothing.  Layers pulled from a
registry keep their compressed blob and are uploaded as stored: monolithically
(one streaming ``PUT``) or, with ``chunk_size``, in chunks.

**Manifest format.**  A Docker schema 2 manifest by default (every Docker reads
it), an OCI manifest when asked (``manifest_format="oci"``) or when a layer is
zstd-compressed.  An image pulled from a registry is pushed with the very manifest
it came with when its blobs are unchanged, so its digest stays the same.

:func:`push_index` pushes several local images as one multi-platform index.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from lamina.digest import Digest
from lamina.errors import (
    BlobNotFound,
    DigestMismatch,
    ImageNotFound,
    InvalidArgument,
    LaminaError,
)
from lamina.images.store import ImageStore, ResolvedImage
from lamina.layer.compression import Compression, LayerSink
from lamina.metadata import LayerRecord
from lamina.metadata._registry import BlobHistory
from lamina.oci import Descriptor, Index, Manifest, mediatypes, parse_document
from lamina.reference import Reference, parse_reference
from lamina.registry.client import BlobUpload, RegistryClient, UploadStream
from lamina.registry.config import RegistryConfig
from lamina.registry.credentials import CredentialStore
from lamina.registry.progress import NullReporter, ProgressEvent, Reporter

__all__ = ["PushOptions", "PushResult", "push", "push_index"]

ManifestFormat = Literal["docker", "oci"]
DEFAULT_STREAM_CHUNK = 32 << 20
_READ = 1 << 20


@dataclass(frozen=True)
class PushOptions:
    """How to push.

    ``chunk_size`` uploads stored blobs in ``PATCH`` chunks of that many bytes
    (default: monolithically); layers compressed on the fly always go in chunks of
    ``chunk_size`` or 32 MiB.  ``max_concurrent`` layers upload at once.  ``mount``
    tries cross-repository mounts.  ``config`` and ``credentials`` default as for
    pulls.
    """

    manifest_format: ManifestFormat = "docker"
    chunk_size: int | None = None
    max_concurrent: int = 3
    mount: bool = True
    reporter: Reporter = field(default_factory=NullReporter)
    config: RegistryConfig | None = None
    credentials: CredentialStore | None = None


@dataclass(frozen=True)
class PushResult:
    """What a push did: the manifest's digest, size and media type, and per-blob outcomes.

    ``pushed`` lists blobs uploaded, ``existed`` those the registry had, ``mounted``
    those mounted from another repository (digests, layers and config alike).
    """

    name: str
    digest: Digest
    size: int
    media_type: str
    pushed: tuple[Digest, ...] = ()
    existed: tuple[Digest, ...] = ()
    mounted: tuple[Digest, ...] = ()


@dataclass(frozen=True)
class _LayerPlan:
    """How one layer gets to the registry (decided on the main thread)."""

    record: LayerRecord
    known: Descriptor | None  # the registry blob, when its digest is known beforehand
    local: Digest | None  # the stored blob to read
    compress: bool  # compress ``local`` on the fly (it is an uncompressed tar)
    mount_from: tuple[str, ...]


@dataclass(frozen=True)
class _Outcome:
    desc: Descriptor
    how: Literal["pushed", "existed", "mounted"]
    compressed: bool = False


def _say(rep: Reporter, ident: str, status: str, current: int | None = None,
         total: int | None = None) -> None:
    rep.report(ProgressEvent(ident, status, current, total))


def _layer_type(compression: str, fmt: ManifestFormat) -> str:
    comp: mediatypes.Compression = "gzip" if compression == "gzip" else \
        "zstd" if compression == "zstd" else "none"
    return mediatypes.layer_media_type(comp, docker=fmt == "docker")


class _Pusher:
    """Pushes one image's blobs and manifest into one repository."""

    def __init__(self, store: ImageStore, client: RegistryClient, ref: Reference,
                 options: PushOptions) -> None:
        self.store = store
        self.client = client
        self.ref = ref
        self.repo = ref.path
        self.options = options
        self.rep = options.reporter
        self.history = BlobHistory(store.meta)
        self._lock = threading.Lock()

    # --- planning (main thread: the metadata store is not shared with workers) --------

    def plan(self, img: ResolvedImage) -> list[_LayerPlan]:
        plans: list[_LayerPlan] = []
        for rec in img.layers:
            media = rec.blob_media_type or mediatypes.OCI_LAYER
            comp = mediatypes.layer_compression(media)
            local = rec.blob_digest if rec.blob_digest is not None and \
                self.store.content.exists(rec.blob_digest) else None
            known: Descriptor | None = None
            compress = False
            if comp == "none":
                mapped = self.history.compressed(rec.diff_id, "gzip")
                if mapped is not None:
                    known = Descriptor(mediatypes.OCI_LAYER_GZIP, mapped.digest, mapped.size)
                if local is not None:
                    compress = True
            elif rec.blob_digest is not None:
                size = rec.compressed_size
                if local is not None:
                    size = self.store.content.info(local).size
                known = Descriptor(media, rec.blob_digest, size or 0)
            if known is None and local is None:
                raise BlobNotFound(
                    f"layer {rec.diff_id.short} of {self.ref.familiar} has no stored blob to push",
                    hint="pull or load the image again")
            mounts: tuple[str, ...] = ()
            if known is not None and self.options.mount:
                mounts = tuple(r for r in self.history.locations(known.digest, self.ref.domain)
                               if r != self.repo)[:3]
            plans.append(_LayerPlan(rec, known, local, compress, mounts))
        return plans

    # --- one blob (worker threads) ---------------------------------------------------------

    def _exists_or_mount(self, desc: Descriptor, mounts: Sequence[str],
                         ident: str) -> tuple[_Outcome | None, BlobUpload | None]:
        """HEAD, then mounts; returns an outcome, or the upload session a failed mount began."""
        if self.client.blob_exists(self.repo, desc.digest):
            if ident:
                _say(self.rep, ident, "Layer already exists")
            return _Outcome(desc, "existed"), None
        for source in mounts:
            session = self.client.start_upload(self.repo, mount=desc.digest, mount_from=source)
            if session is None:
                if ident:
                    _say(self.rep, ident, f"Mounted from {source}")
                return _Outcome(desc, "mounted"), None
            return None, session  # the registry started a normal upload instead
        return None, None

    def push_layer(self, plan: _LayerPlan) -> _Outcome:
        ident = plan.record.diff_id.short
        session: BlobUpload | None = None
        if plan.known is not None:
            outcome, session = self._exists_or_mount(plan.known, plan.mount_from, ident)
            if outcome is not None:
                return outcome
        assert plan.local is not None
        total = self.store.content.info(plan.local).size

        def progress(n: int) -> None:
            _say(self.rep, ident, "Pushing", n, total)

        _say(self.rep, ident, "Pushing", 0, total)
        local = plan.local
        if not plan.compress:
            assert plan.known is not None
            self.client.upload_blob(
                self.repo, plan.known, lambda: self.store.content.open(local),
                chunk_size=self.options.chunk_size, progress=progress, upload=session)
            _say(self.rep, ident, "Pushed")
            return _Outcome(plan.known, "pushed")
        upload = session or self.client.start_upload(self.repo)
        assert upload is not None
        stream = UploadStream(upload, self.options.chunk_size or DEFAULT_STREAM_CHUNK)
        sink = LayerSink(stream, Compression.GZIP)  # type: ignore[arg-type]
        try:
            with self.store.content.open(plan.local) as fh:
                done = 0
                while chunk := fh.read(_READ):
                    sink.write(chunk)
                    done += len(chunk)
                    progress(done)
            digests = sink.close()
            stream.close()
        except BaseException:
            upload.cancel()
            raise
        if digests.diff_id != plan.record.diff_id:
            upload.cancel()
            raise DigestMismatch(
                f"layer {plan.record.diff_id.short} of {self.ref.familiar}: the stored tar has diff ID "
                f"{digests.diff_id}", hint="the local store is corrupt; rebuild or pull the image")
        upload.finish(digests.digest)
        _say(self.rep, ident, "Pushed")
        return _Outcome(Descriptor(mediatypes.OCI_LAYER_GZIP, digests.digest, digests.size),
                        "pushed", compressed=True)

    def push_config(self, img: ResolvedImage, media_type: str) -> _Outcome:
        desc = Descriptor.of(media_type, img.config_bytes)
        mounts: tuple[str, ...] = ()
        if self.options.mount:
            mounts = tuple(r for r in self.history.locations(desc.digest, self.ref.domain)
                           if r != self.repo)[:3]
        outcome, session = self._exists_or_mount(desc, mounts, "")
        if outcome is not None:
            return outcome
        session = session or self.client.start_upload(self.repo)
        assert session is not None
        session.finish(desc.digest, img.config_bytes, size=desc.size)
        return _Outcome(desc, "pushed")

    # --- the whole image ---------------------------------------------------------------------

    def push_image(self, img: ResolvedImage, reference: str | None) -> PushResult:
        """Push ``img``'s blobs and manifest; tag it ``reference`` (None: by digest only)."""
        plans = self.plan(img)
        for plan in plans:
            _say(self.rep, plan.record.diff_id.short, "Preparing")
        workers = max(1, self.options.max_concurrent)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lamina-push") as pool:
            futures = [pool.submit(self.push_layer, plan) for plan in plans]
            outcomes = [f.result() for f in futures]
        for plan, out in zip(plans, outcomes, strict=True):
            if out.compressed:
                self.history.add_compression(plan.record.diff_id, "gzip", out.desc.digest,
                                             out.desc.size)
        original = self._original_manifest(img, [o.desc.digest for o in outcomes])
        if original is not None:
            data, media_type = original
            manifest = Manifest.from_json(data)
            fmt: ManifestFormat = "docker" if manifest.is_docker else "oci"
        else:
            fmt = self.options.manifest_format
            if any(mediatypes.layer_compression(o.desc.media_type) == "zstd" for o in outcomes):
                fmt = "oci"
        config_type = mediatypes.DOCKER_CONFIG if fmt == "docker" else mediatypes.OCI_CONFIG
        config = self.push_config(img, config_type)
        if original is None:
            layers = tuple(
                Descriptor(_layer_type(mediatypes.layer_compression(o.desc.media_type), fmt),
                           o.desc.digest, o.desc.size) for o in outcomes)
            manifest = Manifest(config=config.desc, layers=layers,
                                media_type=mediatypes.DOCKER_MANIFEST if fmt == "docker"
                                else mediatypes.OCI_MANIFEST)
            data, media_type = manifest.to_json(), manifest.media_type
        digest = Digest.from_bytes(data)
        self.client.put_manifest(self.repo, reference or str(digest), data, media_type)
        self.store.content.put_bytes(data, digest)
        for o in (*outcomes, config):
            self.history.add_location(o.desc.digest, self.ref.domain, self.repo)
        everything = (*outcomes, config)
        return PushResult(
            name=str(self.ref), digest=digest, size=len(data), media_type=media_type,
            pushed=tuple(o.desc.digest for o in everything if o.how == "pushed"),
            existed=tuple(o.desc.digest for o in everything if o.how == "existed"),
            mounted=tuple(o.desc.digest for o in everything if o.how == "mounted"))

    def _original_manifest(self, img: ResolvedImage,
                           layer_digests: list[Digest]) -> tuple[bytes, str] | None:
        """The manifest ``img`` was pulled or pushed with, if it still describes these blobs."""
        seen: set[Digest] = set()
        for ref in self.store.meta.references(img.id):
            if ref.digest is None or ref.digest in seen:
                continue
            seen.add(ref.digest)
            for data in self._manifests_under(ref.digest):
                try:
                    doc = parse_document(data)
                except LaminaError:
                    continue
                if isinstance(doc, Manifest) and doc.config.digest == img.id and \
                        [d.digest for d in doc.layers] == layer_digests:
                    return data, doc.media_type
        return None

    def _manifests_under(self, digest: Digest) -> list[bytes]:
        try:
            data = self.store.content.read_bytes(digest)
        except LaminaError:
            return []
        try:
            doc = parse_document(data)
        except LaminaError:
            return []
        if isinstance(doc, Manifest):
            return [data]
        out = []
        for entry in doc.manifests:
            try:
                out.append(self.store.content.read_bytes(entry.digest))
            except LaminaError:
                continue
        return out


def _resolve(store: ImageStore, ref: Reference, text: str) -> ResolvedImage:
    try:
        return store.resolve(str(ref))
    except ImageNotFound:
        raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar_name}",
                            hint=f"tag an image first: lamina tag IMAGE {text}") from None


def _target(name: str) -> Reference:
    ref = parse_reference(name)
    if ref.digest is not None:
        raise InvalidArgument(f"cannot push a digest reference: {name}",
                              hint="push NAME[:TAG]; the registry computes the digest")
    return ref


def push(store: ImageStore, name: str, options: PushOptions | None = None) -> PushResult:
    """Push the local image ``name`` (``NAME[:TAG]``) to its registry; see the module doc."""
    options = options or PushOptions()
    ref = _target(name)
    img = _resolve(store, ref, name)
    _say(options.reporter, "", f"The push refers to repository [{ref.name}]")
    config = options.config or RegistryConfig.load(store.root)
    with RegistryClient(ref.domain, config=config, credentials=options.credentials,
                        push=True) as client:
        pusher = _Pusher(store, client, ref, options)
        result = pusher.push_image(img, ref.tag or "latest")
    store.meta.set_reference(str(ref), img.id, digest=result.digest)
    _say(options.reporter, "", f"{ref.tag or 'latest'}: digest: {result.digest} size: {result.size}")
    return result


def push_index(store: ImageStore, name: str, images: Sequence[str],
               options: PushOptions | None = None) -> PushResult:
    """Push local ``images`` (one per platform) into ``name``'s repository, by digest, and
    an index listing them (platforms from each config) under ``name``'s tag.

    The index is a Docker manifest list when every manifest is Docker schema 2,
    else an OCI index.  ``name`` itself is not tagged locally.
    """
    options = options or PushOptions()
    ref = _target(name)
    if not images:
        raise InvalidArgument("an index needs at least one image")
    _say(options.reporter, "", f"The push refers to repository [{ref.name}]")
    config = options.config or RegistryConfig.load(store.root)
    entries: list[Descriptor] = []
    pushed: list[Digest] = []
    with RegistryClient(ref.domain, config=config, credentials=options.credentials,
                        push=True) as client:
        pusher = _Pusher(store, client, ref, options)
        for text in images:
            img = store.resolve(text)
            result = pusher.push_image(img, None)
            pushed.extend(result.pushed)
            entries.append(Descriptor(result.media_type, result.digest, result.size,
                                      platform=img.config.platform))
        docker = all(e.media_type == mediatypes.DOCKER_MANIFEST for e in entries)
        index = Index(manifests=tuple(entries),
                      media_type=mediatypes.DOCKER_MANIFEST_LIST if docker else mediatypes.OCI_INDEX)
        data = index.to_json()
        tag = ref.tag or "latest"
        digest = client.put_manifest(ref.path, tag, data, index.media_type)
    _say(options.reporter, "", f"{tag}: digest: {digest} size: {len(data)}")
    return PushResult(str(ref), digest, len(data), index.media_type, pushed=tuple(pushed))

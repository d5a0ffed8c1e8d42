"""Pull: an image from a registry into the local image store.

The steps, as ``docker pull`` takes them::

    name ─parse→ registry + repository + tag/digest
         ─GET manifest→ an index?  pick the entry for the platform (host, or --platform)
                                   and GET that manifest by digest
         ─GET config blob (verified)→ diff IDs of the layers
         ─for each layer: unpacked already (chain ID known)?   "Already exists"
                          blob stored already?                   read it in place
                          else download it (in parallel, verified while streaming,
                               resumed with Range after a cut) into the content store
         ─unpack the layers in order, each as soon as it is there (ImageStore.add_image)
         ─name → image, recording the digest the tag resolved to (RepoDigests)

Everything fetched is checked against its digest before it is used; a blob that does
not match is thrown away (:class:`~lamina.errors.DigestMismatch`) and nothing is
recorded.  A download cut off part-way keeps its bytes in the content store's ingest,
so running the pull again fetches only what is missing.

Progress goes to a :class:`~lamina.registry.progress.Reporter` in Docker's words
(``latest: Pulling from library/busybox``, ``<id>: Pull complete``, ``Digest: …``,
``Status: …``); the CLI renders it.

:func:`ensure_image` is what the builder and ``run`` call: the image by name, pulled
first when the pull policy says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Literal

from lamina.digest import Digest
from lamina.errors import (
    ImageNotFound,
    InvalidArgument,
    InvalidManifest,
    LaminaError,
    NotFound,
    RegistryError,
)
from lamina.images.store import ImageStore, LayerInput, ResolvedImage, docker_arch
from lamina.layer.chain import chain_ids
from lamina.metadata._registry import BlobHistory
from lamina.oci import Descriptor, ImageConfig, Index, Manifest, Platform, mediatypes
from lamina.reference import Reference, is_image_id, parse_reference
from lamina.registry.client import FetchedManifest, RegistryClient
from lamina.registry.config import RegistryConfig
from lamina.registry.credentials import CredentialStore
from lamina.registry.progress import NullReporter, ProgressEvent, Reporter

__all__ = [
    "PullOptions",
    "PullPolicy",
    "PullResult",
    "ensure_image",
    "host_platform",
    "pull",
]

PullPolicy = Literal["missing", "always", "never"]
"""When :func:`ensure_image` pulls: only if the image is not here, every time, or never."""


def host_platform() -> Platform:
    """The platform images are pulled for by default (``linux/<this machine's arch>``)."""
    return Platform("linux", docker_arch()).normalized()


@dataclass(frozen=True)
class PullOptions:
    """How to pull.

    ``platform`` picks the entry of a multi-platform index (default: this host) and,
    when given, must match a single-platform image's config.  ``max_concurrent``
    layers download at once; a connection lost mid-layer is resumed up to ``retries``
    times before the pull fails (a rerun resumes it again).  ``config`` (mirrors,
    insecure registries) defaults to the store root's ``config.json`` and the
    environment; ``credentials`` to Docker's config file.
    """

    platform: Platform | None = None
    max_concurrent: int = 3
    retries: int = 2
    reporter: Reporter = field(default_factory=NullReporter)
    config: RegistryConfig | None = None
    credentials: CredentialStore | None = None


@dataclass(frozen=True)
class PullResult:
    """What a pull did.

    ``name`` is the full reference recorded (``docker.io/library/busybox:latest``);
    ``digest`` what the tag resolved to in the registry (an index or a manifest: the
    RepoDigest), ``manifest_digest`` the platform manifest used.  ``downloaded`` lists
    the blobs fetched, ``existing`` the layers that were already here.
    """

    name: str
    image_id: Digest
    digest: Digest
    manifest_digest: Digest
    platform: Platform
    downloaded: tuple[Digest, ...]
    existing: tuple[Digest, ...]
    up_to_date: bool

    @property
    def familiar(self) -> str:
        return parse_reference(self.name).familiar


def _short(d: Digest) -> str:
    return d.short


def _config_platform(cfg: ImageConfig) -> Platform:
    return cfg.platform.normalized()


def _fetch_top(client: RegistryClient, ref: Reference) -> FetchedManifest:
    """The document the tag/digest names, trying each endpoint (mirrors first)."""
    target = str(ref.digest) if ref.digest is not None else (ref.tag or "latest")
    endpoints = client.endpoints
    last: LaminaError | None = None
    for i, ep in enumerate(endpoints):
        if len(endpoints) > 1:
            client.use_endpoint(ep)
        try:
            return client.get_manifest(ref.path, target)
        except RegistryError as exc:
            if not ep.mirror or i == len(endpoints) - 1:
                raise
            last = exc  # a mirror that fails or lacks the image: try the next endpoint
    assert last is not None
    raise last


class _Pull:
    """One pull's state: the reporter, the client, the downloads in flight."""

    def __init__(self, store: ImageStore, ref: Reference, options: PullOptions,
                 client: RegistryClient) -> None:
        self.store = store
        self.ref = ref
        self.options = options
        self.client = client
        self.rep = options.reporter
        self.cancelled = threading.Event()

    def say(self, ident: str, status: str, current: int | None = None,
            total: int | None = None) -> None:
        self.rep.report(ProgressEvent(ident, status, current, total))

    def download(self, desc: Descriptor) -> Digest:
        ident = _short(desc.digest)

        def progress(n: int) -> None:
            if self.cancelled.is_set():  # the pull failed elsewhere: stop, keep the bytes
                raise RegistryError(f"download of {ident} cancelled", code="cancelled")
            self.say(ident, "Downloading", n, desc.size)

        self.say(ident, "Downloading", 0, desc.size)
        dgst = self.client.fetch_blob(self.ref.path, desc, self.store.content,
                                      progress=progress, retries=self.options.retries)
        self.say(ident, "Verifying Checksum")
        self.say(ident, "Download complete")
        return dgst


def _resolve_platform_manifest(client: RegistryClient, ref: Reference, top: FetchedManifest,
                               want: Platform) -> tuple[Manifest, bytes]:
    if not top.is_index:
        return Manifest.from_json(top.data), top.data
    index = Index.from_json(top.data)
    entry = index.select(want)
    fetched = client.get_manifest(ref.path, str(entry.digest))
    if fetched.is_index:
        raise InvalidManifest(f"{ref.name}: nested indexes are not supported",
                              hint="pull the inner index by its digest")
    return Manifest.from_json(fetched.data), fetched.data


def pull(store: ImageStore, name: str, options: PullOptions | None = None) -> PullResult:
    """Pull ``name`` (``NAME[:TAG|@DIGEST]``) into ``store``; see the module doc."""
    options = options or PullOptions()
    ref = parse_reference(name)
    if parse_reference(name, default_tag=None).tag is None and ref.digest is None:
        options.reporter.report(ProgressEvent("", "Using default tag: latest"))
    config = options.config or RegistryConfig.load(store.root)
    with RegistryClient(ref.domain, config=config, credentials=options.credentials) as client:
        return _pull(store, ref, options, client)


def _pull(store: ImageStore, ref: Reference, options: PullOptions,
          client: RegistryClient) -> PullResult:
    p = _Pull(store, ref, options, client)
    tag_or_digest = str(ref.digest) if ref.digest is not None else (ref.tag or "latest")
    p.say(tag_or_digest, f"Pulling from {ref.path}")
    top = _fetch_top(client, ref)
    want = options.platform or host_platform()
    manifest, manifest_bytes = _resolve_platform_manifest(client, ref, top, want)
    manifest.check_image()
    config_bytes = client.read_blob(ref.path, manifest.config)
    cfg = ImageConfig.from_json(config_bytes)
    got = _config_platform(cfg)
    if not top.is_index and options.platform is not None and not options.platform.matches(got):
        raise NotFound(
            f"image with reference {ref.familiar} was found but does not match the specified "
            f"platform: wanted {options.platform}, actual: {got}",
            hint="pull without --platform, or pick a platform the image is built for",
            code="platform-not-found")
    diff_ids = list(cfg.rootfs.diff_ids)
    if len(diff_ids) != len(manifest.layers):
        raise InvalidManifest(
            f"{ref.familiar}: the manifest lists {len(manifest.layers)} layers but the config "
            f"{len(diff_ids)} diff IDs", hint="the image in the registry is broken")
    image_id = Digest.from_bytes(config_bytes)
    full_name = str(ref)
    previous = store.meta.find_reference(full_name)
    chains = chain_ids(diff_ids)

    downloaded: list[Digest] = []
    existing: list[Digest] = []
    history = BlobHistory(store.meta)
    pool = ThreadPoolExecutor(max_workers=max(1, options.max_concurrent),
                              thread_name_prefix="lamina-pull")
    try:
        with store.operation() as undo:
            futures: dict[Digest, Future[Digest]] = {}
            inputs: list[LayerInput] = []
            pending: list[str] = []  # layers unpacked but not yet reported complete

            def opener(desc: Descriptor) -> Callable[[], IO[bytes]]:
                def open_blob() -> IO[bytes]:
                    fut = futures.get(desc.digest)
                    if fut is not None:
                        fut.result()  # wait for its download (re-raises its error)
                    while pending:
                        p.say(pending.pop(), "Pull complete")
                    ident = _short(desc.digest)
                    p.say(ident, "Extracting")
                    pending.append(ident)
                    return store.content.open(desc.digest)
                return open_blob

            for desc, diff_id, chain in zip(manifest.layers, diff_ids, chains, strict=True):
                ident = _short(desc.digest)
                if store.ready_layer(chain) is not None:
                    p.say(ident, "Already exists")
                    existing.append(desc.digest)
                    inputs.append(LayerInput(opener(desc), desc.media_type, None, diff_id))
                    continue
                if desc.digest not in futures and not store.content.exists(desc.digest):
                    p.say(ident, "Pulling fs layer")
                    futures[desc.digest] = pool.submit(p.download, desc)
                    downloaded.append(desc.digest)
                inputs.append(LayerInput(opener(desc), desc.media_type, desc.digest, diff_id))
            try:
                store.add_image(config_bytes, inputs, undo=undo)
            except BaseException:
                p.cancelled.set()
                raise
            while pending:
                p.say(pending.pop(), "Pull complete")
            # the documents the name resolved through, so inspect and push can find them
            store.content.put_bytes(top.data, top.digest)
            if top.is_index:
                store.content.put_bytes(manifest_bytes)
            store.meta.set_reference(full_name, image_id, digest=top.digest)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    for desc, diff_id in zip(manifest.layers, diff_ids, strict=True):
        compression = mediatypes.layer_compression(desc.media_type)
        if compression != "none":
            history.add_compression(diff_id, compression, desc.digest, desc.size)
        history.add_location(desc.digest, ref.domain, ref.path)
    history.add_location(manifest.config.digest, ref.domain, ref.path)

    up_to_date = previous is not None and previous.image_id == image_id and not downloaded
    p.say("", f"Digest: {top.digest}")
    if up_to_date:
        p.say("", f"Status: Image is up to date for {ref.familiar}")
    else:
        p.say("", f"Status: Downloaded newer image for {ref.familiar}")
    return PullResult(full_name, image_id, top.digest, Digest.from_bytes(manifest_bytes), got,
                      tuple(downloaded), tuple(existing), up_to_date)


def ensure_image(store: ImageStore, name: str, pull_policy: PullPolicy = "missing",
                 *, options: PullOptions | None = None) -> ResolvedImage:
    """The image ``name``, pulled first as ``pull_policy`` says.

    ``missing`` pulls only when no local image has the name; ``always`` pulls every
    time (a no-op download when nothing changed: ``build --pull``); ``never`` raises
    ImageNotFound rather than pull.  A name that is an image ID is never pulled.
    """
    if pull_policy not in ("missing", "always", "never"):
        raise InvalidArgument(f"unknown pull policy {pull_policy!r}",
                              hint="use missing, always or never")
    if pull_policy != "always" or is_image_id(name.removeprefix("sha256:")):
        try:
            return store.resolve(name)
        except ImageNotFound:
            if pull_policy == "never":
                raise
    result = pull(store, name, options)
    return store.resolve(result.name)

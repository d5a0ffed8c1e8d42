"""Adapters that let level-3 tools read images from the local store.

:mod:`lamina.analyze` reads images through its ``ImageSource`` protocol and the linter
asks a ``BaseFactsHook`` about base images; neither may import the image store (they
sit at the same level).  This module, above both, provides store-backed versions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from lamina.analyze.source import LayerBlob
    from lamina.images.store import ImageStore, ResolvedImage
    from lamina.lint import BaseFacts

__all__ = ["StoreImageSource", "base_facts_from_store", "store_opener"]


class StoreImageSource:
    """An image in the local store, seen as an ``analyze`` image source.

    Layers are read from their blobs (uncompressed on the fly when compressed).
    """

    def __init__(self, store: ImageStore, name: str) -> None:
        self._store = store
        self._name = name
        self._image: ResolvedImage = store.resolve(name)

    @property
    def description(self) -> str:
        return self._name

    def config_bytes(self) -> bytes:
        return self._image.config_bytes

    def layers(self) -> tuple[LayerBlob, ...]:
        from lamina.analyze.source import LayerBlob

        out = []
        for i, rec in enumerate(self._image.layers):
            dgst = rec.blob_digest
            out.append(LayerBlob(index=i, location=str(dgst) if dgst else "",
                                 digest=str(dgst) if dgst else "",
                                 stored_size=rec.compressed_size or rec.uncompressed_size,
                                 media_type=rec.blob_media_type or ""))
        return tuple(out)

    @contextlib.contextmanager
    def _open(self, layer: LayerBlob) -> Iterator[BinaryIO]:
        from lamina.digest import Digest
        from lamina.layer import open_decompressed

        raw = self._store.content.open(Digest.parse(layer.location))
        try:
            if layer.media_type.endswith((".tar", "diff.tar")) or layer.media_type == "":
                yield raw
            else:
                stream, _ = open_decompressed(raw)
                yield stream
        finally:
            raw.close()

    def open_layer(self, layer: LayerBlob) -> contextlib.AbstractContextManager[BinaryIO]:
        return self._open(layer)

    def close(self) -> None:
        pass

    def __enter__(self) -> StoreImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def store_opener(root: str | Path) -> object:
    """A ``StoreOpener`` for :func:`lamina.analyze.open_source` over the store at ``root``."""
    from lamina.images.store import ImageStore

    store = ImageStore(root)

    def opener(name: str) -> StoreImageSource:
        return StoreImageSource(store, name)

    return opener


def base_facts_from_store(root: str | Path) -> object:
    """A linter ``BaseFactsHook``: the OS and users of a base image found in the store.

    Returns ``None`` for images that are not stored locally (the linter then stays quiet
    rather than guess).  Files are read from the image's unpacked layer directories,
    top layer first, honouring overlay whiteouts.
    """
    from lamina.errors import LaminaError
    from lamina.images.store import ImageStore
    from lamina.lint import BaseFacts

    store: ImageStore | None = None

    def read(img: ResolvedImage, rel: str) -> str | None:
        assert store is not None
        for rec in reversed(img.layers):
            try:
                fs = store.snapshots.fs_path(str(rec.chain_id))
            except LaminaError:
                return None
            p = fs / rel
            if p.is_symlink() and rel == "etc/os-release":
                target = (p.parent / p.readlink()).resolve().relative_to(fs.resolve()) \
                    if not p.readlink().is_absolute() else Path(str(p.readlink()).lstrip("/"))
                return read(img, str(target))
            if p.exists():
                st = p.lstat()
                if (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0:
                    return None  # deleted by this layer (overlay whiteout)
                try:
                    return p.read_text(errors="replace")
                except OSError:
                    return None
        return None

    def hook(name: str) -> BaseFacts | None:
        nonlocal store
        try:
            if store is None:
                store = ImageStore(root)
            img = store.resolve(name)
        except LaminaError:
            return None
        osr = read(img, "etc/os-release") or read(img, "usr/lib/os-release") or ""
        os_id, like = "", ""
        for line in osr.splitlines():
            if line.startswith("ID="):
                os_id = line[3:].strip().strip('"')
            elif line.startswith("ID_LIKE="):
                like = line[8:].strip().strip('"')
        users = tuple(ln.split(":", 1)[0] for ln in (read(img, "etc/passwd") or "").splitlines()
                      if ln and not ln.startswith("#"))
        groups = tuple(ln.split(":", 1)[0] for ln in (read(img, "etc/group") or "").splitlines()
                       if ln and not ln.startswith("#"))
        return BaseFacts(os_id=os_id or None, os_id_like=tuple(like.split()),
                         users=frozenset(users), groups=frozenset(groups))

    return hook

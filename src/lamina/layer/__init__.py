"""lamina.layer: layer tarballs -- write, apply, diff, compress, whiteouts, chain IDs.

A layer is a tar of the files one build step (or one container) added or changed,
plus *whiteouts* for what it deleted.  This package turns directories into layers
and back:

* :func:`write_layer` -- a directory (or an overlayfs upper dir) → a reproducible,
  compressed layer; returns its diffID, blob digest and size from one pass
  (:mod:`~lamina.layer.tarwriter`).
* :func:`apply_layer` -- a layer stream → files in a directory (a full rootfs, or
  an overlay lowerdir with ``overlay=True``), refusing archives that try to
  escape (:mod:`~lamina.layer.apply`).
* :func:`changes` / :func:`diff_dirs` -- what an overlay upper dir changed relative
  to its lower layers, as ``docker diff`` reports it (:mod:`~lamina.layer.diff`).
* :func:`chain_ids` -- the IDs of layer stacks (:mod:`~lamina.layer.chain`).
* :class:`Compression`, :func:`open_decompressed`, :class:`LayerSink` -- the codecs
  (:mod:`~lamina.layer.compression`).

Submodules are imported on first use, so ``import lamina.layer`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamina.layer._errors import LayerIOError
    from lamina.layer.apply import ApplyStats, apply_layer
    from lamina.layer.chain import chain_id, chain_ids
    from lamina.layer.compression import (
        Compression,
        LayerDigests,
        LayerSink,
        detect_compression,
        open_decompressed,
    )
    from lamina.layer.diff import Change, ChangeKind, changes, diff_dirs
    from lamina.layer.tarwriter import LayerStats, source_date_epoch_from_env, write_layer

__all__ = [
    "ApplyStats",
    "Change",
    "ChangeKind",
    "Compression",
    "LayerDigests",
    "LayerIOError",
    "LayerSink",
    "LayerStats",
    "apply_layer",
    "chain_id",
    "chain_ids",
    "changes",
    "detect_compression",
    "diff_dirs",
    "open_decompressed",
    "source_date_epoch_from_env",
    "write_layer",
]

_WHERE = {
    "ApplyStats": "apply",
    "apply_layer": "apply",
    "chain_id": "chain",
    "chain_ids": "chain",
    "Compression": "compression",
    "LayerDigests": "compression",
    "LayerSink": "compression",
    "detect_compression": "compression",
    "open_decompressed": "compression",
    "Change": "diff",
    "ChangeKind": "diff",
    "changes": "diff",
    "diff_dirs": "diff",
    "LayerIOError": "_errors",
    "LayerStats": "tarwriter",
    "write_layer": "tarwriter",
    "source_date_epoch_from_env": "tarwriter",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lamina.layer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lamina.layer.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

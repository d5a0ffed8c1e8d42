"""Errors of :mod:`lamina.layer` beyond the shared tree in :mod:`lamina.errors`."""

from __future__ import annotations

from lamina.errors import LaminaError

__all__ = ["LayerIOError"]


class LayerIOError(LaminaError):
    """The filesystem refused an operation while writing or applying a layer.

    Raised for ``OSError`` at the package edge (a full disk, a permission problem,
    an unreadable source file); it names the path and the operation.  Problems
    with the *archive* itself are :class:`~lamina.errors.InvalidArchive`.
    """

    code = "layer-io"

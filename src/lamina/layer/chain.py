"""Chain IDs: one identifier for "this layer on top of exactly these layers".

A diffID names one layer's content; the same layer can sit on different stacks.
An unpacked snapshot, though, is the *stack*, so it is keyed by the chain ID::

    ChainID(L0) = DiffID(L0)
    ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))     (text digests, "sha256:<hex>")

>>> from lamina.digest import Digest
>>> a = Digest.from_bytes(b"a"); b = Digest.from_bytes(b"b")
>>> chain_ids([a])[0] == a
True
>>> chain_ids([a, b])[1] == Digest.from_bytes(f"{a} {b}".encode())
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from lamina.digest import Digest

__all__ = ["chain_id", "chain_ids"]


def chain_ids(diff_ids: Iterable[Digest]) -> list[Digest]:
    """The chain ID of every prefix of ``diff_ids`` (bottom layer first)."""
    out: list[Digest] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            text = f"{out[-1]} {diff_id}".encode()
            out.append(Digest("sha256", hashlib.sha256(text).hexdigest()))
    return out


def chain_id(diff_ids: Iterable[Digest]) -> Digest | None:
    """The chain ID of the whole stack, or None for no layers."""
    ids = chain_ids(diff_ids)
    return ids[-1] if ids else None

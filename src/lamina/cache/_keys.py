"""Cache keys: a digest over a step's parent key and its definition.

A build step's *definition* is a JSON-able mapping of everything that decides its
result once variables are expanded: for ``RUN`` the argv, environment, working
directory, user, network and mounts; for ``COPY`` the sources' content checksum,
the destination and the flags.  Its cache key chains the parent's key in, so a
change anywhere above a step changes that step's key too (a miss cascades)::

    >>> base = step_key(None, {"base": "sha256:aa"})
    >>> k1 = step_key(base, {"op": "run", "args": ["sh", "-c", "make"]})
    >>> k1 == step_key(base, {"op": "run", "args": ["sh", "-c", "make"]})
    True
    >>> k1 == step_key(step_key(None, {"base": "sha256:bb"}), {"op": "run", "args": ["sh", "-c", "make"]})
    False

Keys are lower-case sha256 hex strings.  The definition is serialised with sorted
keys and no whitespace, so dict order never matters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["canonical", "step_key"]


def canonical(value: Any) -> bytes:
    """``value`` as compact JSON with sorted keys (the bytes keys are computed from)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def step_key(parent: str | None, definition: Mapping[str, Any]) -> str:
    """The cache key of a step with ``definition`` stacked on the step keyed ``parent``."""
    h = hashlib.sha256()
    h.update(b"lamina-build-v1\x00")
    h.update((parent or "").encode())
    h.update(b"\x00")
    h.update(canonical(definition))
    return h.hexdigest()

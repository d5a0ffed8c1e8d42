"""OCI bundles: a directory holding ``config.json`` for a runtime to start.

The rootfs itself need not live in the bundle: ``root.path`` in the config may point
anywhere (lamina points it at the container's mounted snapshot), so making a bundle is
one small file write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["read_bundle", "write_bundle"]


def write_bundle(bundle: str | os.PathLike[str], spec: dict[str, Any]) -> Path:
    """Write ``spec`` as ``<bundle>/config.json`` (creating ``bundle``); return the file.

    Compact JSON, written to a temporary name and renamed, so a runtime never reads a
    half-written config.
    """
    d = Path(bundle)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "config.json"
    tmp = d / ".config.json.tmp"
    data = json.dumps(spec, separators=(",", ":")).encode()
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def read_bundle(bundle: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of ``bundle``, parsed."""
    with open(Path(bundle) / "config.json", "rb") as f:
        doc: dict[str, Any] = json.load(f)
    return doc

"""Volumes: directories under ``<root>/volumes/<name>/_data`` that outlive containers.

A volume is Docker's ``local`` driver volume: a plain directory on the host,
bind-mounted into containers.  Two kinds:

* **named** -- ``volume create data`` or ``run -v data:/var/lib/data`` (made on first
  use); removed only by ``volume rm`` or ``volume prune --all``;
* **anonymous** -- made for each ``VOLUME`` path of the image and each ``-v /path``,
  named by 64 random hex digits; ``rm -v`` (and ``run --rm``) removes them with their
  container, ``volume prune`` removes unused ones.

A volume that is empty when a container mounts it is first filled with what the
image has at the mount point (:func:`lamina.containers.fs.copy_tree_contents`), as
Docker does.  Which container uses which volume is recorded in the metadata store,
so a volume in use cannot be removed.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lamina.errors import InvalidArgument
from lamina.metadata import MetadataStore, VolumeRecord, VolumeTable

from .spec import VOLUME_NAME

__all__ = ["PruneResult", "VolumeStore"]


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What ``volume prune`` removed, and how many bytes that freed."""

    deleted: tuple[str, ...]
    reclaimed: int


def _du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


class VolumeStore:
    """The volumes of one lamina root (``<root>/volumes``)."""

    def __init__(self, root: str | os.PathLike[str], meta: MetadataStore) -> None:
        self.dir = Path(root) / "volumes"
        self.meta = meta
        self.table = VolumeTable(meta)

    def path(self, name: str) -> Path:
        """The directory containers see: ``volumes/<name>/_data``."""
        return self.dir / name / "_data"

    def create(self, name: str | None = None, *, labels: Mapping[str, str] | None = None,
               driver: str = "local", anonymous: bool = False) -> VolumeRecord:
        """Create volume ``name`` (random hex when ``None``); an existing one is returned."""
        if driver != "local":
            raise InvalidArgument(f"volume driver {driver!r} is not supported",
                                  hint="lamina has the local driver only")
        if name is None:
            name = secrets.token_hex(32)
            anonymous = True
        elif not VOLUME_NAME.match(name):
            raise InvalidArgument(
                f'create {name}: "{name}" includes invalid characters for a local volume '
                'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
                "a host directory, use absolute path",
                hint="volume names use letters, digits, _ . and -",
            )
        existing = self.table.find(name)
        if existing is not None:
            self.path(name).mkdir(parents=True, exist_ok=True)
            return existing
        data = self.path(name)
        data.parent.mkdir(parents=True, exist_ok=True, mode=0o701)
        data.mkdir(exist_ok=True, mode=0o755)
        record = VolumeRecord(name=name, created=datetime.now(UTC), driver=driver,
                              labels=tuple(sorted((labels or {}).items())), anonymous=anonymous)
        return self.table.add(record)

    def get(self, name: str) -> VolumeRecord:
        """The volume ``name``; ``VolumeNotFound`` (``get X: no such volume``) if absent."""
        return self.table.get(name)

    def all(self) -> list[VolumeRecord]:
        """Every volume, by name."""
        return self.table.all()

    def in_use(self, name: str) -> list[str]:
        """IDs of the containers using ``name``."""
        return self.table.users(name)

    def remove(self, name: str, *, force: bool = False) -> bool:
        """Delete a volume and its files; refused (Conflict) while a container uses it.

        With ``force`` a missing volume is not an error.  Returns whether one was removed.
        """
        if force and self.table.find(name) is None:
            return False
        self.table.delete(name)
        shutil.rmtree(self.dir / name, ignore_errors=True)
        return True

    def prune(self, *, all_volumes: bool = False,
              labels: Mapping[str, str] | None = None) -> PruneResult:
        """Remove unused volumes: anonymous ones, or every unused one with ``all_volumes``."""
        deleted: list[str] = []
        reclaimed = 0
        for vol in self.all():
            if not (vol.anonymous or all_volumes):
                continue
            if labels and any(dict(vol.labels).get(k) != v for k, v in labels.items()):
                continue
            if self.in_use(vol.name):
                continue
            reclaimed += _du(self.dir / vol.name)
            self.remove(vol.name)
            deleted.append(vol.name)
        return PruneResult(tuple(deleted), reclaimed)

    def is_empty(self, name: str) -> bool:
        """Whether the volume's directory holds nothing (so it may be filled from an image)."""
        with os.scandir(self.path(name)) as it:
            return next(it, None) is None

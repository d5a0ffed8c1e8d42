"""The persistent build cache: step key → the layer that step produced.

The builder asks :meth:`BuildCache.lookup` before running a step that makes a layer.
A hit returns a :class:`CacheHit` (the layer, and the time it was first made, which
becomes the image history's ``created`` so a fully cached rebuild writes the very same
config and hence the same image ID).  After running a step the builder calls
:meth:`BuildCache.put`.

Besides results the cache keeps, for every *step slot* (a Dockerfile, a stage, the
n-th layer step in it), the inputs it saw last time (:meth:`last_inputs` /
:meth:`remember_inputs`).  On a miss, comparing them with today's inputs says why the
step runs again: a changed file, build arg or ENV, or a changed parent.

Rows live in the metadata database (tables ``build_cache`` and ``build_steps``); the
image store's garbage collector keeps every layer a ``build_cache`` row names, and
:meth:`prune` drops rows (``builder prune``) so the next GC frees their layers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lamina.digest import Digest

if TYPE_CHECKING:
    from lamina.metadata import LayerRecord, MetadataStore

__all__ = ["BuildCache", "CacheEntry", "CacheHit"]


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class CacheHit:
    """A cached step result: its layer and the RFC 3339 time it was made."""

    layer: LayerRecord
    created: str


@dataclass(frozen=True)
class CacheEntry:
    """One row of the cache, as ``builder du`` lists it."""

    key: str
    chain_id: Digest
    created: str
    description: str
    last_used: datetime


class BuildCache:
    """Build step results in ``meta`` (see the module docstring)."""

    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta
        self._used: list[str] = []

    def lookup(self, key: str) -> CacheHit | None:
        """The layer step ``key`` produced before, or ``None`` (one query)."""
        from lamina.metadata._store import _layer

        row = self.meta._q(
            "SELECT l.*, c.created AS step_created FROM build_cache c"
            " JOIN layers l ON l.chain_id = c.chain_id WHERE c.key = ?", (key,)).fetchone()
        if row is None:
            return None
        self._used.append(key)
        return CacheHit(_layer(row), row["step_created"])

    def put(self, key: str, layer: LayerRecord, created: str, description: str = "") -> None:
        """Remember that step ``key`` made ``layer`` (already recorded in ``layers``)."""
        self.meta._q(
            "INSERT INTO build_cache (key, chain_id, created, description, last_used)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET chain_id = excluded.chain_id,"
            " created = excluded.created, description = excluded.description,"
            " last_used = excluded.last_used",
            (key, str(layer.chain_id), created, description[:500], _now()))

    def touch_used(self) -> None:
        """Mark every key :meth:`lookup` hit as used now (one transaction)."""
        if not self._used:
            return
        now = _now()
        with self.meta.transaction():
            self.meta._db.executemany("UPDATE build_cache SET last_used = ? WHERE key = ?",
                                      [(now, k) for k in self._used])
        self._used.clear()

    # --- why a step missed ------------------------------------------------------------

    def last_inputs(self, slot: str) -> tuple[str, dict[str, Any]] | None:
        """``(key, inputs)`` recorded for ``slot`` by the last build that ran it."""
        row = self.meta._q("SELECT key, inputs FROM build_steps WHERE slot = ?", (slot,)).fetchone()
        if row is None:
            return None
        inputs: dict[str, Any] = json.loads(row["inputs"])
        return row["key"], inputs

    def remember_inputs(self, items: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
        """Record ``(slot, key, inputs)`` for the steps that ran (one transaction)."""
        rows = [(slot, key, json.dumps(inputs, sort_keys=True, separators=(",", ":")), _now())
                for slot, key, inputs in items]
        if not rows:
            return
        with self.meta.transaction():
            self.meta._db.executemany(
                "INSERT INTO build_steps (slot, key, inputs, updated) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(slot) DO UPDATE SET key = excluded.key, inputs = excluded.inputs,"
                " updated = excluded.updated", rows)

    # --- listing and pruning ------------------------------------------------------------

    def entries(self) -> list[CacheEntry]:
        """Every cached step, most recently used first."""
        rows = self.meta._q("SELECT * FROM build_cache ORDER BY last_used DESC, key")
        return [CacheEntry(r["key"], Digest.parse(r["chain_id"]), r["created"], r["description"],
                           datetime.fromisoformat(r["last_used"])) for r in rows]

    def prune(self, *, older_than: timedelta | None = None) -> int:
        """Forget cached steps (all, or those unused for ``older_than``); returns how many.

        The layers stay until the image store's garbage collector runs (``prune``):
        those that no image uses are then deleted.  Remembered inputs and file digests
        go too when everything is pruned; build memo rows (``memo:`` slots, see
        :mod:`lamina.build.memo`) go on every prune.
        """
        with self.meta.transaction():
            if older_than is None:
                n = self.meta._q("DELETE FROM build_cache").rowcount
                self.meta._q("DELETE FROM build_steps")
                self.meta._q("DELETE FROM build_file_digests")
            else:
                cutoff = (datetime.now(UTC) - older_than).isoformat()
                n = self.meta._q("DELETE FROM build_cache WHERE last_used < ?", (cutoff,)).rowcount
                self.meta._q("DELETE FROM build_steps WHERE slot LIKE 'memo:%'")
        return int(n)

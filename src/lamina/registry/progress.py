"""Progress of transfers, as events a front end renders (library code never prints).

A transfer reports what happens through a :class:`Reporter`: each
:class:`ProgressEvent` is one of Docker's progress messages -- an ``id`` (a layer's
short digest, a tag, or empty for the whole operation), a ``status`` in Docker's
words and, while bytes move, ``current``/``total``::

    latest: Pulling from library/busybox          id="latest"
    a58ecd4f0c86: Pulling fs layer                id="a58ecd4f0c86"
    a58ecd4f0c86: Downloading   [====>   ]        ... current=1048576, total=2220094
    a58ecd4f0c86: Pull complete
    Digest: sha256:…                              id=""

The CLI shows byte progress as bars on a terminal and, elsewhere, only the lines
without ``current`` -- as ``docker pull`` does when its output is not a TTY.
Reporters are called from worker threads: implementations must be thread-safe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ListReporter", "NullReporter", "ProgressEvent", "Reporter"]


@dataclass(frozen=True)
class ProgressEvent:
    """One progress message (see the module doc)."""

    id: str
    status: str
    current: int | None = None
    total: int | None = None

    @property
    def line(self) -> str:
        """The message as one line of Docker's plain output (``id: status``)."""
        return f"{self.id}: {self.status}" if self.id else self.status


class Reporter(Protocol):
    """Receives progress events; must be safe to call from several threads."""

    def report(self, event: ProgressEvent) -> None: ...


class NullReporter:
    """Drops every event."""

    def report(self, event: ProgressEvent) -> None:
        return None


class ListReporter:
    """Keeps every event, in order (for tests and for callers that render later)."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self._lock = threading.Lock()

    def report(self, event: ProgressEvent) -> None:
        with self._lock:
            self.events.append(event)

    def lines(self) -> list[str]:
        """The plain output lines (events without byte counts)."""
        with self._lock:
            return [e.line for e in self.events if e.current is None]

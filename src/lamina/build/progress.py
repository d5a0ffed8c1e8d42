"""Build progress as events, in the shape of BuildKit's "vertices".

The builder never prints.  It sends events to a :class:`Reporter`, and the CLI turns
them into BuildKit-style plain output::

    #4 [2/5] COPY requirements.txt .
    #4 CACHED

    #5 [3/5] RUN make
    #5 cache miss: build arg VERSION changed (1 -> 2)
    #5 0.213 compiling...
    #5 DONE 1.2s

Every vertex has a number (``#N``) and a name; it gets :class:`Started`, then either
:class:`Cached` or any number of :class:`Log` / :class:`Note` events and :class:`Done`
(or :class:`Failed`).  Reporters must be thread-safe if stages build in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Cached", "Done", "Event", "Failed", "ListReporter", "Log", "Note", "NullReporter",
           "Reporter", "Started"]


@dataclass(frozen=True)
class Started:
    """Vertex ``vertex`` begins; ``name`` is e.g. ``[builder 2/4] RUN make``."""

    vertex: int
    name: str


@dataclass(frozen=True)
class Cached:
    """Vertex ``vertex`` was answered from the cache."""

    vertex: int


@dataclass(frozen=True)
class Note:
    """A remark about a vertex, e.g. why its cache missed."""

    vertex: int
    text: str


@dataclass(frozen=True)
class Log:
    """One line of output of a RUN, ``elapsed`` seconds after it started."""

    vertex: int
    elapsed: float
    line: str


@dataclass(frozen=True)
class Done:
    """Vertex ``vertex`` finished after ``seconds``."""

    vertex: int
    seconds: float


@dataclass(frozen=True)
class Failed:
    """Vertex ``vertex`` failed with ``message``."""

    vertex: int
    message: str


Event = Started | Cached | Note | Log | Done | Failed


class Reporter(Protocol):
    """Receives build events (see the module docstring)."""

    def emit(self, event: Event) -> None:
        """Handle one event; must not raise."""
        ...


class NullReporter:
    """Drops every event (library use without progress)."""

    def emit(self, event: Event) -> None:
        pass


class ListReporter:
    """Keeps every event in :attr:`events` (tests, and callers that render later)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def names(self) -> dict[int, str]:
        """vertex → name, for the vertices that started."""
        return {e.vertex: e.name for e in self.events if isinstance(e, Started)}

    def cached(self) -> list[str]:
        """Names of the vertices answered from the cache, in order."""
        names = self.names()
        return [names[e.vertex] for e in self.events if isinstance(e, Cached)]

    def ran(self) -> list[str]:
        """Names of the steps that ran (missed the cache), in order."""
        names = self.names()
        return [names[e.vertex] for e in self.events
                if isinstance(e, Note) and e.text.startswith("cache miss")]

    def notes(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, Note)]

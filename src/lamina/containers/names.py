"""Container names: checking a chosen one, making up a random one.

Docker names unnamed containers ``<adjective>_<noun>``.  lamina does the same with
its own word lists (a mood and a mineral or tree), retrying when a name is taken.
"""

from __future__ import annotations

import os
import re

from lamina.errors import InvalidArgument

__all__ = ["NAME_RE", "check_name", "random_name"]

#: What Docker accepts as a container name (a leading ``/`` is dropped first).
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_MOODS = (
    "amber", "bold", "brave", "brisk", "calm", "clever", "cosmic", "crisp", "daring",
    "eager", "fearless", "gentle", "glad", "golden", "hardy", "humble", "jolly", "keen",
    "lively", "lucid", "mellow", "merry", "nimble", "noble", "patient", "placid", "proud",
    "quiet", "rapid", "serene", "sharp", "shy", "silent", "steady", "sunny", "swift",
    "tidy", "vivid", "witty", "zesty",
)
_THINGS = (
    "agate", "alder", "aspen", "basalt", "beech", "birch", "cedar", "chert", "cobalt",
    "copper", "cypress", "feldspar", "flint", "garnet", "gneiss", "granite", "hazel",
    "jasper", "juniper", "larch", "linden", "magnolia", "maple", "marble", "mica", "oak",
    "obsidian", "olivine", "onyx", "opal", "pine", "poplar", "quartz", "rowan", "sequoia",
    "slate", "spruce", "topaz", "willow", "yew",
)


def _pick(n: int) -> int:
    """A random index below ``n`` (``os.urandom``: no ``random``/``secrets`` import on ``run``)."""
    return int.from_bytes(os.urandom(4), "little") % n


def check_name(name: str) -> str:
    """``name`` without a leading ``/``; InvalidArgument (Docker's words) if not allowed."""
    bare = name[1:] if name.startswith("/") else name
    if not NAME_RE.match(bare):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            hint="use letters, digits, _ . and -, starting with a letter or digit",
        )
    return bare


def random_name(attempt: int = 0) -> str:
    """A random ``mood_thing`` name; later attempts append a digit, as Docker does."""
    name = f"{_MOODS[_pick(len(_MOODS))]}_{_THINGS[_pick(len(_THINGS))]}"
    return f"{name}{_pick(10)}" if attempt else name

"""lamina.build.dockerfile: reading Dockerfiles.

The parser (:mod:`.parser`) turns text into the syntax tree of :mod:`.ast`;
:mod:`.dump` prints that tree (BuildKit's dump, JSON) or renders it back.

``parse`` and ``parse_file`` load the parser on first use, so importing a sibling
module (the context walk, say) does not import the parser.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

    from lamina.build.dockerfile.parser import parse, parse_file

__all__ = ["parse", "parse_file"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module("lamina.build.dockerfile.parser"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lamina.build.dockerfile' has no attribute {name!r}")

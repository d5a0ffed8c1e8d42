"""lamina.build.dockerfile: reading Dockerfiles.

The parser (:mod:`.parser`) turns text into the syntax tree of :mod:`.ast`;
:mod:`.dump` prints that tree (BuildKit's dump, JSON) or renders it back.
"""

from lamina.build.dockerfile.parser import parse, parse_file

__all__ = ["parse", "parse_file"]

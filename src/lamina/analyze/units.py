"""Byte sizes for people: printing (``5.0 MiB``) and parsing (``20MB``, ``1.5GiB``).

Printing uses binary units (KiB = 1024 B), so "5 MiB" is exactly 5 × 1024 × 1024 bytes.
Parsing accepts both families, like ``dive``'s options do: ``kB``/``MB``/``GB`` are powers
of 1000, ``KiB``/``MiB``/``GiB`` powers of 1024, and a bare number is bytes.

>>> human_size(5 * 1024 * 1024)
'5.0 MiB'
>>> parse_size("20MB"), parse_size("1KiB"), parse_size("512")
(20000000, 1024, 512)
"""

from __future__ import annotations

import re

from lamina.errors import InvalidArgument

__all__ = ["human_size", "parse_size"]

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3,
    "ti": 1024**4, "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def human_size(n: int) -> str:
    """``n`` bytes with a binary unit and one decimal (``B`` without decimals)."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def parse_size(text: str) -> int:
    """Parse a byte size such as ``20MB``, ``1.5GiB`` or ``4096``."""
    m = _SIZE.match(text)
    unit = _UNITS.get(m.group(2).lower()) if m else None
    if m is None or unit is None:
        raise InvalidArgument(
            f"invalid size {text!r}", hint="write bytes, or a number with kB, MB, GB, KiB, MiB or GiB"
        )
    return int(float(m.group(1)) * unit)

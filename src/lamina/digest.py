"""Content digests (``sha256:<hex>``) and verifying readers.

>>> d = Digest.from_bytes(b"hello")
>>> str(d)
'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'
>>> Digest.parse(str(d)) == d
True
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

from lamina.errors import DigestMismatch, InvalidArgument, SizeMismatch

__all__ = ["Digest", "VerifyingReader"]

_HEX = {"sha256": re.compile(r"^[a-f0-9]{64}$"), "sha512": re.compile(r"^[a-f0-9]{128}$")}


@dataclass(frozen=True, order=True)
class Digest:
    """A content digest: algorithm plus lower-case hex."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        pat = _HEX.get(self.algorithm)
        if pat is None:
            raise InvalidArgument(
                f"unsupported digest algorithm {self.algorithm!r}",
                hint="lamina supports sha256 and sha512 digests",
            )
        if not pat.match(self.hex):
            raise InvalidArgument(f"invalid {self.algorithm} digest hex {self.hex!r}")

    @classmethod
    def parse(cls, text: str) -> Digest:
        algo, sep, hexpart = text.partition(":")
        if not sep:
            raise InvalidArgument(
                f"invalid digest {text!r}", hint="a digest looks like sha256:<64 hex digits>"
            )
        return cls(algo, hexpart)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @classmethod
    def sha256_hex(cls, hexpart: str) -> Digest:
        return cls("sha256", hexpart)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The first 12 hex digits, as Docker shows IDs."""
        return self.hex[:12]


class VerifyingReader:
    """Wraps a binary stream; hashes what is read and checks it at :meth:`verify`."""

    def __init__(self, raw: BinaryIO, expected: Digest, size: int | None = None) -> None:
        self._raw = raw
        self._expected = expected
        self._size = size
        self._hash = hashlib.new(expected.algorithm)
        self._count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        self._count += len(data)
        return data

    def verify(self) -> None:
        """Drain the rest of the stream and raise if size or digest differ."""
        while self.read(1 << 20):
            pass
        if self._size is not None and self._count != self._size:
            raise SizeMismatch(f"expected {self._size} bytes for {self._expected}, got {self._count}")
        got = Digest(self._expected.algorithm, self._hash.hexdigest())
        if got != self._expected:
            raise DigestMismatch(f"digest mismatch: expected {self._expected}, got {got}")

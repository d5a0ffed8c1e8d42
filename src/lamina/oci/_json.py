"""JSON plumbing for the OCI documents: canonical bytes, checked field access, FrozenMap.

Canonical bytes are what Go's ``encoding/json`` writes, because Docker, containerd
and BuildKit are Go programs and a digest is taken over bytes: no whitespace, UTF-8
kept as is, and ``<``, ``>``, ``&``, U+2028 and U+2029 escaped as ``\\u003c`` etc.
Key order is given by the caller (dicts keep insertion order); Go sorts the keys of
maps (labels, annotations, port sets), so callers pass those through :func:`sorted_map`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn, TypeVar

from lamina.digest import Digest
from lamina.errors import InvalidArgument, InvalidManifest

__all__ = ["Fields", "FrozenMap", "canonical_json", "load_object", "sorted_map"]

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)

K = TypeVar("K")
V = TypeVar("V")


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` the way Go's ``json.Marshal`` would (given the same key order).

    >>> canonical_json({"b": 1, "a": ["<x>", "é"]})
    b'{"b":1,"a":["\\\\u003cx\\\\u003e","\\xc3\\xa9"]}'
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # These characters can only occur inside JSON strings, so a blanket replace is safe.
    return text.translate(_GO_ESCAPE_TABLE).encode("utf-8")


def sorted_map(mapping: Mapping[str, V]) -> dict[str, V]:
    """A copy of ``mapping`` with keys in Go's map order (sorted by UTF-8 bytes)."""
    return {k: mapping[k] for k in sorted(mapping, key=lambda s: s.encode("utf-8"))}


class FrozenMap(Mapping[K, V]):
    """An immutable, hashable mapping, so frozen dataclasses can hold labels and annotations.

    >>> m = FrozenMap({"b": "2", "a": "1"})
    >>> m["a"], len(m), hash(m) == hash(FrozenMap({"a": "1", "b": "2"}))
    ('1', 2, True)
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def load_object(data: bytes | str, what: str) -> dict[str, Any]:
    """Parse ``data`` as a JSON object, or raise InvalidManifest naming ``what``."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidManifest(
            f"malformed JSON in {what}: {exc}",
            hint="the document is truncated or not JSON; fetch or export it again",
        ) from exc
    if not isinstance(value, dict):
        raise InvalidManifest(
            f"malformed {what}: expected a JSON object, got {_kind(value)}",
            hint="the document is not an OCI/Docker image document",
        )
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class Fields:
    """Typed, checked access to one JSON object; errors name the field's full path.

    ``Fields(obj, "manifest").string("mediaType")`` returns the string or ``None``
    (absent or ``null``, as Go treats both), and raises
    ``InvalidManifest("manifest.mediaType: expected a string, got a number")``
    for a wrong type.  :meth:`unknown` lists the keys nobody asked for, so a
    document can carry fields lamina does not model through a round trip.
    """

    def __init__(self, obj: dict[str, Any], where: str) -> None:
        self.obj = obj
        self.where = where
        self._seen: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}"

    def fail(self, key: str, problem: str) -> NoReturn:
        raise InvalidManifest(
            f"{self.path(key)}: {problem}",
            hint="the image document does not follow the OCI image spec or Docker schema 2",
        )

    def _get(self, key: str) -> Any:
        self._seen.add(key)
        return self.obj.get(key)

    def _typed(self, key: str, types: type | tuple[type, ...], expected: str) -> Any:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, types) or (isinstance(value, bool) and types is int):
            self.fail(key, f"expected {expected}, got {_kind(value)}")
        return value

    def string(self, key: str, *, required: bool = False) -> str | None:
        value: str | None = self._typed(key, str, "a string")
        if required and value is None:
            self.fail(key, "missing required field")
        return value

    def req_string(self, key: str) -> str:
        value = self.string(key, required=True)
        assert value is not None
        return value

    def integer(self, key: str, *, required: bool = False) -> int | None:
        value: int | None = self._typed(key, int, "an integer")
        if required and value is None:
            self.fail(key, "missing required field")
        return value

    def boolean(self, key: str) -> bool:
        value: bool | None = self._typed(key, bool, "true or false")
        return bool(value)

    def string_list(self, key: str) -> tuple[str, ...]:
        value: list[Any] | None = self._typed(key, list, "an array of strings")
        if value is None:
            return ()
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{key}[{i}]", f"expected a string, got {_kind(item)}")
        return tuple(value)

    def string_map(self, key: str) -> FrozenMap[str, str]:
        value: dict[str, Any] | None = self._typed(key, dict, "an object of strings")
        if value is None:
            return FrozenMap()
        for k, item in value.items():
            if not isinstance(item, str):
                self.fail(f"{key}[{k!r}]", f"expected a string, got {_kind(item)}")
        return FrozenMap(value)

    def key_set(self, key: str) -> tuple[str, ...]:
        """A Go ``map[string]struct{}`` such as ExposedPorts or Volumes, as sorted keys."""
        value: dict[str, Any] | None = self._typed(key, dict, "an object")
        if value is None:
            return ()
        return tuple(sorted(value))

    def digest(self, key: str, *, required: bool = False) -> Digest | None:
        text = self.string(key, required=required)
        if text is None:
            return None
        try:
            return Digest.parse(text)
        except InvalidArgument as exc:
            self.fail(key, exc.message)

    def req_digest(self, key: str) -> Digest:
        value = self.digest(key, required=True)
        assert value is not None
        return value

    def digest_list(self, key: str) -> tuple[Digest, ...]:
        out = []
        for i, text in enumerate(self.string_list(key)):
            try:
                out.append(Digest.parse(text))
            except InvalidArgument as exc:
                self.fail(f"{key}[{i}]", exc.message)
        return tuple(out)

    def child(self, key: str, *, required: bool = False) -> Fields | None:
        value: dict[str, Any] | None = self._typed(key, dict, "an object")
        if value is None:
            if required:
                self.fail(key, "missing required field")
            return None
        return Fields(value, self.path(key))

    def req_child(self, key: str) -> Fields:
        value = self.child(key, required=True)
        assert value is not None
        return value

    def children(self, key: str, *, required: bool = False) -> list[Fields]:
        value: list[Any] | None = self._typed(key, list, "an array")
        if value is None:
            if required:
                self.fail(key, "missing required field")
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                self.fail(f"{key}[{i}]", f"expected an object, got {_kind(item)}")
            out.append(Fields(item, f"{self.path(key)}[{i}]"))
        return out

    def unknown(self) -> tuple[tuple[str, str], ...]:
        """The fields not read so far, as ``(key, canonical JSON text)`` pairs in document order."""
        return tuple(
            (k, canonical_json(v).decode("utf-8"))
            for k, v in self.obj.items()
            if k not in self._seen
        )

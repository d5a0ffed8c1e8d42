"""Registry authentication: challenges, scopes and bearer tokens (pure; no I/O).

A registry says how it wants to be authenticated in the ``WWW-Authenticate`` header
of a ``401 Unauthorized`` answer (RFC 7235).  Two schemes matter:

``Basic realm="Registry"``
    send ``Authorization: Basic base64(user:password)`` on every request;

``Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull"``
    ask the token server at ``realm`` for a token covering ``service`` and one or
    more ``scope`` values, then send ``Authorization: Bearer <token>``.

A *scope* names a resource and the actions wanted on it::

    repository:team/app:pull            read manifests and blobs of team/app
    repository:team/app:pull,push       also upload to it
    repository:base/os:pull             (a second scope, for a cross-repository mount)

Tokens are short-lived (``expires_in`` seconds, 60 when the server does not say)
and tied to their scopes, so :class:`TokenCache` keys them by realm, service and the
sorted scopes, and forgets them a little before they expire.

>>> [c.scheme for c in parse_www_authenticate('Bearer realm="https://a/token",service="reg"')]
['bearer']
>>> repository_scope("team/app", push=True)
'repository:team/app:pull,push'
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lamina.oci import FrozenMap

__all__ = [
    "Challenge",
    "Token",
    "TokenCache",
    "basic_authorization",
    "parse_www_authenticate",
    "repository_scope",
    "token_from_response",
]

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
DEFAULT_TOKEN_LIFETIME = 60.0
"""Seconds a token lives when the token server gives no ``expires_in`` (the spec's default)."""
_EXPIRY_MARGIN = 5.0


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: a scheme (lower case) and its parameters.

    Parameter names are lower-cased (``realm``, ``service``, ``scope``, ``error``);
    values are unquoted.
    """

    scheme: str
    params: Mapping[str, str] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        if not isinstance(self.params, FrozenMap):
            object.__setattr__(self, "params", FrozenMap(self.params))

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes the registry named (space-separated in one ``scope`` parameter)."""
        return tuple(self.params.get("scope", "").split())


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _read_token(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] in _TOKEN_CHARS:
        i += 1
    return text[start:i], i


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting at the opening quote; backslash escapes one char."""
    out: list[str] = []
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    return "".join(out), i  # unterminated: take what there is


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into challenges (unparseable parts are skipped).

    One header may hold several challenges (``Basic realm="x", Bearer realm="y"``);
    a new one starts where a bare token is followed by a space instead of ``=``.

    >>> c = parse_www_authenticate('Bearer realm="https://auth/token",service="r",scope="a b"')[0]
    >>> c.realm, c.service, c.scopes
    ('https://auth/token', 'r', ('a', 'b'))
    """
    challenges: list[Challenge] = []
    scheme: str | None = None
    params: dict[str, str] = {}
    i, n = 0, len(header)
    while i < n:
        i = _skip_space(header, i)
        if i < n and header[i] == ",":
            i += 1
            continue
        word, j = _read_token(header, i)
        if not word:
            i += 1  # a stray character: skip it
            continue
        k = _skip_space(header, j)
        if k < n and header[k] == "=" and scheme is not None:
            k = _skip_space(header, k + 1)
            if k < n and header[k] == '"':
                value, i = _read_quoted(header, k)
            else:
                # a bare value: be lenient (servers send URLs unquoted) and take
                # everything up to the next comma or space
                start = k
                while k < n and header[k] not in ", \t":
                    k += 1
                value, i = header[start:k], k
            params[word.lower()] = value
            continue
        if scheme is not None:
            challenges.append(Challenge(scheme, params))
        scheme, params, i = word.lower(), {}, j
    if scheme is not None:
        challenges.append(Challenge(scheme, params))
    return challenges


def repository_scope(repository: str, *, push: bool = False) -> str:
    """The token scope for reading (and with ``push`` writing) one repository."""
    return f"repository:{repository}:{'pull,push' if push else 'pull'}"


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP Basic authentication.

    >>> basic_authorization("u", "p")
    'Basic dTpw'
    """
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Token:
    """A bearer token and when it stops being usable (``time.monotonic()`` seconds)."""

    value: str
    expires_at: float
    refresh_token: str | None = None

    def valid(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) < self.expires_at - _EXPIRY_MARGIN


def token_from_response(body: Any, *, now: float | None = None) -> Token | None:
    """Read a token server's JSON answer (``token`` or OAuth2 ``access_token``).

    Returns None when the answer holds no token.  ``expires_in`` below 60 seconds is
    raised to 60, as the distribution token spec asks of clients.

    >>> token_from_response({"token": "abc", "expires_in": 300}, now=0.0).expires_at
    300.0
    """
    if not isinstance(body, dict):
        return None
    value = body.get("token") or body.get("access_token")
    if not isinstance(value, str) or not value:
        return None
    lifetime = body.get("expires_in")
    seconds = float(lifetime) if isinstance(lifetime, int | float) else DEFAULT_TOKEN_LIFETIME
    seconds = max(seconds, DEFAULT_TOKEN_LIFETIME)
    refresh = body.get("refresh_token")
    start = time.monotonic() if now is None else now
    return Token(value, start + seconds, refresh if isinstance(refresh, str) else None)


class TokenCache:
    """Bearer tokens by (realm, service, scopes); thread-safe; expired ones are dropped.

    Scopes are compared as a sorted set, so ``("a", "b")`` and ``("b", "a")`` share
    one token.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, tuple[str, ...]], Token] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(realm: str, service: str, scopes: Iterable[str]) -> tuple[str, str, tuple[str, ...]]:
        return realm, service, tuple(sorted(set(scopes)))

    def get(self, realm: str, service: str, scopes: Iterable[str]) -> Token | None:
        key = self._key(realm, service, scopes)
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and not token.valid():
                del self._tokens[key]
                return None
            return token

    def put(self, realm: str, service: str, scopes: Iterable[str], token: Token) -> None:
        with self._lock:
            self._tokens[self._key(realm, service, scopes)] = token

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)

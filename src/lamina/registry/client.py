"""A client for the OCI distribution API (Docker Registry HTTP API v2).

The API is a handful of HTTP calls under ``/v2/``::

    GET    /v2/                                       ping; 401 says how to authenticate
    GET    /v2/<name>/manifests/<tag|digest>          a manifest or index (Accept: media types)
    PUT    /v2/<name>/manifests/<tag|digest>          store one (Content-Type: its media type)
    HEAD   /v2/<name>/blobs/<digest>                  is the blob there?
    GET    /v2/<name>/blobs/<digest>                  fetch it (Range: bytes=N- resumes)
    POST   /v2/<name>/blobs/uploads/                  start an upload -> 202, Location
    POST   /v2/<name>/blobs/uploads/?mount=D&from=R   cross-repository mount -> 201 (or 202)
    PATCH  <location>                                 append a chunk (Content-Range: a-b)
    PUT    <location>?digest=D                        finish (optionally with the last bytes)

:class:`RegistryClient` speaks it for one registry: it picks the endpoint
(:mod:`lamina.registry.config`), authenticates (anonymous, Basic, or Bearer tokens
fetched from the token server the registry names and cached per scope:
:mod:`lamina.registry.auth`) with the credentials ``docker login`` saved
(:mod:`lamina.registry.credentials`), verifies every byte it receives against its
digest, and turns HTTP failures into :class:`~lamina.errors.RegistryError`
subclasses whose one-line message names the registry and the object.

Blobs are fetched straight into a :class:`~lamina.content.ContentStore` ingest:
a download cut short keeps its bytes and the next attempt asks for the rest with
``Range``; data that does not hash to the expected digest is thrown away and
raises :class:`~lamina.errors.DigestMismatch`.

This is the only module of lamina that imports ``httpx``.  One client may be used
from several threads at once.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, NoReturn

import httpx

from lamina.digest import Digest
from lamina.errors import (
    Denied,
    DigestMismatch,
    InvalidManifest,
    LaminaError,
    ManifestUnknown,
    RegistryError,
    SizeMismatch,
    Unauthorized,
)
from lamina.oci import mediatypes
from lamina.registry.auth import (
    Challenge,
    Token,
    TokenCache,
    basic_authorization,
    parse_www_authenticate,
    repository_scope,
    token_from_response,
)
from lamina.registry.config import Endpoint, RegistryConfig
from lamina.registry.credentials import Credential, CredentialStore

if TYPE_CHECKING:
    from lamina.content import ContentStore
    from lamina.oci import Descriptor

__all__ = [
    "MANIFEST_ACCEPT",
    "BlobUpload",
    "FetchedManifest",
    "RegistryClient",
    "UploadStream",
]

USER_AGENT = "lamina/0.1"
MANIFEST_ACCEPT = ", ".join((
    mediatypes.OCI_INDEX, mediatypes.DOCKER_MANIFEST_LIST,
    mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST,
))
"""What a manifest GET accepts: indexes and manifests, OCI and Docker schema 2."""
MAX_MANIFEST_SIZE = 4 << 20
"""The largest manifest a registry is expected to serve (the OCI spec's suggestion)."""
_CHUNK = 1 << 20
_IO_ERRORS = (httpx.TransportError,)


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest or index as the registry served it: exact bytes, media type, digest."""

    data: bytes
    media_type: str
    digest: Digest

    @property
    def is_index(self) -> bool:
        return self.media_type in mediatypes.INDEX_TYPES


class _Transient(Exception):
    """A download broke off in a way worth retrying (connection lost, short body)."""


def _media_type(resp: httpx.Response) -> str:
    return str(resp.headers.get("content-type", "")).split(";", 1)[0].strip()


def _error_detail(resp: httpx.Response) -> tuple[str, str]:
    """The first ``errors[].code`` and ``message`` of a registry error body, if any."""
    try:
        body = json.loads(resp.content or b"{}")
    except (ValueError, httpx.ResponseNotRead):
        return "", ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code", "")), str(errors[0].get("message", ""))
    if isinstance(body, dict) and isinstance(body.get("details"), str):
        return "", body["details"]
    return "", ""


class RegistryClient:
    """The distribution API of one registry (see the module doc).

    ``registry`` is a reference's domain (``docker.io``, ``127.0.0.1:5000``).
    ``push=True`` leaves pull-through mirrors out.  ``credential`` authenticates
    with exactly that (``login`` uses it); otherwise ``credentials`` (Docker's
    config file by default) is asked per endpoint.  ``transport`` replaces the
    network (tests).  Close with :meth:`close` or use as a context manager.
    """

    def __init__(
        self,
        registry: str,
        *,
        config: RegistryConfig | None = None,
        credentials: CredentialStore | None = None,
        credential: Credential | None = None,
        push: bool = False,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.registry = registry
        self._endpoints = (config or RegistryConfig()).endpoints(registry, push=push)
        self._endpoint: Endpoint | None = None
        self._store = credentials
        self._explicit = credential
        self._creds: dict[str, Credential | None] = {}
        self._tokens = TokenCache()
        self._challenges: dict[str, Challenge] = {}
        self._lock = threading.RLock()
        self._token_lock = threading.Lock()
        self._push = push
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 15.0))
        self._transport = transport
        self._clients: dict[bool, httpx.Client] = {}

    # --- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _http(self, verify: bool) -> httpx.Client:
        with self._lock:
            client = self._clients.get(verify)
            if client is None:
                client = httpx.Client(
                    verify=verify, timeout=self._timeout, transport=self._transport,
                    headers={"User-Agent": USER_AGENT},
                    limits=httpx.Limits(max_connections=16, max_keepalive_connections=8))
                self._clients[verify] = client
            return client

    # --- endpoints and ping --------------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint in use (found by :meth:`ping` on first use)."""
        if self._endpoint is None:
            self.ping()
        assert self._endpoint is not None
        return self._endpoint

    def _candidates(self) -> Iterator[Endpoint]:
        for ep in self._endpoints:
            yield ep
            if ep.http_fallback:
                yield Endpoint(ep.registry, "http://" + ep.host, tls_verify=False, mirror=ep.mirror)

    def ping(self) -> Endpoint:
        """``GET /v2/`` on each endpoint in turn; the first that answers is used from now on.

        A ``401`` counts as an answer: it tells how to authenticate.  Raises
        RegistryError when no endpoint can be reached.
        """
        last: Exception | None = None
        for ep in self._candidates():
            try:
                resp = self._http(ep.tls_verify).get(ep.url + "/v2/")
            except httpx.TransportError as exc:
                last = exc
                continue
            if resp.status_code == 401:
                self._remember_challenge(ep, resp)
            elif resp.status_code >= 500 or resp.status_code == 404:
                last = RegistryError(f"HTTP {resp.status_code} from {ep.url}/v2/")
                continue
            self._endpoint = ep
            return ep
        hint = "check the address and that the registry is running"
        if any(not e.secure for e in self._endpoints) or "certificate" in str(last).lower():
            hint += "; for a registry without valid TLS, add it to insecure-registries"
        raise RegistryError(f"cannot reach registry {self.registry}: {last}", hint=hint,
                            code="registry-unreachable") from last

    def use_endpoint(self, endpoint: Endpoint) -> None:
        """Talk to ``endpoint`` from now on (a mirror that failed is left for the next)."""
        self._endpoint = endpoint

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(self._endpoints)

    # --- authentication ----------------------------------------------------------------------

    def _remember_challenge(self, ep: Endpoint, resp: httpx.Response) -> Challenge | None:
        found: list[Challenge] = []
        for value in resp.headers.get_list("www-authenticate"):
            found.extend(parse_www_authenticate(value))
        for scheme in ("bearer", "basic"):
            for ch in found:
                if ch.scheme == scheme:
                    with self._lock:
                        self._challenges[ep.url] = ch
                    return ch
        return None

    def _credential(self, ep: Endpoint) -> Credential | None:
        if self._explicit is not None:
            return self._explicit
        key = ep.host if ep.mirror else ep.registry
        with self._lock:
            if key not in self._creds:
                store = self._store if self._store is not None else CredentialStore()
                self._creds[key] = store.get(key)
            return self._creds[key]

    def _authorization(self, ep: Endpoint, scopes: tuple[str, ...]) -> str | None:
        with self._lock:
            ch = self._challenges.get(ep.url)
        if ch is None:
            return None
        cred = self._credential(ep)
        if ch.scheme == "basic":
            if cred is None or not (cred.username or cred.password):
                return None
            return basic_authorization(cred.username, cred.password)
        if ch.scheme == "bearer":
            token = self._token(ep, ch, scopes or ch.scopes)
            return f"Bearer {token.value}"
        return None

    def _token(self, ep: Endpoint, ch: Challenge, scopes: Iterable[str],
               *, offline: bool = False) -> Token:
        scopes = tuple(scopes)
        cached = self._tokens.get(ch.realm, ch.service, scopes)
        if cached is not None and not offline:
            return cached
        with self._token_lock:  # one fetch at a time: parallel requests share its token
            cached = self._tokens.get(ch.realm, ch.service, scopes)
            if cached is not None and not offline:
                return cached
            return self._fetch_token(ep, ch, scopes, offline=offline)

    def _fetch_token(self, ep: Endpoint, ch: Challenge, scopes: tuple[str, ...],
                     *, offline: bool) -> Token:
        if not ch.realm.startswith(("http://", "https://")):
            raise RegistryError(f"registry {self.registry} named an invalid token realm {ch.realm!r}",
                                hint="the registry's auth configuration is broken")
        cred = self._credential(ep)
        client = self._http(ep.tls_verify if ch.realm.startswith(ep.url) else True)
        try:
            if cred is not None and cred.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": cred.identity_token,
                        "service": ch.service, "client_id": "lamina",
                        "scope": " ".join(scopes)}
                resp = client.post(ch.realm, data=form)
            else:
                params: list[tuple[str, str | int | float | bool | None]] = []
                if ch.service:
                    params.append(("service", ch.service))
                params.extend(("scope", s) for s in scopes)
                headers: dict[str, str] = {}
                if cred is not None and (cred.username or cred.password):
                    params.append(("account", cred.username))
                    headers["Authorization"] = basic_authorization(cred.username, cred.password)
                if offline:
                    params += [("offline_token", "true"), ("client_id", "lamina")]
                resp = client.get(ch.realm, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise RegistryError(f"cannot reach the token server of {self.registry} ({ch.realm}): {exc}",
                                hint="check the network path to the registry's auth service") from exc
        if resp.status_code in (401, 403):
            if cred is None:
                raise Unauthorized(
                    f"unauthorized: {self.registry} requires authentication",
                    hint=f"log in with: lamina login {self.registry}")
            raise Unauthorized(
                f"unauthorized: {self.registry} rejected the username or password",
                hint=f"log in again with: lamina login {self.registry}")
        if resp.status_code != 200:
            raise RegistryError(
                f"the token server of {self.registry} answered HTTP {resp.status_code}",
                hint="the registry's auth service is failing; retry later")
        try:
            token = token_from_response(resp.json())
        except ValueError:
            token = None
        if token is None:
            raise RegistryError(f"the token server of {self.registry} sent no token",
                                hint="the registry's auth service is misconfigured")
        self._tokens.put(ch.realm, ch.service, scopes, token)
        return token

    # --- requests ------------------------------------------------------------------------

    def _url(self, ep: Endpoint, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return str(httpx.URL(ep.url).join(path_or_url))

    def _request(
        self,
        method: str,
        path: str,
        *,
        scopes: tuple[str, ...],
        what: str,
        headers: dict[str, str] | None = None,
        content: bytes | Iterable[bytes] | None = None,
        params: dict[str, str] | None = None,
        stream: bool = False,
        follow: bool = False,
    ) -> httpx.Response:
        """Send one request with the right credentials; answer a 401 once by authenticating."""
        ep = self.endpoint
        client = self._http(ep.tls_verify)
        replayable = content is None or isinstance(content, bytes)
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            auth = self._authorization(ep, scopes)
            if auth:
                hdrs["Authorization"] = auth
            request = client.build_request(method, self._url(ep, path), headers=hdrs,
                                           content=content, params=params)
            try:
                resp = client.send(request, stream=stream, follow_redirects=follow)
            except httpx.TimeoutException as exc:
                raise RegistryError(f"registry {self.registry} timed out: {what}",
                                    hint="the registry is slow or unreachable; retry later",
                                    code="registry-unreachable") from exc
            except httpx.TransportError as exc:
                raise RegistryError(f"lost the connection to registry {self.registry}: {what}: {exc}",
                                    hint="check that the registry is running; then retry",
                                    code="registry-unreachable") from exc
            if resp.status_code != 401 or attempt == 1 or not replayable:
                return resp
            old = self._challenges.get(ep.url)
            ch = self._remember_challenge(ep, resp)
            if ch is None:
                return resp
            if ch.scheme == "bearer":
                if ch.params.get("error") == "insufficient_scope" and ch.scopes:
                    scopes = tuple(dict.fromkeys((*scopes, *ch.scopes)))
                if old == ch and auth is not None and auth.startswith("Bearer "):
                    # the token we sent was refused: drop it and get a fresh one
                    self._tokens.clear()
            new_auth = self._authorization(ep, scopes)
            if new_auth is None or new_auth == auth:
                return resp
            resp.close()
        raise AssertionError("unreachable")

    def _scope(self, repository: str) -> str:
        """The scope for reading ``repository``: with push rights on a push client, so
        reads and writes share one token."""
        return repository_scope(repository, push=self._push)

    def _login_hint(self) -> str:
        return f"log in with: lamina login {self.registry}"

    def _fail(self, resp: httpx.Response, what: str, *, repository: str = "",
              reference: str = "") -> NoReturn:
        """Raise the lamina error for a failed answer (see the module doc)."""
        with contextlib.suppress(httpx.HTTPError):
            resp.read()
        code, message = _error_detail(resp)
        where = f"{self.registry}/{repository}" if repository else self.registry
        status = resp.status_code
        ep = self._endpoint
        has_cred = ep is not None and self._credential(ep) is not None
        if status == 401:
            if has_cred:
                raise Unauthorized(f"unauthorized: {self.registry} refused the credentials to {what}",
                                   hint=f"log in again with: lamina login {self.registry}")
            raise Unauthorized(f"unauthorized: authentication required for {where} ({what})",
                               hint=self._login_hint())
        if status == 403:
            raise Denied(f"denied: {self.registry} does not allow you to {what}"
                         + (f" ({message})" if message else ""),
                         hint="check that your account has access to this repository")
        if status == 404 and (code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "") and reference):
            ref = f"{where}@{reference}" if ":" in reference else f"{where}:{reference}"
            raise ManifestUnknown(f"manifest unknown: {ref} not found",
                                  hint="check the name and tag; the repository may also need a login")
        if status == 404 and code == "BLOB_UNKNOWN":
            raise RegistryError(f"blob unknown: {where} has no blob for {what}",
                                hint="the image in the registry is incomplete; push it again",
                                code="blob-unknown")
        if status == 429:
            raise RegistryError(f"too many requests to {self.registry}: {what}",
                                hint="the registry is rate limiting you; wait and retry, or log in",
                                code="toomanyrequests")
        detail = f" {code}" if code else ""
        detail += f": {message}" if message else ""
        raise RegistryError(f"{self.registry}: cannot {what}: HTTP {status}{detail}",
                            hint="see the registry's logs for more")

    def login(self) -> str | None:
        """Check the credential against the registry (``docker login``'s test).

        Basic registries must answer ``GET /v2/`` with 200; token registries must
        hand out a token for the credential.  Returns the identity (refresh) token
        the token server gave, if any, to be stored instead of the password.
        Raises Unauthorized when the registry refuses.
        """
        ep = self.ping()
        with self._lock:
            ch = self._challenges.get(ep.url)
        if ch is None:
            return None  # the registry lets anyone in
        refresh: str | None = None
        if ch.scheme == "bearer":
            if self._credential(ep) is None:
                raise Unauthorized(f"unauthorized: {self.registry} requires a username and password",
                                   hint=f"pass -u USER and a password: lamina login {self.registry}")
            refresh = self._token(ep, ch, ch.scopes, offline=True).refresh_token
        resp = self._request("GET", "/v2/", scopes=ch.scopes, what="log in")
        resp.close()
        if resp.status_code != 200:
            if resp.status_code == 401:
                raise Unauthorized(f"unauthorized: {self.registry} rejected the username or password",
                                   hint=f"check them and run: lamina login {self.registry}")
            self._fail(resp, "log in")
        return refresh

    # --- manifests ---------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> FetchedManifest:
        """Fetch the manifest or index ``reference`` (a tag or ``sha256:…``) points at.

        The bytes are checked: against the digest when fetched by digest, and against
        the registry's ``Docker-Content-Digest`` header otherwise.
        """
        what = f"pull {repository}:{reference}" if ":" not in reference else \
            f"pull {repository}@{reference}"
        resp = self._request("GET", f"/v2/{repository}/manifests/{reference}",
                             scopes=(self._scope(repository),), what=what,
                             headers={"Accept": MANIFEST_ACCEPT}, stream=True)
        try:
            if resp.status_code != 200:
                self._fail(resp, what, repository=repository, reference=reference)
            data = bytearray()
            for chunk in resp.iter_raw():
                data += chunk
                if len(data) > MAX_MANIFEST_SIZE:
                    raise InvalidManifest(
                        f"manifest {self.registry}/{repository}:{reference} is larger than "
                        f"{MAX_MANIFEST_SIZE} bytes", hint="the registry served something that is not a manifest")
        except httpx.TransportError as exc:
            raise RegistryError(f"lost the connection to {self.registry} while fetching the manifest "
                                f"of {repository}:{reference}", hint="retry",
                                code="registry-unreachable") from exc
        finally:
            resp.close()
        body = bytes(data)
        media_type = _media_type(resp)
        if media_type not in mediatypes.MANIFEST_TYPES | mediatypes.INDEX_TYPES:
            media_type = self._sniff_media_type(body)
        want: Digest | None = None
        if ":" in reference:
            want = Digest.parse(reference)
        else:
            header = resp.headers.get("docker-content-digest")
            if header:
                try:
                    want = Digest.parse(header)
                except LaminaError:
                    want = None
        got = Digest.from_bytes(body, want.algorithm if want else "sha256")
        if want is not None and got != want:
            raise DigestMismatch(
                f"manifest {self.registry}/{repository}:{reference} does not match its digest: "
                f"expected {want}, got {got}",
                hint="the registry or a proxy in between served altered data; nothing was stored")
        return FetchedManifest(body, media_type, Digest.from_bytes(body))

    @staticmethod
    def _sniff_media_type(body: bytes) -> str:
        try:
            obj = json.loads(body)
        except ValueError as exc:
            raise InvalidManifest("the registry served a manifest that is not JSON",
                                  hint="the registry is misconfigured") from exc
        declared = obj.get("mediaType") if isinstance(obj, dict) else None
        if isinstance(declared, str) and declared:
            return declared
        return mediatypes.OCI_INDEX if isinstance(obj, dict) and "manifests" in obj \
            else mediatypes.OCI_MANIFEST

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> Digest:
        """Store a manifest or index under ``reference`` (a tag or its digest); returns its digest."""
        what = f"push the manifest of {repository}:{reference}"
        resp = self._request("PUT", f"/v2/{repository}/manifests/{reference}",
                             scopes=(repository_scope(repository, push=True),), what=what,
                             headers={"Content-Type": media_type}, content=data)
        if resp.status_code not in (200, 201):
            self._fail(resp, what, repository=repository)
        ours = Digest.from_bytes(data)
        header = resp.headers.get("docker-content-digest")
        if header and header != str(ours):
            raise DigestMismatch(
                f"{self.registry} stored the manifest of {repository}:{reference} as {header}, "
                f"expected {ours}", hint="the registry rewrote the manifest; check its version")
        return ours

    # --- blobs: reading --------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        """``HEAD`` the blob: True if ``repository`` has it."""
        what = f"check blob {digest.short} in {repository}"
        resp = self._request("HEAD", f"/v2/{repository}/blobs/{digest}", what=what,
                             scopes=(self._scope(repository),), follow=True)
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        self._fail(resp, what, repository=repository)

    def read_blob(self, repository: str, desc: Descriptor, *, limit: int = 64 << 20) -> bytes:
        """A small blob (a config) in memory, checked against ``desc``'s digest and size."""
        if desc.size > limit:
            raise InvalidManifest(f"blob {desc.digest} of {repository} is {desc.size} bytes; "
                                  f"at most {limit} expected here")
        what = f"fetch blob {desc.digest.short} of {repository}"
        resp = self._request("GET", f"/v2/{repository}/blobs/{desc.digest}", what=what,
                             scopes=(self._scope(repository),), follow=True, stream=True)
        try:
            if resp.status_code != 200:
                self._fail(resp, what, repository=repository)
            data = bytearray()
            for chunk in resp.iter_raw():
                data += chunk
                if len(data) > desc.size:
                    break
        except httpx.TransportError as exc:
            raise RegistryError(f"lost the connection to {self.registry}: {what}", hint="retry",
                                code="registry-unreachable") from exc
        finally:
            resp.close()
        got = Digest.from_bytes(bytes(data), desc.digest.algorithm)
        if len(data) != desc.size or got != desc.digest:
            raise DigestMismatch(
                f"blob {desc.digest} from {self.registry}/{repository} does not match its digest "
                f"(got {got}, {len(data)} bytes)",
                hint="the registry or a proxy in between served altered data; nothing was stored")
        return bytes(data)

    def fetch_blob(
        self,
        repository: str,
        desc: Descriptor,
        store: ContentStore,
        *,
        progress: Callable[[int], None] | None = None,
        retries: int = 2,
        ref: str | None = None,
    ) -> Digest:
        """Download a blob into ``store`` (verified against ``desc``), resuming if possible.

        The bytes go to the ingest ``ref`` (default ``pull-<digest>``): if an earlier
        attempt left part of the blob there, only the rest is asked for (``Range``).
        A connection lost mid-way is retried ``retries`` times from where it broke;
        after that the partial data is kept for the next run and RegistryError is
        raised.  Data that does not match ``desc`` raises DigestMismatch and nothing is
        kept.  ``progress`` is called with the byte count so far.
        """
        if store.exists(desc.digest):
            return desc.digest
        writer = store.writer(ref or f"pull-{desc.digest}", expected=desc, resume=True)
        try:
            attempt = 0
            while writer.offset != desc.size:
                if writer.offset > desc.size:
                    writer.truncate()
                try:
                    self._download(repository, desc, writer, progress)
                except _Transient as exc:
                    attempt += 1
                    if attempt > retries:
                        raise RegistryError(
                            f"lost the connection to {self.registry} while fetching blob "
                            f"{desc.digest.short} of {repository} ({writer.offset} of {desc.size} "
                            f"bytes): {exc}",
                            hint="run the command again: the download resumes where it stopped",
                            code="registry-unreachable") from exc
                    time.sleep(min(0.2 * 2 ** attempt, 3.0))
            try:
                return writer.commit()
            except (DigestMismatch, SizeMismatch) as exc:
                raise DigestMismatch(
                    f"blob {desc.digest} from {self.registry}/{repository} does not match its "
                    f"digest: {exc.message.split(': ', 1)[-1]}",
                    hint="the registry or a proxy in between served altered data; nothing was stored",
                ) from exc
        finally:
            if not writer.closed:
                writer.close()  # keep what arrived: the next run resumes it

    def _download(self, repository: str, desc: Descriptor, writer: Any,
                  progress: Callable[[int], None] | None) -> None:
        what = f"fetch blob {desc.digest.short} of {repository}"
        headers = {"Accept-Encoding": "identity"}
        if writer.offset:
            headers["Range"] = f"bytes={writer.offset}-"
        try:
            resp = self._request("GET", f"/v2/{repository}/blobs/{desc.digest}", what=what,
                                 scopes=(self._scope(repository),), headers=headers,
                                 follow=True, stream=True)
        except RegistryError as exc:
            if exc.code == "registry-unreachable":
                raise _Transient(str(exc)) from exc
            raise
        try:
            if resp.status_code == 416 and writer.offset:
                writer.truncate()  # our partial data is not a prefix the server knows
                raise _Transient("the registry refused to resume; starting over")
            if resp.status_code not in (200, 206):
                if resp.status_code >= 500:
                    raise _Transient(f"HTTP {resp.status_code}")
                self._fail(resp, what, repository=repository)
            if resp.status_code == 206:
                start = _range_start(resp.headers.get("content-range", ""))
                if start != writer.offset:
                    writer.truncate()
                    raise _Transient("the registry resumed at the wrong offset; starting over")
            elif writer.offset:
                writer.truncate()  # the server ignored Range: take the whole blob again
            try:
                for chunk in resp.iter_raw():
                    writer.write(chunk)
                    if writer.offset > desc.size:
                        writer.abort()
                        raise DigestMismatch(
                            f"blob {desc.digest} from {self.registry}/{repository} is larger than "
                            f"its {desc.size} bytes",
                            hint="the registry or a proxy in between served altered data; "
                                 "nothing was stored")
                    if progress is not None:
                        progress(writer.offset)
            except httpx.TransportError as exc:
                raise _Transient(str(exc) or type(exc).__name__) from exc
            if writer.offset < desc.size:
                raise _Transient("the connection closed before the whole blob arrived")
        finally:
            resp.close()

    # --- blobs: writing -----------------------------------------------------------------------

    def start_upload(self, repository: str, *, mount: Digest | None = None,
                     mount_from: str | None = None) -> BlobUpload | None:
        """Start a blob upload; with ``mount``/``mount_from`` try a cross-repository mount.

        Returns None when the blob was mounted (nothing to upload), else the session.
        """
        scopes: tuple[str, ...] = (repository_scope(repository, push=True),)
        params: dict[str, str] | None = None
        what = f"start an upload to {repository}"
        if mount is not None and mount_from:
            scopes += (repository_scope(mount_from),)
            params = {"mount": str(mount), "from": mount_from}
        resp = self._request("POST", f"/v2/{repository}/blobs/uploads/", scopes=scopes,
                             what=what, params=params, headers={"Content-Length": "0"})
        if resp.status_code == 201 and mount is not None:
            return None
        if resp.status_code != 202:
            self._fail(resp, what, repository=repository)
        location = resp.headers.get("location")
        if not location:
            raise RegistryError(f"{self.registry} started an upload to {repository} without a Location",
                                hint="the registry does not follow the distribution spec")
        return BlobUpload(self, repository, self._url(self.endpoint, location))

    def upload_blob(
        self,
        repository: str,
        desc: Descriptor,
        source: Callable[[], IO[bytes]],
        *,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
        upload: BlobUpload | None = None,
    ) -> None:
        """Upload a blob whose digest and size are known, from ``source()``.

        Without ``chunk_size`` it goes monolithically (one ``PUT`` streaming the whole
        blob); with it, in ``PATCH`` chunks of that size and a final empty ``PUT``.
        """
        session = upload or self.start_upload(repository)
        assert session is not None
        with source() as fh:
            if chunk_size is None:
                session.finish(desc.digest, _read_iter(fh, progress), size=desc.size)
                return
            while chunk := fh.read(chunk_size):
                session.write_chunk(chunk)
                if progress is not None:
                    progress(session.offset)
        session.finish(desc.digest)


def _read_iter(fh: IO[bytes], progress: Callable[[int], None] | None) -> Iterator[bytes]:
    done = 0
    while chunk := fh.read(_CHUNK):
        done += len(chunk)
        yield chunk
        if progress is not None:
            progress(done)


def _range_start(content_range: str) -> int:
    """``bytes 100-199/200`` -> 100 (-1 if unreadable)."""
    try:
        unit, rest = content_range.split(" ", 1)
        return int(rest.split("-", 1)[0]) if unit == "bytes" else -1
    except ValueError:
        return -1


class BlobUpload:
    """One upload session (``POST …/blobs/uploads/`` answered with a Location).

    Append with :meth:`write_chunk` (``PATCH`` with ``Content-Range``), finish with
    :meth:`finish` (``PUT ?digest=``, optionally carrying the bytes: a monolithic
    upload), or give up with :meth:`cancel`.
    """

    def __init__(self, client: RegistryClient, repository: str, location: str) -> None:
        self.client = client
        self.repository = repository
        self.location = location
        self.offset = 0

    def _scopes(self) -> tuple[str, ...]:
        return (repository_scope(self.repository, push=True),)

    def write_chunk(self, data: bytes) -> None:
        """Append ``data`` to the upload."""
        if not data:
            return
        what = f"upload a chunk to {self.repository}"
        end = self.offset + len(data) - 1
        resp = self.client._request(
            "PATCH", self.location, scopes=self._scopes(), what=what, content=data,
            headers={"Content-Type": "application/octet-stream",
                     "Content-Range": f"{self.offset}-{end}",
                     "Content-Length": str(len(data))})
        if resp.status_code != 202:
            self.client._fail(resp, what, repository=self.repository)
        self.offset = end + 1
        location = resp.headers.get("location")
        if location:
            self.location = self.client._url(self.client.endpoint, location)

    def finish(self, digest: Digest, content: bytes | Iterable[bytes] | None = None,
               *, size: int | None = None) -> None:
        """Complete the upload as blob ``digest`` (the registry checks it)."""
        what = f"finish the upload of blob {digest.short} to {self.repository}"
        headers = {"Content-Type": "application/octet-stream"}
        if content is None:
            headers["Content-Length"] = "0"
        elif size is not None:
            headers["Content-Length"] = str(size)
        url = httpx.URL(self.location).copy_add_param("digest", str(digest))
        resp = self.client._request("PUT", str(url), scopes=self._scopes(), what=what,
                                    content=content, headers=headers)
        if resp.status_code == 400:
            resp.read()
            code, message = _error_detail(resp)
            if code in ("DIGEST_INVALID", "SIZE_INVALID"):
                raise DigestMismatch(
                    f"{self.client.registry} rejected blob {digest} for {self.repository}: "
                    f"{message or code}", hint="the local blob is corrupt; rebuild or pull the image")
        if resp.status_code not in (201, 204):
            self.client._fail(resp, what, repository=self.repository)

    def cancel(self) -> None:
        """Abandon the upload (errors are ignored: the registry expires it anyway)."""
        with contextlib.suppress(LaminaError):
            self.client._request("DELETE", self.location, scopes=self._scopes(),
                                 what=f"cancel an upload to {self.repository}").close()


class UploadStream:
    """A write-only stream that uploads what is written to it in chunks.

    Buffers writes until ``chunk_size`` bytes are waiting, then sends them with
    :meth:`BlobUpload.write_chunk`; :meth:`close` sends the rest.  Lets a layer be
    compressed straight into the registry, its digest known only at the end.
    """

    def __init__(self, upload: BlobUpload, chunk_size: int = 32 << 20,
                 progress: Callable[[int], None] | None = None) -> None:
        self.upload = upload
        self.chunk_size = chunk_size
        self._buf = bytearray()
        self._progress = progress
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._buf += view
        while len(self._buf) >= self.chunk_size:
            self._send(bytes(self._buf[: self.chunk_size]))
            del self._buf[: self.chunk_size]
        return view.nbytes

    def _send(self, data: bytes) -> None:
        self.upload.write_chunk(data)
        if self._progress is not None:
            self._progress(self.upload.offset)

    def flush(self) -> None:
        return None

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            if self._buf:
                self._send(bytes(self._buf))
                self._buf.clear()
            self.closed = True

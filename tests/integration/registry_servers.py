"""Loopback registries for tests: Debian's docker-registry, and a proxy that misbehaves.

* :class:`DistributionRegistry` -- ``docker-registry serve`` on a free 127.0.0.1 port,
  optionally behind htpasswd (Basic) auth; stopped by :meth:`stop`.
* :class:`Proxy` -- a small threaded HTTP server in front of a registry that can
  demand Bearer tokens it issues itself (``/token``, opaque tokens, per-scope grants),
  flip a byte in chosen blobs, cut the connection half-way through chosen blobs, and
  log every request.  Nothing here touches anything but loopback.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["DistributionRegistry", "Proxy", "free_port", "have_registry"]


def have_registry() -> bool:
    return shutil.which("docker-registry") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DistributionRegistry:
    """docker-registry (distribution 2.x) on ``127.0.0.1:<port>``, data under ``root``."""

    def __init__(self, root: Path, *, htpasswd: tuple[str, str] | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        auth = ""
        if htpasswd is not None:
            line = subprocess.run(["htpasswd", "-Bbn", *htpasswd], check=True,
                                  capture_output=True, text=True).stdout.strip()
            (root / "htpasswd").write_text(line + "\n")
            auth = f"auth: {{htpasswd: {{realm: test-realm, path: {root / 'htpasswd'}}}}}\n"
        (root / "config.yml").write_text(
            "version: 0.1\nlog: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: {self.host}, secret: test-secret}}\n" + auth)
        self.log = open(root / "registry.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # 401: up, wants auth
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"docker-registry did not start: see {root}/registry.log") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@dataclass
class Logged:
    method: str
    path: str
    range: str | None
    status: int = 0


@dataclass
class ProxyState:
    upstream: str
    users: dict[str, str] | None = None  # token auth when set
    tamper: set[str] = field(default_factory=set)  # blob digests to corrupt
    cut: dict[str, int] = field(default_factory=dict)  # digest -> how many more cuts
    log: list[Logged] = field(default_factory=list)
    tokens: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _needed_scopes(method: str, path: str, query: dict[str, list[str]]) -> set[str]:
    if not path.startswith("/v2/") or path == "/v2/":
        return set()
    rest = path[len("/v2/"):]
    for marker in ("/manifests/", "/blobs/", "/tags/"):
        if marker in rest:
            name = rest.split(marker, 1)[0]
            break
    else:
        return set()
    write = method not in ("GET", "HEAD")
    need = {f"repository:{name}:push" if write else f"repository:{name}:pull"}
    if "from" in query:
        need.add(f"repository:{query['from'][0]}:pull")
    return need


def _granted(scope: str, anonymous: bool) -> set[str]:
    parts = scope.split(":")
    if len(parts) != 3:
        return set()
    kind, name, actions = parts
    out = set()
    for action in actions.split(","):
        if action == "push" and anonymous:
            continue
        out.add(f"{kind}:{name}:{action}")
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _token_endpoint(self, query: dict[str, list[str]]) -> None:
        st = self.server.state
        assert st.users is not None
        auth = self.headers.get("Authorization", "")
        user = ""
        if auth.startswith("Basic "):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            if st.users.get(u) != p:
                self._send(401, b'{"details":"bad credentials"}', {"Content-Type": "application/json"})
                return
            user = u
        grants: set[str] = set()
        for scope in query.get("scope", []):
            for s in scope.split():
                grants |= _granted(s, anonymous=not user)
        token = secrets.token_hex(16)
        with st.lock:
            st.tokens[token] = (user, frozenset(grants))
            st.token_requests.append(query)
        self._send(200, json.dumps({"token": token, "expires_in": 300}).encode(),
                   {"Content-Type": "application/json"})

    def _challenge(self, need: set[str], insufficient: bool) -> None:
        port = self.server.server_address[1]
        scope = ""
        if need:
            names = sorted({s.rsplit(":", 1)[0] for s in need})
            scope = " ".join(f"{n}:pull,push" if any(s.startswith(n + ":push") for s in need)
                             else f"{n}:pull" for n in names)
        value = f'Bearer realm="http://127.0.0.1:{port}/token",service="proxy-test"'
        if scope:
            value += f',scope="{scope}"'
        if insufficient:
            value += ',error="insufficient_scope"'
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        self._send(401, body, {"Content-Type": "application/json", "WWW-Authenticate": value})

    def _handle(self) -> None:
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        entry = Logged(self.command, url.path, self.headers.get("Range"))
        with st.lock:
            st.log.append(entry)
        body = self._body()
        if url.path == "/token" and st.users is not None:
            self._token_endpoint(query)
            return
        if st.users is not None:
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else ""
            need = _needed_scopes(self.command, url.path, query)
            have = st.tokens.get(token)
            if have is None or not need <= have[1]:
                entry.status = 401
                self._challenge(need, insufficient=have is not None)
                return
        conn = http.client.HTTPConnection(st.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("authorization", "transfer-encoding", "connection",
                                        "content-length")}
        conn.request(self.command, self.path, body=body if body or self.command in
                     ("PUT", "POST", "PATCH") else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read() if self.command != "HEAD" else b""
        out_headers = {k: v for k, v in resp.getheaders()
                       if k.lower() not in ("transfer-encoding", "connection", "content-length")}
        conn.close()
        entry.status = resp.status
        digest = url.path.rsplit("/blobs/", 1)[-1] if "/blobs/sha256:" in url.path else ""
        if self.command == "GET" and digest and resp.status in (200, 206):
            if digest in st.tamper and data:
                mid = len(data) // 2
                data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
            with st.lock:
                cuts = st.cut.get(digest, 0)
                if cuts:
                    st.cut[digest] = cuts - 1
            if cuts:
                self.send_response(resp.status)
                for k, v in out_headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        if self.command == "HEAD":
            self.send_response(resp.status)
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
            self.end_headers()
            return
        self._send(resp.status, data, out_headers)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ProxyState


class Proxy:
    """A proxy on ``127.0.0.1:<port>`` in front of ``upstream`` (see the module doc)."""

    def __init__(self, upstream: str, *, users: dict[str, str] | None = None) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.state = ProxyState(upstream, users=users)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def state(self) -> ProxyState:
        return self.server.state

    def blob_gets(self, digest: str) -> list[Logged]:
        return [e for e in self.state.log if e.method == "GET" and e.path.endswith(f"/blobs/{digest}")]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

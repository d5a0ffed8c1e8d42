"""Published ports (``-p HOST:CONTAINER``): bind on the host, forward into the container.

A container with its own network namespace has only a loopback interface, so nothing on
the host can reach its servers directly.  The monitor publishes each
:class:`PortMapping` the way a userland proxy does:

1. **Bind first.**  :func:`bind_ports` binds every host socket *before* the container is
   created.  A port already taken raises :class:`PortInUse` (naming it) and closes what
   was bound, so a failed ``run`` leaves nothing behind.  Host port ``0`` picks a free
   port; the :class:`BoundPort` tells which.
2. **Reach into the namespace.**  A socket belongs to the network namespace of the
   thread that created it, for its whole life.  :class:`NetnsSockets` keeps one thread
   that has done ``setns(/proc/<pid>/ns/net)`` and creates sockets on request; they are
   then connected and used from any thread, always talking inside the container.  The
   upstream address is ``127.0.0.1:<container port>`` in that namespace, so servers
   listening on ``0.0.0.0`` or on loopback are both reached.
3. **Copy.**  :class:`PortForwarder` runs on the monitor's asyncio loop.  TCP: each
   accepted connection gets its own upstream connection; bytes are copied both ways and
   a half-close (EOF) on one side is passed on as a half-close on the other.  UDP: each
   client address gets its own upstream socket (so replies find their way back); it is
   dropped after :data:`UDP_IDLE_TIMEOUT` seconds without traffic.

Without a network namespace of its own (``network="host"``) a container needs no
forwarding; Docker then ignores ``-p``, and so does the monitor.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from lamina.errors import Conflict, InvalidArgument

if TYPE_CHECKING:  # asyncio costs ~30 ms to import: only the monitor daemon needs it
    import asyncio
    from concurrent.futures import Future

__all__ = [
    "UDP_IDLE_TIMEOUT",
    "BoundPort",
    "NetnsSockets",
    "PortForwarder",
    "PortInUse",
    "PortMapping",
    "bind_ports",
    "parse_publish",
]

#: Seconds a UDP client mapping lives without traffic (a conntrack-like timeout).
UDP_IDLE_TIMEOUT = 90.0
#: Most UDP client mappings kept per published port; the least recently used goes first.
UDP_MAX_CLIENTS = 1024

Proto = Literal["tcp", "udp"]


class PortInUse(Conflict, InvalidArgument):
    """A host port to publish is already taken by another socket."""

    code = "port-in-use"
    exit_status = 125

    def __init__(self, mapping: PortMapping, reason: str = "address already in use") -> None:
        host = mapping.host_ip or "0.0.0.0"
        super().__init__(
            f"cannot publish {host}:{mapping.host_port}/{mapping.proto}: {reason}",
            hint=f"free port {mapping.host_port} or publish the container port on another one",
        )
        self.mapping = mapping


@dataclass(frozen=True, slots=True)
class PortMapping:
    """One published port: ``host_ip:host_port`` on the host → ``container_port``.

    ``host_ip`` ``""`` means every IPv4 address (``0.0.0.0``); ``host_port`` ``0``
    means "any free port".

    >>> PortMapping("127.0.0.1", 8080, 80)
    PortMapping(host_ip='127.0.0.1', host_port=8080, container_port=80, proto='tcp')
    """

    host_ip: str
    host_port: int
    container_port: int
    proto: Proto = "tcp"

    def __post_init__(self) -> None:
        if self.proto not in ("tcp", "udp"):
            raise InvalidArgument(
                f"invalid protocol {self.proto!r}", hint="publish tcp or udp ports"
            )
        if not 0 <= self.host_port <= 65535 or not 1 <= self.container_port <= 65535:
            raise InvalidArgument(
                f"invalid port mapping {self.host_port}:{self.container_port}",
                hint="ports are 1-65535 (host port 0 = any free port)",
            )
        if self.host_ip:
            try:
                ipaddress.ip_address(self.host_ip)
            except ValueError:
                raise InvalidArgument(
                    f"invalid host IP {self.host_ip!r}", hint="use an IP address such as 127.0.0.1"
                ) from None

    @property
    def family(self) -> socket.AddressFamily:
        """``AF_INET6`` for an IPv6 ``host_ip``, else ``AF_INET``."""
        return socket.AF_INET6 if ":" in self.host_ip else socket.AF_INET

    def to_json(self) -> dict[str, Any]:
        return {
            "host_ip": self.host_ip,
            "host_port": self.host_port,
            "container_port": self.container_port,
            "proto": self.proto,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PortMapping:
        return cls(
            str(doc["host_ip"]),
            int(doc["host_port"]),
            int(doc["container_port"]),
            doc.get("proto", "tcp"),
        )

    def __str__(self) -> str:
        host = f"[{self.host_ip}]" if ":" in self.host_ip else (self.host_ip or "0.0.0.0")
        return f"{host}:{self.host_port}->{self.container_port}/{self.proto}"


_PORTS = re.compile(r"^\d+(?:-\d+)?$")


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    a, b = int(lo), int(hi or lo)
    if b < a:
        raise InvalidArgument(f"invalid port range {text!r}", hint="write ranges low-high")
    return a, b


def parse_publish(text: str) -> tuple[PortMapping, ...]:
    """Parse one ``-p`` value: ``[IP:][HOST:]CONTAINER[/PROTO]``, ranges allowed.

    >>> [str(m) for m in parse_publish("127.0.0.1:8080:80")]
    ['127.0.0.1:8080->80/tcp']
    >>> [str(m) for m in parse_publish("5353:53/udp")]
    ['0.0.0.0:5353->53/udp']
    >>> [str(m) for m in parse_publish("8000-8001:80-81")]
    ['0.0.0.0:8000->80/tcp', '0.0.0.0:8001->81/tcp']
    >>> [str(m) for m in parse_publish("80")]  # host port chosen at bind time
    ['0.0.0.0:0->80/tcp']
    """
    spec, _, proto = text.strip().partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid protocol {proto!r} in {text!r}", hint="use tcp or udp")
    ip = ""
    if spec.startswith("["):  # [IPv6]:HOST:CONTAINER
        ip, sep, spec = spec[1:].partition("]:")
        if not sep:
            raise InvalidArgument(f"invalid publish spec {text!r}", hint="write [IPv6]:HOST:PORT")
        parts = ["", *spec.split(":")]
        parts[0] = ip
    else:
        parts = spec.split(":")
    if len(parts) == 3:
        ip, host, ctr = parts
    elif len(parts) == 2:
        host, ctr = parts
    elif len(parts) == 1:
        host, ctr = "", parts[0]
    else:
        raise InvalidArgument(
            f"invalid publish spec {text!r}", hint="use [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]"
        )
    if not _PORTS.match(ctr) or (host and not _PORTS.match(host)):
        raise InvalidArgument(
            f"invalid publish spec {text!r}", hint="ports are numbers or ranges like 8000-8010"
        )
    c_lo, c_hi = _range(ctr)
    if host:
        h_lo, h_hi = _range(host)
        if h_hi - h_lo != c_hi - c_lo:
            raise InvalidArgument(
                f"port ranges of different sizes in {text!r}",
                hint="map a host range onto a container range of the same length",
            )
    else:
        h_lo = h_hi = 0
    out = []
    for i in range(c_hi - c_lo + 1):
        hp = h_lo + i if host else 0
        out.append(PortMapping(ip, hp, c_lo + i, proto))  # type: ignore[arg-type]
    return tuple(out)


# --- binding -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoundPort:
    """A host socket bound (and, for TCP, listening) for ``mapping``.

    ``mapping.host_port`` is the real port, also when ``0`` was asked for.
    """

    mapping: PortMapping
    sock: socket.socket


def _bind_one(m: PortMapping) -> BoundPort:
    kind = socket.SOCK_STREAM if m.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(m.family, kind | socket.SOCK_CLOEXEC)
    try:
        if m.proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if m.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        host = m.host_ip or "0.0.0.0"
        sock.bind((host, m.host_port))
        if m.proto == "tcp":
            sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise PortInUse(m, os.strerror(exc.errno).lower()) from exc
        raise InvalidArgument(f"cannot publish {m}: {exc.strerror}", hint="") from exc
    port = sock.getsockname()[1]
    return BoundPort(replace(m, host_port=port), sock)


def bind_ports(mappings: tuple[PortMapping, ...] | list[PortMapping]) -> list[BoundPort]:
    """Bind every mapping's host socket, or none: raises :class:`PortInUse` and closes all."""
    bound: list[BoundPort] = []
    try:
        for m in mappings:
            bound.append(_bind_one(m))
    except BaseException:
        for b in bound:
            b.sock.close()
        raise
    return bound


# --- sockets inside a network namespace -------------------------------------------------


class NetnsSockets:
    """Create sockets inside another network namespace.

    ``netns`` is a path such as ``/proc/<pid>/ns/net`` (``None``: this process's own
    namespace, handy for tests).  One daemon thread joins the namespace with
    ``setns(2)`` and serves :meth:`socket` calls; the sockets it returns stay in that
    namespace wherever they are used.  The namespace file is opened at once, so the
    namespace stays reachable even if the process it was taken from exits.
    """

    def __init__(self, netns: str | os.PathLike[str] | None) -> None:
        self._fd = -1 if netns is None else os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        self._requests: list[tuple[int, int, Future[socket.socket]]] = []
        self._cond = threading.Condition()
        self._closed = False
        from concurrent.futures import Future

        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._serve, name="netns-sockets", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            if self._fd >= 0:
                from lamina._linux import CLONE_NEWNET, setns

                setns(self._fd, CLONE_NEWNET)
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        while True:
            with self._cond:
                while not self._requests and not self._closed:
                    self._cond.wait()
                if self._closed:
                    for *_, fut in self._requests:
                        fut.cancel()
                    return
                family, kind, fut = self._requests.pop(0)
            try:
                fut.set_result(socket.socket(family, kind | socket.SOCK_CLOEXEC))
            except OSError as exc:
                fut.set_exception(exc)

    def socket(self, family: int, kind: int) -> socket.socket:
        """A new socket of ``family``/``kind`` living in the namespace (blocks briefly)."""
        from concurrent.futures import Future

        self._ready.result()
        fut: Future[socket.socket] = Future()
        with self._cond:
            if self._closed:
                raise OSError(errno.EBADF, "namespace socket factory is closed")
            self._requests.append((family, kind, fut))
            self._cond.notify()
        return fut.result()

    def close(self) -> None:
        """Stop the thread and close the namespace file (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=5)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# --- forwarding ---------------------------------------------------------------------------


class _UdpClient:
    __slots__ = ("last", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.last = time.monotonic()


class PortForwarder:
    """Forward bound host ports to ``target_host:<container port>`` via ``sockets``.

    Create it and call :meth:`start` on the running asyncio loop; :meth:`close` stops
    listening and drops every connection.  ``on_error`` receives one-line descriptions
    of failed upstream connections (the monitor logs them in its own log).
    """

    def __init__(
        self,
        bound: list[BoundPort],
        sockets: NetnsSockets,
        *,
        target_host: str = "127.0.0.1",
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.bound = bound
        self._sockets = sockets
        self._target = target_host
        self._on_error = on_error or (lambda _msg: None)
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._udp: list[tuple[BoundPort, dict[Any, _UdpClient]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Begin accepting (TCP) and relaying (UDP) on every bound port."""
        import asyncio

        loop = asyncio.get_running_loop()
        self._loop = loop
        for b in self.bound:
            if b.mapping.proto == "tcp":
                server = await asyncio.start_server(
                    self._tcp_handler(b.mapping.container_port), sock=b.sock
                )
                self._servers.append(server)
            else:
                clients: dict[Any, _UdpClient] = {}
                self._udp.append((b, clients))
                loop.add_reader(b.sock.fileno(), self._udp_from_host, b, clients)
        if self._udp:
            self._sweeper = loop.call_later(UDP_IDLE_TIMEOUT / 3, self._sweep)

    # --- tcp ------------------------------------------------------------------------

    def _tcp_handler(
        self, port: int
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            import asyncio

            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await self._tcp_session(reader, writer, port)
            finally:
                self._tasks.discard(task)

        return handle

    async def _tcp_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int
    ) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            try:
                up = self._sockets.socket(socket.AF_INET, socket.SOCK_STREAM)
                up.setblocking(False)
                try:
                    await asyncio.wait_for(loop.sock_connect(up, (self._target, port)), 10)
                except BaseException:
                    up.close()
                    raise
                up_reader, up_writer = await asyncio.open_connection(sock=up)
            except (OSError, TimeoutError) as exc:
                if isinstance(exc, TimeoutError):
                    reason = "timed out"
                else:
                    reason = os.strerror(exc.errno) if exc.errno else str(exc)
                self._on_error(f"tcp {self._target}:{port} in the container: {reason}")
                return
            self._writers.add(up_writer)
            await asyncio.gather(
                _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.close()

    # --- udp ------------------------------------------------------------------------

    def _udp_from_host(self, b: BoundPort, clients: dict[Any, _UdpClient]) -> None:
        assert self._loop is not None
        for _ in range(64):
            try:
                data, addr = b.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            client = clients.get(addr)
            if client is None:
                try:
                    up = self._sockets.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.setblocking(False)
                    up.connect((self._target, b.mapping.container_port))
                except OSError as exc:
                    self._on_error(f"udp {self._target}:{b.mapping.container_port}: {exc}")
                    continue
                if len(clients) >= UDP_MAX_CLIENTS:
                    oldest = min(clients, key=lambda k: clients[k].last)
                    self._drop_udp(clients, oldest)
                client = clients[addr] = _UdpClient(up)
                self._loop.add_reader(up.fileno(), self._udp_from_container, b, addr, client)
            client.last = time.monotonic()
            with contextlib.suppress(OSError):  # refused/unreachable: datagrams may be lost
                client.sock.send(data)

    def _udp_from_container(self, b: BoundPort, addr: Any, client: _UdpClient) -> None:
        for _ in range(64):
            try:
                data = client.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ECONNREFUSED reported for an earlier datagram
                continue
            client.last = time.monotonic()
            with contextlib.suppress(OSError):
                b.sock.sendto(data, addr)

    def _drop_udp(self, clients: dict[Any, _UdpClient], addr: Any) -> None:
        client = clients.pop(addr, None)
        if client is not None:
            assert self._loop is not None
            self._loop.remove_reader(client.sock.fileno())
            client.sock.close()

    def _sweep(self) -> None:
        assert self._loop is not None
        cutoff = time.monotonic() - UDP_IDLE_TIMEOUT
        for _, clients in self._udp:
            for addr in [a for a, c in clients.items() if c.last < cutoff]:
                self._drop_udp(clients, addr)
        self._sweeper = self._loop.call_later(UDP_IDLE_TIMEOUT / 3, self._sweep)

    # --- shutdown ---------------------------------------------------------------------

    async def close(self) -> None:
        """Stop listening, close every forwarded connection and socket."""
        import asyncio

        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._servers:
            server.close()
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)
        for b, clients in self._udp:
            for addr in list(clients):
                self._drop_udp(clients, addr)
            if self._loop is not None:
                self._loop.remove_reader(b.sock.fileno())
        for b in self.bound:
            b.sock.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until EOF, then half-close ``writer``."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()

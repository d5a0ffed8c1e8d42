"""Published ports: ``-p`` parsing, all-or-nothing binding, TCP and UDP forwarding.

The forwarding tests run both ends in this process's own network namespace
(``NetnsSockets(None)``) on 127.0.0.1; one root test checks that sockets made through a
namespace path really live in that other namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from lamina.errors import Conflict, InvalidArgument
from lamina.runtime.ports import (
    NetnsSockets,
    PortForwarder,
    PortInUse,
    PortMapping,
    bind_ports,
    parse_publish,
)

# --- parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80", [("", 0, 80, "tcp")]),
        ("8080:80", [("", 8080, 80, "tcp")]),
        ("127.0.0.1:8080:80", [("127.0.0.1", 8080, 80, "tcp")]),
        ("127.0.0.1::80/udp", [("127.0.0.1", 0, 80, "udp")]),
        ("[::1]:8080:80", [("::1", 8080, 80, "tcp")]),
        ("53:53/UDP", [("", 53, 53, "udp")]),
        ("7000-7002:80-82", [("", 7000, 80, "tcp"), ("", 7001, 81, "tcp"), ("", 7002, 82, "tcp")]),
    ],
)
def test_parse_publish(text: str, expected: list[tuple[str, int, int, str]]) -> None:
    got = [(m.host_ip, m.host_port, m.container_port, m.proto) for m in parse_publish(text)]
    assert got == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "http",
        "80/sctp",
        "1:2:3:4",
        "70000:80",
        "8080:0",
        "7000-7001:80",
        "9-8:9-8",
        "localhost:80:80",
        "[::1:80:80",
    ],
)
def test_parse_publish_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_publish(text)


def test_mapping_json_round_trip_and_str() -> None:
    m = PortMapping("::1", 8443, 443, "tcp")
    assert PortMapping.from_json(m.to_json()) == m
    assert str(m) == "[::1]:8443->443/tcp"
    assert m.family == socket.AF_INET6


# --- binding -----------------------------------------------------------------------------


def test_port_zero_gets_a_real_port() -> None:
    bound = bind_ports([PortMapping("127.0.0.1", 0, 80), PortMapping("127.0.0.1", 0, 53, "udp")])
    try:
        for b in bound:
            assert b.mapping.host_port == b.sock.getsockname()[1] > 0
        assert bound[1].sock.type == socket.SOCK_DGRAM
    finally:
        for b in bound:
            b.sock.close()


def test_port_in_use_binds_nothing() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        with pytest.raises(PortInUse) as exc:
            bind_ports([PortMapping("127.0.0.1", free, 80), PortMapping("127.0.0.1", port, 81)])
    err = exc.value
    assert isinstance(err, Conflict) and isinstance(err, InvalidArgument)
    assert err.exit_status == 125 and err.mapping.host_port == port
    assert f"127.0.0.1:{port}/tcp" in err.message and "address already in use" in err.message
    # the first port, bound before the failure, was released again
    with socket.socket() as again:
        again.bind(("127.0.0.1", free))


# --- forwarding ------------------------------------------------------------------------------


class EchoServers:
    """TCP and UDP servers on 127.0.0.1 standing in for the container's services."""

    def __init__(self) -> None:
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.1)
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._tcp, daemon=True),
            threading.Thread(target=self._udp, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _tcp(self) -> None:
        self.tcp.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        # read everything until the client half-closes, then answer and close
        with conn:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            conn.sendall(b"got %d bytes: " % len(data) + data[:16])

    def _udp(self) -> None:
        while not self.stop.is_set():
            try:
                data, addr = self.udp.recvfrom(65535)
            except TimeoutError:
                continue
            self.udp.sendto(b"echo:" + data, addr)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(2)
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def forwarding() -> Iterator[tuple[PortForwarder, EchoServers, list[str]]]:
    servers = EchoServers()
    bound = bind_ports(
        [
            PortMapping("127.0.0.1", 0, servers.tcp.getsockname()[1]),
            PortMapping("127.0.0.1", 0, servers.udp.getsockname()[1], "udp"),
            PortMapping("127.0.0.1", 0, _closed_port()),  # nothing listens there
        ]
    )
    errors: list[str] = []
    sockets = NetnsSockets(None)
    fwd = PortForwarder(bound, sockets, on_error=errors.append)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(fwd.start())
        started.set()
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert started.wait(5)
    yield fwd, servers, errors
    asyncio.run_coroutine_threadsafe(fwd.close(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)
    loop.close()
    sockets.close()
    servers.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tcp_is_forwarded_with_half_close(
    forwarding: tuple[PortForwarder, EchoServers, list[str]],
) -> None:
    fwd, _, _ = forwarding
    port = fwd.bound[0].mapping.host_port
    payload = os.urandom(300_000)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)  # the server answers only after our EOF
        reply = b""
        while chunk := c.recv(65536):
            reply += chunk
    assert reply == b"got 300000 bytes: " + payload[:16]


def test_tcp_connections_are_independent(
    forwarding: tuple[PortForwarder, EchoServers, list[str]],
) -> None:
    fwd, _, _ = forwarding
    port = fwd.bound[0].mapping.host_port
    conns = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(5)]
    try:
        for i, c in enumerate(conns):
            c.sendall(b"client %d" % i)
            c.shutdown(socket.SHUT_WR)
        replies = [c.recv(100) for c in conns]
    finally:
        for c in conns:
            c.close()
    assert replies == [b"got 8 bytes: client %d" % i for i in range(5)]


def test_tcp_to_a_closed_container_port_is_closed_and_noted(
    forwarding: tuple[PortForwarder, EchoServers, list[str]],
) -> None:
    fwd, _, errors = forwarding
    port = fwd.bound[2].mapping.host_port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert c.recv(10) == b""
    deadline = time.monotonic() + 2
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert errors and "refused" in errors[0].lower()


def test_udp_replies_go_back_to_each_client(
    forwarding: tuple[PortForwarder, EchoServers, list[str]],
) -> None:
    fwd, _, _ = forwarding
    port = fwd.bound[1].mapping.host_port
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for s in (a, b):
            s.settimeout(2)
        a.sendto(b"from a", ("127.0.0.1", port))
        b.sendto(b"from b", ("127.0.0.1", port))
        assert a.recvfrom(100)[0] == b"echo:from a"
        assert b.recvfrom(100)[0] == b"echo:from b"
        a.sendto(b"again", ("127.0.0.1", port))
        assert a.recvfrom(100) == (b"echo:again", ("127.0.0.1", port))
    finally:
        a.close()
        b.close()


def test_close_releases_the_host_ports() -> None:
    bound = bind_ports([PortMapping("127.0.0.1", 0, 9)])
    port = bound[0].mapping.host_port
    sockets = NetnsSockets(None)

    async def cycle() -> None:
        fwd = PortForwarder(bound, sockets)
        await fwd.start()
        await fwd.close()

    asyncio.run(cycle())
    sockets.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# --- a real second namespace ------------------------------------------------------------------


@pytest.mark.root
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1)"
)
def test_sockets_live_in_the_other_namespace() -> None:
    holder = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        own = os.readlink("/proc/self/ns/net")
        while os.readlink(f"/proc/{holder.pid}/ns/net") == own:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        sockets = NetnsSockets(f"/proc/{holder.pid}/ns/net")
        try:
            with socket.socket() as host_listener:
                host_listener.bind(("127.0.0.1", 0))
                host_listener.listen()
                port = host_listener.getsockname()[1]
                inner = sockets.socket(socket.AF_INET, socket.SOCK_STREAM)
                # the new namespace's loopback is down and has nothing on that port
                with inner, pytest.raises(OSError):
                    inner.connect(("127.0.0.1", port))
                inner2 = sockets.socket(socket.AF_INET, socket.SOCK_STREAM)
                with inner2:
                    # the port, taken here, is free there: it is a different stack
                    inner2.bind(("0.0.0.0", port))
                    inner2.listen()
                with socket.socket() as here, pytest.raises(OSError):
                    here.bind(("0.0.0.0", port))
        finally:
            sockets.close()
    finally:
        holder.kill()
        holder.wait()

"""The attach protocol: frames, detach keys, and :func:`attach` against a scripted monitor."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.errors import InvalidArgument, RuntimeFailure
from lamina.runtime.attach import (
    DETACHED,
    MAX_PAYLOAD,
    AttachClient,
    Frame,
    FrameReader,
    _DetachMatcher,
    attach,
    encode_frame,
    parse_detach_keys,
)

# --- frames ------------------------------------------------------------------------------


@given(
    st.lists(st.tuples(st.sampled_from(list(Frame)), st.binary(max_size=300)), max_size=8),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20),
)
def test_frames_survive_any_chunking(frames: list[tuple[Frame, bytes]], cuts: list[int]) -> None:
    wire = b"".join(encode_frame(k, p) for k, p in frames)
    reader = FrameReader()
    got: list[tuple[Frame, bytes]] = []
    pos = 0
    i = 0
    while pos < len(wire):
        step = cuts[i % len(cuts)]
        got += reader.feed(wire[pos : pos + step])
        pos += step
        i += 1
    assert got == frames


def test_frame_limits() -> None:
    with pytest.raises(InvalidArgument):
        encode_frame(Frame.STDIN, b"x" * (MAX_PAYLOAD + 1))
    with pytest.raises(RuntimeFailure, match="frame of"):
        FrameReader().feed(struct.pack(">BI", 1, MAX_PAYLOAD + 1))
    with pytest.raises(RuntimeFailure, match="unknown frame type 99"):
        FrameReader().feed(struct.pack(">BI", 99, 0))


# --- detach keys ----------------------------------------------------------------------------


def test_parse_detach_keys() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-A,x,ctrl-_") == b"\x01x\x1f"
    for bad in ("ctrl-", "ctrl-1", "ab", "ctrl-p,,q"):
        with pytest.raises(InvalidArgument):
            parse_detach_keys(bad)


def test_detach_matcher_holds_back_only_a_partial_match() -> None:
    m = _DetachMatcher(b"\x10\x11")
    assert m.feed(b"ab\x10") == (b"ab", False)  # ctrl-p held back
    assert m.feed(b"c") == (b"\x10c", False)  # not followed by ctrl-q: released
    assert m.feed(b"\x10") == (b"", False)
    assert m.feed(b"\x11rest") == (b"", True)
    assert _DetachMatcher(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


# --- attach() against a scripted monitor -------------------------------------------------------


Script = Callable[[socket.socket, list[tuple[Frame, bytes]]], None]


def recv_frame(
    conn: socket.socket, reader: FrameReader, pending: list[tuple[Frame, bytes]]
) -> tuple[Frame, bytes] | None:
    while not pending:
        data = conn.recv(65536)
        if not data:
            return None
        pending.extend(reader.feed(data))
    return pending.pop(0)


class FakeMonitor:
    """Listens on ``attach.sock``; answers HELLO, then runs a script; records frames."""

    def __init__(self, state_dir: Path, script: Script) -> None:
        self.path = state_dir / "attach.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(1)
        self.received: list[tuple[Frame, bytes]] = []
        self.hello: dict[str, bool] = {}
        self.script = script
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            reader = FrameReader()
            pending: list[tuple[Frame, bytes]] = []
            first = recv_frame(conn, reader, pending)
            assert first is not None and first[0] is Frame.HELLO
            self.hello = json.loads(first[1])
            conn.sendall(encode_frame(Frame.READY, b'{"tty": false, "pid": 42}'))

            def collect() -> None:
                while (f := recv_frame(conn, reader, pending)) is not None:
                    self.received.append(f)

            collector = threading.Thread(target=collect, daemon=True)
            collector.start()
            self.script(conn, self.received)
            collector.join(2)

    def close(self) -> None:
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[Callable[[Script], FakeMonitor]]:
    made: list[FakeMonitor] = []

    def make(script: Script) -> FakeMonitor:
        m = FakeMonitor(tmp_path, script)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


def wait_for(pred: Callable[[], bool]) -> None:
    import time

    deadline = time.monotonic() + 5
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_output_streams_and_exit_status(monitor: Callable[[Script], FakeMonitor]) -> None:
    def script(conn: socket.socket, got: list[tuple[Frame, bytes]]) -> None:
        conn.sendall(encode_frame(Frame.STDOUT, b"out 1\n") + encode_frame(Frame.STDERR, b"e\n"))
        conn.sendall(encode_frame(Frame.STDOUT, b"out 2\n"))
        conn.sendall(encode_frame(Frame.EXIT, struct.pack(">i", 7)))

    m = monitor(script)
    out, err = BytesIO(), BytesIO()
    assert attach(m.path, None, out, err, tty=False) == 7
    assert (out.getvalue(), err.getvalue()) == (b"out 1\nout 2\n", b"e\n")
    assert m.hello == {"stdin": False, "stdout": True, "stderr": True}


def test_stdin_is_streamed_then_closed(monitor: Callable[[Script], FakeMonitor]) -> None:
    def script(conn: socket.socket, got: list[tuple[Frame, bytes]]) -> None:
        wait_for(lambda: any(k is Frame.CLOSE_STDIN for k, _ in got))
        conn.sendall(encode_frame(Frame.EXIT, struct.pack(">i", 0)))

    m = monitor(script)
    r, w = os.pipe()
    os.write(w, b"line one\nline two\n")
    os.close(w)
    try:
        assert attach(m.path, r, BytesIO(), None, tty=False) == 0
    finally:
        os.close(r)
    data = b"".join(p for k, p in m.received if k is Frame.STDIN)
    assert data == b"line one\nline two\n"
    assert m.received[-1][0] is Frame.CLOSE_STDIN
    assert m.hello == {"stdin": True, "stdout": True, "stderr": False}


def test_detach_keys_leave_the_container_running(
    monitor: Callable[[Script], FakeMonitor],
) -> None:
    def script(conn: socket.socket, got: list[tuple[Frame, bytes]]) -> None:
        pass  # no EXIT: the monitor's collector ends when the client goes away

    m = monitor(script)
    r, w = os.pipe()
    os.write(w, b"typed\x01d")  # ctrl-a, d
    try:
        assert attach(m.path, r, BytesIO(), None, tty=False, detach_keys="ctrl-a,d") == DETACHED
    finally:
        os.close(r)
        os.close(w)
    m.close()
    assert b"".join(p for k, p in m.received if k is Frame.STDIN) == b"typed"


def test_lost_monitor_uses_exit_json_or_fails(
    monitor: Callable[[Script], FakeMonitor], tmp_path: Path
) -> None:
    def hang_up(conn: socket.socket, got: list[tuple[Frame, bytes]]) -> None:
        conn.shutdown(socket.SHUT_RDWR)

    m = monitor(hang_up)
    with pytest.raises(RuntimeFailure, match="lost the connection"):
        attach(m.path, None, BytesIO(), None, tty=False)
    m.close()
    m.path.unlink()
    (tmp_path / "exit.json").write_text(json.dumps({"exit_code": 9}))
    # no socket any more: the recorded status is the answer
    assert attach(tmp_path / "attach.sock", None, BytesIO(), None, tty=False) == 9


def test_no_monitor_no_exit_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="cannot attach"):
        AttachClient(tmp_path / "attach.sock")


def test_client_helpers_send_the_documented_payloads(
    monitor: Callable[[Script], FakeMonitor],
) -> None:
    def script(conn: socket.socket, got: list[tuple[Frame, bytes]]) -> None:
        wait_for(lambda: len(got) >= 3)
        conn.sendall(encode_frame(Frame.EXIT, struct.pack(">i", 0x7FFFFFFF)))

    m = monitor(script)
    with AttachClient(m.path) as c:
        assert c.ready.pid == 42 and not c.ready.tty
        c.resize(50, 132)
        c.signal(2)
        c.send_stdin(b"x")
        kind, payload = c.read_frame()
    assert (kind, payload) == (Frame.EXIT, struct.pack(">i", 0x7FFFFFFF))
    assert m.received == [
        (Frame.RESIZE, struct.pack(">HH", 50, 132)),
        (Frame.SIGNAL, struct.pack(">I", 2)),
        (Frame.STDIN, b"x"),
    ]


def test_long_socket_paths_work(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert len(str(deep / "attach.sock")) > 107

    def script(conn: socket.socket, got: list[tuple[Frame, bytes]]) -> None:
        conn.sendall(encode_frame(Frame.EXIT, struct.pack(">i", 5)))

    from lamina.runtime.pty import bind_unix

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bind_unix(sock, deep / "attach.sock")
    sock.close()
    assert (deep / "attach.sock").exists()
    (deep / "attach.sock").unlink()
    m = FakeMonitor.__new__(FakeMonitor)
    m.path = deep / "attach.sock"
    m.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bind_unix(m.sock, m.path)
    m.sock.listen(1)
    m.received, m.hello, m.script = [], {}, script
    m.thread = threading.Thread(target=m._run, daemon=True)
    m.thread.start()
    try:
        assert attach(m.path, None, BytesIO(), None, tty=False) == 5
    finally:
        m.close()

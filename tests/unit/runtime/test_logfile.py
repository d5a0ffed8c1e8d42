"""Docker json-file logs: byte-exact records, line splitting, and the reader."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.errors import InvalidArgument, NotFound
from lamina.runtime.logfile import (
    MAX_LINE,
    LogWriter,
    encode_record,
    format_time,
    format_time_fixed,
    parse_time,
    read_logs,
)

T0 = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z


# --- records ------------------------------------------------------------------------


def test_record_layout_and_time() -> None:
    rec = encode_record("stderr", b"hello\n", T0)
    assert rec == (
        b'{"log":"hello\\n","stream":"stderr","time":"2023-11-14T22:13:20.123456789Z"}\n'
    )


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (b'say "hi" \\ bye', r"say \"hi\" \\ bye"),
        (b"a\tb\x1b[0m\r\n", r"a\u0009b\u001b[0m\r\n"),
        (b"<b>&amp;</b>", r"\u003cb\u003e\u0026amp;\u003c/b\u003e"),
        ("grüße ☃".encode(), "grüße ☃"),  # valid UTF-8 is written as it is
        ("\ufffd".encode(), "\ufffd"),  # a real U+FFFD too
        (b"\xff\xfe", r"\ufffd\ufffd"),  # one replacement per invalid byte
        (b"\xe2\x82A", r"\ufffd\ufffdA"),  # a truncated sequence: per byte, like Go
        ("x\u2028y\u2029".encode(), r"x\u2028y\u2029"),
        (b"\x7f", "\x7f"),  # DEL is not a control character for JSON
    ],
)
def test_escaping_is_dockers(raw: bytes, escaped: str) -> None:
    rec = encode_record("stdout", raw, T0)
    assert rec.startswith(b'{"log":"' + escaped.encode() + b'","stream"')


@given(st.binary(max_size=200))
def test_records_are_valid_json_that_decodes_to_the_text(data: bytes) -> None:
    doc = json.loads(encode_record("stdout", data, T0))
    assert list(doc) == ["log", "stream", "time"]
    # Go replaces each invalid byte: compare on the valid parts
    if not any(b >= 0x80 for b in data):
        assert doc["log"] == data.decode("ascii")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            assert "\ufffd" in doc["log"]
        else:
            assert doc["log"] == text


# --- time --------------------------------------------------------------------------------


def test_time_formats() -> None:
    assert format_time(T0) == "2023-11-14T22:13:20.123456789Z"
    assert format_time(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"
    assert format_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert format_time_fixed(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.500000000Z"


@given(st.integers(min_value=0, max_value=253_402_300_799 * 10**9))
def test_parse_time_inverts_both_formats(ns: int) -> None:
    assert parse_time(format_time(ns)) == ns
    assert parse_time(format_time_fixed(ns)) == ns


def test_parse_time_offsets_and_errors() -> None:
    assert parse_time("2023-11-15T00:13:20.5+02:00") == 1_700_000_000_500_000_000
    assert parse_time("2023-11-14T21:13:20-01:00") == 1_700_000_000 * 10**9
    with pytest.raises(InvalidArgument):
        parse_time("yesterday")


# --- the writer -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1000
        return self.now


def records(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        out.append((doc["stream"], doc["log"]))
    return out


def test_writer_splits_lines_and_buffers_partial_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    w = LogWriter(path, clock=Clock())
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"err")
    assert records(path) == [("stdout", "one\n")]
    w.write("stdout", b"o\nthree\n")
    w.write("stderr", b"or\n")
    assert records(path) == [
        ("stdout", "one\n"),
        ("stdout", "two\n"),
        ("stdout", "three\n"),
        ("stderr", "error\n"),
    ]
    w.write("stdout", b"no newline at the end")
    w.close()
    assert records(path)[-1] == ("stdout", "no newline at the end")
    w.close()  # idempotent


def test_writer_cuts_overlong_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    with LogWriter(path) as w:
        w.write("stdout", b"x" * (MAX_LINE * 2 + 10) + b"\n")
        w.write("stdout", b"y" * MAX_LINE + b"\n")  # exactly fits with its newline
    logs = [text for _, text in records(path)]
    assert [len(t) for t in logs] == [MAX_LINE, MAX_LINE, 11, MAX_LINE + 1]
    assert logs[2].endswith("\n") and not logs[0].endswith("\n")


def test_writer_time_is_when_the_line_began(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    clock = Clock()
    w = LogWriter(path, clock=clock)
    w.write("stdout", b"sta")
    first = clock.now
    w.write("stdout", b"rt\n")
    w.close()
    assert parse_time(json.loads(path.read_text())["time"]) == first


def test_writer_rejects_unknown_streams(tmp_path: Path) -> None:
    with LogWriter(tmp_path / "c.log") as w, pytest.raises(InvalidArgument):
        w.write("stdin", b"x")


def test_writer_appends_to_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    for word in (b"first\n", b"second\n"):
        with LogWriter(path) as w:
            w.write("stdout", word)
    assert [t for _, t in records(path)] == ["first\n", "second\n"]


# --- the reader -------------------------------------------------------------------------------


@pytest.fixture
def log10(tmp_path: Path) -> Path:
    path = tmp_path / "c.log"
    with open(path, "wb") as f:
        for i in range(10):
            stream = "stderr" if i % 3 == 0 else "stdout"
            f.write(encode_record(stream, f"line {i}\n".encode(), T0 + i * 10**9))
    return path


def test_read_all(log10: Path) -> None:
    lines = list(read_logs(log10))
    assert [x.text for x in lines] == [f"line {i}\n" for i in range(10)]
    assert [x.stream for x in lines][:4] == ["stderr", "stdout", "stdout", "stderr"]
    assert lines[3].time == T0 + 3 * 10**9
    assert lines[0].timestamp == "2023-11-14T22:13:20.123456789Z"


@pytest.mark.parametrize(
    ("tail", "expected"), [(0, []), (3, [7, 8, 9]), (10, list(range(10))), (50, list(range(10)))]
)
def test_tail(log10: Path, tail: int, expected: list[int]) -> None:
    assert [x.text for x in read_logs(log10, tail=tail)] == [f"line {i}\n" for i in expected]


def test_tail_over_many_blocks(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    with LogWriter(path) as w:
        for i in range(20000):
            w.write("stdout", f"row {i:05d} {'.' * 40}\n".encode())
    assert path.stat().st_size > 3 * 64 * 1024
    got = [x.text.split()[1] for x in read_logs(path, tail=5000)]
    assert got == [f"{i:05d}" for i in range(15000, 20000)]


def test_since_and_timestamps(log10: Path) -> None:
    since = (T0 + 7 * 10**9) / 1e9
    lines = list(read_logs(log10, since=since, timestamps=True))
    assert [x.text for x in lines] == [
        "2023-11-14T22:13:27.123456789Z line 7\n",
        "2023-11-14T22:13:28.123456789Z line 8\n",
        "2023-11-14T22:13:29.123456789Z line 9\n",
    ]


def test_torn_and_foreign_lines_are_skipped(log10: Path) -> None:
    with open(log10, "ab") as f:
        f.write(b"not json\n")
        f.write(encode_record("stdout", b"last\n", T0)[:20])  # being written
    assert [x.text for x in read_logs(log10)][-1] == "line 9\n"
    assert len(list(read_logs(log10))) == 10


def test_missing_log_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        list(read_logs(tmp_path / "nope.log"))


def test_follow_stops_when_the_container_has_exited(tmp_path: Path) -> None:
    """A fake monitor: it appends records, then writes exit.json; follow sees them all."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text(
        json.dumps({"status": "running", "pid": 1, "monitor_pid": os.getpid()})
    )
    path = state / "c.log"

    def monitor() -> None:
        with LogWriter(path) as w:
            for i in range(5):
                time.sleep(0.05)
                w.write("stdout", f"tick {i}\n".encode())
        (state / "exit.json").write_text(json.dumps({"exit_code": 0}))

    t = threading.Thread(target=monitor)
    t.start()
    start = time.monotonic()
    got = [x.text for x in read_logs(path, follow=True, state_dir=state, poll_interval=0.01)]
    t.join()
    assert got == [f"tick {i}\n" for i in range(5)]
    assert time.monotonic() - start < 5


def test_follow_with_tail_zero_shows_only_new_records(log10: Path) -> None:
    state = log10.parent / "state"
    state.mkdir()
    (state / "state.json").write_text(
        json.dumps({"status": "running", "pid": 1, "monitor_pid": os.getpid()})
    )

    def later() -> None:
        time.sleep(0.1)
        with LogWriter(log10) as w:
            w.write("stderr", b"fresh\n")
        (state / "exit.json").write_text(json.dumps({"exit_code": 1}))

    t = threading.Thread(target=later)
    t.start()
    got = list(read_logs(log10, follow=True, tail=0, state_dir=state, poll_interval=0.01))
    t.join()
    assert [(x.stream, x.text) for x in got] == [("stderr", "fresh\n")]

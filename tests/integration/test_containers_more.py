"""More container verbs end to end: foreground logs and OOM, signals, attach, rename, top,
stats, ``ps --size``, ``diff`` of mount points, ``exec -d``.

Each test removes what it made; the module ends by checking that no container, mount
or cgroup is left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lamina import _linux

LAMINA = [sys.executable, "-m", "lamina"]

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not _linux.overlay_supported(), reason="kernel has no overlayfs"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed"),
]

Run = Callable[..., subprocess.CompletedProcess[str]]


def wait_for(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_foreground_output_is_logged_in_json_file_format(lamina: Run) -> None:
    r = lamina("run", "--name", "fg", "bb:1", "sh", "-c", "echo one; echo two >&2; printf end")
    assert (r.stdout, r.stderr) == ("one\nend", "two\n")
    logs = lamina("logs", "fg")
    assert (logs.stdout, logs.stderr) == ("one\nend", "two\n")
    path = json.loads(lamina("inspect", "fg").stdout)[0]["LogPath"]
    records = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert [(rec["stream"], rec["log"]) for rec in records if rec["stream"] == "stdout"] == [
        ("stdout", "one\n"), ("stdout", "end")]
    assert all(rec["time"].endswith("Z") for rec in records)
    lamina("rm", "fg")


def test_foreground_stdin_and_a_silent_container_has_no_log(lamina: Run) -> None:
    assert lamina("run", "--rm", "-i", "bb:1", "tr", "a-z", "A-Z", input="abc\n").stdout == "ABC\n"
    lamina("run", "--name", "quiet", "bb:1", "true")
    assert lamina("logs", "quiet").stdout == ""
    lamina("rm", "quiet")


def test_foreground_oom_kill_is_recorded(lamina: Run) -> None:
    r = lamina("run", "--name", "fghog", "--memory", "32m", "bb:1", "sh", "-c",
               "a=$(dd if=/dev/zero bs=1M count=200 2>/dev/null | tr '\\0' a); echo survived",
               check=False)
    assert r.returncode == 137 and "survived" not in r.stdout
    state = json.loads(lamina("inspect", "fghog").stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 137, True)
    lamina("rm", "fghog")


def test_foreground_forwards_sigterm_to_the_container(root: Path, lamina: Run) -> None:
    proc = subprocess.Popen(
        [*LAMINA, "--root", str(root), "run", "--rm", "--name", "trap", "bb:1", "sh", "-c",
         "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done"],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 42
    assert proc.stdout.read() == "got-term\n"
    assert lamina("ps", "-aq").stdout == ""


def test_diff_lists_mount_points_the_image_lacks_and_commit_leaves_them_out(
        lamina: Run, tmp_path: Path) -> None:
    lamina("run", "--name", "mnt", "-v", f"{tmp_path}:/src", "-v", f"{tmp_path}:/a/b",
           "bb:1", "sh", "-c", "echo x > /newfile")
    assert lamina("diff", "mnt").stdout.splitlines() == [
        "A /a", "A /a/b", "A /newfile", "A /src"]
    image = lamina("commit", "mnt").stdout.strip()
    r = lamina("run", "--rm", image, "sh", "-c", "cat /newfile; ls -d /src /a", check=False)
    assert r.stdout == "x\n" and "/src: No such file" in r.stderr and "/a: No such file" in r.stderr
    lamina("rm", "mnt")
    lamina("rmi", image)


def test_ps_size_counts_the_writable_layer_and_the_image(lamina: Run) -> None:
    lamina("run", "--name", "sized", "bb:1", "sh", "-c", "head -c 3000 /dev/zero > /blob")
    row = lamina("ps", "-a", "--size", "--filter", "name=sized",
                 "--format", "{{.Names}} {{.Size}}").stdout.strip()
    name, rw, virtual = row.split(" ", 2)
    assert (name, rw) == ("sized", "3kB")
    assert virtual.startswith("(virtual ") and virtual != "(virtual 3kB)"
    table = lamina("ps", "-a", "-s", "--filter", "name=sized").stdout.splitlines()
    assert table[0].split()[-1] == "SIZE" and "3kB (virtual" in table[1]
    lamina("rm", "sized")


def test_rename_top_and_stats_of_a_running_container(lamina: Run) -> None:
    lamina("run", "-d", "--name", "busy", "bb:1", "sleep", "60")
    lamina("run", "-d", "--name", "other", "bb:1", "sleep", "60")
    try:
        lamina("rename", "busy", "worker")
        assert lamina("ps", "--filter", "name=worker", "--format", "{{.Names}}").stdout == (
            "worker\n")
        r = lamina("rename", "worker", "other", check=False)
        assert r.returncode != 0 and 'name "/other" is already in use' in r.stderr
        r = lamina("rename", "worker", "worker", check=False)
        assert r.returncode != 0 and "same name" in r.stderr

        top = lamina("top", "worker").stdout.splitlines()
        assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        assert any(line.endswith("sleep 60") for line in top[1:])

        stats = lamina("stats", "--no-stream", "worker").stdout.splitlines()
        assert stats[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
        assert len(stats) == 2 and "worker" in stats[1]
        assert lamina("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}",
                      "worker").stdout == "worker 1\n"
    finally:
        lamina("rm", "-f", "worker", "other")


def test_attach_streams_stdin_and_output_and_exits_with_the_container(lamina: Run) -> None:
    lamina("run", "-d", "-i", "--name", "talk", "bb:1", "sh", "-c",
           "read line; echo got-$line; exit 3")
    r = lamina("attach", "talk", input="hello\n", check=False)
    assert (r.returncode, r.stdout) == (3, "got-hello\n")
    assert lamina("inspect", "-f", "{{.State.ExitCode}}", "talk").stdout == "3\n"
    r = lamina("attach", "talk", check=False)
    assert r.returncode != 0 and "cannot attach to a stopped container" in r.stderr
    lamina("rm", "talk")


def test_exec_detached_returns_at_once_and_the_command_runs(lamina: Run) -> None:
    lamina("run", "-d", "--name", "host", "bb:1", "sleep", "60")
    try:
        r = lamina("exec", "-d", "host", "sh", "-c", "sleep 0.3; touch /tmp/flag")
        assert (r.stdout, r.stderr) == ("", "")
        wait_for(lambda: lamina("exec", "host", "test", "-f", "/tmp/flag",
                                check=False).returncode == 0)
    finally:
        lamina("rm", "-f", "host")

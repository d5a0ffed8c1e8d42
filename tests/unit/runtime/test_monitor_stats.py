"""Container stats from cgroup files (v1 and v2 layouts written by hand) and ``top``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.errors import NotFound
from lamina.runtime.stats import (
    CgroupPaths,
    _cputime,
    _host_memory,
    _tty_name,
    cgroup_paths,
    oom_kills,
    read_stats,
    top,
)


def write(d: Path, files: dict[str, str]) -> str:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return str(d)


def test_v1_figures(tmp_path: Path) -> None:
    mem = write(
        tmp_path / "memory",
        {
            "memory.usage_in_bytes": "50000000\n",
            "memory.limit_in_bytes": str(32 << 20) + "\n",
            "memory.stat": "cache 100\ntotal_inactive_file 8000000\ntotal_rss 1\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        },
    )
    cpu = write(tmp_path / "cpuacct", {"cpuacct.usage": "123456789\n"})
    pids = write(tmp_path / "pids", {"pids.current": "3\n"})
    paths = CgroupPaths(mem, cpu, pids, unified=False)
    assert read_stats(paths) == read_stats(CgroupPaths.from_json(paths.to_json()))
    s = read_stats(paths)
    assert (s.memory_usage, s.memory_limit, s.cpu_usage_ns, s.pids) == (
        42000000,
        32 << 20,
        123456789,
        3,
    )
    assert oom_kills(paths) == 2


def test_v2_figures_and_unlimited_memory(tmp_path: Path) -> None:
    d = write(
        tmp_path / "cg",
        {
            "memory.current": "1000000\n",
            "memory.max": "max\n",
            "memory.stat": "anon 5\ninactive_file 250000\n",
            "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
            "cpu.stat": "usage_usec 2500\nuser_usec 2000\n",
            "pids.current": "7\n",
        },
    )
    paths = CgroupPaths(d, d, d, unified=True)
    s = read_stats(paths)
    assert (s.memory_usage, s.cpu_usage_ns, s.pids) == (750000, 2_500_000, 7)
    assert s.memory_limit == _host_memory()  # "max" reads as the host's memory
    assert oom_kills(paths) == 1


def test_missing_files_read_as_zero(tmp_path: Path) -> None:
    paths = CgroupPaths(str(tmp_path), None, None, unified=False)
    s = read_stats(paths)
    assert (s.memory_usage, s.cpu_usage_ns, s.pids) == (0, 0, 0)
    assert oom_kills(CgroupPaths(None, None, None, False)) == 0


def test_formatting_helpers() -> None:
    assert _cputime(0) == "00:00:00"
    assert _cputime(3723) == "01:02:03"
    assert _cputime(2 * 86400 + 5) == "2-00:00:05"
    assert _tty_name(0) == "?"
    assert _tty_name(os.makedev(136, 3)) == "pts/3"
    assert _tty_name(os.makedev(4, 1)) == "tty1"


def _have_cgroups() -> bool:
    try:
        cgroup_paths(os.getpid())
    except NotFound:
        return False
    return True


@pytest.mark.skipif(not _have_cgroups(), reason="no cgroup hierarchy is mounted")
def test_own_process_is_found_and_listed() -> None:
    paths = cgroup_paths(os.getpid())
    for d in (paths.memory, paths.cpu, paths.pids):
        assert d is None or os.path.isdir(d)
    s = read_stats(os.getpid())
    assert s.memory_usage > 0 and s.cpu_usage_ns > 0
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        rows = {r.pid: r for r in top(os.getpid())}
        assert child.pid in rows and os.getpid() in rows
        row = rows[child.pid]
        assert row.ppid == os.getpid()
        assert row.cmd == f"{sys.executable} -c import time; time.sleep(30)"
        assert len(row.as_row()) == len(row.titles()) == 8
    finally:
        child.kill()
        child.wait()


def test_unknown_targets_are_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        cgroup_paths(2**22 + 12345)  # beyond pid_max: never a process
    with pytest.raises(NotFound):
        cgroup_paths("/lamina-no-such-cgroup/x")

#!/usr/bin/env python3
"""Detached container start and stop through the monitor, beside the bare runtime.

Medians of N runs (default 10, after one warm-up) on a ready bundle over a busybox rootfs
(a plain directory: no snapshot or mount cost here, that is ``bench_run.py``'s subject):

* ``spawn``: :func:`spawn_monitor` until it returns -- the container's process runs, its
  log file and attach socket exist (Python start of the monitor, runtime ``create`` +
  ``start``);
* ``stop``: :func:`stop` of a shell that traps SIGTERM and exits 0 -- the signal, the exit,
  the runtime's ``delete`` and ``exit.json``;
* ``stop-kill``: :func:`stop` with a 0 s grace period of ``sleep`` (ignores SIGTERM as
  PID 1): the SIGKILL path;
* ``bare``: ``<runtime> create`` + ``start`` by hand (the floor for ``spawn``), and
  ``bare-stop``: ``kill`` + wait + ``delete``.

Run as root:  ``/work/venv/bin/python bench/bench_monitor.py [-n 10] [--runtime runc|crun]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lamina.runtime import (
    DEVNULL,
    ContainerConfig,
    OCIRuntime,
    Stdio,
    build_spec,
    remove_cgroup,
    write_bundle,
    write_init_files,
)
from lamina.runtime.monitor import MonitorSpec, spawn_monitor, stop

BUSYBOX = "/bin/busybox"
CGROUP_PARENT = "lamina-bench-monitor"


def make_rootfs(fs: Path) -> None:
    (fs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, fs / "bin" / "busybox")
    out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout
    for applet in out.split():
        if applet != "busybox":
            os.symlink("busybox", fs / "bin" / applet)
    for d in ("etc", "proc", "sys", "dev", "tmp", "root"):
        (fs / d).mkdir(exist_ok=True)
    (fs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (fs / "etc/group").write_text("root:x:0:\n")


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--runtime", default="runc")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="lamina-bench-mon-"))
    rt = OCIRuntime(args.runtime, state_root=work / "runtime")
    rootfs = work / "rootfs"
    make_rootfs(rootfs)
    binds = write_init_files(work / "etc", hostname="bench")
    results: dict[str, list[float]] = {
        k: [] for k in ("spawn", "stop", "stop-kill", "bare", "bare-stop")
    }
    try:
        for i in range(args.n + 1):
            warm = i == 0
            for key, argv in (
                ("stop", ("sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done")),
                ("stop-kill", ("sleep", "1000")),
            ):
                cid = f"bm-{key}-{i}"
                bundle = work / cid / "bundle"
                config = ContainerConfig(
                    args=argv,
                    hostname="bench",
                    mounts=binds,
                    cgroups_path=f"/{CGROUP_PARENT}/{cid}",
                )
                write_bundle(bundle, build_spec(config, rootfs))
                spec = MonitorSpec(
                    cid,
                    bundle,
                    args.runtime,
                    work / cid / "state",
                    work / cid / "state" / "log.json",
                    runtime_root=rt.state_root,
                )
                t_spawn = timed(lambda spec=spec: spawn_monitor(spec))
                grace = 10.0 if key == "stop" else 0.0
                t_stop = timed(lambda spec=spec, grace=grace: stop(spec.state_dir, timeout=grace))
                if not warm:
                    if key == "stop":
                        results["spawn"].append(t_spawn)
                    results[key].append(t_stop)

            cid = f"bm-bare-{i}"
            bundle = work / cid / "bundle"
            config = ContainerConfig(
                args=("sleep", "1000"),
                hostname="bench",
                mounts=binds,
                cgroups_path=f"/{CGROUP_PARENT}/{cid}",
            )
            write_bundle(bundle, build_spec(config, rootfs))

            def bare_start(cid: str = cid, bundle: Path = bundle) -> None:
                rt.create(cid, bundle, Stdio(DEVNULL, DEVNULL, DEVNULL))
                rt.start(cid)

            def bare_stop(cid: str = cid) -> None:
                rt.kill(cid, "KILL")
                while rt.state(cid).status != "stopped":
                    time.sleep(0.001)
                rt.delete(cid)

            t_start = timed(bare_start)
            t_stop = timed(bare_stop)
            if not warm:
                results["bare"].append(t_start)
                results["bare-stop"].append(t_stop)
    finally:
        for c in rt.list():
            subprocess.run(
                [rt.binary, "--root", str(rt.state_root), "delete", "--force", c.id],
                check=False,
                capture_output=True,
            )
        remove_cgroup(f"/{CGROUP_PARENT}")
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.runtime}, median of {args.n} (ms):")
    for key, values in results.items():
        ms = [v * 1000 for v in values]
        print(f"  {key:10s} {statistics.median(ms):8.1f}   (min {min(ms):.1f}, max {max(ms):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

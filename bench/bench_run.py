#!/usr/bin/env python3
"""Container start cost: lamina's full path versus the bare OCI runtime.

Measures, as medians of N runs (default 10, after one warm-up):

* ``bare``: ``<runtime> run -b BUNDLE`` of ``true`` on a ready bundle whose rootfs is a
  plain directory (the physical floor: no snapshot, no mount, config already written);
* ``lamina``: everything ``lamina run --rm`` does below the image store: snapshot
  ``prepare`` over a two-layer busybox image, one overlay ``mount``, init files,
  ``config.json``, ``<runtime> run`` of ``true``, ``unmount``, snapshot ``remove``
  (the container's snapshot is ``volatile``, as a ``run --rm`` one may be);
  each phase is timed too, so the overhead is visible where it arises.

Run as root:  ``/work/venv/bin/python bench/bench_run.py [-n 10] [--runtime runc|crun]``
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
from pathlib import Path

from lamina import _linux
from lamina.runtime import (
    ContainerConfig,
    OCIRuntime,
    Stdio,
    build_spec,
    remove_cgroup,
    write_bundle,
    write_init_files,
)
from lamina.snapshot import OverlaySnapshotter

BUSYBOX = "/bin/busybox"


def make_rootfs(fs: Path) -> None:
    """A busybox rootfs like the shared bench base (bin/ applets, /etc files)."""
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
    for name in ("hosts", "resolv.conf", "hostname"):
        (fs / "etc" / name).write_text("")


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=10, help="repetitions (median reported)")
    ap.add_argument("--runtime", default="runc", help="runc or crun")
    ap.add_argument("--durable", action="store_true", help="fsync the snapshot state file")
    ap.add_argument(
        "--no-volatile", action="store_true", help="mount the container's upper without volatile"
    )
    ap.add_argument(
        "--defer-remove", action="store_true", help="remove(defer=True): delete files later"
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_run.py needs root (mounts, runc)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="lamina-bench-run-"))
    rt = OCIRuntime(args.runtime, state_root=work / "state")
    cg_parent = "/lamina-bench"
    try:
        # --- setup: an image of two committed layers, and a bare bundle ---------
        sn = OverlaySnapshotter(work / "store", durable=args.durable)
        sn.prepare("x-base", None)
        make_rootfs(sn.fs_path("x-base"))
        sn.commit("base", "x-base")
        sn.prepare("x-app", "base")
        (sn.fs_path("x-app") / "app").write_text("app layer\n")
        sn.commit("app", "x-app")

        bare_rootfs = work / "bare" / "rootfs"
        make_rootfs(bare_rootfs)
        bare_cfg = ContainerConfig(
            args=("true",), hostname="bare", cgroups_path=f"{cg_parent}/bare"
        )
        write_bundle(work / "bare", build_spec(bare_cfg, bare_rootfs))

        quiet = Stdio(subprocess.DEVNULL, subprocess.DEVNULL, subprocess.DEVNULL)

        def bare_once() -> float:
            t0 = time.perf_counter()
            p = subprocess.Popen(
                [rt.binary, "--root", str(rt.state_root), "run", "-b", str(work / "bare"), "bare"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=rt._preexec(),
            )
            p.wait()
            assert p.returncode == 0, "bare run failed"
            return time.perf_counter() - t0

        phases: dict[str, list[float]] = {
            k: [] for k in ("prepare", "mount", "spec", "run", "unmount", "remove", "total")
        }

        def lamina_once(i: int) -> None:
            cid = f"bench-{i}"
            base = work / "ctr" / cid
            rootfs = base / "rootfs"
            t0 = time.perf_counter()
            mounts = sn.prepare(cid, "app", volatile=not args.no_volatile)
            t1 = time.perf_counter()
            rootfs.mkdir(parents=True)
            _linux.mount_all(mounts, rootfs)
            t2 = time.perf_counter()
            binds = write_init_files(base, hostname=cid[:12])
            cfg = ContainerConfig(
                args=("true",), hostname=cid[:12], mounts=binds, cgroups_path=f"{cg_parent}/{cid}"
            )
            write_bundle(base, build_spec(cfg, rootfs))
            t3 = time.perf_counter()
            res = rt.run(cid, base, quiet)
            t4 = time.perf_counter()
            _linux.unmount(rootfs)
            t5 = time.perf_counter()
            sn.remove(cid, defer=args.defer_remove)
            t6 = time.perf_counter()
            assert res.exit_code == 0
            for k, v in zip(
                phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t6 - t0), strict=True
            ):
                phases[k].append(v)
            shutil.rmtree(base)

        # warm-up (page cache, runtime binary), then interleave the two measurements
        bare_once()
        lamina_once(-1)
        for k in phases:
            phases[k].clear()
        bare: list[float] = []
        for i in range(args.n):
            bare.append(bare_once())
            lamina_once(i)

        load = os.getloadavg()[0]
        print(f"# {rt.version} | cgroups {rt.cgroups.mode.value} | n={args.n} | load {load:.2f}")
        print(f"{'what':<28}{'median ms':>10}")
        print(f"{'bare ' + args.runtime + ' run true':<28}{median_ms(bare):>10.1f}")
        for k, v in phases.items():
            label = f"lamina {k}" if k != "total" else "lamina total"
            print(f"{label:<28}{median_ms(v):>10.1f}")
        overhead = median_ms(phases["total"]) - median_ms(bare)
        print(f"{'lamina overhead vs bare':<28}{overhead:>10.1f}")
        if args.defer_remove:
            t0 = time.perf_counter()
            purged = sn.cleanup()
            print(
                f"# cleanup() purged {purged} deferred dirs in {1000 * (time.perf_counter() - t0):.1f} ms"
            )
        return 0
    finally:
        _linux.unmount(work, lazy=True)
        remove_cgroup(cg_parent)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

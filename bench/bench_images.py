#!/usr/bin/env python3
"""Time ``import`` and ``save`` of a ~500 MB rootfs: lamina beside Docker, same run.

Usage (as root, with a Docker engine reachable through DOCKER_HOST or the default socket):

    .venv/bin/python bench/bench_images.py [--mb 500] [--n 3]

The rootfs is the busybox tree from tools/mkrootfs.py plus generated files (random data,
so compression cannot cheat) in a few thousand files of mixed sizes.  Each measurement is
the median of N runs; lamina's store is emptied (and Docker's image removed) before each
import.  Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")


def make_rootfs(out: Path, mb: int) -> None:
    sys.path.insert(0, str(REPO / "tools"))
    import mkrootfs  # type: ignore[import-not-found]

    base = out.with_suffix(".base.tar")
    mkrootfs.build(str(base))
    rng = random.Random(42)
    remaining = mb * 1_000_000
    with tarfile.open(base) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        i = 0
        while remaining > 0:
            size = min(remaining, rng.choice([4_000, 40_000, 400_000, 4_000_000]))
            ti = tarfile.TarInfo(f"usr/share/data/d{i // 200:03d}/f{i:05d}.bin")
            ti.size, ti.mode, ti.mtime = size, 0o644, 0
            dst.addfile(ti, io.BytesIO(rng.randbytes(size)))
            remaining -= size
            i += 1
    base.unlink()


def timed(cmd: list[str], **kw: object) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]
    _, err = proc.communicate()
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err.decode()}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--n", type=int, default=3)
    args = ap.parse_args()
    lamina = [str(Path(sys.executable).parent / "lamina")]
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    try:
        rootfs = work / "rootfs.tar"
        make_rootfs(rootfs, args.mb)
        size = rootfs.stat().st_size
        root = work / "root"
        results: dict[str, list[float]] = {k: [] for k in
                                           ("lamina import", "docker import", "lamina save", "docker save")}
        for _ in range(args.n):
            shutil.rmtree(root, ignore_errors=True)
            results["lamina import"].append(timed([*lamina, "--root", str(root), "import", str(rootfs), "bench-img:1"]))
            subprocess.run([DOCKER, "rmi", "-f", "bench-img:1"], capture_output=True)
            results["docker import"].append(timed([DOCKER, "import", str(rootfs), "bench-img:1"]))
        for _ in range(args.n):
            out = work / "l.tar"
            out.unlink(missing_ok=True)
            results["lamina save"].append(timed([*lamina, "--root", str(root), "save", "-o", str(out), "bench-img:1"]))
            out.unlink(missing_ok=True)
            results["docker save"].append(timed([DOCKER, "save", "-o", str(out), "bench-img:1"]))
        subprocess.run([DOCKER, "rmi", "-f", "bench-img:1"], capture_output=True)
        print(f"rootfs tar: {size / 1e6:.0f} MB, median of {args.n}\n")
        print("| operation | lamina (s) | docker (s) | lamina ÷ docker |")
        print("| --- | --- | --- | --- |")
        for op in ("import", "save"):
            lam = statistics.median(results[f"lamina {op}"])
            doc = statistics.median(results[f"docker {op}"])
            print(f"| {op} | {lam:.2f} | {doc:.2f} | {lam / doc:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

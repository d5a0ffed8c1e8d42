#!/usr/bin/env python3
"""``lamina run --rm IMAGE true`` beside ``docker run --rm --network none IMAGE true``.

``lamina`` and ``lamina-cli`` (the console script) take the click-free ``run`` path;
``lamina-click`` passes ``--root`` before the verb, which goes through click.

Both engines get the same busybox rootfs tar (``tools/mkrootfs.py``) imported as an
image; each command is run N times (default 10) after one warm-up, the two interleaved,
and the medians are reported -- plus the bare runtime (``runc run`` of a ready bundle)
as the floor, so the overhead of each engine is visible.  Docker is skipped when no
engine answers (``DOCKER_HOST``).

Run as root:  ``/work/venv/bin/python bench/bench_container.py [-n 10] [--runtime runc]``
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

REPO = Path(__file__).resolve().parents[1]
LAMINA = [sys.executable, "-m", "lamina"]


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode().strip()}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=10, help="repetitions (median reported)")
    ap.add_argument("--runtime", default="runc", help="runc or crun (lamina's --runtime)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_container.py needs root", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="lamina-bench-ctr-"))
    root = work / "root"
    tar = work / "bb.tar"
    docker = shutil.which("docker")
    try:
        subprocess.run([sys.executable, str(REPO / "tools/mkrootfs.py"), str(tar)], check=True)
        subprocess.run([*LAMINA, "--root", str(root), "import", str(tar), "bench:1"], check=True,
                       capture_output=True)
        if docker and subprocess.run([docker, "version"], capture_output=True).returncode == 0:
            subprocess.run([docker, "import", str(tar), "lamina-bench:1"], check=True,
                           capture_output=True)
        else:
            docker = None
        # the floor: the runtime alone on a ready bundle (what bench/bench_run.py calls bare)
        bundle = work / "bare"
        (bundle / "rootfs").mkdir(parents=True)
        subprocess.run(["tar", "-xf", str(tar), "-C", str(bundle / "rootfs")], check=True)
        from lamina.runtime import ContainerConfig, build_spec, write_bundle

        write_bundle(bundle, build_spec(ContainerConfig(args=("true",), hostname="bare",
                                                        cgroups_path="/lamina-bench/bare"),
                                        bundle / "rootfs"))
        rt = shutil.which(args.runtime) or args.runtime
        # `lamina run ...` takes the click-free path (lamina.cli._runfast) when the root
        # comes from $LAMINA_ROOT; `lamina --root R run ...` goes through click.
        env = dict(os.environ, LAMINA_ROOT=str(root))
        cmds = {
            "runtime": [rt, "--root", str(work / "state"), "run", "-b", str(bundle), "bare"],
            "lamina": [*LAMINA, "run", "--rm", "--runtime", args.runtime, "bench:1", "true"],
            "lamina-cli": [str(Path(sys.executable).parent / "lamina"), "run", "--rm",
                           "--runtime", args.runtime, "bench:1", "true"],
            "lamina-click": [*LAMINA, "--root", str(root), "run", "--rm", "--runtime",
                             args.runtime, "bench:1", "true"],
        }
        if docker:
            cmds["docker"] = [docker, "run", "--rm", "--network", "none", "lamina-bench:1", "true"]
        samples: dict[str, list[float]] = {k: [] for k in cmds}
        for argv in cmds.values():  # warm-up
            timed(argv, env)
        for _ in range(args.n):
            for name, argv in cmds.items():
                samples[name].append(timed(argv, env))
        print(f"median of {args.n} runs of `true` (runtime {args.runtime}):")
        floor = statistics.median(samples["runtime"]) * 1000
        for name, vals in samples.items():
            med = statistics.median(vals) * 1000
            extra = "" if name == "runtime" else f"  (+{med - floor:.1f} ms over the runtime)"
            print(f"  {name:<12} {med:8.1f} ms{extra}")
        leftover = list((root / "containers").iterdir()) if (root / "containers").exists() else []
        assert leftover == [], f"containers left behind: {leftover}"
    finally:
        if docker:
            subprocess.run([docker, "rmi", "lamina-bench:1"], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(root)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

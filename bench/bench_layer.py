#!/usr/bin/env python3
"""Time lamina's layer writer and applier against GNU tar on a generated tree.

    /work/venv/bin/python bench/bench_layer.py [--size-mb 200] [--files 5000] [--dir /tmp/x]

The tree (made once, deterministic for a given seed) mixes many small files and a
few large ones, with hex text that deflates about 2:1.  Every timing runs on a warm
page cache (the tree is read once first); each figure is the best of ``--repeat``
runs.  Results go to stdout as a table; nothing else is written outside ``--dir``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lamina.layer import Compression, apply_layer, write_layer


def make_tree(root: Path, total_mb: int, files: int, seed: int) -> int:
    """Write ``files`` files of ~``total_mb`` MB in total under ``root``; returns bytes."""
    rng = random.Random(seed)
    total = total_mb << 20
    n_large = max(1, files // 50)
    small_budget = total // 5
    sizes = [
        max(1, int(rng.expovariate(1.0) * small_budget / (files - n_large)))
        for _ in range(files - n_large)
    ]
    sizes += [max(1, (total - sum(sizes)) // n_large)] * n_large
    rng.shuffle(sizes)
    written = 0
    for i, size in enumerate(sizes):
        d = root / f"d{i % 97:02d}" / f"s{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes((size + 1) // 2).hex().encode()[:size]
        (d / f"f{i:05d}.txt").write_bytes(data)
        written += size
    for i in range(0, files, 100):  # some links, as real trees have
        src = next((root / f"d{i % 97:02d}" / f"s{i % 7}").iterdir())
        os.symlink(src.name, src.parent / f"link{i}")
    return written


def best(
    fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None
) -> tuple[float, object]:
    """The fastest of ``repeat`` timed calls of ``fn`` (``setup`` runs untimed before each)."""
    times, result = [], None
    for _ in range(repeat):
        if setup is not None:
            setup()
            os.sync()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--dir", type=Path, default=None, help="work dir (default: a temp dir, removed)"
    )
    args = parser.parse_args()

    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-layer-"))
    work.mkdir(parents=True, exist_ok=True)
    tree = work / "tree"
    try:
        if not tree.exists():
            size = make_tree(tree, args.size_mb, args.files, args.seed)
        else:
            size = sum(
                p.stat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink()
            )
        subprocess.run(
            ["tar", "cf", "/dev/null", "-C", str(tree), "."], check=True
        )  # warm the cache
        mb = size / (1 << 20)
        print(f"tree: {mb:.0f} MB in {args.files} files (+ symlinks), cpus={os.cpu_count()}")
        rows: list[tuple[str, float, int | None]] = []

        def lamina_write(compression: Compression, threads: int, out: Path) -> Callable[[], object]:
            def run() -> object:
                with open(out, "wb") as f:
                    return write_layer(tree, f, compression=compression, threads=threads)

            return run

        for name, comp, threads in [
            ("lamina write gzip (isal, 1 thread)", Compression.GZIP, 1),
            ("lamina write gzip (isal, 2 threads)", Compression.GZIP, 2),
            ("lamina write zstd -3", Compression.ZSTD, 1),
            ("lamina write uncompressed", Compression.NONE, 1),
        ]:
            out = work / f"layer.{comp.value}.{threads}"
            seconds, _ = best(lamina_write(comp, threads, out), args.repeat)
            rows.append((name, seconds, out.stat().st_size))

        tar_gz = work / "gnu.tar.gz"
        seconds, _ = best(
            lambda: subprocess.run(["tar", "czf", str(tar_gz), "-C", str(tree), "."], check=True),
            args.repeat,
        )
        rows.append(("tar czf (GNU tar + gzip -6)", seconds, tar_gz.stat().st_size))
        if shutil.which("zstd"):
            tar_zst = work / "gnu.tar.zst"
            seconds, _ = best(
                lambda: subprocess.run(
                    ["tar", "--zstd", "-cf", str(tar_zst), "-C", str(tree), "."], check=True
                ),
                args.repeat,
            )
            rows.append(("tar --zstd -cf", seconds, tar_zst.stat().st_size))

        dest = work / "apply"

        def fresh_dest() -> None:
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir()

        def lamina_apply(blob: Path) -> Callable[[], object]:
            def run() -> object:
                with open(blob, "rb") as f:
                    return apply_layer(f, dest)

            return run

        def tar_extract(blob: Path, flag: str) -> Callable[[], object]:
            def run() -> object:
                return subprocess.run(["tar", flag, "-xf", str(blob), "-C", str(dest)], check=True)

            return run

        for name, fn in [
            ("lamina apply gzip", lamina_apply(work / "layer.gzip.1")),
            ("tar xzf", tar_extract(tar_gz, "-z")),
            ("lamina apply zstd", lamina_apply(work / "layer.zstd.1")),
            ("lamina apply uncompressed", lamina_apply(work / "layer.none.1")),
        ]:
            seconds, _ = best(fn, args.repeat, fresh_dest)
            rows.append((name, seconds, None))
        if shutil.which("zstd"):
            seconds, _ = best(tar_extract(work / "gnu.tar.zst", "--zstd"), args.repeat, fresh_dest)
            rows.append(("tar --zstd -xf", seconds, None))

        print(f"{'operation':40} {'seconds':>8} {'MB/s':>8} {'output MB':>10}")
        for name, seconds, out_size in rows:
            out_mb = f"{out_size / (1 << 20):10.1f}" if out_size is not None else " " * 10
            print(f"{name:40} {seconds:8.2f} {mb / seconds:8.0f} {out_mb}")
    finally:
        shutil.rmtree(work / "apply", ignore_errors=True)
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The throw-away file server, timed: ``run -d -p PORT:80 -v DIR:/www IMG httpd …``, an HTTP
GET of a file from the host, ``stop -t 2`` (httpd as PID 1 ignores SIGTERM, so both engines wait the grace
period, then SIGKILL), ``rm`` — lamina beside Docker in the same run.

Both engines import the same busybox rootfs (tools/mkrootfs.py).  Docker's container uses
``-p`` too, so it needs a network with port publishing: dockerd here runs with
``--bridge=none``, so Docker is timed with ``--network host`` and httpd on the host port
(no proxy), which flatters Docker; lamina uses its own network namespace and the monitor's
port forwarder, as a user would.  Median of N rounds (default 5), each round interleaved.

Run as root:  .venv/bin/python bench/bench_fileserver.py [-n 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAMINA = [sys.executable, "-m", "lamina"]
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def get(port: int, deadline: float = 10.0) -> bytes:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=2) as r:
                return bytes(r.read())
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.005)


def round_trip(cli: list[str], image: str, www: Path, docker: bool) -> dict[str, float]:
    port = free_port()
    name = f"bench-web-{port}"
    if docker:
        args = ["run", "-d", "--name", name, "--network", "host", "-v", f"{www}:/www", image,
                "httpd", "-f", "-p", str(port), "-h", "/www"]
    else:
        args = ["run", "-d", "--name", name, "-p", f"{port}:80", "-v", f"{www}:/www", image,
                "httpd", "-f", "-p", "80", "-h", "/www"]
    t = {}
    t0 = time.perf_counter()
    run([*cli, *args])
    t["run -d"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    assert get(port) == b"hello\n"
    t["first GET"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    run([*cli, "stop", "-t", "2", name])
    t["stop"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    run([*cli, "rm", name])
    t["rm"] = time.perf_counter() - t3
    t["total"] = time.perf_counter() - t0
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    try:
        sys.path.insert(0, str(REPO / "tools"))
        import mkrootfs  # type: ignore[import-not-found]

        tar = work / "bb.tar"
        mkrootfs.build(str(tar))
        www = work / "www"
        www.mkdir()
        (www / "hello.txt").write_text("hello\n")
        lam = [*LAMINA, "--root", str(work / "root")]
        run([*lam, "import", str(tar), "bench-web:1"])
        have_docker = shutil.which(DOCKER) is not None and subprocess.run(
            [DOCKER, "version"], capture_output=True).returncode == 0
        if have_docker:
            run([DOCKER, "import", str(tar), "bench-web:1"])
        results: dict[str, list[dict[str, float]]] = {"lamina": [], "docker": []}
        for _ in range(args.n):
            results["lamina"].append(round_trip(lam, "bench-web:1", www, docker=False))
            if have_docker:
                results["docker"].append(round_trip([DOCKER], "bench-web:1", www, docker=True))
        if have_docker:
            run([DOCKER, "rmi", "-f", "bench-web:1"])
        keys = ["run -d", "first GET", "stop", "rm", "total"]
        print(f"median of {args.n} rounds, seconds\n")
        print("| step | lamina | docker | lamina ÷ docker |")
        print("| --- | --- | --- | --- |")
        for k in keys:
            lm = statistics.median(r[k] for r in results["lamina"])
            if results["docker"]:
                dm = statistics.median(r[k] for r in results["docker"])
                print(f"| {k} | {lm:.3f} | {dm:.3f} | {lm / dm:.2f} |")
            else:
                print(f"| {k} | {lm:.3f} | - | - |")
    finally:
        subprocess.run(["umount", "-R", str(work / "root")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

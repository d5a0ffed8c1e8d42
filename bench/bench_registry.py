#!/usr/bin/env python3
"""Time lamina's push and pull of a ~500 MB image over loopback, beside ``skopeo copy``.

    /work/venv/bin/python bench/bench_registry.py [--size-mb 500] [--layers 5] [--dir /tmp/x]

A Debian ``docker-registry`` is started on a free 127.0.0.1 port (and stopped at the
end).  The image is made locally with ``--layers`` uncompressed layers of random bytes
and hex text (which deflates about 2:1), so a push has to compress, as it does for
any locally built image.  Measured, each in a fresh state:

* ``lamina push``        -- compress (gzip, ISA-L) and upload every layer;
* ``lamina push again``  -- the same image once more: HEADs only;
* ``skopeo copy`` push   -- docker-archive (``lamina save``) -> registry, skopeo compressing;
* ``lamina pull``        -- download, verify *and unpack* into a fresh store;
* ``skopeo copy`` pull   -- registry -> ``dir:`` (download and verify only, no unpacking).

Results go to stdout as a table; nothing is written outside ``--dir``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lamina.digest import Digest
from lamina.images.store import ImageStore, LayerInput
from lamina.oci import mediatypes
from lamina.oci._json import canonical_json
from lamina.transfer.pull import pull
from lamina.transfer.push import push

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from registry_servers import DistributionRegistry


def make_layer(path: Path, size: int, seed: int) -> Digest:
    """An uncompressed layer tar of ~``size`` bytes: 8 MB files, half random, half hex."""
    rng = random.Random(seed)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        done, i = 0, 0
        while done < size:
            n = min(8 << 20, size - done)
            half = n // 2
            data = rng.randbytes(half) + rng.randbytes((n - half) // 2).hex().encode()[: n - half]
            ti = tarfile.TarInfo(f"data/{seed}/file{i:04d}")
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))
            done += n
            i += 1
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return Digest("sha256", sha.hexdigest())


def timed(label: str, fn: Callable[[], object], rows: list[tuple[str, float]]) -> None:
    t = time.perf_counter()
    fn()
    rows.append((label, time.perf_counter() - t))
    print(f"  {label}: {rows[-1][1]:.2f} s", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=500)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args()
    if shutil.which("docker-registry") is None or shutil.which("skopeo") is None:
        print("needs docker-registry and skopeo (apt-get install docker-registry skopeo)",
              file=sys.stderr)
        return 2
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-registry-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["DOCKER_CONFIG"] = str(work / "docker-config")
    reg = DistributionRegistry(work / "registry")
    rows: list[tuple[str, float]] = []
    try:
        size = (args.size_mb << 20) // args.layers
        print(f"making a {args.size_mb} MB image of {args.layers} layers ...", file=sys.stderr)
        tars = [work / f"layer{i}.tar" for i in range(args.layers)]
        diff_ids = [make_layer(t, size, i) for i, t in enumerate(tars)]
        cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
               "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]}}
        name = f"{reg.host}/bench/lamina:1"
        with ImageStore(work / "src") as src:
            src.add_image(canonical_json(cfg), [
                LayerInput((lambda t=t: open(t, "rb")), mediatypes.OCI_LAYER, d, d)  # type: ignore[misc]  # noqa: SIM115
                for t, d in zip(tars, diff_ids, strict=True)], names=[name])
            for t in tars:
                t.unlink()
            timed("lamina push (compress + upload)", lambda: push(src, name), rows)
            timed("lamina push again (HEAD only)", lambda: push(src, name), rows)
            archive = work / "image.tar"
            with open(archive, "wb") as fh:
                src.save(fh, [name])
        skopeo_ref = f"docker://{reg.host}/bench/skopeo:1"
        timed("skopeo copy docker-archive -> registry", lambda: subprocess.run(
            ["skopeo", "copy", "-q", "--dest-tls-verify=false", f"docker-archive:{archive}",
             skopeo_ref], check=True), rows)
        archive.unlink()
        with ImageStore(work / "dst") as dst:
            timed("lamina pull (download + verify + unpack)", lambda: pull(dst, name), rows)
        timed("skopeo copy registry -> dir: (download + verify)", lambda: subprocess.run(
            ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{name}",
             f"dir:{work / 'skopeo-dir'}"], check=True), rows)
        with ImageStore(work / "dst2") as dst2:
            timed("lamina pull of skopeo's push", lambda: pull(dst2, f"{reg.host}/bench/skopeo:1"),
                  rows)
    finally:
        reg.stop()
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    mb = args.size_mb
    print(f"\n{'step':<52} {'seconds':>8} {'MB/s':>8}")
    for label, secs in rows:
        print(f"{label:<52} {secs:8.2f} {mb / secs if secs else 0:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

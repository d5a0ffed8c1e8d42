#!/usr/bin/env python3
"""Make a small busybox root filesystem tarball, offline and deterministic.

Usage: ``python3 tools/mkrootfs.py OUT.tar [--busybox /bin/busybox]``

The tree has ``/bin/busybox`` (Debian's static build, package ``busybox-static``), a
symlink for every applet it lists, ``/etc/passwd``, ``/etc/group`` and ``/etc/shadow``
with ``root``, ``work`` (1000:1000, home ``/home/work``) and ``nobody`` (65534), empty
``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname``, ``/tmp`` with mode 1777 and
``/root`` with mode 0700.  Every entry has mtime 0 and numeric owners, and entries are
written in sorted order, so two runs give identical bytes.  No network, no root needed.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "work:x:1000:1000:work:/home/work:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nwork:x:1000:\nnogroup:x:65534:\n"
SHADOW = "root:*:0:0:99999:7:::\nwork:*:0:0:99999:7:::\nnobody:*:0:0:99999:7:::\n"


def _applets(busybox: str) -> list[str]:
    out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def build(out_path: str, busybox: str = "/bin/busybox") -> None:
    entries: dict[str, tarfile.TarInfo] = {}
    data: dict[str, bytes] = {}

    def add_dir(path: str, mode: int = 0o755, uid: int = 0) -> None:
        ti = tarfile.TarInfo(path)
        ti.type, ti.mode, ti.uid, ti.gid = tarfile.DIRTYPE, mode, uid, uid
        entries[path] = ti

    def add_file(path: str, content: bytes, mode: int = 0o644) -> None:
        ti = tarfile.TarInfo(path)
        ti.size, ti.mode = len(content), mode
        entries[path], data[path] = ti, content

    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "home", "var", "var/tmp",
              "dev", "proc", "sys", "run"):
        add_dir(d)
    add_dir("tmp", 0o1777)
    add_dir("var/tmp", 0o1777)
    add_dir("root", 0o700)
    add_dir("home/work", 0o755, uid=1000)
    with open(busybox, "rb") as fh:
        add_file("bin/busybox", fh.read(), 0o755)
    for applet in _applets(busybox):
        name = applet.lstrip("/")
        if name == "bin/busybox" or name in entries:
            continue
        depth = name.count("/")
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode = tarfile.SYMTYPE, 0o777
        ti.linkname = "busybox" if name.startswith("bin/") else "../" * depth + "bin/busybox"
        entries[name] = ti
    add_file("etc/passwd", PASSWD.encode())
    add_file("etc/group", GROUP.encode())
    add_file("etc/shadow", SHADOW.encode(), 0o640)
    for f in ("etc/hosts", "etc/resolv.conf", "etc/hostname"):
        add_file(f, b"")

    with open(out_path, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(entries):
            ti = entries[name]
            ti.mtime, ti.uname, ti.gname = 0, "", ""
            tar.addfile(ti, io.BytesIO(data[name]) if name in data else None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--busybox", default="/bin/busybox")
    args = ap.parse_args()
    build(args.out, args.busybox)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fixtures for the container integration tests: a store with a busybox image, and a
``lamina`` runner bound to it.  Each test module gets its own store (module scope); when
the module is done, every container must be gone and nothing mounted or left in a
cgroup."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lamina import _linux

LAMINA = [sys.executable, "-m", "lamina"]

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         busybox_rootfs_tar: Path) -> Iterator[Path]:
    r = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    subprocess.run([*LAMINA, "--root", str(r), "import", str(busybox_rootfs_tar), "bb:1"],
                   check=True, capture_output=True)
    yield r
    out = subprocess.run([*LAMINA, "--root", str(r), "ps", "-aq", "--no-trunc"],
                         capture_output=True, text=True)
    ids = out.stdout.split()
    if ids:
        subprocess.run([*LAMINA, "--root", str(r), "rm", "-fv", *ids], capture_output=True)
    assert _linux.mounts_under(r) == [], "a test left a mount behind"
    assert ids == [], f"a test left containers behind: {ids}"
    assert not any(os.path.exists(f"{m.mount_point}/lamina/{i}") for i in ids
                   for m in _linux.mount_table() if m.fstype.startswith("cgroup"))


@pytest.fixture
def lamina(root: Path) -> Run:
    def run(*args: str, check: bool = True, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*LAMINA, "--root", str(root), *args], capture_output=True,
                              text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"lamina {' '.join(args)}: {proc.returncode} {proc.stderr}")
        return proc
    return run

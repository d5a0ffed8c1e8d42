"""Fixtures shared by every test tier.

* ``shared_dir`` -- the read-only ``shared/`` folder beside the repository
  (``$LAMINA_SHARED`` overrides), holding conformance data and the corpus.
* ``lamina_root`` -- a fresh, temporary store root; tests never touch /var/lib/lamina.
* ``busybox_rootfs_tar`` -- a deterministic busybox rootfs tarball made offline
  (``tools/mkrootfs.py``), built once per session.
* ``docker`` -- a callable running the Docker CLI against the engine that ``.ci/run``
  started (``DOCKER_HOST``); tests using it skip when no engine answers.

Tests that need root (mounts, namespaces) carry ``@pytest.mark.root`` and are skipped
for other users.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_mkrootfs():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("mkrootfs", REPO / "tools" / "mkrootfs.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root (mounts, namespaces)")
        for item in items:
            if "root" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    env = os.environ.get("LAMINA_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    if not path.is_dir():
        pytest.fail(f"shared/ not found at {path} (set LAMINA_SHARED)")
    return path


@pytest.fixture
def lamina_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "lamina-root"
    root.mkdir()
    monkeypatch.setenv("LAMINA_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def busybox_rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not Path("/bin/busybox").exists():
        pytest.skip("Debian's busybox-static is not installed (apt-get install busybox-static)")
    out = tmp_path_factory.mktemp("rootfs") / "busybox-rootfs.tar"
    _load_mkrootfs().build(str(out))
    return out


@pytest.fixture(scope="session")
def docker() -> Callable[..., subprocess.CompletedProcess[str]]:
    exe = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
    if not exe:
        pytest.skip("the Docker CLI is not installed")
    probe = subprocess.run([exe, "version", "--format", "{{.Server.Version}}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no Docker engine answers (DOCKER_HOST={os.environ.get('DOCKER_HOST')})")

    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    return run

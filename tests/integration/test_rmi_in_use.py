"""rmi and image prune respect containers, as Docker does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


def lamina(root: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "lamina", "--root", str(root), *args],
                          capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_image_in_use_is_kept_until_its_container_goes(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    root = tmp_path / "root"
    lamina(root, "import", str(busybox_rootfs_tar), "base:1")
    lamina(root, "create", "--name", "c1", "base:1", "true")
    refused = lamina(root, "rmi", "base:1", ok=False)
    assert refused.returncode == 1
    assert "must force" in refused.stderr and "is using its referenced image" in refused.stderr
    assert lamina(root, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout == "base:1\n"
    assert lamina(root, "rmi", "-f", "base:1").stdout == "Untagged: base:1\n"
    assert "<none>" in lamina(root, "images").stdout  # still there, nameless
    assert lamina(root, "image", "prune").stdout.endswith("Total images removed: 0\n")
    lamina(root, "rm", "c1")
    out = lamina(root, "image", "prune").stdout
    assert "deleted: sha256:" in out and out.endswith("Total images removed: 1\n")
    assert lamina(root, "images", "-q").stdout == ""
    assert not list((root / "blobs" / "sha256").iterdir())

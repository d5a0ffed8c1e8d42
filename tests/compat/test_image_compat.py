"""Images move between lamina and the real Docker engine, skopeo and umoci unchanged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.compat

Docker = Callable[..., subprocess.CompletedProcess[str]]
LAMINA = [sys.executable, "-m", "lamina"]


def lamina(root: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([*LAMINA, "--root", str(root), *args], capture_output=True, input=input)
    if proc.returncode != 0:
        raise AssertionError(f"lamina {' '.join(args)} failed: {proc.stderr.decode()}")
    return proc


@pytest.fixture
def tag() -> Iterator[str]:
    yield f"lamina-compat-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def docker_base(docker: Docker, busybox_rootfs_tar: Path, tag: str) -> Iterator[str]:
    name = f"{tag}-base:1"
    docker("import", str(busybox_rootfs_tar), name)
    yield name
    docker("rmi", "-f", name, check=False)


def test_lamina_save_then_docker_load_and_run(docker: Docker, busybox_rootfs_tar: Path,
                                              tmp_path: Path, tag: str) -> None:
    root = tmp_path / "root"
    name = f"{tag}:1"
    lamina(root, "import", "-c", 'CMD ["sh", "-c", "echo hello from $GREETING"]',
           "-c", "ENV GREETING=lamina", str(busybox_rootfs_tar), name)
    ours = json.loads(lamina(root, "inspect", name).stdout)[0]
    archive = tmp_path / "img.tar"
    lamina(root, "save", "-o", str(archive), name)
    try:
        out = docker("load", "-i", str(archive)).stdout
        assert f"Loaded image: {name}" in out
        theirs = json.loads(docker("image", "inspect", name).stdout)[0]
        assert theirs["Id"] == ours["Id"]
        assert theirs["RootFS"]["Layers"] == ours["RootFS"]["Layers"]
        assert theirs["Size"] == ours["Size"]
        run = docker("run", "--rm", "--network", "none", name)
        assert run.stdout == "hello from lamina\n"
    finally:
        docker("rmi", "-f", name, check=False)


def test_docker_save_lamina_load_keeps_ids_and_whiteouts(docker: Docker, docker_base: str,
                                                         tmp_path: Path, tag: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {docker_base}\n"
        "RUN echo one > /one && echo two > /two && mkdir -p /d/sub && echo x > /d/sub/x\n"
        "RUN rm /two /etc/shadow && rm -rf /d && mkdir /d && echo y > /d/y\n"
        'ENV A=1\nCMD ["sh"]\n'
    )
    name = f"{tag}-multi:1"
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    exe = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
    build = subprocess.run([exe, "build", "--network", "host", "-q", "-t", name, str(ctx)],  # type: ignore[list-item]
                           capture_output=True, text=True, env=env)
    assert build.returncode == 0, build.stderr
    try:
        theirs = json.loads(docker("image", "inspect", name).stdout)[0]
        saved = tmp_path / "docker.tar"
        docker("save", "-o", str(saved), name)
        root = tmp_path / "root"
        out = lamina(root, "load", "-i", str(saved)).stdout.decode()
        assert f"Loaded image: {name}" in out
        ours = json.loads(lamina(root, "inspect", name).stdout)[0]
        assert ours["Id"] == theirs["Id"]
        assert ours["RootFS"]["Layers"] == theirs["RootFS"]["Layers"]
        assert ours["Config"]["Env"] == theirs["Config"]["Env"]
        assert ours["Config"]["Cmd"] == theirs["Config"]["Cmd"]
        assert ours["Size"] == theirs["Size"]
        # round trip back into Docker: deletions must still be deletions
        docker("rmi", "-f", name)
        back = tmp_path / "back.tar"
        lamina(root, "save", "-o", str(back), name)
        docker("load", "-i", str(back))
        check = docker("run", "--rm", "--network", "none", name, "sh", "-c",
                       "cat /one; test -e /two && echo two-present; "
                       "test -e /etc/shadow && echo shadow-present; ls /d")
        assert check.stdout == "one\ny\n"
        assert json.loads(docker("image", "inspect", name).stdout)[0]["Id"] == theirs["Id"]
    finally:
        docker("rmi", "-f", name, check=False)


@pytest.mark.skipif(not shutil.which("skopeo") or not shutil.which("umoci"),
                    reason="skopeo and umoci are not installed (apt-get install skopeo umoci)")
def test_oci_format_is_read_by_skopeo_and_umoci(busybox_rootfs_tar: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    lamina(root, "import", "-c", 'CMD ["sh"]', str(busybox_rootfs_tar), "oci-test:2")
    archive = tmp_path / "oci.tar"
    lamina(root, "save", "--format", "oci", "-o", str(archive), "oci-test:2")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}"],
                                     capture_output=True, text=True, check=True).stdout)
    ours = json.loads(lamina(root, "inspect", "oci-test:2").stdout)[0]
    assert info["Layers"] == ours["RootFS"]["Layers"]  # uncompressed layers: blob digest = diff ID
    assert info["Architecture"] == ours["Architecture"]
    layout = tmp_path / "layout"
    layout.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(layout)], check=True)
    bundle = tmp_path / "bundle"
    res = subprocess.run(["umoci", "unpack", "--image", f"{layout}:2", str(bundle)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (bundle / "rootfs" / "bin" / "busybox").is_file()
    assert (bundle / "rootfs" / "etc" / "passwd").read_text().startswith("root:")

"""``lamina run`` against ``docker run`` on the same busybox tar imported into both.

The CMD/ENTRYPOINT matrix (image config x ``--entrypoint`` x arguments) and ``-u`` (name,
uid, uid:gid, name:group, unknown user) must give the same output and exit status.  An
image per row of the matrix is made with ``import -c`` in both engines.  Skips cleanly
when no Docker engine answers (CI provides one through ``DOCKER_HOST``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.compat,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed"),
]

Docker = Callable[..., subprocess.CompletedProcess[str]]
LAMINA = [sys.executable, "-m", "lamina"]

# image variants: name -> the --change lines of `import`
IMAGES: dict[str, list[str]] = {
    "none": [],
    "cmd-exec": ['CMD ["echo", "cmd-exec", "p1"]'],
    "cmd-shell": ["CMD echo cmd-shell $HOME"],
    "ep-exec": ['ENTRYPOINT ["echo", "ep-exec"]'],
    "ep-shell": ["ENTRYPOINT echo ep-shell"],
    "ep-exec-cmd-exec": ['ENTRYPOINT ["echo", "ep"]', 'CMD ["cmd", "p1"]'],
    "ep-exec-cmd-shell": ['ENTRYPOINT ["echo", "ep"]', "CMD cmd p1"],
    "ep-shell-cmd-exec": ["ENTRYPOINT echo ep-shell", 'CMD ["ignored"]'],
    "user-work": ['CMD ["id"]', "USER work"],
}

# (image, run flags, args)
MATRIX: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    (img, flags, args)
    for img in IMAGES
    for flags, args in [
        ((), ()),
        ((), ("echo", "arg")),
        (("--entrypoint", "echo"), ()),
        (("--entrypoint", "echo"), ("x", "y")),
        (("--entrypoint", ""), ("echo", "cleared")),
    ]
]

USERS = ["", "work", "1000", "1000:1000", "work:root", "0:65534", "4242", "nouser", "work:nogrp"]


@pytest.fixture(scope="module")
def engines(docker: Docker, busybox_rootfs_tar: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Docker, Callable[..., subprocess.CompletedProcess[str]]]]:
    root = tmp_path_factory.mktemp("lamina-compat-run")

    def lamina(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LAMINA, "--root", str(root), *args], capture_output=True,
                              text=True, timeout=120)

    tags = []
    for name, changes in IMAGES.items():
        tag = f"lamina-compat-run:{name}"
        flags = [a for c in changes for a in ("-c", c)]
        docker("import", *flags, str(busybox_rootfs_tar), tag)
        r = lamina("import", *flags, str(busybox_rootfs_tar), tag)
        assert r.returncode == 0, r.stderr
        tags.append(tag)
    yield docker, lamina
    docker("rmi", *tags, check=False)


def first_error_line(text: str) -> str:
    for line in text.splitlines():
        if "Error" in line or "error" in line:
            return line
    return ""


def both(engines: tuple[Docker, Callable[..., subprocess.CompletedProcess[str]]],
         *args: str) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    docker, lamina = engines
    d = docker("run", "--rm", "--network", "none", *args, check=False)
    la = lamina("run", "--rm", *args)
    return d, la


@pytest.mark.parametrize(("image", "flags", "args"), MATRIX,
                         ids=[f"{i}|{' '.join(f) or '-'}|{' '.join(a) or '-'}"
                              for i, f, a in MATRIX])
def test_cmd_entrypoint_matrix(engines: tuple[Docker, Any], image: str,
                               flags: tuple[str, ...], args: tuple[str, ...]) -> None:
    d, la = both(engines, *flags, f"lamina-compat-run:{image}", *args)
    assert la.returncode == d.returncode, (d.stderr, la.stderr)
    assert la.stdout == d.stdout
    if d.returncode != 0:
        # both fail; Docker wraps its message ("docker: Error response from daemon: ...")
        assert la.stderr.startswith("Error: ")
        if "no command specified" in d.stderr.lower():
            assert "no command specified" in la.stderr.lower()


@pytest.mark.parametrize("user", USERS)
def test_user_flag(engines: tuple[Docker, Any], user: str) -> None:
    flags = ("-u", user) if user else ()
    d, la = both(engines, *flags, "lamina-compat-run:none", "sh", "-c", "id; echo $HOME")
    assert la.returncode == d.returncode, (d.stderr, la.stderr)
    assert la.stdout == d.stdout
    if d.returncode:
        want = d.stderr.split("daemon: ", 1)[-1].splitlines()[0].strip().rstrip(".")
        assert want in la.stderr


def test_exit_status_and_missing_command(engines: tuple[Docker, Any]) -> None:
    for args in (("sh", "-c", "exit 42"), ("no-such-command",), ("/etc/passwd",)):
        d, la = both(engines, "lamina-compat-run:none", *args)
        assert la.returncode == d.returncode, (args, d.stderr, la.stderr)

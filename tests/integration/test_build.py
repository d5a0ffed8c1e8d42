"""End-to-end builds on the busybox base: real overlay mounts, runc, the image store.

Covers the classic Python-app Dockerfile (built, then its CMD run), the cache (no-op
rebuild, ``touch``, one edited file, a changed build arg), multi-stage builds that skip
unused stages, failing RUNs that leave nothing behind, and reproducible image IDs with
SOURCE_DATE_EPOCH.  Every test uses its own store root; the module checks at the end
that no mount under it is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina import _linux
from lamina.build.builder import build
from lamina.build.options import BuildOptions
from lamina.build.progress import ListReporter
from lamina.errors import BuildError, BuildStepFailed
from lamina.images.store import ImageStore

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not _linux.overlay_supported(), reason="kernel has no overlayfs"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed"),
]


@pytest.fixture
def store(lamina_root: Path, busybox_rootfs_tar: Path) -> Iterator[ImageStore]:
    s = ImageStore(lamina_root)
    with open(busybox_rootfs_tar, "rb") as f:
        s.import_tar(f, names=["bb:1"])
    yield s
    try:
        assert _linux.mounts_under(lamina_root) == [], "a build left a mount behind"
        kinds = {i.name: i.kind.value for i in s.snapshots.walk()}
        assert [k for k, v in kinds.items() if v != "committed"] == [], "an active snapshot is left"
        assert not [p for p in s.tmp.iterdir() if p.name.startswith(("build-", "view-"))]
    finally:
        _linux.unmount(lamina_root, lazy=True)
        s.close()


def write(ctx: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = ctx / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def do_build(store: ImageStore, ctx: Path, **kw: object) -> tuple[object, ListReporter]:
    rep = ListReporter()
    opts = BuildOptions(context=ctx, **kw)  # type: ignore[arg-type]
    return build(store, opts, rep), rep


def flat_files(store: ImageStore, ref: str) -> dict[str, tuple[str, int, int, int, bytes | str]]:
    """The image's flattened filesystem: path -> (type, mode, uid, gid, content/target)."""
    import io

    buf = io.BytesIO()
    store.save(buf, [ref])
    buf.seek(0)
    tree: dict[str, tuple[str, int, int, int, bytes | str]] = {}
    with tarfile.open(fileobj=buf) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as t:  # type: ignore[arg-type]
                for m in t.getmembers():
                    name = m.name.rstrip("/")
                    base = os.path.basename(name)
                    if base == ".wh..wh..opq":
                        d = os.path.dirname(name)
                        for k in [k for k in tree if k.startswith(d + "/")]:
                            del tree[k]
                        continue
                    if base.startswith(".wh."):
                        gone = os.path.join(os.path.dirname(name), base[4:])
                        for k in [k for k in tree if k == gone or k.startswith(gone + "/")]:
                            del tree[k]
                        continue
                    if m.isfile():
                        data: bytes | str = t.extractfile(m).read()  # type: ignore[union-attr]
                        kind = "file"
                    elif m.isdir():
                        data, kind = "", "dir"
                    elif m.issym():
                        data, kind = m.linkname, "symlink"
                    else:
                        data, kind = m.linkname, "other"
                    tree[name] = (kind, m.mode, m.uid, m.gid, data)
    return tree


def run_image(store: ImageStore, ref: str, tmp: Path) -> str:
    """Run the image's Entrypoint+Cmd as its User in WorkingDir with runc; return stdout."""
    from lamina.build.worker import RunSpec, Worker

    img = store.resolve(ref)
    cfg = img.config.to_dict()["config"]
    worker = Worker(store)
    active = worker.open(img.layers[-1])
    out: list[str] = []
    try:
        argv = tuple((cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or []))
        worker.run(active, RunSpec(argv, tuple(cfg.get("Env") or []), cfg.get("WorkingDir") or "/",
                                   cfg.get("User") or "", "none"), out.append)
    finally:
        worker.discard(active)
    return "\n".join(out)


APP = {
    "Dockerfile": (
        "FROM bb:1\n"
        "ENV PYTHONUNBUFFERED=1 APP_HOME=/app PORT=8000\n"
        "WORKDIR /app\n"
        "COPY requirements.txt .\n"
        "ARG EXTRA=none\n"
        "RUN set -e; mkdir -p /opt/venv; while read -r r; do echo \"# $r\" > /opt/venv/$r.py; done"
        " < requirements.txt; echo extra=$EXTRA > /opt/venv/extra\n"
        "COPY app .\n"
        "USER work\n"
        "EXPOSE 8000\n"
        'CMD ["/bin/sh", "/app/start.sh"]\n'
    ),
    "requirements.txt": "flask\nrequests\n",
    "app/main.py": "print('hello')\n",
    "app/start.sh": 'echo "app on $PORT as $(id -u) in $(pwd)"; ls /opt/venv; cat /opt/venv/extra\n',
    ".dockerignore": "*.log\n",
    "debug.log": "not copied\n",
}


def test_python_app_builds_and_runs(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, APP)
    result, _ = do_build(store, ctx, tags=("app:1",))
    assert result.run_steps == 4 and result.cached_steps == 0  # WORKDIR, COPY, RUN, COPY
    img = store.resolve("app:1")
    assert img.id == result.image_id
    cfg = img.config.to_dict()
    c = cfg["config"]
    assert c["User"] == "work" and c["WorkingDir"] == "/app"
    assert c["ExposedPorts"] == {"8000/tcp": {}}
    assert c["Cmd"] == ["/bin/sh", "/app/start.sh"]
    assert c["Env"][0].startswith("PATH=") and "PORT=8000" in c["Env"]
    by = [h.get("created_by") for h in cfg["history"][1:]]
    assert by == ["ENV PYTHONUNBUFFERED=1 APP_HOME=/app PORT=8000", "WORKDIR /app",
                  "COPY requirements.txt . # buildkit", "ARG EXTRA=none",
                  "RUN |1 EXTRA=none /bin/sh -c set -e; mkdir -p /opt/venv; while read -r r; do "
                  "echo \"# $r\" > /opt/venv/$r.py; done < requirements.txt; echo extra=$EXTRA > "
                  "/opt/venv/extra # buildkit",
                  "COPY app . # buildkit", "USER work", "EXPOSE map[8000/tcp:{}]",
                  'CMD ["/bin/sh" "/app/start.sh"]']
    assert all(h["comment"] == "buildkit.dockerfile.v0" for h in cfg["history"][1:])
    assert [bool(h.get("empty_layer")) for h in cfg["history"][1:]] == [
        True, False, False, True, False, False, True, True, True]
    files = flat_files(store, "app:1")
    assert files["app/main.py"][:4] == ("file", 0o644, 0, 0)
    assert "debug.log" not in {os.path.basename(p) for p in files}
    assert files["opt/venv/flask.py"][4] == b"# flask\n"
    assert "etc/hosts" in files and files["etc/hosts"][4] == b""  # the base's, not the build's
    out = run_image(store, "app:1", tmp_path)
    assert out.splitlines() == ["app on 8000 as 1000 in /app", "extra", "flask.py",
                                "requests.py", "extra=none"]


def test_cache_noop_touch_edit_and_build_arg(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, APP)
    first, _ = do_build(store, ctx, tags=("app:1",))
    again, rep = do_build(store, ctx, tags=("app:1",))
    assert again.image_id == first.image_id  # same config bytes: history times come from cache
    assert again.run_steps == 0 and again.cached_steps == 4
    assert rep.notes() == [f"writing image {first.image_id}", "naming to docker.io/library/app:1"]

    os.utime(ctx / "app/main.py", (1, 1))  # touch: content unchanged
    touched, _ = do_build(store, ctx, tags=("app:1",))
    assert touched.image_id == first.image_id and touched.run_steps == 0

    (ctx / "app/main.py").write_text("print('edited')\n")
    edited, rep = do_build(store, ctx, tags=("app:1",))
    assert rep.ran() == ["[5/5] COPY app ."]
    assert rep.cached() == ["[2/5] WORKDIR /app", "[3/5] COPY requirements.txt .",
                            "[4/5] RUN set -e; mkdir -p /opt/venv; while read -r r; do echo \"# $r\" "
                            "> /opt/venv/$r.py; done < requirements.txt; echo extra=$EXTRA > "
                            "/opt/venv/extra"]
    assert "cache miss: changed in the context: app/main.py" in rep.notes()
    assert edited.image_id != first.image_id

    _, rep = do_build(store, ctx, tags=("app:1",), build_args={"EXTRA": "yes"})
    assert [n.split("]")[0] for n in rep.ran()] == ["[4/5", "[5/5"]  # from the first RUN
    assert "cache miss: build arg EXTRA changed (none -> yes)" in rep.notes()
    assert "cache miss: the step above changed" in rep.notes()
    assert flat_files(store, "app:1")["opt/venv/extra"][4] == b"extra=yes\n"

    (ctx / "requirements.txt").write_text("flask\n")
    _, rep = do_build(store, ctx, tags=("app:1",), build_args={"EXTRA": "yes"})
    assert rep.ran()[0] == "[3/5] COPY requirements.txt ."

    nocache, rep = do_build(store, ctx, tags=("app:1",), no_cache=True, build_args={"EXTRA": "yes"})
    assert nocache.cached_steps == 0 and "cache miss: --no-cache" in rep.notes()


def test_cache_survives_rmi_and_is_pruned_by_builder_prune(store: ImageStore, tmp_path: Path) -> None:
    from lamina.cache import BuildCache

    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": "FROM bb:1\nRUN echo x > /x\n"})
    first, _ = do_build(store, ctx, tags=("x:1",))
    store.remove("x:1")  # GC runs; the cache keeps the RUN layer
    second, _ = do_build(store, ctx, tags=("x:1",))
    assert second.cached_steps == 1 and second.image_id == first.image_id
    store.remove("x:1")
    assert BuildCache(store.meta).prune() == 1
    store.prune()
    third, _ = do_build(store, ctx, tags=("x:1",))
    assert third.run_steps == 1


def test_failing_run_reports_and_leaves_nothing(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": "FROM bb:1\nRUN echo one\nRUN echo ok; echo bad >&2; exit 3\n"})
    before = {i.name for i in store.snapshots.walk()}
    with pytest.raises(BuildStepFailed) as info:
        do_build(store, ctx)
    exc = info.value
    assert exc.exit_code == 3 and exc.line == 3
    assert exc.message.startswith("Dockerfile:3: RUN /bin/sh -c echo ok; echo bad >&2; exit 3 "
                                  "failed with exit code 3")
    assert sorted(exc.log_tail.splitlines()) == ["bad", "ok"]  # stdout and stderr, interleaved
    after = {i.name for i in store.snapshots.walk()}
    assert len(after - before) == 1  # the successful RUN's layer stays cached, nothing else
    # the successful step is cached for the next attempt
    (ctx / "Dockerfile").write_text("FROM bb:1\nRUN echo one\nRUN true\n")
    result, _ = do_build(store, ctx)
    assert result.cached_steps == 1 and result.run_steps == 1


def test_multi_stage_skips_unused_and_copies_from(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {
        "Dockerfile": (
            "FROM bb:1 AS builder\nWORKDIR /build\nCOPY src/ src/\n"
            "RUN mkdir out && cat src/*.c > out/app.bin && chown 1000:1000 out/app.bin\n"
            "FROM bb:1 AS unused\nRUN touch /unused\n"
            "FROM builder AS test\nRUN test -s out/app.bin\n"
            "FROM bb:1\nCOPY --from=builder /build/out/ /opt/app/\n"
            "COPY --from=builder --chown=nobody /build/out/app.bin /opt/owned\n"
        ),
        "src/a.c": "int a;\n", "src/b.c": "int b;\n",
    })
    _, rep = do_build(store, ctx, tags=("ms:1",))
    names = rep.names().values()
    assert not any("touch /unused" in n or "test -s" in n for n in names)
    files = flat_files(store, "ms:1")
    assert files["opt/app/app.bin"][4] == b"int a;\nint b;\n"
    assert files["opt/app/app.bin"][2:4] == (1000, 1000)  # --from keeps owners
    assert files["opt/owned"][2:4] == (65534, 65534)  # --chown by name: the image's passwd
    assert "unused" not in files and "build" not in files
    _, rep = do_build(store, ctx, target="test")
    assert any("test -s" in n for n in rep.ran())


def test_source_date_epoch_gives_the_same_id_on_two_stores(
        tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": "FROM bb:1\nRUN echo hi > /hi && mkdir /d\nCOPY f /d/\nENV A=1\n",
                "f": "content\n"})
    base = tmp_path / "base.tar"
    ids = []
    for n in range(2):
        root = tmp_path / f"root{n}"
        with ImageStore(root) as s:
            if n == 0:  # the same base image in both stores: import once, save, load
                with open(busybox_rootfs_tar, "rb") as f:
                    s.import_tar(f, names=["bb:1"])
                with open(base, "wb") as out:
                    s.save(out, ["bb:1"])
            else:
                s.load(base)
            ids.append(build(s, BuildOptions(context=ctx, source_date_epoch=1_700_000_000),
                             ListReporter()).image_id)
            hist = json.loads(s.resolve(str(ids[-1])).config_bytes)["history"]
            assert {h["created"] for h in hist[1:]} == {"2023-11-14T22:13:20Z"}
            assert _linux.mounts_under(root) == []
    assert ids[0] == ids[1]


def test_unknown_base_and_missing_source_are_one_line_errors(store: ImageStore, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": "FROM nosuch:1\n"})
    with pytest.raises(BuildError, match=r"Dockerfile:1: base image 'nosuch:1' not found"):
        do_build(store, ctx)
    (ctx / "Dockerfile").write_text("FROM bb:1\nCOPY missing.txt /\n")
    with pytest.raises(BuildError, match=r'"/missing.txt" not found'):
        do_build(store, ctx)
    (ctx / "Dockerfile").write_text("FROM bb:1\nCOPY ../etc/passwd /\n")
    with pytest.raises(BuildError, match="outside the build context"):
        do_build(store, ctx)


def test_cli_build_plain_progress_and_quiet(store: ImageStore, tmp_path: Path, lamina_root: Path) -> None:
    ctx = tmp_path / "ctx"
    write(ctx, {"Dockerfile": "FROM bb:1\nRUN echo from-run\n"})
    exe = shutil.which("lamina") or "/work/venv/bin/lamina"
    env = {**os.environ, "LAMINA_ROOT": str(lamina_root)}
    p = subprocess.run([exe, "build", "-t", "cli:1", str(ctx)], capture_output=True, text=True,
                       env=env)
    assert p.returncode == 0, p.stderr
    assert "#3 [2/2] RUN echo from-run" in p.stderr and "from-run" in p.stderr
    q = subprocess.run([exe, "build", "-q", "--iidfile", str(tmp_path / "iid"), str(ctx)],
                       capture_output=True, text=True, env=env)
    assert q.returncode == 0
    assert q.stdout.strip() == (tmp_path / "iid").read_text() == str(store.resolve("cli:1").id)

"""``lamina build`` against ``DOCKER_BUILDKIT=1 docker build`` on the same base and context.

Each case builds one context with both engines and compares:

* the final filesystems, flattened from ``docker save`` / ``lamina save`` archives
  (whiteouts applied): every path with its type, mode, owner, size, content hash and
  link target;
* the image configs: Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes,
  Labels, StopSignal, Healthcheck (and OnBuild).

Features the BuildKit 0.8 of Docker 20.10 lacks (heredocs, ``COPY --link``,
``--exclude``, ``--parents``) are checked against their documented result instead.
Skips when no Docker engine answers (``DOCKER_HOST``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina import _linux
from lamina.build.builder import build
from lamina.build.options import BuildOptions
from lamina.build.progress import ListReporter
from lamina.images.store import ImageStore

pytestmark = [
    pytest.mark.compat,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed"),
]

DockerFn = Callable[..., subprocess.CompletedProcess[str]]
BASE = "lamina-compat-bb:1"
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
               "Labels", "StopSignal", "Healthcheck", "OnBuild")


def flatten(archive: bytes) -> tuple[dict[str, tuple[Any, ...]], dict[str, Any]]:
    """(path -> (type, mode, uid, gid, size, sha256/target), config) of a docker-archive."""
    tree: dict[str, tuple[Any, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(outer.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as t:  # type: ignore[arg-type]
                for m in t.getmembers():
                    name = m.name.rstrip("/").removeprefix("./")
                    base = os.path.basename(name)
                    parent = os.path.dirname(name)
                    if base == ".wh..wh..opq":
                        for k in [k for k in tree if k.startswith(parent + "/")]:
                            del tree[k]
                        continue
                    if base.startswith(".wh."):
                        gone = os.path.join(parent, base[4:])
                        for k in [k for k in tree if k == gone or k.startswith(gone + "/")]:
                            del tree[k]
                        continue
                    if m.isfile():
                        f = t.extractfile(m)
                        assert f is not None
                        info: tuple[Any, ...] = ("file", stat.S_IMODE(m.mode), m.uid, m.gid, m.size,
                                                 hashlib.sha256(f.read()).hexdigest())
                    elif m.isdir():
                        info = ("dir", stat.S_IMODE(m.mode), m.uid, m.gid, 0, "")
                    elif m.issym():
                        info = ("symlink", 0, m.uid, m.gid, 0, m.linkname)
                    elif m.islnk():
                        info = tree.get(m.linkname.rstrip("/"), ("hardlink", m.linkname))
                    else:
                        info = ("other", stat.S_IMODE(m.mode), m.uid, m.gid, m.devmajor, m.devminor)
                    if info[0] == "dir" and name in tree and tree[name][0] == "dir":
                        tree[name] = info  # a later layer's entry replaces the metadata
                    elif info[0] != "dir" and name in tree and tree[name][0] == "dir":
                        for k in [k for k in tree if k.startswith(name + "/")]:
                            del tree[k]
                        tree[name] = info
                    else:
                        tree[name] = info
    return tree, config


@pytest.fixture(scope="module")
def engines(docker: DockerFn, busybox_rootfs_tar: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DockerFn, ImageStore]]:
    docker("import", str(busybox_rootfs_tar), BASE)
    root = tmp_path_factory.mktemp("lamina-compat-root")
    store = ImageStore(root)
    with open(busybox_rootfs_tar, "rb") as f:
        store.import_tar(f, names=[BASE])
    yield docker, store
    assert _linux.mounts_under(root) == []
    store.close()
    docker("rmi", "-f", BASE, check=False)


def make_context(path: Path, files: dict[str, Any]) -> Path:
    for rel, content in files.items():
        p = path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple) and content[0] == "symlink":
            p.symlink_to(content[1])
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        if not p.is_symlink():
            os.chmod(p, 0o644)
    return path


def docker_build(docker: DockerFn, ctx: Path, tag: str, *extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    exe = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
    p = subprocess.run([exe, "build", "--network", "host", "-t", tag, *extra, str(ctx)],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    saved = subprocess.run([exe, "save", tag], capture_output=True, check=True).stdout
    tree, config = flatten(saved)
    docker("rmi", tag, check=False)
    return tree, config


def lamina_build(store: ImageStore, ctx: Path, tag: str, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    build(store, BuildOptions(context=ctx, tags=(tag,), **kw), ListReporter())
    buf = io.BytesIO()
    store.save(buf, [tag])
    return flatten(buf.getvalue())


def assert_same(docker_result: tuple[dict[str, Any], dict[str, Any]],
                lamina_result: tuple[dict[str, Any], dict[str, Any]]) -> None:
    dtree, dcfg = docker_result
    ltree, lcfg = lamina_result
    only_docker = sorted(set(dtree) - set(ltree))
    only_lamina = sorted(set(ltree) - set(dtree))
    assert (only_docker, only_lamina) == ([], [])
    differ = {p: (dtree[p], ltree[p]) for p in dtree if dtree[p] != ltree[p]}
    assert differ == {}
    for key in CONFIG_KEYS:
        assert (key, dcfg["config"].get(key)) == (key, lcfg["config"].get(key))


EVERY_INSTRUCTION = {
    "Dockerfile": """\
FROM lamina-compat-bb:1
MAINTAINER someone <a@b.c>
ARG VERSION=1.2
ENV APP=/srv/app NAME="the app" VERSION=${VERSION}
LABEL org.example.version=$VERSION "with space"="a b"
WORKDIR $APP
COPY --chown=work files/ ./files/
COPY --chown=1000:65534 --chmod=750 run.sh /usr/local/bin/run
ADD bundle.tar.gz /opt/
ADD plain.gz /opt/plain.gz
RUN set -e; echo "$VERSION $NAME" > version.txt; rm /etc/shadow; rm -r /var/tmp; \
    mkdir -p /home/work/cache && echo x > /home/work/cache/f && chown -R work /home/work/cache
RUN rm -rf /home/work/cache && mkdir /home/work/cache && echo y > /home/work/cache/g
VOLUME ["/data"]
RUN mkdir -p /data && echo written-after-volume > /data/v
USER work:work
EXPOSE 8000 53/udp 9000-9001
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD wget -q -O- localhost:8000 || exit 1
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo child
ENTRYPOINT ["/usr/local/bin/run"]
CMD serve --port 8000
""",
    "files/a.txt": "a\n",
    "files/sub/b.txt": "b\n",
    "files/link": ("symlink", "a.txt"),
    "run.sh": "#!/bin/sh\necho run\n",
}


def _tar_gz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data, mode, uid in (("pkg/bin/tool", b"#!/bin/sh\n", 0o755, 0),
                                      ("pkg/share/doc.txt", b"doc\n", 0o640, 1000)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, uid, 1_600_000_000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_every_instruction(engines: tuple[DockerFn, ImageStore], tmp_path: Path) -> None:
    import gzip

    docker, store = engines
    files: dict[str, Any] = dict(EVERY_INSTRUCTION)
    files["bundle.tar.gz"] = _tar_gz()
    files["plain.gz"] = gzip.compress(b"not a tar\n", mtime=0)
    ctx = make_context(tmp_path / "ctx", files)
    d = docker_build(docker, ctx, "lamina-compat-every:1")
    m = lamina_build(store, ctx, "lamina-compat-every:1")
    assert_same(d, m)
    tree = m[0]
    assert tree["srv/app/files/a.txt"][2:4] == (1000, 1000)  # --chown=work: uid + primary gid
    assert tree["usr/local/bin/run"][1:4] == (0o750, 1000, 65534)
    assert "etc/shadow" not in tree and "var/tmp" not in tree  # whiteouts
    assert "home/work/cache/f" not in tree and "home/work/cache/g" in tree  # opaque dir
    assert tree["opt/pkg/share/doc.txt"][1:4] == (0o640, 1000, 1000)  # tar owners kept
    assert tree["opt/plain.gz"][0] == "file"  # gzip that is not a tar is copied


COPY_EDGES = {
    "Dockerfile": """\
FROM lamina-compat-bb:1
COPY dir /dst/contents/
COPY dir/sub /dst/sub-no-slash
COPY *.txt /dst/wild/
COPY one.txt /dst/renamed
COPY one.txt two.txt /dst/multi/
COPY toplink /dst/followed
COPY nomatch* /dst/nothing/
COPY . /ctx/
WORKDIR /w
COPY one.txt rel/
COPY one.txt .
COPY dir/sub/deep.txt /etc/
""",
    ".dockerignore": "ignored\n**/*.log\n!keep.log\n",
    "dir/a.txt": "a\n",
    "dir/sub/deep.txt": "deep\n",
    "dir/inner-link": ("symlink", "a.txt"),
    "one.txt": "1\n",
    "two.txt": "2\n",
    "toplink": ("symlink", "one.txt"),
    "ignored/secret": "no\n",
    "x.log": "no\n",
    "logs/y.log": "no\n",
    "keep.log": "yes\n",
}


def test_copy_edge_cases(engines: tuple[DockerFn, ImageStore], tmp_path: Path) -> None:
    docker, store = engines
    ctx = make_context(tmp_path / "ctx", COPY_EDGES)
    os.chmod(ctx / "dir", 0o750)
    os.chmod(ctx / "two.txt", 0o600)
    d = docker_build(docker, ctx, "lamina-compat-copy:1")
    m = lamina_build(store, ctx, "lamina-compat-copy:1")
    assert_same(d, m)
    tree = m[0]
    assert tree["dst/contents/inner-link"] == ("symlink", 0, 0, 0, 0, "a.txt")
    assert tree["dst/followed"][0] == "file"
    assert "ctx/ignored" not in tree and "ctx/x.log" not in tree and "ctx/keep.log" in tree
    assert "dst/nothing" not in tree


MULTI_STAGE = {
    "Dockerfile": """\
FROM lamina-compat-bb:1 AS build
WORKDIR /src
COPY src/ .
RUN mkdir -p /out && cat *.c > /out/app && chmod 700 /out/app && chown 1000:1000 /out/app

FROM lamina-compat-bb:1 AS unused
RUN echo unused > /unused

FROM build AS test
RUN test -s /out/app

FROM lamina-compat-bb:1
COPY --from=build /out/ /opt/
COPY --from=0 /src/a.c /opt/a.c
COPY --from=lamina-compat-bb:1 /etc/passwd /opt/passwd
""",
    "src/a.c": "int a;\n",
    "src/b.c": "int b;\n",
}


def test_multi_stage(engines: tuple[DockerFn, ImageStore], tmp_path: Path) -> None:
    docker, store = engines
    ctx = make_context(tmp_path / "ctx", MULTI_STAGE)
    assert_same(docker_build(docker, ctx, "lamina-compat-ms:1"),
                lamina_build(store, ctx, "lamina-compat-ms:1"))
    for target in ("build", "test"):
        assert_same(docker_build(docker, ctx, f"lamina-compat-ms-{target}:1", "--target", target),
                    lamina_build(store, ctx, f"lamina-compat-ms-{target}:1", target=target))


def test_onbuild_triggers_run_in_the_child(engines: tuple[DockerFn, ImageStore], tmp_path: Path) -> None:
    docker, store = engines
    parent = make_context(tmp_path / "parent", {
        "Dockerfile": "FROM lamina-compat-bb:1\nENV P=parent\n"
                      "ONBUILD COPY trigger.txt /from-trigger.txt\n"
                      "ONBUILD RUN echo \"$P\" > /onbuild-ran\n",
    })
    child = make_context(tmp_path / "child", {
        "Dockerfile": "FROM lamina-compat-onbuild-parent:1\nRUN cat /onbuild-ran\n",
        "trigger.txt": "t\n",
    })
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    exe = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
    subprocess.run([exe, "build", "--network", "host", "-t", "lamina-compat-onbuild-parent:1",
                    str(parent)], check=True, capture_output=True, env=env)
    lamina_build(store, parent, "lamina-compat-onbuild-parent:1")
    try:
        d = docker_build(docker, child, "lamina-compat-onbuild-child:1")
        m = lamina_build(store, child, "lamina-compat-onbuild-child:1")
        assert_same(d, m)
        assert "from-trigger.txt" in m[0] and m[1]["config"].get("OnBuild") is None
    finally:
        docker("rmi", "lamina-compat-onbuild-parent:1", check=False)


def test_features_newer_than_buildkit_0_8(engines: tuple[DockerFn, ImageStore], tmp_path: Path) -> None:
    """Heredocs, --link, --exclude, --parents: the documented result (Docker 20.10 lacks them)."""
    _, store = engines
    ctx = make_context(tmp_path / "ctx", {
        "Dockerfile": """\
FROM lamina-compat-bb:1
ARG WHO=world
COPY <<EOF /greeting.txt
hello $WHO
EOF
COPY <<'EOF' /raw.txt
hello $WHO
EOF
RUN <<EOF
echo from heredoc > /heredoc-run
EOF
RUN <<EOF
#!/bin/sh
echo "script $0" > /heredoc-script
EOF
COPY --link app/ /link/
COPY --exclude=*.tmp app/ /excl/
COPY --parents app/sub/x.txt /par/
""",
        "app/a.txt": "a\n", "app/b.tmp": "tmp\n", "app/sub/x.txt": "x\n",
    })
    tree, _ = lamina_build(store, ctx, "lamina-compat-new:1")
    assert tree["greeting.txt"][1] == 0o644
    data = {p: v for p, v in tree.items()}
    assert data["greeting.txt"][5] == hashlib.sha256(b"hello world\n").hexdigest()
    assert data["raw.txt"][5] == hashlib.sha256(b"hello $WHO\n").hexdigest()
    assert data["heredoc-run"][5] == hashlib.sha256(b"from heredoc\n").hexdigest()
    assert data["heredoc-script"][5] == hashlib.sha256(b"script /dev/pipes/EOF\n").hexdigest()
    assert "link/a.txt" in tree and "link/b.tmp" in tree
    assert "excl/a.txt" in tree and "excl/b.tmp" not in tree
    assert "par/app/sub/x.txt" in tree
    assert stat.S_IMODE(tree["par/app"][1]) == 0o755

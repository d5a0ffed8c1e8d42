"""Pull and push against Debian's docker-registry on loopback (started per test module).

Covers: round trips (files, IDs, RepoDigests), a second push uploading nothing,
cross-repository mounts, htpasswd (Basic) auth with login/logout through the CLI, a
Bearer-token flow through a token-issuing proxy, tampered blobs, a connection cut
mid-layer and the rerun that resumes it, multi-platform indexes with ``--platform``,
registry mirrors and the pull policies of ``ensure_image``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina.digest import Digest
from lamina.errors import DigestMismatch, ImageNotFound, RegistryError, Unauthorized
from lamina.images.store import ImageStore, LayerInput
from lamina.oci import Platform, mediatypes
from lamina.oci._json import canonical_json
from lamina.registry.config import RegistryConfig
from lamina.registry.credentials import Credential, CredentialStore
from lamina.registry.progress import ListReporter
from lamina.transfer.pull import PullOptions, ensure_image, pull
from lamina.transfer.push import PushOptions, push, push_index

sys.path.insert(0, str(Path(__file__).parent))
from registry_servers import DistributionRegistry, Proxy, have_registry

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not have_registry(), reason="Debian's docker-registry is not installed"),
]
LAMINA = [sys.executable, "-m", "lamina"]


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(files[name]), 0o644, 0
            tar.addfile(ti, io.BytesIO(files[name]))
    return buf.getvalue()


def make_image(store: ImageStore, name: str, layers: list[dict[str, bytes]], *,
               arch: str = "amd64", cmd: list[str] | None = None) -> Digest:
    """A local image with one uncompressed layer per dict of files."""
    blobs = [_tar(files) for files in layers]
    diff_ids = [Digest.from_bytes(b) for b in blobs]
    cfg = {"architecture": arch, "os": "linux",
           "config": {"Cmd": cmd or ["/bin/sh"], "Env": ["PATH=/bin"]},
           "created": "2024-01-01T00:00:00Z",
           "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]}}
    inputs = [LayerInput((lambda b=b: io.BytesIO(b)), mediatypes.OCI_LAYER, d, d)  # type: ignore[misc]
              for b, d in zip(blobs, diff_ids, strict=True)]
    return store.add_image(canonical_json(cfg), inputs, names=[name]).id


def files_of(store: ImageStore, name: str) -> dict[str, bytes]:
    """Every regular file of the image, merged top layer over lower (no whiteouts used)."""
    img = store.resolve(name)
    out: dict[str, bytes] = {}
    for layer in img.layers:
        root = store.snapshots.fs_path(str(layer.chain_id))
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionRegistry]:
    reg = DistributionRegistry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path


@pytest.fixture
def stores(tmp_path: Path, docker_config: Path) -> Iterator[tuple[ImageStore, ImageStore]]:
    a, b = ImageStore(tmp_path / "a"), ImageStore(tmp_path / "b")
    yield a, b
    a.close()
    b.close()


LAYERS = [{"etc/os": b"lamina-test\n", "bin/tool": os.urandom(300_000)},
          {"data/big": os.urandom(1_500_000)},
          {"data/small": b"hello\n", "etc/os": b"overridden\n"}]


def test_push_then_pull_round_trip(registry: DistributionRegistry,
                                   stores: tuple[ImageStore, ImageStore]) -> None:
    src, dst = stores
    name = f"{registry.host}/team/app:1"
    image_id = make_image(src, name, LAYERS)
    rep = ListReporter()
    first = push(src, name, PushOptions(reporter=rep))
    assert len(first.pushed) == 4  # three layers and the config
    assert rep.lines()[0] == f"The push refers to repository [{registry.host}/team/app]"
    assert rep.lines()[-1] == f"1: digest: {first.digest} size: {first.size}"
    assert src.meta.find_reference(name).digest == first.digest  # type: ignore[union-attr]

    # a second push compresses nothing and uploads nothing
    again = push(src, name, PushOptions())
    assert again.pushed == () and again.digest == first.digest
    assert set(again.existed) == set(first.pushed)

    result = pull(dst, name, PullOptions(reporter=(prep := ListReporter())))
    assert result.image_id == image_id and result.digest == first.digest
    assert len(result.downloaded) == 3
    lines = prep.lines()
    assert lines[0] == "1: Pulling from team/app"
    assert lines[-2:] == [f"Digest: {first.digest}", f"Status: Downloaded newer image for {name}"]
    assert files_of(dst, name) == files_of(src, name)
    assert files_of(dst, name)["data/small"] == b"hello\n"

    # pulling again finds everything in place
    second = pull(dst, name, PullOptions(reporter=(prep := ListReporter())))
    assert second.up_to_date and second.downloaded == ()
    assert prep.lines()[-1] == f"Status: Image is up to date for {name}"

    # another repository of the same registry: layers are mounted, not uploaded
    src.tag(name, f"{registry.host}/other/app:1")
    mounted = push(src, f"{registry.host}/other/app:1", PushOptions())
    assert len(mounted.mounted) == 4 and mounted.pushed == ()  # layers and config


def test_cli_pull_prints_docker_lines_and_images_shows_digest(
        registry: DistributionRegistry, stores: tuple[ImageStore, ImageStore], tmp_path: Path) -> None:
    src, _ = stores
    name = f"{registry.host}/cli/app:v2"
    make_image(src, name, LAYERS[:1])
    pushed = push(src, name)
    root = tmp_path / "cli-root"
    proc = subprocess.run([*LAMINA, "--root", str(root), "pull", name],
                          capture_output=True, text=True, check=True)
    out = proc.stdout.splitlines()
    assert out[0] == "v2: Pulling from cli/app"
    assert f"Digest: {pushed.digest}" in out
    assert out[-2] == f"Status: Downloaded newer image for {name}"
    assert out[-1] == name
    images = subprocess.run([*LAMINA, "--root", str(root), "images", "--digests"],
                            capture_output=True, text=True, check=True).stdout
    assert str(pushed.digest) in images


def test_basic_auth_push_needs_login(tmp_path: Path, docker_config: Path) -> None:
    reg = DistributionRegistry(tmp_path / "auth-registry", htpasswd=("alice", "s3cret"))
    try:
        root = tmp_path / "root"
        name = f"{reg.host}/team/secret:1"
        with ImageStore(root) as store:
            make_image(store, name, LAYERS[:1])
        env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}

        def lamina(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*LAMINA, "--root", str(root), *args], capture_output=True,
                                  text=True, env=env, input=stdin)

        denied = lamina("push", name)
        assert denied.returncode != 0
        error = denied.stderr.splitlines()[0]
        assert error.startswith("Error: unauthorized") and reg.host in error
        wrong = lamina("login", "-u", "alice", "--password-stdin", reg.host, stdin="nope\n")
        assert wrong.returncode != 0 and "unauthorized" in wrong.stderr
        assert not (docker_config / "config.json").exists()
        ok = lamina("login", "-u", "alice", "--password-stdin", reg.host, stdin="s3cret\n")
        assert ok.returncode == 0 and ok.stdout.strip() == "Login Succeeded"
        saved = json.loads((docker_config / "config.json").read_text())
        assert saved["auths"][reg.host]["auth"] == "YWxpY2U6czNjcmV0"  # base64 alice:s3cret
        assert (docker_config / "config.json").stat().st_mode & 0o777 == 0o600
        pushed = lamina("push", name)
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.splitlines()[-1].startswith("1: digest: sha256:")
        assert lamina("logout", reg.host).stdout.strip() == f"Removing login credentials for {reg.host}"
        assert reg.host not in json.loads((docker_config / "config.json").read_text())["auths"]
        again = lamina("pull", name)
        assert again.returncode != 0 and "unauthorized" in again.stderr
    finally:
        reg.stop()


def test_token_auth_flow(registry: DistributionRegistry, stores: tuple[ImageStore, ImageStore],
                         docker_config: Path) -> None:
    src, dst = stores
    proxy = Proxy(registry.host, users={"bob": "hunter2"})
    try:
        name = f"{proxy.host}/tokens/app:1"
        make_image(src, name, LAYERS)
        with pytest.raises(Unauthorized, match=proxy.host):
            push(src, name)  # anonymous tokens carry no push right
        CredentialStore().store(proxy.host, Credential("bob", "wrong"))
        with pytest.raises(Unauthorized, match="rejected"):
            push(src, name)
        CredentialStore().store(proxy.host, Credential("bob", "hunter2"))
        proxy.state.token_requests.clear()
        result = push(src, name)
        # one token per scope set, cached across the parallel layer uploads
        assert 1 <= len(proxy.state.token_requests) <= 2
        assert all(q.get("account") == ["bob"] for q in proxy.state.token_requests)
        CredentialStore().erase(proxy.host)
        pulled = pull(dst, name)  # anonymous pull tokens suffice
        assert pulled.digest == result.digest
        assert files_of(dst, name) == files_of(src, name)
    finally:
        proxy.stop()


def test_tampered_blob_is_refused_and_nothing_is_stored(
        registry: DistributionRegistry, stores: tuple[ImageStore, ImageStore]) -> None:
    src, dst = stores
    name = f"{registry.host}/tamper/app:1"
    make_image(src, name, LAYERS[:2])
    pushed = push(src, name)
    proxy = Proxy(registry.host)
    try:
        layer = dst_layer = None
        manifest = json.loads(src.content.read_bytes(pushed.digest))
        layer = manifest["layers"][1]["digest"]
        proxy.state.tamper.add(layer)
        with pytest.raises(DigestMismatch) as info:
            pull(dst, f"{proxy.host}/tamper/app:1")
        assert layer in str(info.value) and proxy.host in str(info.value)
        dst_layer = Digest.parse(layer)
        assert not dst.content.exists(dst_layer)
        assert list(dst.content.ingests()) == []
        assert dst.meta.images() == [] and dst.meta.references() == []
    finally:
        proxy.stop()


def test_connection_cut_mid_layer_resumes_on_rerun(
        registry: DistributionRegistry, stores: tuple[ImageStore, ImageStore]) -> None:
    src, dst = stores
    name = f"{registry.host}/cut/app:1"
    make_image(src, name, LAYERS)
    pushed = push(src, name)
    digests = [d["digest"] for d in json.loads(src.content.read_bytes(pushed.digest))["layers"]]
    proxy = Proxy(registry.host)
    try:
        target = f"{proxy.host}/cut/app:1"
        big = digests[1]  # the 1.5 MB layer
        proxy.state.cut[big] = 3  # more cuts than one run's retries
        with pytest.raises(RegistryError) as info:
            pull(dst, target, PullOptions(retries=2, max_concurrent=1))
        assert "resumes" in info.value.hint and proxy.host in str(info.value)
        partial = [i for i in dst.content.ingests() if i.expected == Digest.parse(big)]
        assert partial and 0 < partial[0].offset < partial[0].expected_size  # type: ignore[operator]
        complete = [d for d in digests if dst.content.exists(Digest.parse(d))]
        assert digests[0] in complete
        before = {d: len(proxy.blob_gets(d)) for d in digests}
        result = pull(dst, target)
        assert result.image_id == src.resolve(name).id
        for d in complete:
            assert len(proxy.blob_gets(d)) == before[d], "a complete layer was fetched again"
        resumed = proxy.blob_gets(big)[before[big]:]
        assert len(resumed) == 1 and resumed[0].range is not None
        assert int(resumed[0].range[len("bytes="):].rstrip("-")) == partial[0].offset
        assert files_of(dst, target) == files_of(src, name)
    finally:
        proxy.stop()


def test_multi_platform_index(registry: DistributionRegistry,
                              stores: tuple[ImageStore, ImageStore]) -> None:
    src, dst = stores
    amd = make_image(src, "multi:amd64", [{"arch": b"amd64\n"}], arch="amd64")
    arm = make_image(src, "multi:arm64", [{"arch": b"arm64\n"}], arch="arm64")
    name = f"{registry.host}/multi/app:latest"
    index = push_index(src, name, ["multi:amd64", "multi:arm64"])
    assert index.media_type == mediatypes.DOCKER_MANIFEST_LIST
    default = pull(dst, name, PullOptions(platform=Platform.parse("linux/amd64")))
    assert default.image_id == amd and default.digest == index.digest
    assert files_of(dst, name) == {"arch": b"amd64\n"}
    arm_result = pull(dst, name, PullOptions(platform=Platform.parse("linux/arm64")))
    assert arm_result.image_id == arm and arm_result.platform.architecture == "arm64"
    assert files_of(dst, name) == {"arch": b"arm64\n"}
    with pytest.raises(LookupError, match="linux/s390x"):
        pull(dst, name, PullOptions(platform=Platform.parse("linux/s390x")))


def test_mirror_serves_docker_hub_names(registry: DistributionRegistry,
                                       stores: tuple[ImageStore, ImageStore]) -> None:
    src, dst = stores
    make_image(src, f"{registry.host}/library/mirrored:1", LAYERS[:1])
    push(src, f"{registry.host}/library/mirrored:1")
    cfg = RegistryConfig(mirrors=(f"http://{registry.host}",))
    result = pull(dst, "mirrored:1", PullOptions(config=cfg))
    assert result.name == "docker.io/library/mirrored:1"
    assert dst.resolve("mirrored:1").id == src.resolve(f"{registry.host}/library/mirrored:1").id


def test_ensure_image_pull_policies(registry: DistributionRegistry,
                                    stores: tuple[ImageStore, ImageStore]) -> None:
    src, dst = stores
    name = f"{registry.host}/policy/app:1"
    image_id = make_image(src, name, LAYERS[:1])
    push(src, name)
    with pytest.raises(ImageNotFound):
        ensure_image(dst, name, "never")
    assert ensure_image(dst, name, "missing").id == image_id
    rep = ListReporter()
    assert ensure_image(dst, name, "missing", options=PullOptions(reporter=rep)).id == image_id
    assert rep.events == []  # present: no registry traffic
    assert ensure_image(dst, name, "always", options=PullOptions(reporter=rep)).id == image_id
    assert rep.lines()[-1] == f"Status: Image is up to date for {name}"

"""RegistryClient against an in-memory registry (httpx.MockTransport): auth flows,
manifest and blob verification, resumable downloads, uploads, mounts, error mapping."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lamina.content import ContentStore
from lamina.digest import Digest
from lamina.errors import Denied, DigestMismatch, ManifestUnknown, RegistryError, Unauthorized
from lamina.oci import Descriptor, mediatypes
from lamina.registry.client import RegistryClient, UploadStream
from lamina.registry.credentials import Credential

HOST = "fake.test"


class _Cut(httpx.SyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data
        raise httpx.RemoteProtocolError("peer closed connection")


class FakeRegistry:
    """Just enough of the distribution API, with switches for misbehaviour."""

    def __init__(self, auth: str | None = None) -> None:
        self.auth = auth
        self.blobs: dict[str, bytes] = {}
        self.repo_blobs: set[tuple[str, str]] = set()
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.requests: list[httpx.Request] = []
        self.tokens: dict[str, set[str]] = {}
        self.token_requests: list[httpx.QueryParams] = []
        self.cut_after: dict[str, int] = {}
        self.tamper: set[str] = set()
        self.ignore_range = False
        self.status_override: dict[str, int] = {}
        self.patches: list[str] = []

    def add_blob(self, repo: str, data: bytes) -> Descriptor:
        d = Digest.from_bytes(data)
        self.blobs[str(d)] = data
        self.repo_blobs.add((repo, str(d)))
        return Descriptor(mediatypes.OCI_LAYER_GZIP, d, len(data))

    def _authorized(self, request: httpx.Request, repo: str | None, write: bool) -> httpx.Response | None:
        header = request.headers.get("authorization", "")
        if self.auth == "basic":
            if header == "Basic " + base64.b64encode(b"u:p").decode():
                return None
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="fake"'},
                                  json={"errors": [{"code": "UNAUTHORIZED", "message": "auth"}]})
        if self.auth == "bearer":
            granted = self.tokens.get(header.removeprefix("Bearer "), set())
            need = f"repository:{repo}:{'push' if write else 'pull'}" if repo else None
            if header.startswith("Bearer ") and header[7:] in self.tokens and \
                    (need is None or need in granted):
                return None
            scope = f',scope="repository:{repo}:{"pull,push" if write else "pull"}"' if repo else ""
            return httpx.Response(401, headers={
                "WWW-Authenticate": f'Bearer realm="https://auth.{HOST}/token",service="fake"{scope}'})
        return None

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request.url.params)
        if request.headers.get("authorization") != "Basic " + base64.b64encode(b"u:p").decode():
            return httpx.Response(401)
        token = uuid.uuid4().hex
        grants = set()
        for scope in request.url.params.get_list("scope"):
            kind, name, actions = scope.split(":")
            grants |= {f"{kind}:{name}:{a}" for a in actions.split(",")}
        self.tokens[token] = grants
        return httpx.Response(200, json={"token": token, "expires_in": 300})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == f"auth.{HOST}":
            return self._token(request)
        path = request.url.path
        if path == "/v2/":
            return self._authorized(request, None, False) or httpx.Response(200, json={})
        up = re.fullmatch(r"/v2/(.+)/blobs/uploads/.*", path)
        m = None if up else re.fullmatch(r"/v2/(.+)/(manifests|blobs)/(.+)", path)
        repo = up.group(1) if up else m.group(1)  # type: ignore[union-attr]
        write = request.method not in ("GET", "HEAD")
        denied = self._authorized(request, repo, write)
        if denied is not None:
            return denied
        if repo in self.status_override:
            return httpx.Response(self.status_override[repo],
                                  json={"errors": [{"code": "DENIED", "message": "nope"}]})
        if m and m.group(2) == "manifests":
            return self._manifest(request, repo, m.group(3))
        if m:
            return self._blob(request, repo, m.group(3))
        return self._upload(request, repo)

    def _manifest(self, request: httpx.Request, repo: str, ref: str) -> httpx.Response:
        if request.method == "PUT":
            data = request.read()
            d = str(Digest.from_bytes(data))
            self.manifests[(repo, ref)] = self.manifests[(repo, d)] = \
                (data, request.headers["content-type"])
            return httpx.Response(201, headers={"Docker-Content-Digest": d})
        found = self.manifests.get((repo, ref))
        if found is None and ref.startswith("sha256:"):
            found = next((v for (r, _), v in self.manifests.items()
                          if r == repo and str(Digest.from_bytes(v[0])) == ref), None)
        if found is None:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "x"}]})
        data, media = found
        digest = str(Digest.from_bytes(data))
        if "tamper-header" in self.tamper:
            digest = "sha256:" + "0" * 64
        return httpx.Response(200, stream=httpx.ByteStream(data), headers={
            "Content-Type": media, "Docker-Content-Digest": digest,
            "Content-Length": str(len(data))})

    def _blob(self, request: httpx.Request, repo: str, digest: str) -> httpx.Response:
        data = self.blobs.get(digest)
        if data is None or (repo, digest) not in self.repo_blobs:
            return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": "x"}]})
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Length": str(len(data))})
        if digest in self.tamper:
            data = data[:-1] + bytes([data[-1] ^ 1])
        start = 0
        rng = request.headers.get("range")
        if rng and not self.ignore_range:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
        body = data[start:]
        status = 206 if start else 200
        headers = {"Content-Length": str(len(body))}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        cut = self.cut_after.pop(digest, None)
        if cut is not None:
            return httpx.Response(status, headers=headers, stream=_Cut(body[:cut]))
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))

    def _upload(self, request: httpx.Request, repo: str) -> httpx.Response:
        if request.method == "POST":
            mount, source = request.url.params.get("mount"), request.url.params.get("from")
            if mount and (source, mount) in self.repo_blobs:
                self.repo_blobs.add((repo, mount))
                return httpx.Response(201, headers={"Location": f"/v2/{repo}/blobs/{mount}"})
            uid = uuid.uuid4().hex
            self.uploads[uid] = bytearray()
            return httpx.Response(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{uid}?_state=s"})
        uid = request.url.path.rsplit("/", 1)[-1]
        buf = self.uploads[uid]
        if request.method == "PATCH":
            start, end = map(int, request.headers["content-range"].split("-"))
            assert start == len(buf), "chunks must be contiguous"
            body = request.read()
            assert end - start + 1 == len(body)
            buf += body
            self.patches.append(request.headers["content-range"])
            return httpx.Response(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{uid}?_state=t",
                                                "Range": f"0-{len(buf) - 1}"})
        if request.method == "PUT":
            buf += request.read()
            digest = request.url.params["digest"]
            assert request.url.params.get("_state") is not None  # the Location's query kept
            if str(Digest.from_bytes(bytes(buf))) != digest:
                return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID",
                                                             "message": "digest invalid"}]})
            self.blobs[digest] = bytes(buf)
            self.repo_blobs.add((repo, digest))
            return httpx.Response(201, headers={"Docker-Content-Digest": digest})
        return httpx.Response(204)


def client(fake: FakeRegistry, **kw: object) -> RegistryClient:
    return RegistryClient(HOST, transport=httpx.MockTransport(fake), **kw)  # type: ignore[arg-type]


MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'


def test_anonymous_manifest_fetch_is_verified() -> None:
    fake = FakeRegistry()
    fake.manifests[("team/app", "1")] = (MANIFEST, mediatypes.OCI_MANIFEST)
    with client(fake) as c:
        got = c.get_manifest("team/app", "1")
        assert got.data == MANIFEST and got.media_type == mediatypes.OCI_MANIFEST
        assert got.digest == Digest.from_bytes(MANIFEST) and not got.is_index
        assert c.endpoint.url == f"https://{HOST}"
        assert c.get_manifest("team/app", str(got.digest)).data == MANIFEST
        fake.tamper.add("tamper-header")
        with pytest.raises(DigestMismatch, match=f"{HOST}/team/app:1"):
            c.get_manifest("team/app", "1")
        accept = fake.requests[-1].headers["accept"]
        assert mediatypes.OCI_INDEX in accept and mediatypes.DOCKER_MANIFEST in accept


def test_bearer_tokens_are_fetched_once_per_scope() -> None:
    fake = FakeRegistry(auth="bearer")
    fake.manifests[("team/app", "1")] = (MANIFEST, mediatypes.OCI_MANIFEST)
    blob = fake.add_blob("team/app", b"x" * 100)
    with client(fake, credential=Credential("u", "p")) as c:
        c.get_manifest("team/app", "1")
        assert c.blob_exists("team/app", blob.digest)
        assert c.read_blob("team/app", blob) == b"x" * 100
        assert len(fake.token_requests) == 1
        params = fake.token_requests[0]
        assert params["service"] == "fake" and params["scope"] == "repository:team/app:pull"
        assert params["account"] == "u"
        c.start_upload("team/app")  # push needs a wider scope: one more token
        assert len(fake.token_requests) == 2
    with client(fake) as anonymous, pytest.raises(Unauthorized, match=f"{HOST} requires"):
        anonymous.get_manifest("team/app", "1")
    with client(fake, credential=Credential("u", "wrong")) as bad, \
            pytest.raises(Unauthorized, match="rejected"):
        bad.get_manifest("team/app", "1")


def test_basic_auth() -> None:
    fake = FakeRegistry(auth="basic")
    fake.manifests[("a", "1")] = (MANIFEST, mediatypes.OCI_MANIFEST)
    with client(fake, credential=Credential("u", "p")) as c:
        assert c.login() is None
        assert c.get_manifest("a", "1").data == MANIFEST
    with client(fake, credential=Credential("u", "x")) as c, \
            pytest.raises(Unauthorized, match=f"{HOST} rejected"):
        c.login()


def test_errors_name_the_registry_and_object() -> None:
    fake = FakeRegistry()
    with client(fake) as c:
        with pytest.raises(ManifestUnknown, match=f"{HOST}/team/app:nope not found"):
            c.get_manifest("team/app", "nope")
        fake.status_override["locked"] = 403
        with pytest.raises(Denied, match=HOST):
            c.get_manifest("locked", "1")
        fake.status_override["busy"] = 429
        with pytest.raises(RegistryError) as info:
            c.get_manifest("busy", "1")
        assert info.value.code == "toomanyrequests"


def test_unreachable_registry() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with RegistryClient(HOST, transport=httpx.MockTransport(refuse)) as c, \
            pytest.raises(RegistryError, match=f"cannot reach registry {HOST}") as info:
        c.ping()
    assert info.value.code == "registry-unreachable"


def test_blob_download_resumes_after_a_cut(tmp_path: Path) -> None:
    fake = FakeRegistry()
    data = bytes(range(256)) * 400
    desc = fake.add_blob("r", data)
    store = ContentStore(tmp_path)
    fake.cut_after[str(desc.digest)] = 30_000
    seen: list[int] = []
    with client(fake) as c:
        with pytest.raises(RegistryError, match="30000 of 102400 bytes") as info:
            c.fetch_blob("r", desc, store, retries=0)
        assert "resumes" in info.value.hint
        [partial] = list(store.ingests())
        assert partial.offset == 30_000 and partial.expected == desc.digest
        assert c.fetch_blob("r", desc, store, progress=seen.append) == desc.digest
    assert fake.requests[-1].headers["range"] == "bytes=30000-"
    assert store.read_bytes(desc.digest) == data and list(store.ingests()) == []
    assert seen[-1] == len(data)


def test_blob_download_retries_within_one_call(tmp_path: Path) -> None:
    fake = FakeRegistry()
    desc = fake.add_blob("r", b"abc" * 10_000)
    fake.cut_after[str(desc.digest)] = 100
    store = ContentStore(tmp_path)
    with client(fake) as c:
        c.fetch_blob("r", desc, store, retries=1)
    assert store.exists(desc.digest)
    assert [r.headers.get("range") for r in fake.requests if r.method == "GET"][-2:] == \
        [None, "bytes=100-"]


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path) -> None:
    fake = FakeRegistry()
    data = b"0123456789" * 5000
    desc = fake.add_blob("r", data)
    store = ContentStore(tmp_path)
    fake.cut_after[str(desc.digest)] = 1234
    fake.ignore_range = True
    with client(fake) as c:
        c.fetch_blob("r", desc, store, retries=1)
    assert store.read_bytes(desc.digest) == data


def test_tampered_blob_leaves_nothing(tmp_path: Path) -> None:
    fake = FakeRegistry()
    desc = fake.add_blob("r", b"payload" * 1000)
    fake.tamper.add(str(desc.digest))
    store = ContentStore(tmp_path)
    with client(fake) as c:
        with pytest.raises(DigestMismatch, match=f"{HOST}/r"):
            c.fetch_blob("r", desc, store)
        with pytest.raises(DigestMismatch):
            c.read_blob("r", desc)
    assert not store.exists(desc.digest) and list(store.ingests()) == []
    too_long = Descriptor(desc.media_type, desc.digest, desc.size - 10)
    fake.tamper.clear()
    with client(fake) as c, pytest.raises(DigestMismatch, match="larger"):
        c.fetch_blob("r", too_long, store)
    assert list(store.ingests()) == []


@pytest.mark.parametrize("chunk_size", [None, 4096])
def test_uploads_monolithic_and_chunked(tmp_path: Path, chunk_size: int | None) -> None:
    fake = FakeRegistry()
    data = b"layer-bytes" * 2000
    desc = Descriptor(mediatypes.OCI_LAYER_GZIP, Digest.from_bytes(data), len(data))
    path = tmp_path / "blob"
    path.write_bytes(data)
    with client(fake, push=True) as c:
        assert not c.blob_exists("r", desc.digest)
        c.upload_blob("r", desc, lambda: open(path, "rb"), chunk_size=chunk_size)  # noqa: SIM115
        assert c.blob_exists("r", desc.digest)
    assert fake.blobs[str(desc.digest)] == data
    if chunk_size:
        assert len(fake.patches) == -(-len(data) // chunk_size)
        assert fake.patches[0] == "0-4095"
    else:
        assert fake.patches == []


def test_bad_upload_digest_is_refused(tmp_path: Path) -> None:
    fake = FakeRegistry()
    with client(fake, push=True) as c:
        up = c.start_upload("r")
        assert up is not None
        up.write_chunk(b"abc")
        with pytest.raises(DigestMismatch, match="rejected"):
            up.finish(Digest.from_bytes(b"other"))


def test_upload_stream_and_mount() -> None:
    fake = FakeRegistry()
    with client(fake, push=True) as c:
        up = c.start_upload("src")
        assert up is not None
        stream = UploadStream(up, chunk_size=10)
        for piece in (b"0123", b"456789ab", b"cdef"):
            stream.write(piece)
        stream.close()
        digest = Digest.from_bytes(b"0123456789abcdef")
        up.finish(digest)
        assert fake.patches == ["0-9", "10-15"]
        assert c.start_upload("dst", mount=digest, mount_from="src") is None
        assert ("dst", str(digest)) in fake.repo_blobs
        other = c.start_upload("dst2", mount=Digest.from_bytes(b"?"), mount_from="src")
        assert other is not None  # mount refused: an ordinary upload session instead
    post = [r for r in fake.requests if r.method == "POST"][1]
    assert post.url.params["mount"] == str(digest) and post.url.params["from"] == "src"


def test_put_manifest_checks_the_digest() -> None:
    fake = FakeRegistry()
    with client(fake, push=True) as c:
        d = c.put_manifest("r", "v1", MANIFEST, mediatypes.OCI_MANIFEST)
        assert d == Digest.from_bytes(MANIFEST)
        assert fake.manifests[("r", "v1")] == (MANIFEST, mediatypes.OCI_MANIFEST)

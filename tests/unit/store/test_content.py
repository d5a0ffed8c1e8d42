"""The content store: verified, atomic, concurrent-safe blob writes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

import lamina.content as content_pkg
from lamina.content import BlobInfo, BlobStore, ContentStore, ContentWriter
from lamina.digest import Digest
from lamina.errors import BlobNotFound, Conflict, DigestMismatch, InvalidArgument, SizeMismatch
from lamina.oci import Descriptor
from lamina.oci.mediatypes import OCI_LAYER_GZIP

FORK = multiprocessing.get_context("fork")

# Every BlobStore backend must pass these tests; add new backends here.
BACKENDS: list[Callable[[Path], ContentStore]] = [ContentStore]


@pytest.fixture(params=BACKENDS, ids=lambda b: b.__name__)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ContentStore:
    factory: Callable[[Path], ContentStore] = request.param
    return factory(tmp_path / "root")


def desc(data: bytes) -> Descriptor:
    return Descriptor.of(OCI_LAYER_GZIP, data)


def ingest_entries(store: ContentStore) -> list[str]:
    d = store.root / "ingest"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def blob_files(store: ContentStore) -> list[Path]:
    d = store.root / "blobs"
    return sorted(p for p in d.rglob("*") if p.is_file()) if d.exists() else []


def test_backend_satisfies_protocol(store: ContentStore) -> None:
    as_protocol: BlobStore = store
    assert as_protocol is store


def test_put_and_read(store: ContentStore) -> None:
    data = b"hello world"
    dgst = store.put_bytes(data)
    assert dgst == Digest.from_bytes(data)
    assert store.exists(dgst)
    assert store.info(dgst) == BlobInfo(dgst, len(data))
    assert store.path(dgst) == store.root / "blobs" / "sha256" / dgst.hex
    with store.open(dgst) as fh:
        assert fh.read() == data
    assert store.read_bytes(dgst) == data
    store.verify(dgst)
    # blobs are read-only files
    assert not store.path(dgst).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    # idempotent
    assert store.put_bytes(data, expected=dgst) == dgst
    assert ingest_entries(store) == []


def test_writer_streams_and_verifies(store: ContentStore) -> None:
    chunks = [os.urandom(1000) for _ in range(10)]
    data = b"".join(chunks)
    with store.writer("layer-1", expected=desc(data)) as w:
        for chunk in chunks:
            w.write(chunk)
        assert w.offset == len(data)
        assert w.digest() == Digest.from_bytes(data)
        dgst = w.commit()
    assert dgst == Digest.from_bytes(data)
    assert store.read_bytes(dgst) == data
    assert w.closed
    assert ingest_entries(store) == []


def test_commit_checks_size(store: ContentStore) -> None:
    data = b"some layer"
    with pytest.raises(SizeMismatch, match="expected 11 bytes, got 10"), store.writer("x") as w:
        w.write(data)
        w.commit(expected_size=11)
    assert blob_files(store) == []
    assert ingest_entries(store) == []


def test_commit_checks_digest(store: ContentStore) -> None:
    wrong = Descriptor(OCI_LAYER_GZIP, Digest.from_bytes(b"other"), 4)
    with pytest.raises(DigestMismatch, match="expected sha256:"), store.writer("x", wrong) as w:
        w.write(b"data")
        w.commit()
    assert blob_files(store) == []
    assert ingest_entries(store) == []
    with pytest.raises(DigestMismatch), store.writer("y") as w:
        w.write(b"data")
        w.commit(expected_digest=Digest.from_bytes(b"else"))
    assert blob_files(store) == []
    assert ingest_entries(store) == []


def test_commit_with_other_algorithm(store: ContentStore) -> None:
    data = b"sha512 content"
    want = Digest("sha512", hashlib.sha512(data).hexdigest())
    with store.writer("s") as w:
        w.write(data)
        assert w.commit(expected_digest=want) == want
    assert store.read_bytes(want) == data
    assert store.path(want).parent.name == "sha512"


def test_exception_in_block_aborts(store: ContentStore) -> None:
    with pytest.raises(RuntimeError), store.writer("boom") as w:
        w.write(b"partial")
        raise RuntimeError("network died")
    assert ingest_entries(store) == []
    assert blob_files(store) == []
    with pytest.raises(InvalidArgument, match="closed"):
        w.write(b"more")


def test_close_keeps_ingest_for_resume(store: ContentStore) -> None:
    data = os.urandom(5000)
    expected = desc(data)
    with store.writer("pull-1", expected) as w:
        w.write(data[:2000])
    (info,) = store.ingests()
    assert (info.ref, info.offset, info.expected, info.expected_size) == (
        "pull-1",
        2000,
        expected.digest,
        5000,
    )
    with store.writer("pull-1", expected, resume=True) as w:
        assert w.offset == 2000
        w.write(data[2000:])
        assert w.commit() == expected.digest
    assert store.read_bytes(expected.digest) == data
    assert list(store.ingests()) == []


def test_resume_needs_same_expectation_and_opt_in(store: ContentStore) -> None:
    data = b"0123456789"
    with store.writer("r", desc(data)) as w:
        w.write(data[:4])
    with store.writer("r", desc(data)) as w:  # no resume: starts empty
        assert w.offset == 0
        w.write(data[:4])
    with store.writer("r", desc(b"other"), resume=True) as w:  # other blob: starts empty
        assert w.offset == 0
        w.truncate()
        w.write(b"other")
        w.commit()
    assert list(store.ingests()) == []


def test_truncate_restarts(store: ContentStore) -> None:
    with store.writer("t") as w:
        w.write(b"garbage")
        w.truncate()
        w.write(b"good")
        assert w.commit() == Digest.from_bytes(b"good")


def test_same_ref_twice_in_one_process_conflicts(store: ContentStore) -> None:
    w = store.writer("dup")
    with pytest.raises(Conflict, match="already being written by this process"):
        store.writer("dup")
    w.close()
    with store.writer("dup") as w2:
        w2.write(b"ok")
        w2.commit()


def test_missing_blobs(store: ContentStore) -> None:
    missing = Digest.from_bytes(b"nope")
    assert not store.exists(missing)
    for call in (store.info, store.open, store.read_bytes, store.delete):
        with pytest.raises(BlobNotFound, match=missing.hex):
            call(missing)


def test_put_bytes_with_wrong_expectation_writes_nothing(store: ContentStore) -> None:
    with pytest.raises(DigestMismatch):
        store.put_bytes(b"data", expected=Digest.from_bytes(b"not data"))
    assert blob_files(store) == []
    assert ingest_entries(store) == []


def test_corrupt_blob_is_detected(store: ContentStore) -> None:
    dgst = store.put_bytes(b"pristine")
    path = store.path(dgst)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    assert store.read_bytes(dgst, verify=False) == b"tampered"
    with pytest.raises(DigestMismatch, match="corrupt"):
        store.read_bytes(dgst)
    with pytest.raises(DigestMismatch):
        store.verify(dgst)


def test_walk_and_delete(store: ContentStore) -> None:
    assert list(store.walk()) == []
    digests = sorted(store.put_bytes(bytes([i]) * (i + 1)) for i in range(5))
    (store.root / "blobs" / "sha256" / "not-a-digest").write_bytes(b"junk")
    (store.root / "blobs" / "md5").mkdir()
    infos = list(store.walk())
    assert [i.digest for i in infos] == digests
    assert {i.size for i in infos} == {1, 2, 3, 4, 5}
    store.delete(digests[0])
    assert not store.exists(digests[0])
    assert [i.digest for i in store.walk()] == digests[1:]


def test_abort_ingest(store: ContentStore) -> None:
    with store.writer("left-over") as w:
        w.write(b"x")
    assert [i.ref for i in store.ingests()] == ["left-over"]
    store.abort_ingest("left-over")
    store.abort_ingest("never-existed")
    assert list(store.ingests()) == []
    assert ingest_entries(store) == []


def test_empty_ref_rejected(store: ContentStore) -> None:
    with pytest.raises(InvalidArgument):
        store.writer("")


def test_writer_cannot_be_built_directly() -> None:
    with pytest.raises(TypeError):
        ContentWriter()  # type: ignore[call-arg]


# --- across processes --------------------------------------------------------------

BIG = os.urandom(3 << 20)


def _write_big(root: str, ref: str, start: Event, results: Queue[str]) -> None:
    store = ContentStore(Path(root))
    start.wait()
    with store.writer(ref, desc(BIG)) as w:
        for i in range(0, len(BIG), 64 << 10):
            w.write(BIG[i : i + (64 << 10)])
        results.put(str(w.commit()))


@pytest.mark.parametrize("same_ref", [True, False], ids=["same-ref", "different-refs"])
def test_two_processes_write_the_same_blob(store: ContentStore, same_ref: bool) -> None:
    start = FORK.Event()
    results: Queue[str] = FORK.Queue()
    procs = [
        FORK.Process(
            target=_write_big,
            args=(str(store.root), "shared" if same_ref else f"ref-{n}", start, results),
        )
        for n in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    got = {results.get(timeout=5) for _ in procs}
    assert got == {str(Digest.from_bytes(BIG))}
    assert store.read_bytes(Digest.from_bytes(BIG)) == BIG
    assert ingest_entries(store) == []
    assert len(blob_files(store)) == 1


def _hold_ref(root: str, locked: Event, release: Event) -> None:
    store = ContentStore(Path(root))
    with store.writer("held") as w:
        w.write(b"mine")
        locked.set()
        release.wait(30)
        w.commit()


def test_ref_held_by_another_process_times_out_then_frees(store: ContentStore) -> None:
    locked, release = FORK.Event(), FORK.Event()
    proc = FORK.Process(target=_hold_ref, args=(str(store.root), locked, release))
    proc.start()
    try:
        assert locked.wait(30)
        with pytest.raises(Conflict, match="locked by another writer"):
            store.writer("held", timeout=0.2)
    finally:
        release.set()
        proc.join(30)
    assert proc.exitcode == 0
    assert store.read_bytes(Digest.from_bytes(b"mine")) == b"mine"
    # the owner removed its ingest; a new writer of the ref starts fresh
    with store.writer("held", timeout=5) as w:
        assert w.offset == 0


def test_public_api() -> None:
    for name in content_pkg.__all__:
        assert hasattr(content_pkg, name), name

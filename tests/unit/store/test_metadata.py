"""The metadata store: schema migrations, transactions, records, GC queries, concurrency."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

import lamina.metadata as metadata_pkg
from lamina.digest import Digest
from lamina.errors import (
    AlreadyExists,
    Conflict,
    ImageNotFound,
    InvalidArgument,
    NotSupported,
)
from lamina.metadata import (
    MIGRATIONS,
    ImageRecord,
    LayerNotFound,
    LayerRecord,
    MetadataError,
    MetadataStore,
    Migration,
    SnapshotKind,
    SnapshotNotFound,
    chain_id_of,
)

FORK = multiprocessing.get_context("fork")
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def dg(text: str) -> Digest:
    return Digest.from_bytes(text.encode())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    with MetadataStore(tmp_path / "metadata.db") as s:
        yield s


def chain(*names: str, blobs: bool = True) -> list[LayerRecord]:
    """Layers stacked in order, diff IDs and blobs derived from ``names``."""
    out: list[LayerRecord] = []
    for name in names:
        out.append(
            LayerRecord.on_top_of(
                out[-1] if out else None,
                dg("diff " + name),
                100,
                blob_digest=dg("blob " + name) if blobs else None,
                blob_media_type=GZIP if blobs else None,
                compressed_size=40 if blobs else None,
            )
        )
    return out


def image(name: str, parent: Digest | None = None) -> ImageRecord:
    return ImageRecord(
        id=dg("config " + name),
        manifest_digest=dg("manifest " + name),
        size=300,
        created=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        parent=parent,
    )


def snapshot_of_table(store: MetadataStore) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table (to compare a store before and after)."""
    db = sqlite3.connect(store.path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    finally:
        db.close()


# --- schema ------------------------------------------------------------------------


def test_new_database_is_migrated_and_in_wal_mode(store: MetadataStore) -> None:
    assert store.schema_version() == MIGRATIONS[-1].version >= 1
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"images", "refs", "layers", "image_layers", "snapshots", "schema_migrations"} <= tables
    db.close()


def test_reopen_keeps_data_and_applies_new_migrations(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with MetadataStore(path) as s:
        s.add_image(image("a"), chain("a"))
    latest = MIGRATIONS[-1].version
    nxt = latest + 1
    containers = Migration(
        nxt, "widgets", ("CREATE TABLE widgets (id TEXT PRIMARY KEY, image_id TEXT)",)
    )
    with MetadataStore(path, migrations=(*MIGRATIONS, containers)) as s:
        assert s.schema_version() == nxt
        assert [i.id for i in s.images()] == [image("a").id]
    db = sqlite3.connect(path)
    db.execute("INSERT INTO widgets VALUES ('c1', ?)", (str(image("a").id),))
    db.commit()
    applied = db.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert applied == [*((m.version, m.name) for m in MIGRATIONS), (nxt, "widgets")]
    db.close()
    # re-opening with the same list applies nothing twice
    with MetadataStore(path, migrations=(*MIGRATIONS, containers)) as s:
        assert s.schema_version() == nxt
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == nxt
    assert db.execute("SELECT id FROM widgets").fetchall() == [("c1",)]
    db.close()
    # an older lamina refuses a newer database instead of misreading it
    with pytest.raises(NotSupported, match=f"schema version {nxt}") as info:
        MetadataStore(path)
    assert "upgrade" in info.value.hint


def test_failed_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    MetadataStore(path).close()
    nxt = MIGRATIONS[-1].version + 1
    bad = Migration(nxt, "broken", ("CREATE TABLE gadgets (name TEXT)", "NOT SQL AT ALL"))
    with pytest.raises(MetadataError, match=f"schema migration {nxt}"):
        MetadataStore(path, migrations=(*MIGRATIONS, bad))
    with MetadataStore(path) as s:
        assert s.schema_version() == nxt - 1
    db = sqlite3.connect(path)
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'gadgets'").fetchone() is None
    db.close()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(MetadataError) as info:
        MetadataStore(path)
    assert info.value.hint


# --- references and images ------------------------------------------------------------


def test_images_and_references(store: MetadataStore) -> None:
    layers = chain("base", "app")
    stored = store.add_image(image("app"), layers)
    assert stored.added is not None
    assert dataclasses.replace(stored, added=None) == image("app")
    assert store.get_image(image("app").id) == stored
    assert store.image_layers(stored.id) == layers

    ref = store.set_reference("docker.io/library/app:1", stored.id, dg("index"))
    assert store.get_reference("docker.io/library/app:1") == ref
    assert ref.digest == dg("index")
    other = store.add_image(image("other"), chain("base"))
    moved = store.set_reference("docker.io/library/app:1", other.id)
    assert store.get_reference("docker.io/library/app:1").image_id == other.id
    assert moved.digest is None
    store.set_reference("docker.io/library/app:2", stored.id)
    assert [r.name for r in store.references()] == [
        "docker.io/library/app:1",
        "docker.io/library/app:2",
    ]
    assert [r.name for r in store.references(stored.id)] == ["docker.io/library/app:2"]
    assert store.delete_reference("docker.io/library/app:2").image_id == stored.id
    assert store.find_reference("docker.io/library/app:2") is None
    with pytest.raises(ImageNotFound, match="no such image: docker.io/library/app:2"):
        store.delete_reference("docker.io/library/app:2")
    with pytest.raises(ImageNotFound):
        store.set_reference("x", dg("no such config"))


def test_image_ids_by_prefix(store: MetadataStore) -> None:
    a = store.add_image(image("a"), [])
    assert store.images_with_prefix(a.id.hex[:12]) == [a]
    assert store.images_with_prefix("sha256:" + a.id.hex[:5]) == [a]
    assert store.images_with_prefix("zz") == []
    assert store.images_with_prefix("") == []


def test_add_image_again_replaces_manifest_and_blobs(store: MetadataStore) -> None:
    store.add_image(image("a"), chain("base"))
    zstd = dataclasses.replace(
        chain("base")[0], blob_digest=dg("zstd blob"), blob_media_type="x/zstd"
    )
    again = dataclasses.replace(image("a"), manifest_digest=dg("oci manifest"))
    store.add_image(again, [zstd])
    assert store.get_image(again.id).manifest_digest == dg("oci manifest")
    assert store.image_layers(again.id)[0].blob_digest == dg("zstd blob")
    # the layer keeps the blob it was first recorded with
    assert store.get_layer(zstd.chain_id).blob_digest == dg("blob base")
    assert len(store.images()) == 1


def test_add_image_checks_the_chain_and_parent(store: MetadataStore) -> None:
    a, b = chain("a", "b")
    with pytest.raises(InvalidArgument, match="layer 0"):
        store.add_image(image("x"), [b])
    with pytest.raises(ImageNotFound):
        store.add_image(image("x", parent=dg("missing")), [a])
    assert store.images() == []
    assert store.layers() == []


def test_delete_image_rules(store: MetadataStore) -> None:
    base = store.add_image(image("base"), chain("a"))
    child = store.add_image(image("child", parent=base.id), chain("a", "b"))
    assert store.children(base.id) == [child]
    store.set_reference("n:1", child.id)
    with pytest.raises(Conflict, match="referenced by 1 name"):
        store.delete_image(child.id)
    with pytest.raises(Conflict, match="dependent child images"):
        store.delete_image(base.id)
    store.delete_reference("n:1")
    store.delete_image(child.id)
    store.delete_image(base.id)
    assert store.images() == []
    with pytest.raises(ImageNotFound):
        store.image_layers(base.id)
    with pytest.raises(ImageNotFound):
        store.delete_image(base.id)


# --- layers ------------------------------------------------------------------------------


def test_chain_ids() -> None:
    d1, d2 = dg("1"), dg("2")
    assert chain_id_of(None, d1) == d1
    assert chain_id_of(d1, d2) == Digest.from_bytes(f"{d1} {d2}".encode())
    with pytest.raises(InvalidArgument, match="chain ID does not match"):
        LayerRecord(chain_id=d2, diff_id=d1, uncompressed_size=1)


def test_layers(store: MetadataStore) -> None:
    a, b = chain("a", "b", blobs=False)
    with pytest.raises(LayerNotFound, match="parent layer"):
        store.add_layer(b)
    store.add_layer(a)
    store.add_layer(b)
    assert store.get_layer(b.chain_id) == b
    # adding again fills in a missing blob, keeps the rest
    with_blob = dataclasses.replace(b, blob_digest=dg("blob"), compressed_size=9)
    store.add_layer(with_blob)
    assert store.get_layer(b.chain_id) == with_blob
    store.add_layer(b)
    assert store.get_layer(b.chain_id) == with_blob
    with pytest.raises(Conflict, match="size"):
        store.add_layer(dataclasses.replace(b, uncompressed_size=5))
    assert store.layers_with_diff_id(b.diff_id) == [with_blob]
    with pytest.raises(Conflict):
        store.delete_layer(a.chain_id)  # b sits on it
    store.delete_layer(b.chain_id)
    store.delete_layer(a.chain_id)
    with pytest.raises(LayerNotFound):
        store.get_layer(a.chain_id)


def test_layer_in_use_by_image_cannot_be_deleted(store: MetadataStore) -> None:
    (a,) = chain("a")
    store.add_image(image("i"), [a])
    with pytest.raises(Conflict):
        store.delete_layer(a.chain_id)
    assert store.get_layer(a.chain_id) == a


# --- transactions ------------------------------------------------------------------------


def test_failed_transaction_leaves_store_unchanged(store: MetadataStore) -> None:
    store.add_image(image("keep"), chain("a"))
    store.set_reference("keep:1", image("keep").id)
    before = snapshot_of_table(store)
    with pytest.raises(RuntimeError), store.transaction():
        store.add_image(image("new"), chain("a", "b"))
        store.set_reference("keep:1", image("new").id)
        store.create_snapshot("active-1")
        raise RuntimeError("crash in the middle")
    assert snapshot_of_table(store) == before
    assert store.get_reference("keep:1").image_id == image("keep").id


def test_failing_call_rolls_back_its_own_work(store: MetadataStore) -> None:
    before = snapshot_of_table(store)
    # the layers are inserted first, then the image row fails its CHECK constraint
    broken = dataclasses.replace(image("x"), size=-1)
    with pytest.raises(InvalidArgument, match="CHECK constraint"):
        store.add_image(broken, chain("a", "b"))
    assert snapshot_of_table(store) == before
    assert store.layers() == []


def test_nested_transaction_rolls_back_only_inner(store: MetadataStore) -> None:
    with store.transaction():
        store.add_image(image("outer"), [])
        with pytest.raises(AlreadyExists), store.transaction():
            store.create_snapshot("s")
            store.create_snapshot("s")
        assert store.find_snapshot("s") is None
    assert store.find_image(image("outer").id) is not None


# --- snapshots -------------------------------------------------------------------------------


def test_snapshot_lifecycle(store: MetadataStore) -> None:
    a = store.create_snapshot("extract-a")
    assert (a.kind, a.parent, a.size) == (SnapshotKind.ACTIVE, None, None)
    committed = store.commit_snapshot("extract-a", "chain-a", size=1234)
    assert (committed.key, committed.id, committed.kind, committed.size) == (
        "chain-a",
        a.id,
        SnapshotKind.COMMITTED,
        1234,
    )
    with pytest.raises(SnapshotNotFound):
        store.get_snapshot("extract-a")
    b = store.create_snapshot("container-1", parent="chain-a")
    view = store.create_snapshot("view-1", parent="chain-a", kind=SnapshotKind.VIEW)
    assert b.id != a.id and view.parent == "chain-a"
    with pytest.raises(Conflict, match="not committed"):
        store.create_snapshot("x", parent="container-1")
    with pytest.raises(Conflict, match="only active"):
        store.commit_snapshot("view-1", "v")
    with pytest.raises(AlreadyExists):
        store.create_snapshot("container-1")
    with pytest.raises(AlreadyExists):
        store.commit_snapshot("container-1", "chain-a")
    with pytest.raises(InvalidArgument):
        store.create_snapshot("c", kind=SnapshotKind.COMMITTED)
    with pytest.raises(SnapshotNotFound):
        store.create_snapshot("c", parent="nope")
    with pytest.raises(Conflict, match="parent of"):
        store.delete_snapshot("chain-a")
    store.delete_snapshot("container-1")
    store.delete_snapshot("view-1")
    last = store.delete_snapshot("chain-a")
    assert last.id == a.id
    # ids are never reused, so a directory name never means two snapshots
    assert store.create_snapshot("again").id > view.id
    assert [s.key for s in store.snapshots()] == ["again"]


# --- garbage collection queries ------------------------------------------------------------


def test_gc_queries(store: MetadataStore) -> None:
    base, app = chain("base", "app")
    store.add_image(image("app"), [base, app])
    store.set_reference("app:1", image("app").id, dg("index of app"))
    # an orphan chain: layers with no image
    o1, o2 = chain("orphan1", "orphan2")
    store.add_layer(o1)
    store.add_layer(o2)
    assert store.referenced_blobs() == {
        image("app").id,
        dg("manifest app"),
        dg("index of app"),
        dg("blob base"),
        dg("blob app"),
    }
    assert store.unreferenced_layers() == [o2, o1]  # top first

    for key, parent in ((base.chain_id, None), (app.chain_id, base.chain_id)):
        store.create_snapshot("tmp", parent=str(parent) if parent else None)
        store.commit_snapshot("tmp", str(key))
    store.create_snapshot("tmp")
    store.commit_snapshot("tmp", str(o1.chain_id))
    store.create_snapshot("tmp", parent=str(o1.chain_id))
    store.commit_snapshot("tmp", str(o2.chain_id))
    store.create_snapshot("stray")
    store.commit_snapshot("stray", "stray-committed")
    store.create_snapshot("container", parent="stray-committed")
    assert store.referenced_snapshots() == {
        str(base.chain_id),
        str(app.chain_id),
        "container",
        "stray-committed",
    }
    assert [s.key for s in store.unreferenced_snapshots()] == [str(o2.chain_id), str(o1.chain_id)]

    # once the image is gone, everything it held becomes collectable
    store.delete_reference("app:1")
    store.delete_image(image("app").id)
    assert store.referenced_blobs() == frozenset()
    assert [layer.chain_id for layer in store.unreferenced_layers()] == sorted(
        [app.chain_id, o2.chain_id]
    ) + sorted([base.chain_id, o1.chain_id])


# --- processes --------------------------------------------------------------------------------


def _writer(path: str, name: str, count: int, start: Event) -> None:
    with MetadataStore(Path(path)) as s:
        start.wait(30)
        for i in range(count):
            layers = chain("shared-base", f"{name}-{i}")
            with s.transaction():
                img = s.add_image(image(f"{name}-{i}"), layers)
                s.set_reference(f"{name}:{i}", img.id)


def test_concurrent_writers_from_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    start = FORK.Event()
    procs = [FORK.Process(target=_writer, args=(str(path), n, 25, start)) for n in ("p", "q")]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with MetadataStore(path) as s:
        assert len(s.images()) == 50
        assert len(s.references()) == 50
        # the shared base layer was recorded once; every image sits on it
        base = chain("shared-base")[0]
        assert len(s.layers()) == 51
        for ref in s.references():
            assert s.image_layers(ref.image_id)[0] == base


def _open_fresh(path: str, start: Event) -> None:
    start.wait(30)
    with MetadataStore(Path(path)) as s:
        assert s.schema_version() == MIGRATIONS[-1].version


def test_processes_opening_a_new_database_together(tmp_path: Path) -> None:
    # Switching a new database to WAL does not wait for locks in SQLite itself;
    # every opener must still succeed, and the schema is created exactly once.
    for attempt in range(5):
        path = tmp_path / f"fresh-{attempt}.db"
        start = FORK.Event()
        procs = [FORK.Process(target=_open_fresh, args=(str(path), start)) for _ in range(3)]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        db = sqlite3.connect(path)
        assert db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
        db.close()


def _hold_lock(path: str, locked: Event, release: Event) -> None:
    with MetadataStore(Path(path)) as s, s.lock():
        locked.set()
        release.wait(30)


def test_process_lock_is_exclusive_and_reentrant(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    MetadataStore(path).close()
    locked, release = FORK.Event(), FORK.Event()
    proc = FORK.Process(target=_hold_lock, args=(str(path), locked, release))
    proc.start()
    try:
        assert locked.wait(30)
        with (
            MetadataStore(path) as s,
            pytest.raises(Conflict, match="holds the store lock"),
            s.lock(timeout=0.2),
        ):
            pass
    finally:
        release.set()
        proc.join(30)
    assert proc.exitcode == 0
    with MetadataStore(path) as s:
        with s.lock(timeout=5), s.lock(timeout=0):
            assert s.lock_path.exists()
        # released: a second store (another "process") can take it right away
        with MetadataStore(path) as other, other.lock(timeout=0):
            pass


def test_public_api() -> None:
    for name in metadata_pkg.__all__:
        assert hasattr(metadata_pkg, name), name

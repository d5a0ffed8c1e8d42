"""Container and volume rows in the metadata store (schema migration 2)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lamina.digest import Digest
from lamina.errors import AlreadyExists, Conflict, ContainerNotFound, InvalidArgument
from lamina.metadata import (
    ContainerRecord,
    ContainerState,
    ContainerTable,
    ImageRecord,
    LayerRecord,
    MetadataStore,
    VolumeNotFound,
    VolumeRecord,
    VolumeTable,
)


@pytest.fixture
def store(tmp_path: Path) -> MetadataStore:
    s = MetadataStore(tmp_path / "m.db")
    layer = LayerRecord.on_top_of(None, Digest.from_bytes(b"layer"), 10)
    s.add_image(ImageRecord(Digest.from_bytes(b"cfg"), Digest.from_bytes(b"man")), [layer])
    return s


IMAGE = Digest.from_bytes(b"cfg")


def record(cid: str, name: str) -> ContainerRecord:
    return ContainerRecord(cid, name, IMAGE, "bb:1", datetime.now(UTC), '{"image":"bb:1"}')


def test_add_lookup_and_prefixes(store: MetadataStore) -> None:
    t = ContainerTable(store)
    t.add(record("abc123" + "0" * 58, "web"))
    t.add(record("abd456" + "0" * 58, "db"))
    assert t.lookup("web").name == "web"
    assert t.lookup("/db").name == "db"
    assert t.lookup("abc").name == "web"
    with pytest.raises(InvalidArgument, match="multiple containers"):
        t.lookup("ab")
    with pytest.raises(ContainerNotFound, match="No such container: zzz"):
        t.lookup("zzz")
    with pytest.raises(AlreadyExists, match='The container name "/web" is already in use'):
        t.add(record("f" * 64, "web"))
    assert [c.name for c in t.all()] == ["db", "web"]  # newest first


def test_state_compare_and_set(store: MetadataStore) -> None:
    t = ContainerTable(store)
    cid = "a" * 64
    t.add(record(cid, "job"))
    running = ContainerState("running", pid=42, started_at=datetime.now(UTC))
    assert t.set_state(cid, running, expect="created") is True
    done = replace(running, status="exited", pid=0, exit_code=3)
    assert t.set_state(cid, done, expect="running") is True
    assert t.set_state(cid, replace(done, exit_code=9), expect="running") is False
    got = t.get(cid).state
    assert (got.status, got.exit_code, got.running) == ("exited", 3, False)
    with pytest.raises(InvalidArgument):
        ContainerState("sleeping")


def test_container_pins_its_image(store: MetadataStore) -> None:
    ContainerTable(store).add(record("b" * 64, "pin"))
    with pytest.raises(Conflict):
        store._q("DELETE FROM images WHERE id = ?", (str(IMAGE),))


def test_rename(store: MetadataStore) -> None:
    t = ContainerTable(store)
    t.add(record("c" * 64, "one"))
    t.add(record("d" * 64, "two"))
    t.rename("c" * 64, "three")
    assert t.get("c" * 64).name == "three"
    with pytest.raises(Conflict, match='"/two" is already in use'):
        t.rename("c" * 64, "two")


def test_volumes_in_use_cannot_be_removed(store: MetadataStore) -> None:
    vt = VolumeTable(store)
    ct = ContainerTable(store)
    vt.add(VolumeRecord("data", datetime.now(UTC), labels=(("k", "v"),)))
    ct.add(record("e" * 64, "user"), volumes=[("data", "/d")])
    assert vt.users("data") == ["e" * 64]
    assert ct.volumes_of("e" * 64) == [("data", "/d")]
    with pytest.raises(Conflict, match=r"remove data: volume is in use - \[e+\]"):
        vt.delete("data")
    ct.delete("e" * 64)  # its volume uses go with it
    vt.delete("data")
    with pytest.raises(VolumeNotFound, match="get data: no such volume"):
        vt.get("data")

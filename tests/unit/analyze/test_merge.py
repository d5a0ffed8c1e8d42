"""The layer merger on hand-made entries, and a property check against a naive model."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.analyze._tarwalk import EntryKind, TarEntry
from lamina.analyze.merge import LayerMerger, settle
from lamina.analyze.model import ChangeKind, WasteReason

_offsets = iter(range(512, 10**12, 512))


def f(path: str, size: int, mode: int = 0o644) -> TarEntry:
    return TarEntry(path, EntryKind.FILE, size, mode, 0, 0, "", next(_offsets))


def d(path: str, mode: int = 0o755) -> TarEntry:
    return TarEntry(path, EntryKind.DIR, 0, mode, 0, 0, "", next(_offsets))


def wh(path: str) -> TarEntry:
    parent, _, name = path.rpartition("/")
    return f(f"{parent}/.wh.{name}" if parent else f".wh.{name}", 0)


def opq(path: str) -> TarEntry:
    return f(f"{path}/.wh..wh..opq", 0)


def test_whiteout_in_same_layer_spares_that_layers_entries() -> None:
    m = LayerMerger()
    m.apply(0, [f("a/x", 10)])
    m.apply(1, [f("a/x", 20), wh("a/x")])  # order inside a layer does not matter
    assert m.exists("/a/x")
    assert [(x.path, x.copy.size) for x in m.deaths] == [("a/x", 10)]
    assert m.final_bytes() == 20


def test_opaque_keeps_same_layer_children_in_lower_subdirectories() -> None:
    m = LayerMerger()
    m.apply(0, [f("o/sub/old", 5), f("o/top", 7)])
    m.apply(1, [d("o"), d("o/sub"), f("o/sub/new", 3), opq("o")])
    assert m.exists("/o/sub/new") and not m.exists("/o/sub/old") and not m.exists("/o/top")
    assert m.final_bytes() == 3
    assert m.total_bytes() == 15


def test_file_replacing_a_directory_removes_its_subtree() -> None:
    m = LayerMerger()
    m.apply(0, [f("p/q/r", 100), f("p/s", 50)])
    m.apply(1, [f("p", 1)])
    changes, wasted = settle(m, {})
    assert {w.path: w.reason for w in wasted} == {"/p/q/r": WasteReason.REMOVED,
                                                  "/p/s": WasteReason.REMOVED}
    assert all("replaced by a file" in w.detail for w in wasted)
    modified = [c for c in changes[1] if c.kind is ChangeKind.MODIFIED]
    assert [(c.path, c.detail) for c in modified] == [("/p", "directory replaced by a file")]


def test_directory_replacing_a_file_overwrites_it() -> None:
    m = LayerMerger()
    m.apply(0, [f("x", 30)])
    m.apply(1, [f("x/y", 1)])  # no header for x/: the directory is implied
    _, wasted = settle(m, {})
    assert [(w.path, w.reason, w.size) for w in wasted] == [("/x", WasteReason.OVERWRITTEN, 30)]
    assert "replaced by a directory" in wasted[0].detail


def test_same_size_overwrite_without_digests_stays_overwritten() -> None:
    m = LayerMerger()
    m.apply(0, [f("k", 8)])
    m.apply(1, [f("k", 8, mode=0o600)])
    wanted = m.hash_requests()
    assert set(wanted) == {0, 1} and all(len(r) == 1 for r in wanted.values())
    _, wasted = settle(m, {})
    assert wasted[0].reason is WasteReason.OVERWRITTEN


def test_aufs_bookkeeping_names_are_ignored() -> None:
    m = LayerMerger()
    m.apply(0, [f("a", 3)])
    totals = m.apply(1, [f(".wh..wh.plnk/123.4", 0), f(".wh..wh.aufs", 0)])
    assert totals.entries == 2 and m.exists("/a") and m.deaths == []


def test_directory_mode_change_is_a_modification() -> None:
    m = LayerMerger()
    m.apply(0, [d("srv")])
    m.apply(1, [d("srv", 0o700)])
    changes, _ = settle(m, {})
    assert [(c.path, c.detail) for c in changes[1]] == [("/srv", "mode 0755 -> 0700")]


# --- property: the merger agrees with a naive model -------------------------------------

_DIRS = ["d1", "d1/s", "d2"]
_FILES = ["d1/f1", "d1/f2", "d1/s/f3", "d2/f4", "f5"]


def _naive(layers: list[list[tuple[str, str, int]]]) -> tuple[set[tuple[str, int, int]], int]:
    """Surviving file versions ``(path, layer, size)`` and total bytes, by the OCI rules
    applied literally: deletions hit lower layers only, a file at a path deletes what
    was beneath it, a file or opaque marker beneath a path deletes the file at that path
    (the path must now be a directory)."""
    fs: dict[str, tuple[int, int]] = {}  # path -> (layer, size) of files only
    total = 0
    for k, ops in enumerate(layers):
        for op, path, _ in ops:
            if op == "opaque":
                fs.pop(path, None)  # path/.wh..wh..opq makes path a directory
            if op in ("whiteout", "opaque"):
                prefix = path + "/"
                for p in list(fs):
                    hit = p.startswith(prefix) or (op == "whiteout" and p == path)
                    if hit and fs[p][0] < k:
                        del fs[p]
        for op, path, size in ops:
            if op != "write":
                continue
            total += size
            prefix = path + "/"
            for p in list(fs):
                if p.startswith(prefix) or path.startswith(p + "/"):
                    del fs[p]
            fs[path] = (k, size)
    return {(p, k, s) for p, (k, s) in fs.items()}, total


_op = st.one_of(
    st.tuples(st.just("write"), st.sampled_from([*_FILES, "d2"]), st.integers(1, 1000)),
    st.tuples(st.just("whiteout"), st.sampled_from(_DIRS + _FILES), st.just(0)),
    st.tuples(st.just("opaque"), st.sampled_from(_DIRS), st.just(0)),
)


def _valid_layer(ops: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """One entry per path and no write both at and beneath a path in the same layer
    (a real layer tar cannot say both)."""
    seen: dict[str, tuple[str, str, int]] = {}
    for op in ops:
        seen.setdefault(f"{op[0] == 'write'}:{op[1]}", op)
    out = list(seen.values())
    writes = {p for o, p, _ in out if o == "write"}
    return [o for o in out
            if not (o[0] == "write" and any(w.startswith(o[1] + "/") for w in writes))
            and not (o[0] == "opaque" and o[1] in writes)
            and not any(o[1].startswith(w + "/") for w in writes)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_op, max_size=6), min_size=1, max_size=5), st.randoms())
def test_merger_matches_naive_model(raw_layers: list[list[tuple[str, str, int]]],
                                    rnd: random.Random) -> None:
    layers = [_valid_layer(ops) for ops in raw_layers]
    expected_final, expected_total = _naive(layers)

    m = LayerMerger()
    for k, ops in enumerate(layers):
        entries = []
        for op, path, size in ops:
            if op == "write":
                entries.append(f(path, size))
            elif op == "whiteout":
                entries.append(wh(path))
            else:
                entries.append(opq(path))
        rnd.shuffle(entries)
        m.apply(k, entries)

    final = {(p.lstrip("/"), layer, size) for p, size, layer in m.final_leaves()}
    assert final == expected_final
    assert m.total_bytes() == expected_total
    _, wasted = settle(m, {})
    assert sum(w.size for w in wasted) == expected_total - sum(s for _, _, s in expected_final)
    assert m.final_bytes() + sum(w.size for w in wasted) == m.total_bytes()

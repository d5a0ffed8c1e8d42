"""End-to-end analysis of archives built here, layer by layer, with tarfile."""

from __future__ import annotations

from pathlib import Path

import pytest
from imagekit import (
    Dir,
    File,
    Hardlink,
    Layer,
    MiB,
    Opaque,
    Step,
    Symlink,
    Whiteout,
    build_docker_archive,
    build_oci_archive,
    waste_image_steps,
)

from lamina.analyze import (
    Analysis,
    ChangeKind,
    CiThresholds,
    WasteReason,
    analyze,
    evaluate_ci,
    open_source,
)


def run(archive: Path, kind: str = "docker-archive", base: Path | None = None) -> Analysis:
    with open_source(f"{kind}:{archive}") as src:
        if base is None:
            return analyze(src)
        with open_source(f"docker-archive:{base}") as base_src:
            return analyze(src, base=base_src)


@pytest.fixture(scope="module")
def waste_image(tmp_path_factory: pytest.TempPathFactory) -> Analysis:
    out = tmp_path_factory.mktemp("img") / "waste.tar"
    build_docker_archive(out, waste_image_steps())
    return run(out)


def test_acceptance_image_reports_exactly_the_reclaimable_bytes(waste_image: Analysis) -> None:
    a = waste_image
    assert a.wasted_bytes == 5 * MiB + MiB + MiB
    reasons = {w.path: (w.reason, w.size, w.layer, w.by_layer) for w in a.wasted}
    assert reasons == {
        "/app/data.bin": (WasteReason.REMOVED, 5 * MiB, 1, 3),
        "/app/config.bin": (WasteReason.OVERWRITTEN, MiB, 1, 2),
        "/app/script.bin": (WasteReason.METADATA_ONLY, MiB, 1, 3),
    }
    chmod = next(w for w in a.wasted if w.path == "/app/script.bin")
    assert "mode 0644 -> 0755" in chmod.detail and "same content" in chmod.detail


def test_totals_are_consistent(waste_image: Analysis) -> None:
    a = waste_image
    assert a.total_bytes == sum(layer.size for layer in a.layers)
    assert a.total_bytes == a.final_bytes + a.wasted_bytes
    # final: os-release 200 + tool 300000 + new config 1 MiB + chmod-ed script 1 MiB
    assert a.final_bytes == 200 + 300_000 + 2 * MiB
    assert a.efficiency == pytest.approx(a.final_bytes / a.total_bytes)
    assert a.final_files == 4


def test_history_with_empty_layers_maps_to_the_right_layers(waste_image: Analysis) -> None:
    a = waste_image
    assert [layer.created_by.split()[0] for layer in a.layers] == ["/bin/sh", "COPY", "RUN", "RUN"]
    assert "rm /app/data.bin" in a.layers[3].created_by
    assert [h.layer for h in a.history] == [0, None, 1, 2, 3, None]
    assert a.notes == ()


def test_layer_changes_and_counts(waste_image: Analysis) -> None:
    last = waste_image.layers[3]
    marks = {c.path: c.kind for c in last.changes}
    assert marks == {"/app/data.bin": ChangeKind.REMOVED, "/app/script.bin": ChangeKind.MODIFIED}
    assert (last.removed_files, last.removed_bytes) == (1, 5 * MiB)
    assert (last.modified_files, last.modified_bytes) == (1, MiB)
    edit = next(c for c in waste_image.layers[2].changes if c.path == "/app/config.bin")
    assert edit.detail == "content changed"
    assert waste_image.layers[1].wasted_bytes == 7 * MiB


def test_top_wasted_paths_name_layers_and_survival(waste_image: Analysis) -> None:
    top = {t.path: t for t in waste_image.top_wasted}
    assert next(t.path for t in waste_image.top_wasted) == "/app/data.bin"
    assert top["/app/data.bin"].survives is False
    assert top["/app/config.bin"].survives is True
    assert top["/app/script.bin"].layers == (1,) and top["/app/script.bin"].by_layers == (3,)


def test_advice_for_removed_later_and_chmod_after_copy(waste_image: Analysis) -> None:
    by_practice = {adv.practice: adv for adv in waste_image.advice}
    assert set(by_practice) == {"cleanup-in-same-run", "copy-with-chmod"}
    assert by_practice["cleanup-in-same-run"].bytes == 5 * MiB
    assert by_practice["cleanup-in-same-run"].paths == ("/app/data.bin",)
    assert by_practice["copy-with-chmod"].bytes == MiB
    assert "--chmod" in by_practice["copy-with-chmod"].message


def test_default_base_is_first_layer_and_user_ratio_over_user_layers(waste_image: Analysis) -> None:
    a = waste_image
    assert a.base_layers == 1 and a.base_source == "first-layer"
    assert a.base_bytes == 300_200
    assert a.user_bytes == a.total_bytes - 300_200
    assert a.user_wasted_bytes == 7 * MiB
    assert a.user_wasted_ratio == pytest.approx(7 * MiB / a.user_bytes)


def test_ci_gates(waste_image: Analysis) -> None:
    results = {r.rule: r for r in evaluate_ci(waste_image, CiThresholds())}
    assert results["lowestEfficiency"].failed
    assert results["highestWastedBytes"].status == "skip"
    assert results["highestUserWastedPercent"].failed
    relaxed = evaluate_ci(waste_image, CiThresholds(0.2, 8 * MiB, 0.8))
    assert not any(r.failed for r in relaxed)
    tight = {r.rule: r.status for r in evaluate_ci(waste_image, CiThresholds(None, 7 * MiB - 1, None))}
    assert tight == {"lowestEfficiency": "skip", "highestWastedBytes": "fail",
                     "highestUserWastedPercent": "skip"}


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_oci_archive_with_compressed_layers_gives_the_same_figures(
    tmp_path: Path, waste_image: Analysis, compression: str
) -> None:
    steps = [s if isinstance(s, Step) else Layer(s.entries, s.created_by, compression)
             for s in waste_image_steps()]
    out = tmp_path / "oci.tar"
    build_oci_archive(out, steps, nested_index=True)
    a = run(out, "oci-archive")
    assert a.wasted_bytes == waste_image.wasted_bytes
    assert [(w.path, w.reason) for w in a.wasted] == [(w.path, w.reason) for w in waste_image.wasted]
    assert [layer.size for layer in a.layers] == [layer.size for layer in waste_image.layers]
    # the blobs really are compressed: their digests are not the uncompressed diff_ids
    assert all(layer.blob_digest != layer.diff_id for layer in a.layers)


def test_base_image_layers_are_reported_apart(tmp_path: Path) -> None:
    base_steps: list[Layer | Step] = [
        Layer([File("usr/lib/libbig.so", 2 * MiB, seed=1), File("tmp/junk", MiB, seed=2)], "base 0"),
        Layer([Whiteout("tmp/junk")], "base 1: rm junk"),
    ]
    mine = [*base_steps,
            Layer([File("srv/app", MiB, seed=3), File("srv/cache", 512 * 1024, seed=4)], "COPY app"),
            Layer([Whiteout("srv/cache")], "RUN rm /srv/cache")]
    build_docker_archive(tmp_path / "base.tar", base_steps)
    build_docker_archive(tmp_path / "mine.tar", mine)
    a = run(tmp_path / "mine.tar", base=tmp_path / "base.tar")
    assert a.base_layers == 2
    assert [layer.is_base for layer in a.layers] == [True, True, False, False]
    assert a.base_wasted_bytes == MiB
    assert a.user_wasted_bytes == 512 * 1024
    assert a.user_bytes == MiB + 512 * 1024
    assert a.user_wasted_ratio == pytest.approx(1 / 3)
    assert a.base_source.startswith("docker-archive:")
    # base waste is not user advice; the user's own cache removal is below the 1 MiB bar
    assert a.advice == ()


def test_unrelated_base_shares_nothing(tmp_path: Path) -> None:
    build_docker_archive(tmp_path / "other.tar", [Layer([File("x", 10, seed=9)], "other")])
    build_docker_archive(tmp_path / "mine.tar", [Layer([File("y", 10, seed=1)], "mine")])
    a = run(tmp_path / "mine.tar", base=tmp_path / "other.tar")
    assert a.base_layers == 0 and a.user_bytes == 10
    assert any("no layer is shared" in n for n in a.notes)


def test_opaque_directory_and_directory_whiteout_count_every_file_beneath(tmp_path: Path) -> None:
    steps: list[Layer | Step] = [
        Layer([File("opt/a/1", 1000, seed=1), File("opt/a/2", 2000, seed=2),
               File("opt/a/sub/3", 3000, seed=3), File("var/cache/x/4", 4000, seed=4),
               File("var/cache/x/deep/5", 5000, seed=5), File("keep", 10, seed=6)], "RUN make"),
        Layer([Opaque("opt/a"), File("opt/a/new", 100, seed=7), Whiteout("var/cache/x")],
              "RUN clean"),
    ]
    build_docker_archive(tmp_path / "i.tar", steps)
    a = run(tmp_path / "i.tar")
    assert a.wasted_bytes == 1000 + 2000 + 3000 + 4000 + 5000
    assert {w.path for w in a.wasted} == {"/opt/a/1", "/opt/a/2", "/opt/a/sub/3",
                                         "/var/cache/x/4", "/var/cache/x/deep/5"}
    assert all(w.reason is WasteReason.REMOVED for w in a.wasted)
    details = {w.path: w.detail for w in a.wasted}
    assert details["/opt/a/sub/3"] == "directory /opt/a made opaque in layer 1"
    assert details["/var/cache/x/deep/5"] == "under /var/cache/x, deleted in layer 1"
    last = a.layers[1]
    removed = {c.path for c in last.changes if c.kind is ChangeKind.REMOVED}
    assert {"/opt/a/sub", "/opt/a/sub/3", "/var/cache/x", "/var/cache/x/deep/5"} <= removed
    assert last.removed_files == 5 and last.removed_bytes == 15000
    assert a.final_bytes == 10 + 100


def test_hard_links_keep_bytes_reachable_and_count_once(tmp_path: Path) -> None:
    steps: list[Layer | Step] = [
        Layer([File("bin/tool", 50_000, seed=1), Hardlink("bin/alias", "bin/tool"),
               Symlink("bin/sym", "/bin/tool")], "ADD rootfs"),
        Layer([Whiteout("bin/tool")], "RUN rm /bin/tool"),
    ]
    build_docker_archive(tmp_path / "i.tar", steps)
    a = run(tmp_path / "i.tar")
    assert a.layers[0].size == 50_000 + len("/bin/tool")
    assert a.wasted_bytes == 0  # /bin/alias still shows the bytes
    assert a.final_bytes == a.total_bytes


def test_identical_copy_is_a_duplicate_and_symlink_retarget_is_overwrite(tmp_path: Path) -> None:
    steps: list[Layer | Step] = [
        Layer([File("a", 4096, seed=1), Symlink("l", "a")], "COPY a"),
        Layer([File("a", 4096, seed=1), Symlink("l", "bb")], "COPY a again"),
    ]
    build_docker_archive(tmp_path / "i.tar", steps)
    a = run(tmp_path / "i.tar")
    reasons = {w.path: w.reason for w in a.wasted}
    assert reasons == {"/a": WasteReason.DUPLICATE, "/l": WasteReason.OVERWRITTEN}
    assert a.wasted_bytes == 4096 + 1


def test_cache_advice_only_for_user_layers(tmp_path: Path) -> None:
    steps: list[Layer | Step] = [
        Layer([File("var/lib/apt/lists/base_Packages", 7000, seed=1)], "base"),
        Layer([File("var/lib/apt/lists/deb.debian.org_Packages", 9000, seed=2),
               File("var/lib/apt/lists/lock", 0), Dir("var/lib/apt/lists/partial"),
               File("var/cache/apt/archives/x.deb", 3000, seed=3)],
              "RUN /bin/sh -c apt-get update && apt-get install -y x"),
        Layer([File("root/.cache/pip/http/ab", 2000, seed=4), File("var/cache/apk/APKINDEX", 100)],
              "RUN /bin/sh -c pip install x"),
    ]
    build_docker_archive(tmp_path / "i.tar", steps)
    a = run(tmp_path / "i.tar")
    got = {adv.practice: adv for adv in a.advice}
    assert set(got) == {"apt-lists-cleanup", "apt-cache-cleanup", "pip-no-cache-dir", "apk-no-cache"}
    assert got["apt-lists-cleanup"].bytes == 9000  # the base layer's lists are not yours
    assert got["apt-lists-cleanup"].related_rules == ("LM306", "DL3009")
    assert got["apt-lists-cleanup"].layers == (1,)
    assert got["pip-no-cache-dir"].related_rules == ("LM307", "DL3042")
    assert got["apk-no-cache"].related_rules == ("LM308", "DL3019")
    assert got["apt-cache-cleanup"].related_rules == ()  # no lint rule foresees it
    assert next(adv.practice for adv in a.advice) == "apt-lists-cleanup"  # biggest first


def test_rpm_caches_point_at_the_lint_rule(tmp_path: Path) -> None:
    steps: list[Layer | Step] = [
        Layer([File("etc/os-release", 10, seed=1)], "base"),
        Layer([File("var/cache/dnf/repo.solv", 4000, seed=2),
               File("var/cache/yum/x.rpm", 1000, seed=3)], "RUN /bin/sh -c dnf install -y x"),
    ]
    build_docker_archive(tmp_path / "i.tar", steps)
    got = [(adv.practice, adv.bytes, adv.related_rules) for adv in run(tmp_path / "i.tar").advice]
    assert got == [("rpm-cache", 4000, ("LM309", "DL3040")),
                   ("rpm-cache", 1000, ("LM309", "DL3032"))]


def test_advice_lint_codes_are_real_lint_rules() -> None:
    from lamina.analyze.advice import CACHE_RULES
    from lamina.lint.engine import hadolint_map
    from lamina.lint.registry import rules_by_code

    rules = rules_by_code()
    dl = hadolint_map()
    for cache in CACHE_RULES:
        lm = [c for c in cache.related_rules if c.startswith("LM")]
        for code in lm:
            assert code in rules, code
        for code in cache.related_rules:
            if code.startswith("DL") and code in dl:
                assert dl[code] <= set(lm), (cache.prefix, code)  # the DL maps to our LM


def test_history_mismatch_is_noted_not_fatal(tmp_path: Path) -> None:
    steps: list[Layer | Step] = [Layer([File("a", 1)], "one"), Layer([File("b", 1)], "two")]
    built = build_docker_archive(tmp_path / "i.tar", steps)
    # rewrite the archive with a config whose history lacks the second step
    import json
    import tarfile

    with tarfile.open(built.path) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}  # type: ignore[union-attr]
    cfg_name = next(n for n in members if n.endswith(".json") and n != "manifest.json")
    cfg = json.loads(members[cfg_name])
    cfg["history"] = cfg["history"][:1]
    members[cfg_name] = json.dumps(cfg).encode()
    import io

    with tarfile.open(tmp_path / "j.tar", "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    a = run(tmp_path / "j.tar")
    assert a.layers[0].created_by == "one" and a.layers[1].created_by == ""
    assert a.notes and "1 layer-making steps for 2 layers" in a.notes[0]

"""OCIRuntime against a fake runtime script (argv, log parsing, error mapping), and
cgroup-mode detection from mount tables."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lamina._linux import parse_mountinfo
from lamina.errors import ContainerNotFound, NotSupported, OCIRuntimeError
from lamina.runtime import PIPE, CgroupMode, OCIRuntime, Stdio, detect_cgroups
from lamina.runtime.cgroups import CgroupInfo, remove_cgroup

# A stand-in for runc: records its argv, then behaves as FAKE_MODE says.
FAKE = """#!/bin/sh
printf '%s\\n' "$@" > "$FAKE_ARGV"
log=""
while [ $# -gt 0 ]; do
  case "$1" in --log) log="$2"; shift;; esac
  shift
done
case "$FAKE_MODE" in
  ok) echo out; echo err >&2; exit 0;;
  status) exit 3;;
  notfound)
    echo '{"level":"warning","msg":"ignored"}' >> "$log"
    echo '{"level":"error","msg":"runc run failed: exec: \\"nope\\": executable file not found in $PATH"}' >> "$log"
    exit 1;;
  state) echo '{"ociVersion":"1.0.2","id":"c1","pid":42,"status":"running","bundle":"/b"}';;
  missing) echo 'container does not exist' >&2; exit 1;;
esac
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OCIRuntime:
    script = tmp_path / "fakerunc"
    script.write_text(FAKE)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_ARGV", str(tmp_path / "argv"))
    v1 = CgroupInfo(CgroupMode.V1, None, ())
    return OCIRuntime("runc", binary=str(script), state_root=tmp_path / "state", cgroups=v1)


def argv(tmp_path: Path) -> list[str]:
    return (tmp_path / "argv").read_text().splitlines()


def test_missing_binary_is_not_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(NotSupported) as exc:
        OCIRuntime("crun")
    assert "apt-get install crun" in exc.value.hint


def test_run_passes_bundle_root_and_log(
    fake: OCIRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MODE", "ok")
    res = fake.run("c1", tmp_path / "bundle", Stdio(stdout=PIPE, stderr=PIPE))
    assert (res.exit_code, res.stdout, res.stderr) == (0, b"out\n", b"err\n")
    a = argv(tmp_path)
    assert a[:2] == ["--root", str(tmp_path / "state")]
    assert a[a.index("--log-format") + 1] == "json"
    assert a[-4:] == ["run", "--bundle", str(tmp_path / "bundle"), "c1"]
    assert (tmp_path / "state").is_dir()


def test_container_exit_status_is_returned(
    fake: OCIRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MODE", "status")
    (tmp_path / "bundle").mkdir()
    assert fake.run("c1", tmp_path / "bundle").exit_code == 3


def test_runtime_error_from_log_maps_to_127(
    fake: OCIRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MODE", "notfound")
    (tmp_path / "bundle").mkdir()
    with pytest.raises(OCIRuntimeError) as exc:
        fake.run("c1", tmp_path / "bundle")
    assert "executable file not found" in str(exc.value)
    assert exc.value.exit_status == 127
    assert "ignored" not in exc.value.stderr  # only error-level entries are kept


def test_state_and_not_found(
    fake: OCIRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MODE", "state")
    st = fake.state("c1")
    assert (st.id, st.status, st.pid, st.bundle) == ("c1", "running", 42, "/b")
    monkeypatch.setenv("FAKE_MODE", "missing")
    with pytest.raises(ContainerNotFound):
        fake.delete("c1")


def test_kill_and_delete_argv(
    fake: OCIRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MODE", "ok")
    fake.kill("c1", "KILL", all_processes=True)
    assert argv(tmp_path)[-4:] == ["kill", "--all", "c1", "KILL"]
    fake.delete("c1", force=True)
    assert argv(tmp_path)[-3:] == ["delete", "--force", "c1"]


HYBRID = (
    "27 1 254:0 / / rw - ext4 /dev/vda rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
)
V2 = "27 1 254:0 / / rw - ext4 /dev/vda rw\n31 23 0:28 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
V1 = "27 1 254:0 / / rw - ext4 /dev/vda rw\n32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"


@pytest.mark.parametrize(
    ("text", "mode"),
    [(HYBRID, CgroupMode.HYBRID), (V2, CgroupMode.V2), (V1, CgroupMode.V1), ("", CgroupMode.NONE)],
)
def test_detect_cgroup_mode(text: str, mode: CgroupMode) -> None:
    info = detect_cgroups(parse_mountinfo(text))
    assert info.mode is mode
    if mode is CgroupMode.HYBRID:
        assert info.unified_path == "/sys/fs/cgroup/unified"


def test_crun_private_view_only_for_hybrid_with_controllers(tmp_path: Path) -> None:
    assert CgroupInfo(CgroupMode.HYBRID, "/u", ("hugetlb",)).crun_needs_private_view
    assert not CgroupInfo(CgroupMode.HYBRID, "/u", ()).crun_needs_private_view
    assert not CgroupInfo(CgroupMode.V2, "/sys/fs/cgroup", ("cpu",)).crun_needs_private_view
    true = "/bin/true"
    hybrid = CgroupInfo(CgroupMode.HYBRID, "/u", ("hugetlb",))
    assert (
        OCIRuntime("crun", binary=true, state_root=tmp_path, cgroups=hybrid)._preexec() is not None
    )
    assert OCIRuntime("runc", binary=true, state_root=tmp_path, cgroups=hybrid)._preexec() is None


def test_this_host_is_detected() -> None:
    info = detect_cgroups()
    assert info.mode in set(CgroupMode)
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        assert info.mode is CgroupMode.V2
    elif os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
        assert info.mode is CgroupMode.HYBRID


def test_remove_cgroup_takes_empty_parents_and_keeps_busy_ones(tmp_path: Path) -> None:
    for ctrl in ("cpu", "memory"):
        (tmp_path / ctrl / "lamina" / "c1").mkdir(parents=True)
    (tmp_path / "memory" / "lamina" / "other").mkdir()  # a sibling still in use
    table = parse_mountinfo(
        f"1 0 0:1 / {tmp_path}/cpu rw - cgroup cgroup rw,cpu\n"
        f"2 0 0:2 / {tmp_path}/memory rw - cgroup cgroup rw,memory\n"
        f"3 0 0:3 / {tmp_path} rw - tmpfs tmpfs rw\n"
    )
    assert remove_cgroup("/lamina/c1", table) == 3
    assert not (tmp_path / "cpu" / "lamina").exists()
    assert (tmp_path / "memory" / "lamina" / "other").is_dir()
    assert remove_cgroup("/lamina/c1", table) == 0

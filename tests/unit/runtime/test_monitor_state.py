"""Monitor state files, read_state's reconciliation, stop/kill, and error transport.

No containers here: a state directory is written by hand (as a monitor would write it)
and the OCI runtime is a shell script standing in for runc.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from lamina.errors import Conflict, NotFound, OCIRuntimeError, RuntimeFailure
from lamina.runtime import CgroupMode, OCIRuntime
from lamina.runtime.cgroups import CgroupInfo
from lamina.runtime.monitor import (
    MonitorSpec,
    _error_from_json,
    _error_to_json,
    _proc_start_ticks,
    kill,
    load_spec,
    read_state,
    stop,
)
from lamina.runtime.ports import PortInUse, PortMapping

# A stand-in for runc: `state` prints $FAKE_STATE (or fails), `kill` appends the signal to
# $FAKE_KILLS and, for the signals listed in $FAKE_EXIT_ON as SIG=CODE, writes exit.json.
FAKE = """#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in --root|--log|--log-format) shift 2;; *) break;; esac
done
verb="$1"; shift
case "$verb" in
  state)
    if [ -z "$FAKE_STATE" ]; then echo "container does not exist" >&2; exit 1; fi
    echo "{\\"id\\":\\"$1\\",\\"pid\\":4242,\\"status\\":\\"$FAKE_STATE\\",\\"bundle\\":\\"/b\\"}";;
  kill)
    [ "$1" = "--all" ] && shift
    echo "$2" >> "$FAKE_KILLS"
    for pair in $FAKE_EXIT_ON; do
      if [ "${pair%%=*}" = "$2" ]; then
        printf '{"exit_code":%s,"finished_at":"x","oom_killed":false}' "${pair#*=}" \
          > "$FAKE_STATE_DIR/exit.json"
      fi
    done;;
  delete) exit 0;;
esac
"""


@pytest.fixture
def fake_rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OCIRuntime:
    script = tmp_path / "fakerunc"
    script.write_text(FAKE)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_KILLS", str(tmp_path / "kills"))
    monkeypatch.setenv("FAKE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("FAKE_STATE", raising=False)
    monkeypatch.delenv("FAKE_EXIT_ON", raising=False)
    v1 = CgroupInfo(CgroupMode.V1, None, ())
    return OCIRuntime("runc", binary=str(script), state_root=tmp_path / "rt", cgroups=v1)


def kills(tmp_path: Path) -> list[str]:
    try:
        return (tmp_path / "kills").read_text().split()
    except FileNotFoundError:
        return []


def make_state_dir(tmp_path: Path, **state: object) -> Path:
    sd = tmp_path / "state"
    sd.mkdir(exist_ok=True)
    spec = MonitorSpec(
        container_id="c1",
        bundle=tmp_path / "bundle",
        runtime="runc",
        state_dir=sd,
        log_path=sd / "c1.log",
        ports=(PortMapping("127.0.0.1", 8080, 80),),
        on_exit=("lamina", "rm", "-f", "c1"),
        stop_signal="SIGQUIT",
    )
    (sd / "spec.json").write_text(json.dumps(spec.to_json()))
    if state:
        (sd / "state.json").write_text(json.dumps(state))
    return sd


def me() -> dict[str, object]:
    """State fields naming this test process as a live monitor."""
    return {"monitor_pid": os.getpid(), "monitor_start": _proc_start_ticks(os.getpid())}


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# --- the spec ------------------------------------------------------------------------------


def test_spec_json_round_trip(tmp_path: Path) -> None:
    sd = make_state_dir(tmp_path)
    spec = load_spec(sd)
    assert spec.ports == (PortMapping("127.0.0.1", 8080, 80),)
    assert spec.on_exit == ("lamina", "rm", "-f", "c1")
    assert MonitorSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.bundle == tmp_path / "bundle" and spec.runtime_root is None


def test_load_spec_without_state_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_spec(tmp_path)


# --- read_state -------------------------------------------------------------------------------


def test_running_while_the_monitor_lives(tmp_path: Path, fake_rt: OCIRuntime) -> None:
    sd = make_state_dir(
        tmp_path,
        status="running",
        pid=77,
        started_at="t0",
        ports=[PortMapping("127.0.0.1", 8080, 80).to_json()],
        **me(),
    )
    st = read_state(sd, fake_rt)
    assert (st.status, st.pid, st.started_at, st.monitor_alive) == ("running", 77, "t0", True)
    assert st.ports == (PortMapping("127.0.0.1", 8080, 80),)
    assert st.running and st.exit_code is None


def test_exit_json_wins(tmp_path: Path, fake_rt: OCIRuntime) -> None:
    sd = make_state_dir(tmp_path, status="running", pid=77, **me())
    (sd / "exit.json").write_text(
        json.dumps({"exit_code": 137, "finished_at": "t1", "oom_killed": True})
    )
    st = read_state(sd, fake_rt)
    assert (st.status, st.exit_code, st.finished_at, st.oom_killed) == ("exited", 137, "t1", True)


def test_a_reused_pid_is_not_the_monitor(tmp_path: Path, fake_rt: OCIRuntime) -> None:
    # our pid, but another start time: the monitor died and its pid was reused
    ticks = _proc_start_ticks(os.getpid())
    assert ticks is not None
    sd = make_state_dir(
        tmp_path, status="running", pid=77, monitor_pid=os.getpid(), monitor_start=ticks + 1
    )
    assert read_state(sd, fake_rt).monitor_alive is False


def test_never_started(tmp_path: Path, fake_rt: OCIRuntime) -> None:
    sd = make_state_dir(tmp_path)
    assert read_state(sd, fake_rt).status == "created"
    sd = make_state_dir(tmp_path, status="created", pid=0, monitor_pid=dead_pid())
    assert read_state(sd, fake_rt).status == "created"


@pytest.mark.parametrize(
    ("runtime_says", "expected"),
    [
        ("running", "running"),
        ("paused", "running"),
        ("created", "created"),
        ("stopped", "dead"),
        ("", "dead"),
    ],
)
def test_monitor_gone_reconciles_with_the_runtime(
    tmp_path: Path,
    fake_rt: OCIRuntime,
    monkeypatch: pytest.MonkeyPatch,
    runtime_says: str,
    expected: str,
) -> None:
    monkeypatch.setenv("FAKE_STATE", runtime_says)
    sd = make_state_dir(tmp_path, status="running", pid=77, monitor_pid=dead_pid())
    st = read_state(sd, fake_rt)
    assert (st.status, st.monitor_alive, st.exit_code) == (expected, False, None)


# --- stop / kill ---------------------------------------------------------------------------------


def test_stop_sends_the_stop_signal_and_returns_the_status(
    tmp_path: Path, fake_rt: OCIRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EXIT_ON", "SIGQUIT=131")
    sd = make_state_dir(tmp_path, status="running", pid=77, **me())
    t0 = time.monotonic()
    assert stop(sd, fake_rt, timeout=5) == 131
    assert time.monotonic() - t0 < 2
    assert kills(tmp_path) == ["SIGQUIT"]  # the spec's stop signal


def test_stop_escalates_to_kill_after_the_timeout(
    tmp_path: Path, fake_rt: OCIRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EXIT_ON", "KILL=137")
    sd = make_state_dir(tmp_path, status="running", pid=77, **me())
    t0 = time.monotonic()
    assert stop(sd, fake_rt, signal="TERM", timeout=0.3) == 137
    assert 0.3 <= time.monotonic() - t0 < 3
    assert kills(tmp_path) == ["TERM", "KILL"]


def test_stop_waits_for_the_monitor_to_record_the_exit(tmp_path: Path, fake_rt: OCIRuntime) -> None:
    sd = make_state_dir(tmp_path, status="running", pid=77, **me())

    def monitor_records_later() -> None:
        time.sleep(0.2)
        (sd / "exit.json").write_text(json.dumps({"exit_code": 0}))

    t = threading.Thread(target=monitor_records_later)
    t.start()
    assert stop(sd, fake_rt, timeout=5) == 0
    t.join()


def test_stop_of_an_exited_container_returns_its_status(
    tmp_path: Path, fake_rt: OCIRuntime
) -> None:
    sd = make_state_dir(tmp_path, status="running", pid=77)
    (sd / "exit.json").write_text(json.dumps({"exit_code": 2}))
    assert stop(sd, fake_rt) == 2
    assert kills(tmp_path) == []


def test_stop_with_a_dead_monitor_reports_unknown(
    tmp_path: Path, fake_rt: OCIRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_STATE", "stopped")
    sd = make_state_dir(tmp_path, status="running", pid=77, monitor_pid=dead_pid())
    assert stop(sd, fake_rt) == -1


def test_kill_needs_a_running_container(tmp_path: Path, fake_rt: OCIRuntime) -> None:
    sd = make_state_dir(tmp_path, status="running", pid=77, **me())
    kill(sd, fake_rt, "HUP")
    assert kills(tmp_path) == ["HUP"]
    (sd / "exit.json").write_text(json.dumps({"exit_code": 0}))
    with pytest.raises(Conflict, match="c1 is not running"):
        kill(sd, fake_rt)


# --- errors across the report pipe ---------------------------------------------------------------


def test_errors_survive_the_report_pipe() -> None:
    port = PortInUse(PortMapping("127.0.0.1", 8080, 80), "address already in use")
    back = _error_from_json(json.loads(json.dumps(_error_to_json(port))))
    assert isinstance(back, PortInUse)
    assert (back.message, back.hint, back.exit_status) == (port.message, port.hint, 125)
    assert back.mapping == port.mapping

    oci = OCIRuntimeError("runc create failed: exec: nope", stderr="exec: nope", hint="check")
    oci.exit_status = 127
    back = _error_from_json(_error_to_json(oci))
    assert isinstance(back, OCIRuntimeError)
    assert (back.message, back.stderr, back.exit_status) == (oci.message, "exec: nope", 127)

    back = _error_from_json(_error_to_json(ValueError("boom")))
    assert isinstance(back, RuntimeFailure) and back.message == "boom"

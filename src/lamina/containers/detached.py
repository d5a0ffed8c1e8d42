"""Start a container in the background, owned by its monitor process.

``run -d`` and ``start`` hand the container to a monitor daemon
(:mod:`lamina.runtime.monitor`): it outlives the ``lamina`` command that started it,
writes the container's output to its json-file log, forwards published ports into the
container's network namespace, serves attach clients and writes ``state/exit.json``
when the container ends.  Then it runs ``lamina container reap ID``, which records the
exit in the metadata store, unmounts the rootfs and (``--rm``) removes the container --
the same reconciliation any later ``lamina`` command would otherwise do on read.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from lamina.errors import LaminaError, OCIRuntimeError

if TYPE_CHECKING:
    from lamina.runtime.monitor import MonitorHandle
    from lamina.runtime.ports import PortMapping

    from .store import Container, ContainerStore

__all__ = ["port_mappings", "start"]


def port_mappings(store: ContainerStore, c: Container) -> tuple[PortMapping, ...]:
    """The ports to publish: ``-p`` ones, plus every exposed port with ``-P``."""
    from lamina.runtime.ports import PortMapping

    out = [PortMapping(p.host_ip, p.host_port, p.container_port, p.proto)  # type: ignore[arg-type]
           for p in c.spec.ports]
    if c.spec.publish_all:
        image = store.images.resolve(str(c.record.image_id))
        have = {(m.container_port, m.proto) for m in out}
        for key in image.config.config.exposed_ports:
            port, _, proto = key.partition("/")
            proto = proto or "tcp"
            if port.isdigit() and (int(port), proto) not in have and proto in ("tcp", "udp"):
                out.append(PortMapping("", 0, int(port), proto))  # type: ignore[arg-type]
    return tuple(out)


def start(store: ContainerStore, c: Container, *, await_attach: bool = False) -> MonitorHandle:
    """Start ``c`` under a monitor; return once it runs (its pid in the handle).

    On failure (a host port in use, the command not found) nothing keeps running and
    the rootfs is unmounted; the container stays ``created``, or ``exited`` with
    Docker's 126/127 and the error when its command cannot be run.
    """
    from lamina.runtime.monitor import MonitorSpec, spawn_monitor

    from .store import _now

    if c.state.running:
        return _running_handle(c)
    ports = port_mappings(store, c) if c.spec.network != "host" else ()
    started = replace(c.state, status="running", pid=0, started_at=_now(), exit_code=0,
                      error="", oom_killed=False)
    try:
        prepared = store.prepare(c)
    except OCIRuntimeError as exc:
        store.table.set_state(c.id, started)
        store._record_exit(c, started, exc.exit_status, error=exc.message)
        raise
    spec = MonitorSpec(
        container_id=c.id,
        bundle=c.dir,
        runtime=prepared.runtime.name,
        state_dir=c.state_dir,
        log_path=c.log_path,
        tty=c.spec.tty,
        open_stdin=c.spec.open_stdin,
        ports=ports,
        on_exit=(sys.executable, "-m", "lamina", "--root", str(store.root), "container",
                 "reap", c.id),
        stop_signal=_stop_signal(store, c),
        stdin_once=c.spec.open_stdin and await_attach,
        await_attach=await_attach,
    )
    try:
        handle = spawn_monitor(spec)
    except OCIRuntimeError as exc:
        store.table.set_state(c.id, started)
        store._record_exit(c, started, exc.exit_status, error=exc.message)
        raise
    except BaseException:
        store.unmount_rootfs(c)
        raise
    store.table.set_state(c.id, replace(started, pid=handle.container_pid))
    return handle


def _stop_signal(store: ContainerStore, c: Container) -> str:
    if c.spec.stop_signal:
        return c.spec.stop_signal
    try:
        return store.images.resolve(str(c.record.image_id)).config.config.stop_signal or "SIGTERM"
    except LaminaError:
        return "SIGTERM"


def _running_handle(c: Container) -> MonitorHandle:
    from lamina.runtime.monitor import ATTACH_SOCKET, MonitorHandle, read_state

    st = read_state(c.state_dir)
    return MonitorHandle(st.monitor_pid, st.pid, c.state_dir / ATTACH_SOCKET, st.ports)

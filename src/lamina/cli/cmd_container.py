"""Container verbs: run, create, start, rm, diff, commit, export, cp, ps, stop, kill, wait,
restart, rename, inspect (via ``inspect``), and ``container …`` for all of them.

Flags, output columns and messages follow ``docker``'s, so scripts keep working: ``run``
exits with the container's status (125 when lamina itself failed, 126/127 when the
command cannot be run), ``ps`` prints Docker's columns and ``--format`` fields, ``rm``
prints the names it was given.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lamina.cli._runfast import (
    CREATE_OPTIONS,
    FLAG,
    FLOAT,
    INT,
    MULTI,
    RUN_OPTIONS,
    TEXT,
    as_engine_error,
    build_spec,
    run_container,
    run_foreground,
    start_detached,
)

if TYPE_CHECKING:
    from lamina.containers.store import Container, ContainerStore

__all__ = ["commands"]

_F = TypeVar("_F", bound=Callable[..., Any])
_NO_H = {"help_option_names": ["--help"]}
_PASS = {"help_option_names": ["--help"], "allow_interspersed_args": False}


def _store(ctx: click.Context) -> ContainerStore:
    from lamina.containers.store import ContainerStore
    from lamina.images.store import ImageStore

    images = ImageStore(ctx.obj["root"])
    ctx.call_on_close(images.close)
    return ContainerStore(images)


# --- run / create ----------------------------------------------------------------------


def _create_options(f: Any) -> Any:
    """The flags ``run`` and ``create`` share (from :data:`CREATE_OPTIONS`, which the
    click-free ``run`` parser reads too)."""
    for decls, dest, kind, default, show_default, text in reversed(CREATE_OPTIONS):
        f = _option(decls, dest, kind, default, show_default, text)(f)
    return f


def _option(decls: tuple[str, ...], dest: str, kind: str, default: object,
            show_default: bool, text: str) -> Callable[[_F], _F]:
    """One click option from its :data:`CREATE_OPTIONS` row."""
    if kind == FLAG:
        return click.option(*decls, dest, is_flag=True, help=text)
    if kind == MULTI:
        return click.option(*decls, dest, multiple=True, help=text)
    types = {INT: int, FLOAT: float, TEXT: None}
    return click.option(*decls, dest, type=types[kind], default=default,
                        show_default=show_default, help=text)


@click.command("run", context_settings=_PASS)
@_option(*RUN_OPTIONS[0])
@_create_options
@click.argument("image")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run_cmd(ctx: click.Context, /, **params: Any) -> None:
    """Create and run a new container from an image (in the foreground unless -d)."""
    ctx.exit(run_container(ctx.obj["root"], params))


@click.command("create", context_settings=_PASS)
@_create_options
@click.argument("image")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def create_cmd(ctx: click.Context, /, image: str, args: tuple[str, ...], **o: Any) -> None:
    """Create a new container (do not start it); print its ID."""
    try:
        spec = build_spec(image, args, o)
        c = _store(ctx).create(spec, name=o["name"])
    except Exception as exc:
        as_engine_error(exc)
        raise
    click.echo(c.id)


# --- start / stop / kill / wait / restart -----------------------------------------------------


@click.command("start", context_settings=_NO_H)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and wait.")
@click.option("-i", "--interactive", is_flag=True, help="Attach STDIN.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def start_cmd(ctx: click.Context, attach: bool, interactive: bool,
              containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    store = _store(ctx)
    if attach or interactive:
        from lamina.errors import InvalidArgument

        if len(containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once",
                                  hint="start them one by one")
        c = store.get(containers[0])
        if interactive and not c.spec.open_stdin:
            from dataclasses import replace

            c = replace(c, spec=replace(c.spec, open_stdin=True))
        ctx.exit(run_foreground(store, c))
    failed = False
    for name in containers:
        try:
            c = store.get(name)
            if not c.state.running:
                start_detached(store, c)
            click.echo(name)
        except Exception as exc:
            from lamina.errors import LaminaError

            if not isinstance(exc, LaminaError):
                raise
            click.echo(f"Error response from daemon: {exc.message}", err=True)
            failed = True
    if failed:
        click.echo("Error: failed to start containers: " + ", ".join(containers), err=True)
        ctx.exit(1)


def _each(ctx: click.Context, names: Sequence[str], action: Any) -> None:
    """Run ``action(name)`` for every name, printing Docker's per-name errors."""
    from lamina.errors import LaminaError

    failed = False
    for name in names:
        try:
            out = action(name)
            if out is not None:
                click.echo(out)
        except LaminaError as exc:
            click.echo(f"Error response from daemon: {exc.message}", err=True)
            failed = True
    if failed:
        ctx.exit(1)


@click.command("stop", context_settings=_NO_H)
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait before killing it (default 10).")
@click.option("-s", "--signal", default=None, help="Signal to send (default: its STOPSIGNAL).")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def stop_cmd(ctx: click.Context, timeout: int | None, signal: str | None,
             containers: tuple[str, ...]) -> None:
    """Stop running containers: their stop signal, then SIGKILL after the grace period."""
    store = _store(ctx)

    def stop(name: str) -> str:
        store.stop(name, timeout=timeout, signal=signal)
        return name

    _each(ctx, containers, stop)


@click.command("kill", context_settings=_NO_H)
@click.option("-s", "--signal", default="KILL", show_default=True, help="Signal to send.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def kill_cmd(ctx: click.Context, signal: str, containers: tuple[str, ...]) -> None:
    """Kill running containers (SIGKILL unless -s)."""
    store = _store(ctx)

    def kill(name: str) -> str:
        store.kill(name, signal)
        return name

    _each(ctx, containers, kill)


@click.command("wait", context_settings=_NO_H)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def wait_cmd(ctx: click.Context, containers: tuple[str, ...]) -> None:
    """Block until containers stop; print their exit codes."""
    store = _store(ctx)
    _each(ctx, containers, lambda name: str(store.wait(name).state.exit_code))


@click.command("restart", context_settings=_NO_H)
@click.option("-t", "--time", "timeout", type=int, default=None,
              help="Seconds to wait before killing it.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def restart_cmd(ctx: click.Context, timeout: int | None, containers: tuple[str, ...]) -> None:
    """Restart containers (stop, then start in the background)."""
    store = _store(ctx)

    def restart(name: str) -> str:
        c = store.stop(name, timeout=timeout)
        start_detached(store, store.get(c.id))
        return name

    _each(ctx, containers, restart)


# --- rm / rename --------------------------------------------------------------------------


@click.command("rm", context_settings=_NO_H)
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.option("-v", "--volumes", is_flag=True, help="Remove its anonymous volumes too.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def rm_cmd(ctx: click.Context, force: bool, volumes: bool, containers: tuple[str, ...]) -> None:
    """Remove one or more containers."""
    store = _store(ctx)

    def remove(name: str) -> str:
        store.remove(name, force=force, volumes=volumes)
        return name

    _each(ctx, containers, remove)


@click.command("rename", context_settings=_NO_H)
@click.argument("container")
@click.argument("new_name")
@click.pass_context
def rename_cmd(ctx: click.Context, container: str, new_name: str) -> None:
    """Rename a container."""
    _store(ctx).rename(container, new_name)


# --- files --------------------------------------------------------------------------------


@click.command("diff", context_settings=_NO_H)
@click.argument("container")
@click.pass_context
def diff_cmd(ctx: click.Context, container: str) -> None:
    """Show files added (A), changed (C) and deleted (D) in a container."""
    for change in _store(ctx).diff(container):
        click.echo(str(change))


@click.command("commit", context_settings=_NO_H)
@click.option("-a", "--author", default="", help="Author (e.g. \"Jane <jane@example.org>\").")
@click.option("-c", "--change", "changes", multiple=True,
              help="Apply a Dockerfile instruction to the image.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-p", "--pause", default=True, type=bool, help="Pause the container meanwhile.")
@click.argument("container")
@click.argument("repository", required=False)
@click.pass_context
def commit_cmd(ctx: click.Context, author: str, changes: tuple[str, ...], message: str,
               pause: bool, container: str, repository: str | None) -> None:
    """Create a new image from a container's changes."""
    record = _store(ctx).commit(container, repository=repository, changes=changes,
                                message=message, author=author, pause=pause)
    click.echo(str(record.id))


@click.command("export", context_settings=_NO_H)
@click.option("-o", "--output", default=None, help="Write to a file instead of STDOUT.")
@click.argument("container")
@click.pass_context
def export_cmd(ctx: click.Context, output: str | None, container: str) -> None:
    """Export a container's filesystem as a tar archive."""
    from lamina.errors import InvalidArgument

    store = _store(ctx)
    if output is None:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or "
                                  "redirect", hint="lamina export CTR > rootfs.tar")
        store.export(container, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    tmp = output + ".tmp"
    try:
        with open(tmp, "wb") as f:
            store.export(container, f)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@click.command("cp", context_settings=_NO_H)
@click.option("-a", "--archive", is_flag=True, help="Keep uid/gid information.")
@click.option("-L", "--follow-link", is_flag=True, help="Accepted; the source link's target "
              "is copied when the path ends with /.")
@click.argument("src")
@click.argument("dst")
@click.pass_context
def cp_cmd(ctx: click.Context, archive: bool, follow_link: bool, src: str, dst: str) -> None:
    """Copy files between a container and the host: CTR:SRC DST or SRC CTR:DST."""
    from lamina.errors import InvalidArgument

    def split(arg: str) -> tuple[str | None, str]:
        if arg.startswith(("/", ".")) or ":" not in arg:
            return None, arg
        name, _, path = arg.partition(":")
        return name, path

    src_ctr, src_path = split(src)
    dst_ctr, dst_path = split(dst)
    store = _store(ctx)
    if src_ctr and dst_ctr:
        raise InvalidArgument("copying between containers is not supported",
                              hint="copy to the host first")
    if src_ctr:
        store.copy_from(src_ctr, src_path, dst_path, archive=archive)
    elif dst_ctr:
        store.copy_to(dst_ctr, src_path, dst_path, archive=archive)
    else:
        raise InvalidArgument("must specify at least one container source",
                              hint="write the container side as NAME:PATH")


# --- ps --------------------------------------------------------------------------------------


def _command_text(argv: Sequence[str]) -> str:
    return " ".join(f"'{a}'" if " " in a else a for a in argv)


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _ago(dt: datetime | None) -> str:
    from lamina.cli._format import human_duration

    if dt is None:
        return ""
    return human_duration(max(0.0, time.time() - dt.timestamp()))


def _status_text(c: Container) -> str:
    s = c.state
    if s.status == "created":
        return "Created"
    if s.status in ("running", "paused", "restarting"):
        text = "Up " + _ago(s.started_at)
        return text + " (Paused)" if s.status == "paused" else text
    if s.status == "exited":
        return f"Exited ({s.exit_code}) {_ago(s.finished_at)} ago"
    return s.status.capitalize()


def port_text(c: Container) -> str:
    """Docker's PORTS column: ``0.0.0.0:8080->80/tcp, …``."""
    if not c.state.running:
        return ""
    parts = []
    for p in published_ports(c):
        ip = p.host_ip or "0.0.0.0"
        parts.append(f"{ip}:{p.host_port}->{p.container_port}/{p.proto}")
    return ", ".join(parts)


def published_ports(c: Container) -> list[Any]:
    """The ports a running container publishes, as its monitor bound them."""
    from lamina.runtime.monitor import read_state

    if not (c.state_dir / "spec.json").exists():
        return []
    return list(read_state(c.state_dir).ports)


def _ps_row(store: ContainerStore, c: Container, no_trunc: bool,
            size: bool = False) -> dict[str, Any]:
    from lamina.cli._format import human_size

    argv: tuple[str, ...] = ()
    try:
        argv = store._argv_for(c, store.images.resolve(str(c.record.image_id)))
    except Exception:
        argv = tuple(c.spec.args or ())
    command = _command_text(argv)
    if not no_trunc and len(command) > 20:
        command = command[:19] + "…"
    return {
        "ID": c.id if no_trunc else c.id[:12],
        "Image": c.record.image_name,
        "Command": _go_quote(command),
        "CreatedAt": c.record.created.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),
        "RunningFor": _ago(c.record.created) + " ago",
        "Status": _status_text(c),
        "State": c.state.status,
        "Ports": port_text(c),
        "Names": c.name,
        "Labels": ",".join(f"{k}={v}" for k, v in c.spec.labels),
        "Mounts": ",".join(m.source or m.target for m in c.spec.mounts),
        "Networks": c.spec.network,
        "Size": _size_text(store, c) if size else human_size(0),
    }


def _size_text(store: ContainerStore, c: Container) -> str:
    """Docker's SIZE column: the writable layer, and with the image ("virtual")."""
    from lamina.cli._format import human_size

    rw, virtual = store.size(c)
    return f"{human_size(rw)} (virtual {human_size(virtual)})"


def _matches(store: ContainerStore, c: Container, filters: Sequence[str]) -> bool:
    from lamina.errors import InvalidArgument

    groups: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq:
            raise InvalidArgument(f"Bad format of filter (expected name=value): {f}",
                                  hint="e.g. --filter status=exited")
        groups.setdefault(key, []).append(value)
    for key, values in groups.items():
        if key == "status":
            ok = c.state.status in values
        elif key == "name":
            ok = any(v.lstrip("/") in c.name for v in values)
        elif key == "id":
            ok = any(c.id.startswith(v) for v in values)
        elif key == "ancestor":
            ok = any(_is_ancestor(store, c, v) for v in values)
        elif key == "exited":
            ok = c.state.status == "exited" and str(c.state.exit_code) in values
        elif key == "label":
            labels = dict(c.spec.labels)
            ok = all((v.partition("=")[0] in labels and (not v.partition("=")[1] or
                      labels[v.partition("=")[0]] == v.partition("=")[2])) for v in values)
        else:
            raise InvalidArgument(f"invalid filter '{key}'",
                                  hint="use status, name, id, ancestor, exited or label")
        if not ok:
            return False
    return True


def _is_ancestor(store: ContainerStore, c: Container, text: str) -> bool:
    from lamina.errors import LaminaError

    try:
        image = store.images.resolve(text)
    except LaminaError:
        return False
    if image.id == c.record.image_id:
        return True
    # an image the container's image was built on (its layers are a prefix)
    try:
        mine = store.images.resolve(str(c.record.image_id))
    except LaminaError:
        return False
    n = len(image.layers)
    return 0 < n <= len(mine.layers) and mine.layers[:n] == image.layers


@click.command("ps", context_settings=_NO_H)
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-n", "--last", type=int, default=-1, help="Show the n last created.")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter (status=, name=, …).")
@click.option("--format", "fmt", default=None, help="Format with a Go template.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.pass_context
def ps_cmd(ctx: click.Context, show_all: bool, quiet: bool, last: int, latest: bool,
           filters: tuple[str, ...], fmt: str | None, no_trunc: bool, size: bool) -> None:
    """List containers (running ones unless -a)."""
    from lamina.cli._format import render_table, render_template

    store = _store(ctx)
    items = store.all()
    if latest:
        last = 1
    if last >= 0:
        items = items[:last]
        show_all = True
    if not show_all and not any(f.startswith("status=") for f in filters):
        items = [c for c in items if c.state.running]
    items = [c for c in items if _matches(store, c, filters)]
    if quiet:
        for c in items:
            click.echo(c.id if no_trunc else c.id[:12])
        return
    rows = [_ps_row(store, c, no_trunc, size) for c in items]
    if fmt and not fmt.startswith("table"):
        for r in rows:
            click.echo(render_template(fmt, r))
        return
    columns = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"),
               ("CREATED", "RunningFor"), ("STATUS", "Status"), ("PORTS", "Ports"),
               ("NAMES", "Names")]
    if size:
        columns.append(("SIZE", "Size"))
    if fmt:
        template = fmt[len("table"):].strip()
        fields = [f.strip() for f in template.replace("\\t", "\t").split("\t")]
        header = [f.strip("{} .").upper() for f in fields]
        body = [[render_template(f, r) for f in fields] for r in rows]
        click.echo(render_table(header, body), nl=False)
        return
    click.echo(render_table([h for h, _ in columns], [[r[k] for _, k in columns] for r in rows]),
               nl=False)


# --- inspect -----------------------------------------------------------------------------


def _rfc3339(dt: datetime | None) -> str:
    if dt is None:
        return "0001-01-01T00:00:00Z"
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def inspect_container(store: ContainerStore, c: Container) -> dict[str, Any]:
    """A container in Docker's ``inspect`` shape (the keys scripts use)."""
    from lamina.errors import LaminaError

    s = c.state
    pid = 0
    if s.running:
        try:
            pid = store._runtime(c).state(c.id).pid
        except LaminaError:
            pid = s.pid
    image = store.images.resolve(str(c.record.image_id))
    argv = store._argv_for(c, image)
    spec = c.spec
    r = spec.resources
    binds = [f"{m.source}:{m.target}" + (":ro" if m.readonly else "")
             for m in spec.mounts if m.type == "bind"]
    port_bindings: dict[str, list[dict[str, str]]] = {}
    for p in spec.ports:
        port_bindings.setdefault(p.key, []).append(
            {"HostIp": p.host_ip, "HostPort": str(p.host_port) if p.host_port else ""})
    live_ports: dict[str, list[dict[str, str]] | None] = {}
    if s.running:
        for p in published_ports(c):
            live_ports.setdefault(f"{p.container_port}/{p.proto}", []).append(  # type: ignore[union-attr]
                {"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.host_port)})
    mounts = []
    by_target = {d: v for v, d in store.table.volumes_of(c.id)}
    for m in spec.mounts:
        if m.type == "bind":
            mounts.append({"Type": "bind", "Source": m.source, "Destination": m.target,
                           "Mode": "ro" if m.readonly else "", "RW": not m.readonly,
                           "Propagation": m.propagation})
        elif m.type == "tmpfs":
            mounts.append({"Type": "tmpfs", "Source": "", "Destination": m.target, "Mode": "",
                           "RW": not m.readonly, "Propagation": ""})
    for target, vol in sorted(by_target.items()):
        ro = any(m.readonly for m in spec.mounts if m.target == target)
        mounts.append({"Type": "volume", "Name": vol, "Source": str(store.volumes.path(vol)),
                       "Destination": target, "Driver": "local", "Mode": "", "RW": not ro,
                       "Propagation": ""})
    return {
        "Id": c.id,
        "Created": _rfc3339(c.record.created),
        "Path": argv[0] if argv else "",
        "Args": list(argv[1:]),
        "State": {
            "Status": s.status,
            "Running": s.status in ("running", "paused"),
            "Paused": s.status == "paused",
            "Restarting": s.status == "restarting",
            "OOMKilled": s.oom_killed,
            "Dead": s.status == "dead",
            "Pid": pid,
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": _rfc3339(s.started_at),
            "FinishedAt": _rfc3339(s.finished_at),
        },
        "Image": str(c.record.image_id),
        "ResolvConfPath": str(c.dir / "resolv.conf"),
        "HostnamePath": str(c.dir / "hostname"),
        "HostsPath": str(c.dir / "hosts"),
        "LogPath": str(c.log_path),
        "Name": "/" + c.name,
        "RestartCount": s.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {
            "Binds": binds or None,
            "NetworkMode": spec.network,
            "PortBindings": port_bindings,
            "AutoRemove": spec.auto_remove,
            "CapAdd": list(spec.cap_add) or None,
            "CapDrop": list(spec.cap_drop) or None,
            "ReadonlyRootfs": spec.read_only,
            "Runtime": spec.runtime,
            "PublishAllPorts": spec.publish_all,
            "Memory": r.memory or 0,
            "MemorySwap": r.memory_swap or 0,
            "NanoCpus": round((r.cpus or 0) * 1e9),
            "PidsLimit": r.pids_limit,
            "ShmSize": 64 * 1024 * 1024,
        },
        "GraphDriver": {"Name": "overlay", "Data": {
            "UpperDir": str(store.images.snapshots.fs_path(c.snapshot_key)),
            "MergedDir": str(c.rootfs),
        }},
        "Mounts": mounts,
        "Config": store.container_config(c, image),
        "NetworkSettings": {"Ports": live_ports},
    }


# --- logs / exec / attach / top / stats / port ------------------------------------------------


def _since(text: str | None) -> float | None:
    """``--since``: a duration before now (``10m``, ``1h30m``, ``45s``) or a timestamp."""
    import re

    from lamina.errors import InvalidArgument

    if text is None:
        return None
    if re.fullmatch(r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+", text):
        units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
        total = sum(float(n) * units[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ns|us|ms|s|m|h)",
                                                                  text))
        return time.time() - total
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid value for \"since\": {text}",
                              hint="use a duration (10m) or a time (2024-05-01T10:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@click.command("logs", context_settings=_NO_H)
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help="Lines from the end (default all).")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--since", default=None, help="Since a time or a duration before now (10m).")
@click.argument("container")
@click.pass_context
def logs_cmd(ctx: click.Context, follow: bool, tail: str, timestamps: bool, since: str | None,
             container: str) -> None:
    """Fetch the logs of a container."""
    from lamina.errors import InvalidArgument
    from lamina.runtime.logfile import read_logs

    store = _store(ctx)
    c = store.get(container)
    if tail == "all":
        count = None
    elif tail.lstrip("-").isdigit():
        count = int(tail) if int(tail) >= 0 else None
    else:
        raise InvalidArgument(f"invalid value for --tail: {tail}", hint="a number, or all")
    if not c.log_path.exists() and not c.state.running:
        return
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for line in read_logs(c.log_path, follow=follow, tail=count, since=_since(since),
                          timestamps=timestamps,
                          state_dir=c.state_dir if follow and c.state.running else None):
        stream = err if line.stream == "stderr" else out
        stream.write(line.text.encode() if isinstance(line.text, str) else line.text)
        stream.flush()


@click.command("exec", context_settings=_PASS)
@click.option("-d", "--detach", is_flag=True, help="Run the command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", "env", multiple=True, help="Set a variable (K=V).")
@click.option("-u", "--user", default="", help="USER[:GROUP].")
@click.option("-w", "--workdir", default="", help="Working directory inside.")
@click.option("--privileged", is_flag=True, help="Accepted for compatibility.")
@click.argument("container")
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_cmd(ctx: click.Context, /, detach: bool, interactive: bool, tty: bool,
             env: tuple[str, ...], user: str, workdir: str, privileged: bool, container: str,
             args: tuple[str, ...]) -> None:
    """Run a command in a running container; exit with its status."""
    from lamina.containers.spec import parse_env
    from lamina.errors import Conflict, InvalidArgument
    from lamina.runtime.attach import ExecSpec, exec_in

    store = _store(ctx)
    c = store.get(container)
    if not c.state.running:
        raise Conflict(f"Container {c.id} is not running", hint="start it first")
    if tty and interactive and not sys.stdin.isatty():
        raise InvalidArgument("the input device is not a TTY", hint="drop -t, or use a terminal")
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be "
                              "an absolute path", hint="use a path starting with /")
    spec = ExecSpec(args=args, env=parse_env(env), cwd=workdir, user=user, tty=tty)
    if detach:
        import subprocess

        argv = [sys.executable, "-m", "lamina", "--root", ctx.obj["root"], "exec"]
        for item in spec.env:
            argv += ["-e", item]
        if user:
            argv += ["-u", user]
        if workdir:
            argv += ["-w", workdir]
        subprocess.Popen([*argv, c.id, *args], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        return
    try:
        code = exec_in(c.id, store._runtime(c), spec,
                       stdin=sys.stdin.buffer if interactive else None,
                       stdout=sys.stdout.buffer, stderr=sys.stderr.buffer)
    except Exception as exc:
        as_engine_error(exc)
        raise
    ctx.exit(code)


@click.command("attach", context_settings=_NO_H)
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy", default=True, type=bool, help="Proxy signals to the process.")
@click.option("--detach-keys", default=None, help="Keys to detach (default ctrl-p,ctrl-q).")
@click.argument("container")
@click.pass_context
def attach_cmd(ctx: click.Context, no_stdin: bool, sig_proxy: bool, detach_keys: str | None,
               container: str) -> None:
    """Attach to a running container's input and output."""
    from lamina.errors import Conflict
    from lamina.runtime.attach import DETACHED, attach

    store = _store(ctx)
    c = store.get(container)
    if not c.state.running:
        raise Conflict("You cannot attach to a stopped container, start it first",
                       hint="lamina start -a " + c.name)
    code = attach(c.state_dir / "attach.sock", None if no_stdin else sys.stdin.buffer,
                  sys.stdout.buffer, sys.stderr.buffer, tty=c.spec.tty, detach_keys=detach_keys, sig_proxy=sig_proxy)
    if code != DETACHED:
        store.get(c.id)  # record the exit
        ctx.exit(code)


def _container_pid(store: ContainerStore, c: Container) -> int:
    from lamina.errors import Conflict

    if c.state.running:
        pid = store._runtime(c).state(c.id).pid
        if pid > 0:
            return pid
    raise Conflict(f"Container {c.id} is not running", hint="start it first")


@click.command("top", context_settings=_PASS)
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def top_cmd(ctx: click.Context, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container (ps -ef columns)."""
    from lamina.cli._format import render_table
    from lamina.runtime.stats import ProcessRow, top

    store = _store(ctx)
    rows = top(_container_pid(store, store.get(container)))
    click.echo(render_table(list(ProcessRow.titles()), [list(r.as_row()) for r in rows]),
               nl=False)


@click.command("stats", context_settings=_NO_H)
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers.")
@click.option("--no-stream", is_flag=True, help="Print one sample and exit.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("--format", "fmt", default=None, help="Format with a Go template.")
@click.argument("containers", nargs=-1)
@click.pass_context
def stats_cmd(ctx: click.Context, show_all: bool, no_stream: bool, no_trunc: bool,
              fmt: str | None, containers: tuple[str, ...]) -> None:
    """Display containers' resource usage (CPU, memory, processes)."""
    from lamina.cli._format import render_table, render_template
    from lamina.runtime.stats import read_stats

    store = _store(ctx)
    items = [store.get(n) for n in containers] if containers else [
        c for c in store.all() if show_all or c.state.running]

    def sample() -> dict[str, Any]:
        out = {}
        for c in items:
            if c.state.running:
                try:
                    out[c.id] = read_stats(c.cgroups_path)
                except Exception:
                    continue
        return out

    while True:
        t0, first = time.monotonic(), sample()
        time.sleep(0.5)
        dt, second = time.monotonic() - t0, sample()
        rows = []
        for c in items:
            s = second.get(c.id)
            a = first.get(c.id)
            cpu = mem_pct = 0.0
            usage = limit = pids = 0
            if s is not None:
                usage, limit, pids = s.memory_usage, s.memory_limit, s.pids
                if a is not None:
                    cpu = (s.cpu_usage_ns - a.cpu_usage_ns) / (dt * 1e9) * 100
                mem_pct = usage / limit * 100 if limit else 0.0
            rows.append({
                "Container": c.id if no_trunc else c.id[:12], "ID": c.id[:12], "Name": c.name,
                "CPUPerc": f"{cpu:.2f}%", "MemUsage": f"{_binary(usage)} / {_binary(limit)}",
                "MemPerc": f"{mem_pct:.2f}%", "NetIO": "0B / 0B", "BlockIO": "0B / 0B",
                "PIDs": str(pids)})
        if fmt:
            for r in rows:
                click.echo(render_template(fmt, r))
        else:
            cols = [("CONTAINER ID", "Container"), ("NAME", "Name"), ("CPU %", "CPUPerc"),
                    ("MEM USAGE / LIMIT", "MemUsage"), ("MEM %", "MemPerc"),
                    ("NET I/O", "NetIO"), ("BLOCK I/O", "BlockIO"), ("PIDS", "PIDs")]
            click.echo(render_table([h for h, _ in cols], [[r[k] for _, k in cols]
                                                          for r in rows]), nl=False)
        if no_stream:
            return
        items = [store.get(c.id) for c in items]


def _binary(n: float) -> str:
    """A size with binary units, as ``docker stats`` prints it: ``1.5MiB``."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}" if i else f"{int(n)}B"


@click.command("port", context_settings=_NO_H)
@click.argument("container")
@click.argument("private", required=False)
@click.pass_context
def port_cmd(ctx: click.Context, container: str, private: str | None) -> None:
    """List port mappings of a container (or the one of PRIVATE_PORT[/PROTO])."""
    from lamina.errors import NotFound

    store = _store(ctx)
    c = store.get(container)
    ports = published_ports(c) if c.state.running else []
    want = None
    if private:
        port, _, proto = private.partition("/")
        want = (int(port), proto or "tcp")
    found = False
    for p in ports:
        if want and (p.container_port, p.proto) != want:
            continue
        found = True
        host = f"[{p.host_ip}]" if ":" in p.host_ip else (p.host_ip or "0.0.0.0")
        line = f"{host}:{p.host_port}"
        click.echo(line if want else f"{p.container_port}/{p.proto} -> {line}")
    if want and not found:
        raise NotFound(f"No public port '{want[0]}/{want[1]}' published for {container}",
                       hint="see `lamina port " + container + "`")


@click.command("reap", hidden=True, context_settings=_NO_H)
@click.argument("container")
@click.pass_context
def reap_cmd(ctx: click.Context, container: str) -> None:
    """Record a container's exit (run by its monitor when the container ended)."""
    from lamina.errors import NotFound

    with contextlib.suppress(NotFound):
        _store(ctx).get(container)


# --- the container group -------------------------------------------------------------------


@click.group("container", context_settings=_NO_H)
def container_group() -> None:
    """Manage containers."""


@click.command("inspect", context_settings=_NO_H)
@click.option("-f", "--format", "fmt", default=None, help="Format with a Go template.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def container_inspect_cmd(ctx: click.Context, fmt: str | None,
                          containers: tuple[str, ...]) -> None:
    """Show low-level information on containers."""
    from lamina.cli._format import emit_inspect
    from lamina.errors import LaminaError

    store = _store(ctx)
    results = []
    errors = []
    for name in containers:
        try:
            results.append(inspect_container(store, store.get(name)))
        except LaminaError as exc:
            errors.append(f"Error: {exc.message}")
    emit_inspect(ctx, results, errors, fmt)


@click.command("prune", context_settings=_NO_H)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_context
def container_prune_cmd(ctx: click.Context, force: bool) -> None:
    """Remove all stopped containers."""
    if not force:
        click.confirm("WARNING! This will remove all stopped containers.\n"
                      "Are you sure you want to continue?", abort=True)
    store = _store(ctx)
    removed = []
    for c in store.all():
        if not c.state.running:
            store.remove(c.id)
            removed.append(c.id)
    if removed:
        click.echo("Deleted Containers:")
        for cid in removed:
            click.echo(cid)
        click.echo()
    click.echo("Total reclaimed space: 0B")


commands: dict[str, click.Command] = {
    "run": run_cmd,
    "create": create_cmd,
    "start": start_cmd,
    "stop": stop_cmd,
    "kill": kill_cmd,
    "wait": wait_cmd,
    "restart": restart_cmd,
    "rm": rm_cmd,
    "rename": rename_cmd,
    "diff": diff_cmd,
    "commit": commit_cmd,
    "export": export_cmd,
    "cp": cp_cmd,
    "ps": ps_cmd,
    "logs": logs_cmd,
    "exec": exec_cmd,
    "attach": attach_cmd,
    "top": top_cmd,
    "stats": stats_cmd,
    "port": port_cmd,
    "container": container_group,
}

for _name, _cmd in (*commands.items(), ("ls", ps_cmd), ("list", ps_cmd),
                    ("inspect", container_inspect_cmd), ("prune", container_prune_cmd),
                    ("reap", reap_cmd)):
    if _name != "container":
        container_group.add_command(_cmd, _name)

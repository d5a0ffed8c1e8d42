"""``lamina run`` without click: its flags parsed by hand, then the one run implementation.

:func:`fast_main` is :data:`lamina.cli.FAST_PATHS`' entry for ``run``.  The flags of
``run`` and ``create`` are declared once, in :data:`CREATE_OPTIONS` (and ``-d`` in
:data:`RUN_OPTIONS`): :mod:`lamina.cli.cmd_container` makes its click options from the
same table, and :func:`parse_args` reads argument lists the way click's parser does
(clustered short flags, ``-eK=V``, ``--name=x``, the last of a repeated single-value
flag, options only before IMAGE).  It returns the very keyword arguments click would
pass to the ``run`` command, or ``None`` for anything it is not sure of -- ``--help``,
an unknown flag, a missing value, a number that does not parse, no IMAGE -- and click then
runs the command (and prints its usage errors).  Both paths call :func:`run_container`,
so messages, output and exit statuses cannot drift apart.

The container helpers the other container verbs use (:func:`build_spec`,
:func:`run_foreground`, :func:`start_detached`...) live here too, so that this path
imports neither click nor :mod:`lamina.cli.cmd_container`.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from lamina.containers.spec import ContainerSpec
    from lamina.containers.store import Container, ContainerStore

__all__ = [
    "CREATE_OPTIONS",
    "FLAG",
    "FLOAT",
    "INT",
    "MULTI",
    "RUN_OPTIONS",
    "TEXT",
    "as_engine_error",
    "build_spec",
    "fast_main",
    "parse_args",
    "run_container",
    "run_foreground",
    "start_detached",
    "start_or_remove",
]

# What an option takes: nothing (a flag), one text, a text per use, a number.
FLAG, TEXT, MULTI, INT, FLOAT = "flag", "text", "multi", "int", "float"

#: The flags ``run`` and ``create`` share, in ``--help`` order:
#: (declarations, keyword, kind, default, show the default, help).
CREATE_OPTIONS: tuple[tuple[tuple[str, ...], str, str, object, bool, str], ...] = (
    (("--rm",), "auto_remove", FLAG, False, False, "Remove the container when it exits."),
    (("-i", "--interactive"), "interactive", FLAG, False, False, "Keep STDIN open."),
    (("-t", "--tty"), "tty", FLAG, False, False, "Allocate a pseudo-TTY."),
    (("--name",), "name", TEXT, None, False, "Assign a name to the container."),
    (("-e", "--env"), "env", MULTI, (), False, "Set a variable (K=V, or K)."),
    (("--env-file",), "env_files", MULTI, (), False, "Read variables from a file."),
    (("-w", "--workdir"), "workdir", TEXT, "", False, "Working directory inside."),
    (("-u", "--user"), "user", TEXT, "", False, "USER[:GROUP] (name or number)."),
    (("--entrypoint",), "entrypoint", TEXT, None, False, "Overwrite the image's ENTRYPOINT."),
    (("-h", "--hostname"), "hostname", TEXT, "", False, "Container host name."),
    (("-v", "--volume"), "volumes", MULTI, (), False,
     "Bind mount or volume: /host:/ctr[:ro], NAME:/ctr, /ctr."),
    (("--mount",), "mounts", MULTI, (), False,
     "Attach a mount: type=bind|volume|tmpfs,source=…,target=…[,readonly]."),
    (("--tmpfs",), "tmpfs", MULTI, (), False, "Mount a tmpfs (PATH[:size=…])."),
    (("--network", "--net"), "network", TEXT, "none", True,
     "none (own namespace, loopback) or host."),
    (("--read-only",), "read_only", FLAG, False, False, "Mount the root filesystem read-only."),
    (("--cap-add",), "cap_add", MULTI, (), False, "Add Linux capabilities."),
    (("--cap-drop",), "cap_drop", MULTI, (), False, "Drop Linux capabilities."),
    (("-p", "--publish"), "publish", MULTI, (), False,
     "Publish a port: [IP:][HOSTPORT:]CTRPORT[/PROTO]."),
    (("-P", "--publish-all"), "publish_all", FLAG, False, False, "Publish every exposed port."),
    (("-m", "--memory"), "memory", TEXT, None, False, "Memory limit (e.g. 32m)."),
    (("--memory-swap",), "memory_swap", TEXT, None, False, "Memory plus swap (-1: unlimited)."),
    (("--cpus",), "cpus", FLOAT, None, False, "Number of CPUs."),
    (("--pids-limit",), "pids_limit", INT, None, False, "Tune the pids limit."),
    (("--runtime",), "runtime", TEXT, "runc", True, "OCI runtime: runc or crun."),
    (("--stop-signal",), "stop_signal", TEXT, "", False, "Signal to stop the container."),
    (("--stop-timeout",), "stop_timeout", INT, None, False, "Seconds before SIGKILL."),
    (("-l", "--label"), "labels", MULTI, (), False, "Set metadata (KEY=VALUE)."),
)

#: ``run``'s flags: ``-d`` first, then the shared ones.
RUN_OPTIONS = (
    (("-d", "--detach"), "detach", FLAG, False, False, "Run in the background, print the ID."),
    *CREATE_OPTIONS,
)

_LONG = {decl: (dest, kind) for decls, dest, kind, *_ in RUN_OPTIONS
         for decl in decls if decl.startswith("--")}
_SHORT = {decl[1]: (dest, kind) for decls, dest, kind, *_ in RUN_OPTIONS
          for decl in decls if not decl.startswith("--")}


def _store_value(params: dict[str, Any], dest: str, kind: str, value: str) -> bool:
    """Record one option value as click would; False when click must report it."""
    if kind == MULTI:
        params[dest] = (*params[dest], value)
        return True
    if kind in (INT, FLOAT):
        try:
            params[dest] = int(value) if kind == INT else float(value)
        except ValueError:
            return False
        return True
    params[dest] = value
    return True


def parse_args(args: Sequence[str]) -> dict[str, Any] | None:
    """``run`` arguments as the click command's keyword arguments (``detach``, ``image``,
    ``args`` and the :data:`CREATE_OPTIONS`); ``None`` when click must parse them."""
    params: dict[str, Any] = {dest: default for _, dest, _, default, *_ in RUN_OPTIONS}
    i, n = 0, len(args)
    while i < n:
        arg = args[i]
        if arg == "--" or arg[:1] != "-" or len(arg) == 1:
            break  # IMAGE (or "--"): options end here
        i += 1
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            entry = _LONG.get(name)
            if entry is None:
                return None
            dest, kind = entry
            if kind == FLAG:
                if eq:
                    return None
                params[dest] = True
                continue
            if not eq:
                if i >= n:
                    return None
                value = args[i]
                i += 1
            if not _store_value(params, dest, kind, value):
                return None
            continue
        j = 1
        while j < len(arg):  # a cluster of short options: -it, -dit, -eK=V, -e K=V
            short = _SHORT.get(arg[j])
            j += 1
            if short is None:
                return None
            dest, kind = short
            if kind == FLAG:
                params[dest] = True
                continue
            if j < len(arg):
                value = arg[j:]
            elif i < n:
                value = args[i]
                i += 1
            else:
                return None
            if not _store_value(params, dest, kind, value):
                return None
            break
    if i < n and args[i] == "--":
        i += 1  # everything after "--" is IMAGE and ARGS, even what looks like a flag
    if i >= n:
        return None
    params["image"] = args[i]
    params["args"] = tuple(args[i + 1:])
    return params


# --- the implementation both paths share -----------------------------------------------


def build_spec(image: str, args: Sequence[str], o: dict[str, Any]) -> ContainerSpec:
    """A :class:`ContainerSpec` from ``run``/``create`` flags (all parsing errors here)."""
    from lamina.containers.spec import (
        ContainerSpec,
        MountSpec,
        Resources,
        parse_bytes,
        parse_env,
        parse_env_file,
        parse_mount,
        parse_publish,
        parse_volume,
    )
    from lamina.errors import InvalidArgument

    env: list[str] = []
    for path in o["env_files"]:
        env.extend(parse_env_file(path))
    env.extend(parse_env(o["env"]))
    mounts = [parse_volume(v) for v in o["volumes"]]
    mounts += [parse_mount(m) for m in o["mounts"]]
    for t in o["tmpfs"]:
        target, _, opts = t.partition(":")
        size = None
        for opt in filter(None, opts.split(",")):
            if opt.startswith("size="):
                size = parse_bytes(opt[5:], flag="--tmpfs")
        mounts.append(MountSpec("tmpfs", "", target, tmpfs_size=size))
    ports: list[Any] = []
    for p in o["publish"]:
        ports.extend(parse_publish(p))
    labels = []
    for item in o["labels"]:
        key, _, value = item.partition("=")
        labels.append((key, value))
    memory_swap = None
    if o["memory_swap"] is not None:
        memory_swap = -1 if o["memory_swap"] == "-1" else parse_bytes(o["memory_swap"],
                                                                      flag="--memory-swap")
    if o["cpus"] is not None:
        ncpu = os.cpu_count() or 1
        if not 0.01 <= o["cpus"] <= ncpu:
            raise InvalidArgument(
                f"Range of CPUs is from 0.01 to {ncpu:.2f}, as there are only {ncpu} CPUs "
                "available", hint="pass a smaller --cpus")
    return ContainerSpec(
        image=image,
        args=tuple(args) if args else None,
        entrypoint=o["entrypoint"],
        env=tuple(env),
        working_dir=o["workdir"],
        user=o["user"],
        hostname=o["hostname"],
        tty=o["tty"],
        open_stdin=o["interactive"],
        mounts=tuple(mounts),
        network=o["network"],
        read_only=o["read_only"],
        cap_add=tuple(o["cap_add"]),
        cap_drop=tuple(o["cap_drop"]),
        ports=tuple(ports),
        publish_all=o["publish_all"],
        resources=Resources(
            memory=parse_bytes(o["memory"]) if o["memory"] is not None else None,
            memory_swap=memory_swap, cpus=o["cpus"], pids_limit=o["pids_limit"]),
        auto_remove=o["auto_remove"],
        runtime=o["runtime"],
        stop_signal=o["stop_signal"],
        stop_timeout=o["stop_timeout"],
        labels=tuple(labels),
    )


def as_engine_error(exc: BaseException) -> None:
    """``run``/``create`` fail with status 125 when lamina (not the command) failed."""
    from lamina.errors import LaminaError

    if isinstance(exc, LaminaError) and exc.exit_status == 1:
        exc.exit_status = 125


#: Run foreground containers under a monitor too.  Off: the monitor is a second Python
#: process (about 150 ms more for ``run --rm IMAGE true``), while the in-process path
#: (:mod:`lamina.containers.foreground`) writes the same json-file log and records
#: OOM kills too.  Containers with published ports always use the monitor.
MONITORED_FOREGROUND = False


def run_foreground(store: ContainerStore, c: Container) -> int:
    """Run ``c`` attached to this terminal; return its exit status.

    The container runs under the OCI runtime driven by this process
    (:meth:`ContainerStore.run`: its output copied here and to its log, a few
    milliseconds over the runtime itself).  With published ports it is started
    under its monitor (which forwards them) and attached to.
    """
    from lamina.errors import InvalidArgument
    from lamina.runtime import DEVNULL, INHERIT, Stdio

    if c.spec.tty and c.spec.open_stdin and not sys.stdin.isatty():
        raise InvalidArgument("the input device is not a TTY",
                              hint="run from a terminal, or drop -t")
    if not c.spec.ports and not c.spec.publish_all and not MONITORED_FOREGROUND:
        stdin = INHERIT if c.spec.open_stdin else DEVNULL
        return store.run(c, Stdio(stdin, INHERIT, INHERIT),
                         terminal=c.spec.tty and sys.stdin.isatty())
    from lamina.containers import detached
    from lamina.runtime.attach import DETACHED, attach

    handle = detached.start(store, c, await_attach=True)
    code = attach(handle.attach_socket, sys.stdin.buffer if c.spec.open_stdin else None,
                  sys.stdout.buffer, sys.stderr.buffer, tty=c.spec.tty)
    if code == DETACHED:
        return 0
    store.get(c.id)  # record the exit (the monitor's reap may still be on its way)
    return code


def start_or_remove(store: ContainerStore, c: Container, start: Callable[[], Any]) -> Any:
    """Start ``c``; if that fails for any reason but its command, remove it again."""
    from lamina.errors import OCIRuntimeError

    try:
        return start()
    except OCIRuntimeError:
        raise
    except BaseException:
        import contextlib

        from lamina.errors import NotFound

        with contextlib.suppress(NotFound):
            store.remove(c.id, force=True, volumes=True)  # no half-made container
        raise


def start_detached(store: ContainerStore, c: Container) -> None:
    from lamina.containers import detached

    detached.start(store, c)


def run_container(root: str, params: dict[str, Any]) -> int:
    """``lamina run`` with the click command's keyword arguments ``params`` (see
    :func:`parse_args`) against the store at ``root``: the container's exit status, or
    0 once a detached container started (its ID printed)."""
    images = None
    try:
        spec = build_spec(params["image"], params["args"], params)
        from lamina.containers.store import ContainerStore
        from lamina.images.store import ImageStore

        images = ImageStore(root)
        store = ContainerStore(images)
        c = store.create(spec, name=params["name"])
        if params["detach"]:
            start_or_remove(store, c, lambda: start_detached(store, c))
            sys.stdout.write(f"{c.id}\n")
            sys.stdout.flush()
            return 0
        code: int = start_or_remove(store, c, lambda: run_foreground(store, c))
        return code
    except Exception as exc:
        as_engine_error(exc)
        raise
    finally:
        if images is not None:
            images.close()


def fast_main(args: list[str]) -> int | None:
    """``lamina run ARGS`` without click; ``None`` when the click command must run it."""
    params = parse_args(args)
    if params is None:
        return None
    from lamina.errors import LaminaError

    root = os.environ.get("LAMINA_ROOT") or _default_root()
    try:
        return run_container(root, params)
    except LaminaError as exc:
        from lamina.cli import error_lines

        sys.stderr.write("".join(f"{line}\n" for line in error_lines(exc)))
        sys.stderr.flush()
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _default_root() -> str:
    from lamina.cli import default_root

    return default_root()

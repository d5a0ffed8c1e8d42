"""The ``lamina`` command line: a thin, lazily imported layer over the library.

Each verb lives in its own module ``lamina.cli.cmd_<verb>`` exposing a click command
named ``command``.  Only the module of the verb being run is imported, so
``lamina --help`` and every command start fast.  This package is the only place that
prints to the terminal or exits.

To add a verb: write ``cmd_<verb>.py`` and add one line to :data:`COMMANDS`.
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

    from lamina.cli._group import LazyGroup, cli

__all__ = ["COMMANDS", "FAST_PATHS", "LazyGroup", "cli", "main"]

# verb -> (module, short help).  Help text lives here so `lamina --help` imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "parse": ("lamina.cli.cmd_parse", "Print the syntax tree of a Dockerfile."),
    "lint": ("lamina.cli.cmd_lint", "Check a Dockerfile against best practices."),
    "analyze": ("lamina.cli.cmd_analyze", "Show an image's layers, their sizes and wasted space."),
    "import": ("lamina.cli.cmd_image", "Create an image from a rootfs tarball."),
    "images": ("lamina.cli.cmd_image", "List images."),
    "image": ("lamina.cli.cmd_image", "Manage images (ls, inspect, rm, history, tag, save, load)."),
    "inspect": ("lamina.cli.cmd_image", "Show low-level information on images."),
    "history": ("lamina.cli.cmd_image", "Show the history of an image."),
    "tag": ("lamina.cli.cmd_image", "Create a tag TARGET that refers to SOURCE."),
    "rmi": ("lamina.cli.cmd_image", "Remove one or more images."),
    "save": ("lamina.cli.cmd_image", "Save images to a tar archive."),
    "load": ("lamina.cli.cmd_image", "Load images from a tar archive."),
    "system": ("lamina.cli.cmd_system", "Disk usage and pruning (df, prune)."),
    # containers (lamina.cli.cmd_container, cmd_volume)
    "run": ("lamina.cli.cmd_container", "Create and run a new container from an image."),
    "create": ("lamina.cli.cmd_container", "Create a new container."),
    "start": ("lamina.cli.cmd_container", "Start one or more stopped containers."),
    "rm": ("lamina.cli.cmd_container", "Remove one or more containers."),
    "diff": ("lamina.cli.cmd_container", "Show changes to a container's filesystem."),
    "commit": ("lamina.cli.cmd_container", "Create a new image from a container's changes."),
    "export": ("lamina.cli.cmd_container", "Export a container's filesystem as a tar archive."),
    "cp": ("lamina.cli.cmd_container", "Copy files between a container and the host."),
    "ps": ("lamina.cli.cmd_container", "List containers."),
    "logs": ("lamina.cli.cmd_container", "Fetch the logs of a container."),
    "exec": ("lamina.cli.cmd_container", "Run a command in a running container."),
    "stop": ("lamina.cli.cmd_container", "Stop one or more running containers."),
    "kill": ("lamina.cli.cmd_container", "Kill one or more running containers."),
    "wait": ("lamina.cli.cmd_container", "Block until containers stop, print exit codes."),
    "restart": ("lamina.cli.cmd_container", "Restart one or more containers."),
    "rename": ("lamina.cli.cmd_container", "Rename a container."),
    "top": ("lamina.cli.cmd_container", "Display the running processes of a container."),
    "stats": ("lamina.cli.cmd_container", "Display containers' resource usage."),
    "port": ("lamina.cli.cmd_container", "List port mappings of a container."),
    "attach": ("lamina.cli.cmd_container", "Attach to a running container's stdio."),
    "container": ("lamina.cli.cmd_container", "Manage containers."),
    "volume": ("lamina.cli.cmd_volume", "Manage volumes."),
    # builds (lamina.cli.cmd_build)
    "build": ("lamina.cli.cmd_build", "Build an image from a Dockerfile."),
    "builder": ("lamina.cli.cmd_build", "Manage the build cache (prune)."),
    # registries (lamina.cli.cmd_registry, cmd_generate)
    "pull": ("lamina.cli.cmd_registry", "Pull an image from a registry."),
    "push": ("lamina.cli.cmd_registry", "Push an image to a registry."),
    "login": ("lamina.cli.cmd_registry", "Log in to a registry."),
    "logout": ("lamina.cli.cmd_registry", "Log out from a registry."),
    "generate": ("lamina.cli.cmd_generate", "Generate Kubernetes YAML for a container or image."),
}


def default_root() -> str:
    """The store root: ``$LAMINA_ROOT``, else /var/lib/lamina for root, else XDG data."""
    from lamina.engine import default_root as engine_root

    return str(engine_root())


# verb -> module with ``fast_main(args: list[str]) -> int | None``: runs the verb without
# click when it understands every argument (``None``: let the click command handle it).
# LAMINA_NO_FAST_PATH=1 in the environment sends every verb through click (tests use it).
FAST_PATHS: dict[str, str] = {
    "build": "lamina.cli._buildfast",
    "run": "lamina.cli._runfast",
}


def __getattr__(name: str) -> Any:
    if name in ("cli", "LazyGroup"):  # click loads only when a click command runs
        return getattr(importlib.import_module("lamina.cli._group"), name)
    raise AttributeError(f"module 'lamina.cli' has no attribute {name!r}")


def error_lines(exc: Any) -> list[str]:
    """What to print for a LaminaError: ``Error: message`` (for Dockerfile errors
    ``file:line:col: message``, the source line and a caret under the spot), then the hint."""
    from lamina.errors import DockerfileSyntaxError

    lines: list[str] = []
    if isinstance(exc, DockerfileSyntaxError) and exc.line:
        loc = exc.location()
        msg = exc.message if exc.message.startswith(loc) else f"{loc}: {exc.message}"
        lines.append(f"Error: {msg}")
        if exc.source_line is not None:
            lines.append(f"    {exc.source_line}")
            if exc.column:
                pad = "".join("\t" if c == "\t" else " " for c in exc.source_line[: exc.column - 1])
                lines.append(f"    {pad}^")
    else:
        lines.append(f"Error: {exc.message}")
    if exc.hint:
        lines.append(f"Hint: {exc.hint}")
    return lines


def _echo_error(exc: Any) -> None:
    sys.stderr.write("".join(f"{line}\n" for line in error_lines(exc)))
    sys.stderr.flush()


def _global_root(args: list[str]) -> tuple[int, str | None]:
    """Where the verb starts after a leading ``--root DIR`` / ``--root=DIR``, and that root.

    Any other global option (``--debug``, ``--help``…) returns an index past the end, so
    the click group handles the whole command line.
    """
    i, root = 0, None
    while i < len(args) and args[i].startswith("-"):
        if args[i] == "--root" and i + 1 < len(args):
            root, i = args[i + 1], i + 2
        elif args[i].startswith("--root="):
            root, i = args[i][len("--root="):], i + 1
        else:
            return len(args), None
    return i, root


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``lamina`` console script: maps errors to one-line messages."""
    args = sys.argv[1:] if argv is None else argv
    import os

    verb_at, root = _global_root(args)
    fast = FAST_PATHS.get(args[verb_at]) if verb_at < len(args) else None
    if fast is not None and not os.environ.get("LAMINA_NO_FAST_PATH"):
        if root is not None:
            os.environ["LAMINA_ROOT"] = root  # the fast paths read the root from here
        status = importlib.import_module(fast).fast_main(args[verb_at + 1:])
        if status == 0:
            return None
        if status is not None:
            sys.exit(status)

    import click

    from lamina.cli._group import cli
    from lamina.errors import LaminaError

    debug = "--debug" in args
    try:
        return cli.main(args=argv, prog_name="lamina", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(125 if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except LaminaError as exc:
        if debug:
            raise
        _echo_error(exc)
        sys.exit(exc.exit_status)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)

"""The click side of the command line: the lazily loading root group (``lamina``).

Kept apart from :mod:`lamina.cli` so that verbs with a click-free fast path (see
:data:`lamina.cli.FAST_PATHS`) start without importing click at all.
"""

from __future__ import annotations

import importlib

import click

from lamina.cli import COMMANDS, default_root

__all__ = ["LazyGroup", "cli"]


class LazyGroup(click.Group):
    """A click group that imports a verb's module only when that verb runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        try:
            module = importlib.import_module(entry[0])
        except ModuleNotFoundError as exc:
            if exc.name != entry[0]:
                raise
            return None  # a verb whose module is not written yet
        cmd = getattr(module, "commands", {}).get(cmd_name) or getattr(module, "command", None)
        return cmd if isinstance(cmd, click.Command) else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)




@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", "root", default=None, metavar="DIR",
              help="Store root (default: $LAMINA_ROOT, /var/lib/lamina as root).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="lamina", prog_name="lamina")
@click.pass_context
def cli(ctx: click.Context, root: str | None, debug: bool) -> None:
    """lamina: build, store, run and ship container images, compatible with Docker."""
    ctx.ensure_object(dict)
    ctx.obj["root"] = root or default_root()
    ctx.obj["debug"] = debug



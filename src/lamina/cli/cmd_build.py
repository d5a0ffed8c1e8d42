"""``lamina build`` and ``lamina builder prune|du``.

Flags follow ``docker build``.  Progress is rendered like BuildKit's ``--progress=plain``
(``#N [stage i/n] INSTRUCTION`` / ``#N CACHED`` / ``#N DONE 0.4s``), with one line per
cache miss saying why the step runs again.  ``-q`` prints only the image ID.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from lamina.cli._buildfast import PlainRenderer, QuietReporter

if TYPE_CHECKING:
    from lamina.images.store import ImageStore

__all__ = ["PlainRenderer", "QuietReporter", "commands"]


def _root(ctx: click.Context) -> str:
    return str(ctx.obj["root"])


def _store(ctx: click.Context) -> ImageStore:
    from lamina.images.store import ImageStore

    store = ImageStore(ctx.obj["root"])
    ctx.call_on_close(store.close)
    return store


@click.command("build")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]", help="Name the image.")
@click.option("-f", "--file", "file", default=None, metavar="FILE",
              help="The Dockerfile (default: CONTEXT/Dockerfile; - reads it from stdin).")
@click.option("--build-arg", "build_args", multiple=True, metavar="K[=V]",
              help="Set a build-time variable (K alone takes it from the environment).")
@click.option("--target", default=None, help="Build this stage (and what it needs) only.")
@click.option("--no-cache", is_flag=True, help="Run every step; do not use the build cache.")
@click.option("--pull", is_flag=True,
              help="Pull every base image (FROM) from its registry, even if it is in the store.")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Set an image label.")
@click.option("--iidfile", default=None, metavar="FILE", help="Write the image ID to FILE.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty"]), default="auto",
              help="Progress output. Every mode prints BuildKit's plain format "
                   "(tty is accepted and prints plain too).")
@click.option("--network", default="host", type=click.Choice(["host", "none", "default"]),
              help="Network for RUN (default host).")
@click.option("--secret", "secrets", multiple=True, metavar="id=ID,src=PATH",
              help="A secret file for RUN --mount=type=secret.")
@click.option("--output", "-o", "output", default=None, metavar="type=docker|oci,dest=FILE",
              help="Also write the image as an archive.")
@click.option("--lint", is_flag=True, help="Check the Dockerfile first; stop on errors.")
@click.argument("context")
@click.pass_context
def build_cmd(ctx: click.Context, tags: tuple[str, ...], file: str | None,
              build_args: tuple[str, ...], target: str | None, no_cache: bool, pull: bool,
              labels: tuple[str, ...], iidfile: str | None, quiet: bool, progress: str,
              network: str, secrets: tuple[str, ...], output: str | None, lint: bool,
              context: str) -> None:
    """Build an image from a Dockerfile and a CONTEXT directory (- : a tar on stdin)."""
    from lamina.cli._buildfast import BuildParams, run_build

    p = BuildParams()
    p.tags, p.file, p.build_args, p.target = list(tags), file, list(build_args), target
    p.no_cache, p.pull, p.labels, p.iidfile = no_cache, pull, list(labels), iidfile
    p.quiet, p.progress, p.network, p.secrets = quiet, progress, network, list(secrets)
    p.output, p.lint, p.context = output, lint, context
    run_build(_root(ctx), p)


@click.group("builder")
def builder_cmd() -> None:
    """Manage the build cache."""


@builder_cmd.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all cache (the default here).")
@click.option("-f", "--force", is_flag=True, help="Do not prompt (accepted for compatibility).")
@click.option("--filter", "filters", multiple=True, metavar="until=DURATION",
              help="Only cache unused for DURATION (e.g. until=24h).")
@click.pass_context
def prune_cmd(ctx: click.Context, all_: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove build cache (and the layers only it kept)."""
    from lamina.cache import BuildCache

    older = None
    for f in filters:
        key, _, value = f.partition("=")
        if key == "until":
            older = _duration(value)
    store = _store(ctx)
    with store.meta.lock():
        n = BuildCache(store.meta).prune(older_than=older)
        removed = store.prune()
    click.echo(f"Deleted build cache objects: {n}")
    click.echo(f"Total reclaimed layers: {len(removed)}")


@builder_cmd.command("du")
@click.pass_context
def du_cmd(ctx: click.Context) -> None:
    """List the build cache."""
    from lamina.cache import BuildCache

    store = _store(ctx)
    for e in BuildCache(store.meta).entries():
        click.echo(f"{e.key[:12]}  {e.chain_id.hex[:12]}  {e.last_used:%Y-%m-%d %H:%M}  "
                   f"{e.description}")


def _duration(text: str) -> Any:
    from datetime import timedelta

    from lamina.build.dockerfile.instructions import parse_duration

    return timedelta(microseconds=parse_duration(text) / 1000)


commands = {"build": build_cmd, "builder": builder_cmd}

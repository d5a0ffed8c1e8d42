"""``lamina build`` and ``lamina builder prune|du``.

Flags follow ``docker build``.  Progress is rendered like BuildKit's ``--progress=plain``
(``#N [stage i/n] INSTRUCTION`` / ``#N CACHED`` / ``#N DONE 0.4s``), with one line per
cache miss saying why the step runs again.  ``-q`` prints only the image ID.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lamina.build.progress import Event
    from lamina.images.store import ImageStore

__all__ = ["commands"]


class PlainRenderer:
    """Writes build events to a stream in BuildKit's plain progress format."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._names: dict[int, str] = {}

    def emit(self, event: Event) -> None:
        from lamina.build.progress import Cached, Done, Failed, Log, Note, Started

        with self._lock:
            if isinstance(event, Started):
                self._names[event.vertex] = event.name
                self.out.write(f"#{event.vertex} {event.name}\n")
            elif isinstance(event, Cached):
                self.out.write(f"#{event.vertex} CACHED\n\n")
            elif isinstance(event, Note):
                self.out.write(f"#{event.vertex} {event.text}\n")
            elif isinstance(event, Log):
                self.out.write(f"#{event.vertex} {event.elapsed:.3f} {event.line}\n")
            elif isinstance(event, Done):
                self.out.write(f"#{event.vertex} DONE {event.seconds:.1f}s\n\n")
            elif isinstance(event, Failed):
                self.out.write(f"#{event.vertex} ERROR: {event.message}\n\n")
            self.out.flush()


class QuietReporter:
    """Keeps only RUN output, to show it when a step fails under ``-q``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def emit(self, event: Event) -> None:
        from lamina.build.progress import Log

        if isinstance(event, Log):
            self.lines.append(event.line)
            del self.lines[:-50]


def _pairs(values: tuple[str, ...], what: str, *, env_fallback: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            from lamina.errors import InvalidArgument

            raise InvalidArgument(f"invalid {what} {item!r}", hint=f"write {what} KEY=VALUE")
        if not sep:
            if env_fallback:
                if key in os.environ:
                    out[key] = os.environ[key]
                continue
            value = ""
        out[key] = value
    return out


def _store(ctx: click.Context) -> ImageStore:
    from lamina.images.store import ImageStore

    store = ImageStore(ctx.obj["root"])
    ctx.call_on_close(store.close)
    return store


def _context_from_stdin(store: ImageStore) -> Path:
    import uuid

    from lamina.layer import apply_layer

    dest = store.tmp / f"build-context-{uuid.uuid4().hex[:12]}"
    apply_layer(sys.stdin.buffer, dest, same_owner=False)
    return dest


@click.command("build")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]", help="Name the image.")
@click.option("-f", "--file", "file", default=None, metavar="FILE",
              help="The Dockerfile (default: CONTEXT/Dockerfile; - reads it from stdin).")
@click.option("--build-arg", "build_args", multiple=True, metavar="K[=V]",
              help="Set a build-time variable (K alone takes it from the environment).")
@click.option("--target", default=None, help="Build this stage (and what it needs) only.")
@click.option("--no-cache", is_flag=True, help="Run every step; do not use the build cache.")
@click.option("--pull", is_flag=True, help="Accepted for compatibility (base images come from the store).")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Set an image label.")
@click.option("--iidfile", default=None, metavar="FILE", help="Write the image ID to FILE.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--progress", type=click.Choice(["auto", "plain", "tty"]), default="auto",
              help="Progress output (every mode prints BuildKit's plain format).")
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
    from lamina.build.builder import build
    from lamina.build.options import BuildOptions, parse_output, parse_secret
    from lamina.errors import BuildStepFailed, InvalidArgument
    from lamina.layer import source_date_epoch_from_env

    store = _store(ctx)
    dockerfile_text: str | None = None
    tmp_context: Path | None = None
    if file == "-":
        if context == "-":
            raise InvalidArgument("the context and the Dockerfile cannot both come from stdin",
                                  hint="pass -f FILE or a context directory")
        dockerfile_text = sys.stdin.read()
    if context == "-":
        tmp_context = _context_from_stdin(store)
        ctx_dir: Path | None = tmp_context
    else:
        ctx_dir = Path(context)
        if not ctx_dir.is_dir():
            raise InvalidArgument(f"unable to prepare context: path {context!r} not found",
                                  hint="pass an existing directory as the build context")
    dockerfile = Path(file) if file not in (None, "-") else None
    if dockerfile is None and tmp_context is not None and file is not None:
        dockerfile = tmp_context / file
    out_spec = parse_output(output) if output else None
    opts = BuildOptions(
        context=ctx_dir, dockerfile=dockerfile, dockerfile_text=dockerfile_text, tags=tags,
        build_args=_pairs(build_args, "--build-arg", env_fallback=True), target=target,
        no_cache=no_cache, pull=pull, labels=_pairs(labels, "--label"), network=network,
        secrets=tuple(parse_secret(s) for s in secrets),
        source_date_epoch=source_date_epoch_from_env())
    if lint:
        _lint(opts)
    reporter: Any = QuietReporter() if quiet else PlainRenderer(sys.stderr)
    t0 = time.monotonic()
    try:
        result = build(store, opts, reporter)
    except BuildStepFailed as exc:
        if quiet and reporter.lines:
            click.echo("\n".join(reporter.lines[-20:]), err=True)
        if exc.log_tail and not quiet:
            click.echo("------\n > " + exc.message + ":\n" +
                       "\n".join(exc.log_tail.splitlines()[-10:]) + "\n------", err=True)
        raise
    finally:
        if tmp_context is not None:
            import shutil

            shutil.rmtree(tmp_context, ignore_errors=True)
    if out_spec is not None:
        with open(out_spec.dest, "wb") as fh:
            store.save(fh, [str(result.image_id)], docker=out_spec.type == "docker")
    if iidfile:
        Path(iidfile).write_text(str(result.image_id))
    if quiet:
        click.echo(str(result.image_id))
    else:
        click.echo(f"Successfully built {result.image_id.hex[:12]} in {time.monotonic() - t0:.2f}s "
                   f"({result.run_steps} steps ran, {result.cached_steps} cached)", err=True)
        for name in result.names:
            click.echo(f"Successfully tagged {name}", err=True)


def _lint(opts: Any) -> None:
    from lamina.errors import BuildError
    from lamina.lint import lint_for_build

    path = opts.dockerfile_path
    text = opts.dockerfile_text if opts.dockerfile_text is not None else path.read_text()
    findings = lint_for_build(text, str(path), context_dir=str(opts.context) if opts.context else None,
                              build_args=dict(opts.build_args))
    errors = 0
    for f in findings:
        sev = str(getattr(f, "severity", "warning"))
        line = getattr(f, "line", 0)
        click.echo(f"{path}:{line}: {getattr(f, 'code', '')} {getattr(f, 'message', f)}", err=True)
        if sev.lower().endswith("error"):
            errors += 1
    if errors:
        raise BuildError(f"--lint: {errors} error(s) in {path}", hint="fix them, or build without --lint")


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

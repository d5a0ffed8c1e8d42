"""``lamina build`` without click: the common flags parsed by hand, then the build.

:func:`fast_main` is :data:`lamina.cli.FAST_PATHS`' entry for ``build``.  It accepts
the flags of :mod:`lamina.cli.cmd_build`'s click command (which stays the reference:
``--help``, and any argument this parser does not recognise, go there) and runs
:func:`run_build`, which the click command calls too.  A repeated build is answered
by the build memo (:mod:`lamina.build.memo`) without importing the builder at all.

The renderers turn build events into BuildKit's plain progress format.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import IO, Any

    from lamina.build.progress import Event

__all__ = ["BuildParams", "PlainRenderer", "QuietReporter", "fast_main", "parse_args",
           "run_build"]


class PlainRenderer:
    """Writes build events to a stream in BuildKit's plain progress format."""

    def __init__(self, out: IO[str]) -> None:
        import threading  # not on the build memo's path

        self.out = out
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        kind = type(event).__name__
        v = event.vertex
        if kind == "Started":
            text = f"#{v} {getattr(event, 'name', '')}\n"
        elif kind == "Cached":
            text = f"#{v} CACHED\n\n"
        elif kind == "Note":
            text = f"#{v} {getattr(event, 'text', '')}\n"
        elif kind == "Log":
            text = f"#{v} {getattr(event, 'elapsed', 0.0):.3f} {getattr(event, 'line', '')}\n"
        elif kind == "Done":
            text = f"#{v} DONE {getattr(event, 'seconds', 0.0):.1f}s\n\n"
        elif kind == "Failed":
            text = f"#{v} ERROR: {getattr(event, 'message', '')}\n\n"
        else:
            return
        with self._lock:
            self.out.write(text)
            self.out.flush()


class QuietReporter:
    """Keeps only RUN output, to show it when a step fails under ``-q``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def emit(self, event: Event) -> None:
        if type(event).__name__ == "Log":
            self.lines.append(getattr(event, "line", ""))
            del self.lines[:-50]


class BuildParams:
    """The ``lamina build`` arguments, as given (see :func:`parse_args`)."""

    def __init__(self) -> None:
        self.tags: list[str] = []
        self.file: str | None = None
        self.build_args: list[str] = []
        self.target: str | None = None
        self.no_cache = False
        self.pull = False
        self.labels: list[str] = []
        self.iidfile: str | None = None
        self.quiet = False
        self.progress = "auto"
        self.network = "host"
        self.secrets: list[str] = []
        self.output: str | None = None
        self.lint = False
        self.context = ""


_VALUED = {"-t": "tags", "--tag": "tags", "-f": "file", "--file": "file",
           "--build-arg": "build_args", "--target": "target", "--label": "labels",
           "--iidfile": "iidfile", "--progress": "progress", "--network": "network",
           "--secret": "secrets", "--output": "output", "-o": "output"}
_FLAGS = {"--no-cache": "no_cache", "--pull": "pull", "-q": "quiet", "--quiet": "quiet",
          "--lint": "lint"}
_CHOICES = {"progress": ("auto", "plain", "tty"), "network": ("host", "none", "default")}


def parse_args(args: Sequence[str]) -> BuildParams | None:
    """Parse ``build`` arguments; ``None`` for anything the click command must handle
    (``--help``, unknown or repeated single flags, bad choices, not one context)."""
    p = BuildParams()
    contexts: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "-" or not arg.startswith("-"):
            contexts.append(arg)
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _FLAGS and not eq:
            setattr(p, _FLAGS[name], True)
            continue
        attr = _VALUED.get(name)
        if attr is None:
            if len(arg) > 2 and arg[:2] in _VALUED and not arg.startswith("--"):
                attr, value, eq = _VALUED[arg[:2]], arg[2:], "="  # -tname
            else:
                return None
        if not eq:
            if i >= len(args):
                return None
            value = args[i]
            i += 1
        current = getattr(p, attr)
        if isinstance(current, list):
            current.append(value)
            continue
        if attr in seen or value not in _CHOICES.get(attr, (value,)):
            return None
        seen.add(attr)
        setattr(p, attr, value)
    if len(contexts) != 1:
        return None
    p.context = contexts[0]
    return p


def _pairs(values: Sequence[str], what: str, *, env_fallback: bool = False) -> dict[str, str]:
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


def _echo(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def run_build(root: str, p: BuildParams) -> None:
    """Run ``lamina build`` with the parsed arguments ``p`` against the store at ``root``."""
    from lamina.errors import InvalidArgument

    t0 = time.monotonic()
    if p.file == "-" and p.context == "-":
        raise InvalidArgument("the context and the Dockerfile cannot both come from stdin",
                              hint="pass -f FILE or a context directory")
    if p.context != "-" and not os.path.isdir(p.context):
        raise InvalidArgument(f"unable to prepare context: path {p.context!r} not found",
                              hint="pass an existing directory as the build context")
    build_args = _pairs(p.build_args, "--build-arg", env_fallback=True)
    labels = _pairs(p.labels, "--label")
    sde = _source_date_epoch()
    memo = None
    if p.context != "-" and p.file != "-" and not p.lint and p.output is None:
        from lamina.build.memo import probe

        memo = probe(root, context=p.context, dockerfile=p.file, build_args=build_args,
                     target=p.target, labels=labels, network=p.network,
                     secrets=[_secret_pair(s) for s in p.secrets], source_date_epoch=sde,
                     runtime="runc")
        if not p.no_cache and not p.pull:
            hit = memo.lookup(p.tags)
            if hit is not None:
                _replay(hit, p, t0)
                return
    _full_build(root, p, build_args, labels, sde, memo, t0)


def _secret_pair(text: str) -> tuple[str, str]:
    from lamina.build.options import parse_secret

    spec = parse_secret(text)
    return spec.id, str(spec.src)


def _source_date_epoch() -> int | None:
    if not os.environ.get("SOURCE_DATE_EPOCH"):
        return None
    from lamina.layer import source_date_epoch_from_env

    return source_date_epoch_from_env()


def _replay(hit: Any, p: BuildParams, t0: float) -> None:
    """Print what a fully cached build prints, for a memo hit."""
    steps = 0
    if not p.quiet:
        out: list[str] = []
        for n, (name, is_step) in enumerate(hit.vertices, 1):
            out.append(f"#{n} {name}\n")
            if is_step:
                steps += 1
                out.append(f"#{n} CACHED\n\n")
            else:
                out.append(f"#{n} DONE 0.0s\n\n")
        v = len(hit.vertices) + 1
        out.append(f"#{v} exporting to image\n#{v} writing image {hit.image_id}\n")
        out.extend(f"#{v} naming to {full}\n" for full, _ in hit.names)
        out.append(f"#{v} DONE 0.0s\n\n")
        sys.stderr.write("".join(out))
    if p.iidfile:
        with open(p.iidfile, "w") as f:
            f.write(hit.image_id)
    if p.quiet:
        sys.stdout.write(hit.image_id + "\n")
        return
    hexid = hit.image_id.partition(":")[2]
    _echo(f"Successfully built {hexid[:12]} in {time.monotonic() - t0:.2f}s "
          f"(0 steps ran, {steps} cached)")
    for _, familiar in hit.names:
        _echo(f"Successfully tagged {familiar}")


def _full_build(root: str, p: BuildParams, build_args: dict[str, str], labels: dict[str, str],
                sde: int | None, memo: Any, t0: float) -> None:
    from pathlib import Path

    from lamina.build.builder import build
    from lamina.build.options import BuildOptions, parse_output, parse_secret
    from lamina.errors import BuildStepFailed
    from lamina.images.store import ImageStore

    store = ImageStore(root)
    tmp_context: Path | None = None
    try:
        dockerfile_text: str | None = None
        if p.file == "-":
            dockerfile_text = sys.stdin.read()
        if p.context == "-":
            import uuid

            from lamina.layer import apply_layer

            tmp_context = store.tmp / f"build-context-{uuid.uuid4().hex[:12]}"
            apply_layer(sys.stdin.buffer, tmp_context, same_owner=False)
            ctx_dir: Path = tmp_context
        else:
            ctx_dir = Path(p.context)
        dockerfile = Path(p.file) if p.file not in (None, "-") else None
        if dockerfile is None and tmp_context is not None and p.file is not None:
            dockerfile = tmp_context / p.file
        out_spec = parse_output(p.output) if p.output else None
        opts = BuildOptions(
            context=ctx_dir, dockerfile=dockerfile, dockerfile_text=dockerfile_text,
            tags=tuple(p.tags), build_args=build_args, target=p.target, no_cache=p.no_cache,
            pull=p.pull, labels=labels, network=p.network,
            secrets=tuple(parse_secret(s) for s in p.secrets), source_date_epoch=sde)
        if p.lint:
            _lint(opts)
        reporter: Any = QuietReporter() if p.quiet else PlainRenderer(sys.stderr)
        def fetch(name: str, policy: str) -> object:
            from lamina.transfer.pull import ensure_image

            return ensure_image(store, name, pull_policy=policy)  # type: ignore[arg-type]

        try:
            result = build(store, opts, reporter, memo, fetch)
        except BuildStepFailed as exc:
            if p.quiet and reporter.lines:
                _echo("\n".join(reporter.lines[-20:]))
            if exc.log_tail and not p.quiet:
                _echo("------\n > " + exc.message + ":\n" +
                      "\n".join(exc.log_tail.splitlines()[-10:]) + "\n------")
            raise
        if out_spec is not None:
            with open(out_spec.dest, "wb") as fh:
                store.save(fh, [str(result.image_id)], docker=out_spec.type == "docker")
    finally:
        if tmp_context is not None:
            import shutil

            shutil.rmtree(tmp_context, ignore_errors=True)
        store.close()
    if p.iidfile:
        Path(p.iidfile).write_text(str(result.image_id))
    if p.quiet:
        sys.stdout.write(f"{result.image_id}\n")
        return
    _echo(f"Successfully built {result.image_id.hex[:12]} in {time.monotonic() - t0:.2f}s "
          f"({result.run_steps} steps ran, {result.cached_steps} cached)")
    for name in result.familiar_names or result.names:
        _echo(f"Successfully tagged {name}")


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
        _echo(f"{path}:{line}: {getattr(f, 'code', '')} {getattr(f, 'message', f)}")
        if sev.lower().endswith("error"):
            errors += 1
    if errors:
        raise BuildError(f"--lint: {errors} error(s) in {path}", hint="fix them, or build without --lint")


def fast_main(args: list[str]) -> int | None:
    """``lamina build ARGS`` without click; ``None`` when the click command must run it."""
    p = parse_args(args)
    if p is None:
        return None
    from lamina.errors import LaminaError

    root = os.environ.get("LAMINA_ROOT") or _default_root()
    try:
        run_build(root, p)
    except LaminaError as exc:
        from lamina.cli import error_lines

        for line in error_lines(exc):
            _echo(line)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return 0


def _default_root() -> str:
    from lamina.cli import default_root

    return default_root()

"""``lamina parse``: print the syntax tree of a Dockerfile.

``--format json`` (the default) prints a JSON list with one object per
instruction (see :func:`lamina.build.dockerfile.dump.dump_json`); ``--format
buildkit`` prints BuildKit's s-expression dump.  An invalid Dockerfile gives a
compiler-style message on stderr and exit status 1::

    Dockerfile:3:5: error: ENV must have two arguments: 'ENV PATH' has a name but no value
      ENV PATH
          ^
    hint: write ENV PATH=value (use PATH="" for an empty value)
"""

from __future__ import annotations

import sys

import click

__all__ = ["command", "format_syntax_error"]


def format_syntax_error(exc: object) -> str:
    """``file:line:col: error: message``, the source line and a caret under the column."""
    from lamina.errors import DockerfileSyntaxError

    assert isinstance(exc, DockerfileSyntaxError)
    where = exc.file
    if exc.line:
        where += f":{exc.line}"
        if exc.column:
            where += f":{exc.column}"
    lines = [f"{where}: error: {exc.message}"]
    source = exc.source_line
    if source is not None and exc.line:
        column = exc.column
        if column <= 0:  # unknown: point at the start of the text
            column = len(source) - len(source.lstrip()) + 1
        column = min(column, len(source) + 1)
        # keep tabs so that the caret lines up under the same character
        pad = "".join("\t" if ch == "\t" else " " for ch in source[: column - 1])
        lines.append("  " + source)
        lines.append("  " + pad + "^")
    if exc.hint:
        lines.append(f"hint: {exc.hint}")
    return "\n".join(lines)


def _write(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    data = text.encode("utf-8", "surrogateescape")
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        stream.flush()
        buffer.write(data)
        buffer.flush()
    else:  # e.g. click's test runner with a text-only stream
        stream.write(data.decode("utf-8", "replace"))


@click.command("parse")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "buildkit"]),
    default="json",
    show_default=True,
    help="Output format.",
)
@click.option(
    "-f", "--file", "file_opt", metavar="FILE", help="Dockerfile to read ('-' for stdin)."
)
@click.argument("dockerfile", required=False, metavar="[DOCKERFILE|-]")
def command(fmt: str, file_opt: str | None, dockerfile: str | None) -> None:
    """Print the syntax tree of DOCKERFILE (default ./Dockerfile, '-' reads stdin)."""
    from lamina.build.dockerfile.dump import dump_buildkit, dump_json
    from lamina.build.dockerfile.parser import parse, parse_file
    from lamina.errors import DockerfileSyntaxError

    if file_opt is not None and dockerfile is not None and file_opt != dockerfile:
        raise click.UsageError("give the Dockerfile either as -f FILE or as an argument, not both")
    path = file_opt or dockerfile or "Dockerfile"
    try:
        doc = parse(sys.stdin.buffer.read(), "<stdin>") if path == "-" else parse_file(path)
    except DockerfileSyntaxError as exc:
        _write(format_syntax_error(exc) + "\n", err=True)
        sys.exit(1)

    for warning in doc.warnings:
        _write(f"{doc.path}:{warning.line}: warning: {warning.message}\n", err=True)
    if fmt == "buildkit":
        text = dump_buildkit(doc)
    else:
        import json

        text = json.dumps(dump_json(doc), indent=2, ensure_ascii=False)
    _write(text + "\n")

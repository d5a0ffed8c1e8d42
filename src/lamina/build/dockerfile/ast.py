"""The Dockerfile syntax tree: what the parser produces, before any expansion.

This module is the contract between the parser (:mod:`lamina.build.dockerfile.parser`)
and its users (typed instructions, the builder, the linter).  Nodes are frozen
dataclasses; positions are 1-based.

A :class:`Node` is one instruction as written::

    RUN --mount=type=cache,target=/root/.cache pip install -r requirements.txt

gives ``Node(cmd="run", keyword="RUN", flags=("--mount=type=cache,target=/root/.cache",),
args=("pip install -r requirements.txt",), json=False, ...)``.

``args`` are the argument nodes exactly as BuildKit's parser makes them (see
``../shared/conformance/README.md``): one element holding the raw text for shell
form, one per element for JSON (exec) form, key/value/separator triples for ENV
and LABEL, and so on.  ``ONBUILD`` keeps the wrapped instruction in ``sub``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Directive", "Dockerfile", "Heredoc", "Node", "ParseWarning", "Span"]


@dataclass(frozen=True)
class Span:
    """Where a node sits in the source (1-based lines and columns, inclusive)."""

    start_line: int
    end_line: int
    start_col: int = 1
    end_col: int = 1


@dataclass(frozen=True)
class Heredoc:
    """One heredoc body attached to an instruction (``[fd]<<[-]NAME``)."""

    name: str
    content: str
    expand: bool = True  # False when the delimiter was quoted ('EOF' or "EOF")
    chomp: bool = False  # True for <<- (leading tabs stripped)
    file_descriptor: int = 0


@dataclass(frozen=True)
class Node:
    """One instruction.

    ``cmd`` is the lower-cased keyword, ``keyword`` the keyword as written.
    ``flags`` are the raw leading ``--flag[=value]`` words (quotes removed).
    ``args`` are the argument nodes (see module doc).  ``json`` says whether the
    arguments came from a JSON array (exec form).  ``original`` is the source text
    of the instruction with continuation lines joined (as BuildKit keeps it).
    ``sub`` is the wrapped instruction for ``ONBUILD``.  ``heredocs`` are the bodies
    the instruction line opened (for ``ONBUILD`` they sit on both the outer node and
    ``sub``).  ``comments`` are the comment lines directly above the instruction, with
    ``#`` and surrounding blanks removed (an empty ``#`` line resets them).
    """

    cmd: str
    keyword: str
    flags: tuple[str, ...]
    args: tuple[str, ...]
    json: bool
    original: str
    span: Span
    heredocs: tuple[Heredoc, ...] = ()
    sub: Node | None = None
    comments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Directive:
    """A parser directive at the top of the file (``# syntax=…``, ``# escape=…``, ``# check=…``)."""

    name: str  # lower-cased
    value: str
    line: int


@dataclass(frozen=True)
class ParseWarning:
    """A non-fatal problem found while parsing (e.g. an empty continuation line)."""

    message: str
    detail: str
    line: int
    url: str = ""


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: its instructions in order, its directives and warnings.

    ``source_lines`` keeps the physical lines (BOM removed, line endings stripped) so
    that errors and lint findings can show the offending line with a caret.
    """

    nodes: tuple[Node, ...]
    directives: tuple[Directive, ...] = ()
    warnings: tuple[ParseWarning, ...] = ()
    escape: str = "\\"
    path: str = "Dockerfile"
    source_lines: tuple[str, ...] = field(default=(), repr=False)

    def directive(self, name: str) -> str | None:
        for d in self.directives:
            if d.name == name:
                return d.value
        return None

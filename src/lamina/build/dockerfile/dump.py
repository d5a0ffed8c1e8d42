"""Turn a parsed Dockerfile back into text: BuildKit's AST dump, JSON, or a Dockerfile.

Three views of one :class:`~lamina.build.dockerfile.ast.Dockerfile`:

* :func:`dump_buildkit` -- BuildKit's s-expression dump (``Node.Dump()``), the
  format of the golden ``result`` files: one ``(keyword ["--flag"] "arg" …)``
  line per instruction, arguments quoted like Go's ``strconv.Quote``::

      (from "alpine")
      (run "echo hi")
      (onbuild (copy ["--from=b"] "a" "/b"))

  The dump has no trailing newline (a ``result`` file is the dump plus ``"\\n"``).
* :func:`dump_json` -- one plain dict per instruction (what ``lamina parse``
  prints), with 1-based line numbers and the heredoc bodies.
* :func:`render` -- Dockerfile text that parses back to the same tree (same
  keywords, flags, argument nodes, heredocs), used to check the parser.
"""

from __future__ import annotations

from typing import Any

from lamina.build.dockerfile.ast import Dockerfile, Node
from lamina.build.dockerfile.parser import GO_SPACE

__all__ = ["dump_buildkit", "dump_json", "dump_node", "go_quote", "render"]

_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(text: str) -> str:
    """Quote ``text`` exactly like Go's ``strconv.Quote``.

    Printable characters (Go's ``unicode.IsPrint``, the same set as Python's
    ``str.isprintable``) stay literal, so ``"♥"`` is kept; ``"`` and ``\\`` are
    escaped; ``\\a \\b \\f \\n \\r \\t \\v`` use their short forms; other control
    characters become ``\\xNN``, other unprintable code points ``\\uNNNN`` or
    ``\\UNNNNNNNN``.  Surrogate escapes (bytes that were not UTF-8) come out as
    ``\\xNN`` of the original byte, as Go prints an invalid byte.
    """
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    out = ['"']
    for ch in text:
        code = ord(ch)
        simple = _SIMPLE_ESCAPES.get(ch)
        if simple is not None:
            out.append(simple)
        elif ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def dump_node(node: Node) -> str:
    """One instruction in BuildKit's dump format, without the surrounding parentheses."""
    text = node.cmd
    if node.flags:
        text += " [" + " ".join(go_quote(f) for f in node.flags) + "]"
    if node.cmd == "onbuild":
        if node.sub is not None:
            text += " (" + dump_node(node.sub) + ")"
    else:
        for arg in node.args:
            text += " " + go_quote(arg)
    return text.strip()


def dump_buildkit(doc: Dockerfile) -> str:
    """The whole tree as BuildKit dumps it: ``(node)`` lines joined by newlines."""
    return "\n".join("(" + dump_node(node) + ")" for node in doc.nodes)


def _heredoc_dicts(node: Node) -> list[dict[str, Any]]:
    return [
        {
            "name": h.name,
            "content": h.content,
            "expand": h.expand,
            "chomp": h.chomp,
            "file_descriptor": h.file_descriptor,
        }
        for h in node.heredocs
    ]


def dump_json(doc: Dockerfile) -> list[dict[str, Any]]:
    """One dict per instruction, in file order.

    Keys: ``cmd`` (lower case), ``sub_cmd`` (the instruction wrapped by ``ONBUILD``,
    else ``None``), ``json`` (exec form), ``flags``, ``value`` (the argument
    nodes), ``start_line``/``end_line`` (1-based, inclusive; heredoc bodies
    included), ``original`` (the instruction line with continuations joined) and
    ``heredocs`` (``name``, ``content``, ``expand``, ``chomp``,
    ``file_descriptor``).  For ``ONBUILD``, ``json`` and ``value`` describe the
    wrapped instruction, ``flags`` are ONBUILD's own and ``sub_flags`` the wrapped
    instruction's (``None`` elsewhere).
    """
    out: list[dict[str, Any]] = []
    for node in doc.nodes:
        target = node.sub if node.cmd == "onbuild" and node.sub is not None else node
        out.append(
            {
                "cmd": node.cmd,
                "sub_cmd": node.sub.cmd if node.sub is not None else None,
                "json": target.json,
                "flags": list(node.flags),
                "sub_flags": list(node.sub.flags) if node.sub is not None else None,
                "value": list(target.args),
                "start_line": node.span.start_line,
                "end_line": node.span.end_line,
                "original": node.original,
                "heredocs": _heredoc_dicts(node),
            }
        )
    return out


def _continues(line: str, escape: str) -> bool:
    stripped = line.rstrip(" \t")
    return stripped.endswith(escape) and (len(stripped) == 1 or stripped[-2] != escape)


_CHUNK = 8192  # characters per physical line when a long instruction is split


def _fold(line: str, escape: str) -> str:
    """Split a line that may exceed the physical-line limit into continuation lines.

    Continuation lines are joined with nothing in between, so any cut works as long
    as the text before it does not end in the escape character (that would escape
    the continuation) and the text after it starts with a character that is neither
    blank nor ``#`` (a blank or comment line would be skipped).
    """
    if len(line) <= _CHUNK:
        return line
    parts: list[str] = []
    start = 0
    while len(line) - start > _CHUNK:
        cut = start + _CHUNK
        while cut > start + 1 and (
            line[cut] in GO_SPACE or line[cut] == "#" or line[cut - 1] == escape
        ):
            cut -= 1
        if cut == start + 1:  # nothing suitable below the target: take the next one above
            cut = start + _CHUNK
            while cut < len(line) and (
                line[cut] in GO_SPACE or line[cut] == "#" or line[cut - 1] == escape
            ):
                cut += 1
            if cut >= len(line):
                break
        parts.append(line[start:cut] + escape)
        start = cut
    parts.append(line[start:])
    return "\n".join(parts)


def render(doc: Dockerfile) -> str:
    """Dockerfile text that parses back to the same tree as ``doc``.

    Each instruction is written as its joined line (``Node.original``) followed by
    its heredoc bodies and terminators; the parser directives come first.  Layout
    is not kept: continuations, comments and blank lines are gone.  A node with an
    empty keyword (only a dangling continuation at the end of a file makes one)
    is written as a lone escape character.  Text that ends in an escape (possible
    only when the source ended inside a continuation) gets one more, which the
    parser removes again.  Instructions too long for one physical line are folded
    into continuation lines.
    """
    out: list[str] = [f"# {d.name}={d.value}\n" for d in doc.directives]
    if doc.escape != "\\" and doc.directive("escape") is None:
        out.insert(0, f"# escape={doc.escape}\n")
    lines: list[str] = []
    for node in doc.nodes:
        if node.cmd == "" and node.keyword == "":
            lines.append(doc.escape)
            continue
        # The parser strips the first line's leading blanks and the line ending's
        # CRs anyway; doing it here makes the output a fixed point.
        line = node.original.lstrip(GO_SPACE).rstrip("\r")
        if _continues(line, doc.escape):
            # Only the last instruction of a file that ends inside a continuation
            # looks like this; one more escape keeps the text's own escape.
            line += doc.escape if line[-1] in " \t" else " " + doc.escape
        lines.append(line)
    if out or (lines and lines[0].startswith("\ufeff")):
        # A blank line ends the directive block (and keeps a leading U+FEFF from
        # being taken for a byte-order mark).
        out.append("\n")
    for node, line in zip(doc.nodes, lines, strict=True):
        out.append(_fold(line, doc.escape) + "\n")
        for heredoc in node.heredocs:
            out.append(heredoc.content)
            out.append(heredoc.name + "\n")
    return "".join(out)

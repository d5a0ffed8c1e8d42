"""A deliberately small Dockerfile parser for the lint tests, used only until
``lamina.build.dockerfile.parser`` lands (see :func:`parse`).  It produces the AST of
``lamina.build.dockerfile.ast`` for the constructs these tests use: continuation
lines, comments, flags, JSON form, ENV/LABEL triples, heredocs."""

from __future__ import annotations

import json
import re

from lamina.build.dockerfile.ast import Dockerfile, Heredoc, Node, Span

_HD = re.compile(r"(\d*)<<(-?)\s*(['\"]?)([A-Za-z0-9_]+)\3")


def _node(keyword: str, rest: str, original: str, span: Span,
          heredocs: tuple[Heredoc, ...]) -> Node:
    cmd = keyword.lower()
    flags: list[str] = []
    words = rest.split(" ")
    if cmd in ("run", "copy", "add", "from"):
        while words and words[0].startswith("--"):
            flags.append(words.pop(0))
        rest = " ".join(words)
    is_json = False
    args: tuple[str, ...]
    if cmd in ("run", "cmd", "entrypoint", "shell", "copy", "add", "volume") and rest.startswith("["):
        try:
            val = json.loads(rest)
            args, is_json = tuple(val), True
        except ValueError:
            args = (rest,)
    elif cmd in ("run", "cmd", "entrypoint", "shell", "maintainer", "user", "workdir"):
        args = (rest,) if rest else ()
    elif cmd in ("env", "label"):
        parts = rest.split()
        if parts and "=" not in parts[0]:
            args = (parts[0], rest[len(parts[0]):].strip(), "")
        else:
            out: list[str] = []
            for w in re.findall(r'(?:[^\s"]|"[^"]*")+', rest):
                k, _, v = w.partition("=")
                out += [k, v, "="]
            args = tuple(out)
    elif cmd == "onbuild":
        args = ()
    else:
        args = tuple(rest.split()) or ("",)
    return Node(cmd, keyword, tuple(flags), args, is_json, original, span, heredocs)


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    nodes: list[Node] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        start = i
        joined = line.lstrip()
        col = len(line) - len(joined) + 1
        while joined.rstrip().endswith("\\") and i + 1 < len(lines):
            joined = joined.rstrip()[:-1]
            i += 1
            while i < len(lines) and (lines[i].lstrip().startswith("#") or not lines[i].strip()):
                i += 1
            if i < len(lines):
                joined += lines[i]
        end = i
        keyword, _, rest = joined.partition(" ")
        heredocs: list[Heredoc] = []
        if keyword.lower() in ("run", "copy", "add") and not rest.lstrip().startswith("["):
            for m in _HD.finditer(rest):
                body: list[str] = []
                i += 1
                while i < len(lines) and lines[i].strip() != m.group(4):
                    body.append(lines[i] + "\n")
                    i += 1
                heredocs.append(Heredoc(m.group(4), "".join(body), not m.group(3),
                                        bool(m.group(2))))
        nodes.append(_node(keyword, rest.strip(), joined,
                           Span(start + 1, end + 1, col, len(lines[end]) + 1), tuple(heredocs)))
        i += 1
    return Dockerfile(tuple(nodes), path=path, source_lines=tuple(lines))

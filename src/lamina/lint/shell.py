"""Turn the shell text of a ``RUN`` into the simple commands it runs.

Rules want to ask "does this RUN call ``apt-get install`` without ``-y``?", which
needs the words of each simple command, not a regex over the text (a regex cannot
tell ``echo "apt-get install"`` from the real thing).  :func:`parse_script` parses
with `bashlex <https://github.com/idank/bashlex>`_, a port of bash's own grammar::

    >>> s = parse_script("apt-get update && sudo apt-get install -y curl | tee log")
    >>> [c.words for c in s.commands]
    [('apt-get', 'update'), ('apt-get', 'install', '-y', 'curl'), ('tee', 'log')]
    >>> s.commands[1].sudo, s.has_pipe
    (True, True)

bashlex gives up on some valid bash (``$((…))``, ``[[ … ]]``, ``case``); then a
small tokenizer of our own takes over: it honours quotes, ``$(…)`` and backticks,
splits at ``&& || ; | & ( )`` and newlines, and drops reserved words (``if``,
``then``, ``do`` …) at the start of a command.  It is less exact (no nesting, no
redirect targets inside compound words) but never fails, and
:attr:`Script.parser` says which one produced the result.

Wrappers are unwrapped so that rules see the real program: leading ``VAR=value``
assignments, ``sudo``, ``env``, ``command``, ``exec``, ``nice``, ``nohup``,
``time``; ``sh -c 'text'`` and ``bash -c 'text'`` are parsed recursively.

This module is pure (no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Command", "Script", "parse_script", "split_words"]

_RESERVED = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in",
     "case", "esac", "{", "}", "!", "function", "select", "time", "[[", "]]"}
)
_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "/bin/sh", "/bin/bash", "/bin/ash",
                     "/usr/bin/bash", "/bin/dash"})


@dataclass(frozen=True)
class Command:
    """One simple command, after unwrapping.

    ``words`` start with the program name (``apt-get``), quotes removed;
    ``offset`` is where the command starts in the script text; ``sudo`` tells
    whether it ran under ``sudo``; ``in_subshell`` whether it sits inside ``( … )``;
    ``redirects`` are the targets of ``>``/``>>`` redirections (``/etc/passwd``).
    """

    words: tuple[str, ...]
    offset: int = 0
    sudo: bool = False
    in_subshell: bool = False
    redirects: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The program, without a directory (``/usr/bin/pip3`` → ``pip3``)."""
        return self.words[0].rsplit("/", 1)[-1] if self.words else ""

    @property
    def args(self) -> tuple[str, ...]:
        """The words after the program name."""
        return self.words[1:]

    def has_flag(self, *flags: str) -> bool:
        """Whether any of ``flags`` is present (also as ``--flag=value`` or in a ``-abc`` cluster).

        A one-letter flag such as ``-y`` is found inside clusters like ``-qy``; long
        flags match exactly or with ``=value`` attached.
        """
        for word in self.args:
            for flag in flags:
                if word == flag or (flag.startswith("--") and word.startswith(flag + "=")):
                    return True
                if (
                    len(flag) == 2
                    and flag[0] == "-"
                    and word.startswith("-")
                    and not word.startswith("--")
                    and flag[1] in word[1:]
                ):
                    return True
        return False

    def subcommand(self) -> str | None:
        """The first argument that is not an option (``apt-get -q install x`` → ``install``)."""
        for word in self.args:
            if not word.startswith("-"):
                return word
        return None


@dataclass(frozen=True)
class Script:
    """The commands of one shell script, in order, and a few whole-script facts.

    ``has_pipe`` is true when some pipeline joins two or more commands;
    ``sets_pipefail`` when the script runs ``set -o pipefail``; ``parser`` is
    ``"bashlex"``, ``"fallback"`` or ``"exec"`` (JSON-form RUN, no shell at all).
    """

    text: str
    commands: tuple[Command, ...]
    has_pipe: bool = False
    sets_pipefail: bool = False
    sets_errexit: bool = False
    parser: str = "bashlex"

    def find(self, *names: str) -> tuple[Command, ...]:
        """The commands whose program name is one of ``names``."""
        return tuple(c for c in self.commands if c.name in names)


def parse_script(text: str) -> Script:
    """Parse shell ``text`` into a :class:`Script` (bashlex first, then the fallback)."""
    try:
        commands, has_pipe = _parse_bashlex(text)
        parser = "bashlex"
    except Exception:  # bashlex raises many kinds of errors, NotImplementedError among them
        commands, has_pipe = _parse_fallback(text)
        parser = "fallback"
    flat = _expand_nested(commands)
    return Script(
        text=text,
        commands=tuple(flat),
        has_pipe=has_pipe,
        sets_pipefail=any(_sets_option(c, "pipefail", "") for c in flat),
        sets_errexit=any(_sets_option(c, "errexit", "e") for c in flat),
        parser=parser,
    )


def exec_script(words: tuple[str, ...]) -> Script:
    """A JSON-form RUN: one command, no shell (``["apt-get", "install", "-y", "x"]``)."""
    return Script(text=" ".join(words), commands=(_unwrap(list(words), 0, False, ()),),
                  parser="exec")


def split_words(text: str) -> list[str]:
    """Split text into shell words with quotes removed (best effort, never raises)."""
    return [w for kind, w, _ in _tokens(text) if kind == "word"]


# --- bashlex -------------------------------------------------------------------------


def _parse_bashlex(text: str) -> tuple[list[Command], bool]:
    import bashlex  # heavy-ish; only imported when a RUN is analysed

    out: list[Command] = []
    state = {"pipe": False}
    for tree in bashlex.parse(text):
        _walk(tree, out, state, in_subshell=False)
    return out, state["pipe"]


def _walk(node: Any, out: list[Command], state: dict[str, bool], in_subshell: bool) -> None:
    kind = node.kind
    if kind == "command":
        words: list[str] = []
        redirects: list[str] = []
        for part in node.parts:
            if part.kind == "word":
                words.append(part.word)
            elif part.kind == "redirect" and getattr(part, "type", "") in (">", ">>"):
                target = getattr(part, "output", None)
                if target is not None and getattr(target, "kind", "") == "word":
                    redirects.append(str(target.word))
        if words and words[0] in _RESERVED:
            # e.g. "for" clauses are compound nodes, but be defensive
            words = words[1:]
        if words:
            out.append(_unwrap(words, node.pos[0], in_subshell, tuple(redirects)))
        # command substitutions inside words and assignments: walk them too
        stack = list(node.parts)
        while stack:
            part = stack.pop(0)
            if getattr(part, "kind", "") == "commandsubstitution":
                _walk(part.command, out, state, in_subshell=True)
            else:
                stack.extend(getattr(part, "parts", None) or [])
        return
    if kind == "pipeline" and sum(1 for p in node.parts if p.kind != "pipe") > 1:
        state["pipe"] = True
    if kind == "compound":
        sub = any(getattr(p, "kind", "") == "reservedword" and p.word == "(" for p in node.list)
        for part in node.list:
            _walk(part, out, state, in_subshell or sub)
        return
    for attr in ("parts", "list"):
        for part in getattr(node, attr, None) or []:
            if hasattr(part, "kind"):
                _walk(part, out, state, in_subshell)


# --- fallback tokenizer --------------------------------------------------------------

_OPERATORS = ("&&", "||", ";;", ";", "|", "&", "(", ")", "\n")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """Tokens ``(kind, value, offset)`` with kind ``word``, ``op`` or ``redir``."""
    toks: list[tuple[str, str, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r":
            i += 1
            continue
        if ch == "\\" and i + 1 < n and text[i + 1] == "\n":
            i += 2
            continue
        if ch == "#" and (i == 0 or text[i - 1] in " \t\n;&|("):
            while i < n and text[i] != "\n":
                i += 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            toks.append(("op", op, i))
            i += len(op)
            continue
        if ch in "<>":
            j = i
            while j < n and text[j] in "<>&-":
                j += 1
            toks.append(("redir", text[i:j], i))
            i = j
            continue
        start = i
        buf: list[str] = []
        while i < n and text[i] not in " \t\r\n;&|()<>":
            c = text[i]
            if c == "\\" and i + 1 < n:
                if text[i + 1] != "\n":
                    buf.append(text[i + 1])
                i += 2
            elif c == "'":
                j = text.find("'", i + 1)
                j = n if j < 0 else j
                buf.append(text[i + 1 : j])
                i = j + 1
            elif c == '"':
                j = i + 1
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                buf.append(text[i + 1 : min(j, n)].replace('\\"', '"'))
                i = j + 1
            elif (c == "$" and text.startswith("$(", i)) or c == "`":
                j = _skip_substitution(text, i)
                buf.append(text[i:j])
                i = j
            else:
                buf.append(c)
                i += 1
        toks.append(("word", "".join(buf), start))
    return toks


def _skip_substitution(text: str, i: int) -> int:
    """Index just past a ``$(…)`` or backtick substitution starting at ``i``."""
    if text[i] == "`":
        j = text.find("`", i + 1)
        return len(text) if j < 0 else j + 1
    depth, j = 0, i + 1
    while j < len(text):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return j


def _parse_fallback(text: str) -> tuple[list[Command], bool]:
    out: list[Command] = []
    has_pipe = False
    words: list[str] = []
    redirects: list[str] = []
    start = 0
    depth = 0
    pending_redirect = False

    def flush() -> None:
        nonlocal words, redirects
        while words and words[0] in _RESERVED:
            words = words[1:]
        if words and not words[0].endswith(")"):  # drop "pattern)" of case arms
            out.append(_unwrap(words, start, depth > 0, tuple(redirects)))
        words, redirects = [], []

    for kind, value, offset in _tokens(text):
        if kind == "op":
            if value == "|" and words:
                has_pipe = True
            flush()
            if value == "(":
                depth += 1
            elif value == ")":
                depth = max(0, depth - 1)
            continue
        if kind == "redir":
            pending_redirect = value.startswith(">")
            continue
        if pending_redirect:
            redirects.append(value)
            pending_redirect = False
            continue
        if not words:
            start = offset
        words.append(value)
    flush()
    return out, has_pipe


# --- unwrapping ----------------------------------------------------------------------

_WRAPPERS_NO_ARGS = frozenset({"command", "exec", "nohup", "time"})


def _unwrap(words: list[str], offset: int, in_subshell: bool,
            redirects: tuple[str, ...]) -> Command:
    sudo = False
    i = 0
    while i < len(words):
        w = words[i]
        if "=" in w and w.split("=", 1)[0].isidentifier():
            i += 1
            continue
        name = w.rsplit("/", 1)[-1]
        if name == "sudo":
            sudo = True
            i += 1
            while i < len(words) and words[i].startswith("-"):
                # options that take a value
                i += 2 if words[i] in ("-u", "-g", "-U", "-C", "-h") else 1
            continue
        if name == "env":
            i += 1
            while i < len(words) and (words[i].startswith("-") or "=" in words[i]):
                i += 1
            continue
        if name == "nice":
            i += 1
            if i < len(words) and words[i] == "-n":
                i += 2
            continue
        if name in _WRAPPERS_NO_ARGS:
            i += 1
            continue
        break
    return Command(tuple(words[i:]), offset, sudo, in_subshell, redirects)


def _expand_nested(commands: list[Command]) -> list[Command]:
    """Replace ``sh -c 'text'`` by the commands of ``text`` (offsets of the outer command)."""
    out: list[Command] = []
    for cmd in commands:
        out.append(cmd)
        if cmd.name in _SHELLS or (cmd.words[:1] and cmd.words[0] in _SHELLS):
            args = list(cmd.args)
            for k, word in enumerate(args):
                if word.startswith("-") and not word.startswith("--") and "c" in word[1:]:
                    if k + 1 < len(args):
                        inner = parse_script(args[k + 1])
                        out.extend(
                            Command(c.words, cmd.offset, c.sudo or cmd.sudo, cmd.in_subshell,
                                    c.redirects)
                            for c in inner.commands
                        )
                    break
    return out


def _sets_option(cmd: Command, long_name: str, short: str) -> bool:
    if cmd.name != "set":
        return False
    args = cmd.args
    for k, word in enumerate(args):
        if word.startswith("-") and not word.startswith("--"):
            if short and short in word[1:] and word[1:].isalpha():
                return True
            if "o" in word[1:] and k + 1 < len(args) and args[k + 1] == long_name:
                return True
    return False

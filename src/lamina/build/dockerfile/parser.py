"""The Dockerfile parser: text in, syntax tree out, exactly as BuildKit reads it.

Reading a Dockerfile happens in two layers, and this module is only the first:

1. **Lines to instructions** (here).  Physical lines are joined into logical
   instructions, comments and blank lines are dropped, parser directives at the
   top are honoured, heredoc bodies are cut out, and each instruction's arguments
   are split into *argument nodes* following the per-instruction rules of
   BuildKit's ``parser`` package (see ``../shared/conformance/README.md``, §1).
2. **Instructions to meaning** (:mod:`lamina.build.dockerfile.instructions`,
   :mod:`lamina.build.dockerfile.shell`): flag parsing, quote removal and
   variable expansion.  Nothing in this module expands a variable or removes
   a quote (except inside ``--flag`` words and JSON strings, as BuildKit does).

A short tour of the line rules::

    # escape=`            <- a directive: only in the leading comment block
    FROM alpine           <- keyword, then arguments
    RUN echo a `          <- the escape char at the end continues the line;
        b                    the next line is appended as is: "echo a     b"
    # a comment           <- comments inside a continuation are skipped
    COPY <<EOF /x         <- a heredoc: the body lines follow the instruction
    body
    EOF

Unknown keywords are **not** errors: ``WOKRDIR /x`` becomes a node whose only
argument is ``""`` (the builder and the linter report it later), exactly as
BuildKit does.  Errors raised here are :class:`~lamina.errors.DockerfileSyntaxError`
carrying the file, line, column and source line.

Byte-level quirks are kept on purpose so that the tree (and its dump) matches
BuildKit's byte for byte: input bytes that are not UTF-8 are carried through as
``surrogateescape`` code points (``\\udc80``-``\\udcff``); BuildKit reads
``--flag`` words and the ``HEALTHCHECK`` type byte by byte, so a non-ASCII byte in
a flag comes out as the Latin-1 character of that byte (``--from=é`` gives
``--from=Ã©``), like ``docker build`` does.
"""

from __future__ import annotations

import json as _json
import re
from dataclasses import dataclass, replace
from os import PathLike, fspath

from lamina.build.dockerfile.ast import Directive, Dockerfile, Heredoc, Node, ParseWarning, Span
from lamina.errors import DockerfileSyntaxError, InvalidArgument, NotFound

__all__ = [
    "GO_SPACE",
    "MAX_LINE_BYTES",
    "DirectiveMatch",
    "DockerfileNotFound",
    "chomp_heredoc_content",
    "detect_syntax",
    "heredocs_from_line",
    "parse",
    "parse_directive",
    "parse_file",
    "parse_heredoc_word",
    "parse_json_array",
    "parse_words",
    "scan_directives",
]

#: The longest physical line (in UTF-8 bytes, line ending excluded) BuildKit reads.
MAX_LINE_BYTES = 65535

#: Go's unicode.IsSpace: ASCII blanks, NEL, NBSP and the Unicode White_Space set.
# (Python's str.isspace() also counts \x1c-\x1f, which Go does not.)
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_GO_SPACE = GO_SPACE
_GO_SPACE_SET = frozenset(_GO_SPACE)
_RE_GO_SPACE_RUN = re.compile("[" + "".join(f"\\u{ord(c):04x}" for c in _GO_SPACE) + "]+")
# BuildKit splits the keyword from its arguments (and FROM/EXPOSE/COPY words) on these only.
_RE_TOKEN_WS = re.compile(r"[\t\v\f\r ]+")
# Bytes that Go's unicode.IsSpace(rune(b)) accepts when BuildKit walks a string byte by byte;
# as text, the two high bytes only exist as surrogateescape code points.
_BYTE_SPACE = b"\t\n\v\f\r \x85\xa0"
_FLAG_LEAD_SPACE = "\t\n\v\f\r \udc85\udca0"
# Go's regexp \s is [\t\n\f\r ] (no \v).
_RE_DIRECTIVE = re.compile(
    r"#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z"
)
_RE_DIRECTIVE_SLASH = re.compile(
    r"//[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z"
)
_VALID_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_RE_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_RE_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_RE_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_UINT64 = (1 << 64) - 1

_HEREDOC_COMMANDS = frozenset({"add", "copy", "run"})
_ONBUILD_FORBIDDEN = frozenset({"onbuild", "from", "maintainer"})

_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


class DockerfileNotFound(NotFound):
    """The Dockerfile to parse does not exist."""

    code = "dockerfile-not-found"


# --------------------------------------------------------------------------- errors


class _Err(Exception):
    """An error inside one logical line; ``offset`` is a character index into it."""

    def __init__(self, message: str, offset: int | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint

    def shifted(self, delta: int) -> _Err:
        if self.offset is not None:
            self.offset += delta
        return self


class _LexError(Exception):
    """The shell-word lexer used for heredoc detection hit malformed quoting."""


# --------------------------------------------------------------------------- small helpers


def _to_text(text: str | bytes) -> str:
    """Decode input the way Go sees bytes: UTF-8, invalid bytes kept as surrogate escapes."""
    if isinstance(text, bytes | bytearray | memoryview):
        return bytes(text).decode("utf-8", "surrogateescape")
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # Lone surrogates outside the escape range cannot be UTF-8; Go would see their
        # three (invalid) bytes, so that is what we keep.
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogateescape")
    return text


def _to_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # pragma: no cover - _to_text normalises input
        return text.encode("utf-8", "surrogatepass")


def _from_bytes(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _utf8_len(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(_to_bytes(text))


def _trim_go(text: str) -> str:
    return text.strip(_GO_SPACE)


def _go_lower(text: str) -> str:
    """Go's strings.ToLower: simple (one-to-one) case mapping, no context rules."""
    if text.isascii():
        return text.lower()
    out = []
    for ch in text:
        low = ch.lower()
        out.append(low if len(low) == 1 else ("i" if ch == "\u0130" else ch))
    return "".join(out)


def _replace_surrogates(text: str) -> str:
    """Go turns bytes that are not UTF-8 (and lone surrogates) into U+FFFD when decoding runes."""
    if _RE_SURROGATE.search(text) is None:
        return text
    return _RE_SURROGATE.sub("\ufffd", text)


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """Remove a trailing line-continuation escape; say whether the line continues.

    BuildKit's rule (``([^E])E[ \\t]*$|^E[ \\t]*$``): the escape char is the last
    non-blank character and is not itself preceded by the escape char.  So a
    trailing ``\\\\`` is an escaped backslash, not a continuation.
    """
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        if len(stripped) == 1:
            return "", True
        if stripped[-2] != escape:
            return stripped[:-1], True
    return line, False


# --------------------------------------------------------------------------- directives


@dataclass(frozen=True)
class DirectiveMatch:
    """A directive found by :func:`detect_syntax` / :func:`parse_directive`.

    ``value`` is the first word of the directive's text (what the frontend uses,
    e.g. the image of ``# syntax=docker/dockerfile:1 // comment``), ``cmdline``
    the whole text, ``line`` its 1-based line (0 when it came from a JSON object).
    """

    name: str
    value: str
    cmdline: str
    line: int


class _DirectiveScanner:
    """BuildKit's directive rules: only a leading block of ``#key=value`` comment lines.

    The first line that is not a directive of a known kind (``syntax``, ``escape``,
    ``check``) ends the block for good; repeating a directive is an error.
    """

    __slots__ = ("done", "line", "pattern", "seen")

    def __init__(self, pattern: re.Pattern[str] = _RE_DIRECTIVE, line: int = 0) -> None:
        self.pattern = pattern
        self.line = line
        self.done = False
        self.seen: set[str] = set()

    def feed(self, text: str) -> Directive | None:
        self.line += 1
        if self.done:
            return None
        m = self.pattern.match(text)
        if m is None:
            self.done = True
            return None
        name = m.group(1).lower()
        if name not in _VALID_DIRECTIVES:
            self.done = True
            return None
        if name in self.seen:
            raise _Err(
                f"only one {name} parser directive can be used",
                0,
                f"remove the repeated '# {name}=' line; keep one at the top of the file",
            )
        self.seen.add(name)
        return Directive(name=name, value=m.group(2), line=self.line)


def _check_escape(value: str) -> None:
    if value not in ("\\", "`"):
        raise _Err(
            f"invalid escape token '{value}' does not match ` or \\",
            0,
            "use '# escape=\\' (the default) or '# escape=`'",
        )


def scan_directives(text: str | bytes) -> tuple[Directive, ...]:
    """The parser directives at the top of ``text``, as BuildKit's ``DirectiveParser.ParseAll``.

    Lines are taken as they are (no whitespace stripping, no BOM or shebang
    handling); scanning stops at the first line that is not a known directive.
    Raises :class:`DockerfileSyntaxError` for a repeated directive.
    """
    s = _to_text(text)
    scanner = _DirectiveScanner()
    found: list[Directive] = []
    for raw in s.split("\n"):
        if scanner.done:
            break
        try:
            d = scanner.feed(raw[:-1] if raw.endswith("\r") else raw)  # bufio.ScanLines
        except _Err as exc:
            raise DockerfileSyntaxError(
                exc.message, line=scanner.line, column=1, source_line=raw, hint=exc.hint
            ) from None
        if d is not None:
            found.append(d)
    return tuple(found)


def _first_directive(
    key: str, text: str, pattern: re.Pattern[str], line: int
) -> DirectiveMatch | None:
    scanner = _DirectiveScanner(pattern, line)
    for raw in text.split("\n"):
        if scanner.done:
            break
        try:
            d = scanner.feed(raw[:-1] if raw.endswith("\r") else raw)
        except _Err:
            break
        if d is not None and d.name == key:
            return DirectiveMatch(key, d.value.split(" ", 1)[0], d.value, d.line)
    return None


def parse_directive(
    key: str, text: str | bytes, *, any_format: bool = False
) -> DirectiveMatch | None:
    """Find directive ``key`` the way BuildKit's frontend does (``ParseDirective``).

    Unlike the main parser, a leading UTF-8 BOM and a ``#!`` shebang line are skipped
    first.  With ``any_format`` (only used for ``syntax``) the directive may also be
    written ``//key=value`` or be a key of a JSON object that makes up the whole text.
    Returns ``None`` when not found.
    """
    s = _to_text(text)
    s = s.removeprefix("\ufeff")
    line = 0
    first, _, rest = s.partition("\n")
    if first.startswith("#!"):
        s = rest
        line = 1
    found = _first_directive(key, s, _RE_DIRECTIVE, line)
    if found is not None or not any_format:
        return found
    found = _first_directive(key, s, _RE_DIRECTIVE_SLASH, line)
    if found is not None:
        return found
    try:
        obj = _json.loads(s)
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, str):
            return DirectiveMatch(key, value, value, line)
    return None


def detect_syntax(text: str | bytes) -> DirectiveMatch | None:
    """The frontend image named by ``# syntax=`` (or ``//syntax=``, or ``{"syntax": …}``)."""
    return parse_directive("syntax", text, any_format=True)


# --------------------------------------------------------------------------- argument parsers


def parse_words(rest: str, escape: str = "\\") -> list[str]:
    """Split ``rest`` into words the way ARG, ENV and LABEL arguments are split.

    Words are separated by whitespace outside quotes.  Quotes group but **stay in
    the word**, and so do escape characters (``foo\\ bar`` is one word, backslash
    included); removing them is the job of variable expansion later.  An escape
    character at the very end of the text is dropped.
    """
    if "'" not in rest and '"' not in rest and escape not in rest:
        words = [w for w in _RE_GO_SPACE_RUN.split(rest) if w]
    else:
        words = _parse_words_slow(rest, escape)
    if _RE_SURROGATE.search(rest) is not None:
        words = [_replace_surrogates(w) for w in words]
    return words


def _parse_words_slow(rest: str, escape: str) -> list[str]:
    in_spaces, in_word, in_quote = 0, 1, 2
    words: list[str] = []
    word: list[str] = []
    phase = in_spaces
    quote = ""
    blank_ok = False
    n = len(rest)
    pos = 0
    ch = ""
    while pos <= n:
        if pos < n:
            ch = rest[pos]
        if phase == in_spaces:
            if pos == n:
                break
            if ch in _GO_SPACE_SET:
                pos += 1
                continue
            phase = in_word
        if pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == in_word:
            if ch in _GO_SPACE_SET:
                phase = in_spaces
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in "'\"":
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            word.append(ch)
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


class _JSONOverflow(ValueError):
    pass


def _go_number(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        # Go's decoder cannot store it in a float64 and reports a type error,
        # which BuildKit treats as "not JSON" (shell form).
        raise _JSONOverflow(text)
    return value


def _no_constant(text: str) -> None:
    raise ValueError(f"{text} is not JSON")


_JSON_DECODER = _json.JSONDecoder(
    parse_float=_go_number, parse_int=_go_number, parse_constant=_no_constant
)


def _describe_json(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean (true)" if value else "a boolean (false)"
    if isinstance(value, float):
        shown = repr(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
        return f"a number ({shown})"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _json_element_offset(text: str, index: int) -> int:
    """Character offset of element ``index`` of the JSON array starting ``text``."""
    pos = 1
    ws = " \t\n\r"
    for i in range(index + 1):
        while pos < len(text) and text[pos] in ws:
            pos += 1
        if i == index:
            return pos
        try:
            _, pos = _JSON_DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError):  # pragma: no cover - text already decoded once
            return 0
        while pos < len(text) and text[pos] in ws:
            pos += 1
        pos += 1  # the comma
    return 0  # pragma: no cover


def _parse_json(rest: str) -> list[str] | None:
    """BuildKit's parseJSON: a JSON array of strings, ``None`` if it is not JSON at all.

    Only the first JSON value is read; text after the closing bracket is ignored
    (``CMD ["a"] junk`` is ``["a"]``), as Go's ``json.Decoder`` does.  A valid array
    with a non-string element raises.
    """
    lead = len(rest) - len(rest.lstrip(_GO_SPACE))
    text = rest[lead:]
    if not text.startswith("["):
        return None
    try:
        value, _ = _JSON_DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        return None
    out: list[str] = []
    for i, element in enumerate(value):
        if not isinstance(element, str):
            raise _Err(
                f"JSON array element {i + 1} is {_describe_json(element)}, not a string: "
                f"{_NOT_STRING_ARRAY}",
                lead + _json_element_offset(text, i),
                'quote every element (e.g. "42"), or drop the brackets to use the shell form',
            )
        out.append(_replace_surrogates(element))
    return out


def parse_json_array(rest: str) -> list[str] | None:
    """Public form of the exec-form test: the strings, or ``None`` for "not a JSON array".

    Raises :class:`DockerfileSyntaxError` when ``rest`` is a JSON array holding
    something other than strings.
    """
    try:
        return _parse_json(_to_text(rest))
    except _Err as exc:
        raise DockerfileSyntaxError(
            exc.message, line=1, column=(exc.offset or 0) + 1, source_line=rest, hint=exc.hint
        ) from None


def _maybe_json(rest: str) -> tuple[tuple[str, ...], bool]:
    if rest == "":
        return (), False
    parsed = _parse_json(rest)
    if parsed is not None:
        return tuple(parsed), True
    return (rest,), False


def _maybe_json_to_list(rest: str) -> tuple[tuple[str, ...], bool]:
    parsed = _parse_json(rest)
    if parsed is not None:
        return tuple(parsed), True
    if rest == "":
        return (), False
    return tuple(_RE_TOKEN_WS.split(rest)), False


def _whitespace_list(rest: str) -> tuple[str, ...]:
    if rest == "":
        return ()
    return tuple(_RE_TOKEN_WS.split(rest))


def _name_value(rest: str, keyword: str, escape: str) -> tuple[str, ...]:
    words = parse_words(rest, escape)
    if not words:
        return ()
    if "=" not in words[0]:
        parts = _RE_TOKEN_WS.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _Err(
                f"{keyword} must have two arguments: '{keyword} {rest}' has a name but no value",
                0,
                f'write {keyword} {parts[0]}=value (use {parts[0]}="" for an empty value)',
            )
        return (parts[0], parts[1], "")
    out: list[str] = []
    for word in words:
        if "=" not in word:
            where = rest.find(word)
            raise _Err(
                f"Syntax error - can't find = in {_go_quote_short(word)}. "
                "Must be of the form: name=value",
                max(where, 0),
                f"every word after {keyword} must be name=value; quote values "
                'that contain spaces (name="a b")',
            )
        key, value = word.split("=", 1)
        out += (key, value, "=")
    return tuple(out)


def _go_quote_short(text: str) -> str:
    from lamina.build.dockerfile.dump import go_quote

    return go_quote(text)


def _healthcheck(rest: str) -> tuple[tuple[str, ...], bool]:
    """``HEALTHCHECK [type [args]]``: the type word verbatim, then the rest like CMD.

    BuildKit finds the end of the type byte by byte, so a non-ASCII byte that Go
    counts as a space (NEL/NBSP continuation bytes) ends it too; kept as is.
    """
    data = _to_bytes(rest)
    n = len(data)
    sep = 0
    while sep < n and data[sep] not in _BYTE_SPACE:
        sep += 1
    nxt = sep
    while nxt < n and data[nxt] in _BYTE_SPACE:
        nxt += 1
    if sep == 0:
        return (), False
    typ = _from_bytes(data[:sep])
    args, is_json = _maybe_json(_from_bytes(data[nxt:]))
    return (typ, *args), is_json


def _extract_flags(text: str) -> tuple[str, tuple[str, ...]]:
    """Split leading ``--flag[=value]`` words off ``text``; return (rest, flags).

    Quotes inside a flag word group and are removed, ``\\`` escapes the next
    character, and a lone ``--`` ends the flags (and is dropped).  BuildKit does
    this byte by byte; each byte of a non-ASCII flag becomes one Latin-1 character.
    """
    lead = text.lstrip(_FLAG_LEAD_SPACE)
    if not lead.startswith("--"):
        return lead, ()
    data = _to_bytes(text)
    n = len(data)
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    words: list[str] = []
    word: list[str] = []
    quote = 0
    blank_ok = False
    pos = 0
    ch = 0
    while pos <= n:
        if pos < n:
            ch = data[pos]
        if phase == in_spaces:
            if pos == n:
                break
            if ch in _BYTE_SPACE:
                pos += 1
                continue
            if ch != 0x2D or pos + 1 == n or data[pos + 1] != 0x2D:
                return _from_bytes(data[pos:]), tuple(words)
            phase = in_word
        if pos == n:
            w = "".join(word)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if phase == in_word:
            if ch in _BYTE_SPACE:
                phase = in_spaces
                w = "".join(word)
                if w == "--":
                    return _from_bytes(data[pos:]), tuple(words)
                if blank_ok or w:
                    words.append(w)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in (0x27, 0x22):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == 0x5C:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = data[pos]
            word.append(chr(ch))
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == 0x5C:
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = data[pos]
        word.append(chr(ch))
        pos += 1
    return "", tuple(words)


# --------------------------------------------------------------------------- heredocs


class _Words:
    """BuildKit's wordsStruct: accumulates shell words, splitting on whitespace."""

    __slots__ = ("in_word", "word", "words")

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _GO_SPACE_SET:
            if self.in_word and self.word:
                self.words.append("".join(self.word))
                self.word = []
                self.in_word = False
        else:
            self.word.append(ch)
            self.in_word = True

    def add_raw(self, text: str) -> None:
        self.word.append(text)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.word:
            joined = "".join(self.word)
            if joined:
                self.words.append(joined)
            self.word = []
            self.in_word = False
        return self.words


class _Lexer:
    """Just enough of BuildKit's shell lexer to find heredoc words.

    Used with an empty environment and "skip unset variables", so ``$VAR`` and
    ``${…}`` stay as written; ``raw_quotes``/``raw_escapes`` keep quotes and
    escape characters in the words.  ``<<`` (with an optional ``-``) swallows the
    blanks after it, so ``<<  EOF`` is one word.  Malformed quoting raises
    :class:`_LexError`.
    """

    __slots__ = ("i", "raw_escapes", "raw_quotes", "s")

    def __init__(self, text: str, raw_quotes: bool, raw_escapes: bool) -> None:
        self.s = text
        self.i = 0
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes

    def words(self) -> list[str]:
        acc = _Words()
        self._stop_on(None, acc)
        return acc.result()

    def _stop_on(self, stop: str | None, acc: _Words | None) -> str:
        s = self.s
        n = len(s)
        out: list[str] = []
        while self.i < n:
            ch = s[self.i]
            if stop is not None and ch == stop:
                self.i += 1
                return "".join(out)
            if ch == "'" or ch == '"' or ch == "<":
                tmp = (
                    self._single() if ch == "'" else self._double() if ch == '"' else self._angle()
                )
                out.append(tmp)
                if acc is not None:
                    acc.add_raw(tmp)
            elif ch == "$":
                tmp = self._dollar()
                out.append(tmp)
                if acc is not None:
                    acc.add_string(tmp)
            else:
                self.i += 1
                if ch == "\\":
                    if self.raw_escapes:
                        out.append(ch)
                        if acc is not None:
                            acc.add_raw(ch)
                    if self.i >= n:
                        break
                    ch = s[self.i]
                    self.i += 1
                    if acc is not None:
                        acc.add_raw(ch)
                elif acc is not None:
                    acc.add_char(ch)
                out.append(ch)
        if stop is not None:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out)

    def _single(self) -> str:
        s = self.s
        end = s.find("'", self.i + 1)
        if end < 0:
            raise _LexError("unexpected end of statement while looking for matching single-quote")
        body = s[self.i + 1 : end]
        self.i = end + 1
        return f"'{body}'" if self.raw_quotes else body

    def _double(self) -> str:
        s = self.s
        n = len(s)
        self.i += 1
        out: list[str] = []
        while True:
            if self.i >= n:
                raise _LexError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            ch = s[self.i]
            if ch == '"':
                self.i += 1
                break
            if ch == "$":
                out.append(self._dollar())
                continue
            self.i += 1
            if ch == "\\":
                if self.raw_escapes:
                    out.append(ch)
                if self.i >= n:
                    continue
                nxt = s[self.i]
                if nxt in '"$\\':
                    self.i += 1
                    out.append(nxt)
                elif not self.raw_escapes:
                    out.append(ch)
                continue
            out.append(ch)
        body = "".join(out)
        return f'"{body}"' if self.raw_quotes else body

    def _angle(self) -> str:
        s = self.s
        n = len(s)
        self.i += 1
        if self.i >= n or s[self.i] != "<":
            return "<"
        self.i += 1
        start = self.i
        if self.i < n and s[self.i] == "-":
            self.i += 1
        while self.i < n and s[self.i] in " \t":
            self.i += 1
        return "<<" + s[start : self.i]

    def _name(self) -> None:
        s = self.s
        n = len(s)
        if self.i >= n:
            return
        ch = s[self.i]
        if ch.isdecimal():
            while self.i < n and s[self.i].isdecimal():
                self.i += 1
            return
        if ch in "@*#?-$!0":
            self.i += 1
            return
        while self.i < n and (s[self.i].isalpha() or s[self.i].isdecimal() or s[self.i] == "_"):
            self.i += 1

    def _dollar(self) -> str:
        s = self.s
        n = len(s)
        start = self.i
        self.i += 1
        if self.i >= n or s[self.i] != "{":
            self._name()
            return s[start : self.i]
        self.i += 1
        if self.i >= n:
            raise _LexError("syntax error: missing '}'")
        if s[self.i] in "{}:":
            raise _LexError("syntax error: bad substitution")
        self._name()
        if self.i >= n:
            raise _LexError("syntax error: missing '}'")
        ch = s[self.i]
        self.i += 1
        if ch == "}":
            return s[start : self.i]
        if ch == ":":
            if self.i >= n:
                raise _LexError("syntax error: missing '}'")
            self.i += 1
        elif ch not in "+-?#%/":
            raise _LexError(f"unsupported modifier ({ch}) in substitution")
        self._stop_on("}", None)
        return s[start : self.i]


def _count_quotes(text: str) -> int:
    return text.count("'") + text.count('"')


def _heredoc_from_word(word: str) -> Heredoc | None:
    m = _RE_HEREDOC.match(word)
    if m is None:
        return None
    digits, dash, rest = m.group(1), m.group(2), m.group(3)
    if not rest:
        return None
    fd = min(int(digits), _MAX_UINT64) if digits else 0
    words = _Lexer(rest, False, False).words()
    if len(words) != 1:
        return None
    raw = _Lexer(rest, True, False).words()
    if len(raw) != 1:  # pragma: no cover - both lexings split identically
        raise _LexError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    return Heredoc(
        name=words[0],
        content="",
        expand=_count_quotes(words[0]) == _count_quotes(raw[0]),
        chomp=dash == "-",
        file_descriptor=fd,
    )


def parse_heredoc_word(word: str) -> Heredoc | None:
    """Classify one shell word: a heredoc opener (``[n]<<[-]NAME``) or not.

    Returns the heredoc (empty ``content``) or ``None``.  Any quoting in the
    name turns ``expand`` off and is removed from it (``<<'EOF'``, ``<<E"O"F``);
    an escaped quote (``<<eo\\'f``) is part of the name and keeps expansion on.
    Raises :class:`DockerfileSyntaxError` for unbalanced quotes in the name.
    """
    try:
        return _heredoc_from_word(_to_text(word))
    except _LexError as exc:
        raise DockerfileSyntaxError(
            f"invalid heredoc {word!r}: {exc}",
            line=1,
            column=1,
            source_line=word,
            hint="balance the quotes around the heredoc name, e.g. <<'EOF'",
        ) from None


def heredocs_from_line(line: str) -> list[Heredoc]:
    """The heredocs an instruction line opens, in order (bodies not filled in).

    The line is split into shell words (quotes and escapes kept, so ``'<<EOF'``
    opens nothing); each word is tried with :func:`parse_heredoc_word`.  A line
    the lexer cannot split (unbalanced quotes) opens no heredoc, as in BuildKit.
    """
    try:
        return _heredocs_from_line(_to_text(line))
    except _LexError as exc:
        raise DockerfileSyntaxError(str(exc), line=1, column=1, source_line=line) from None


def _heredocs_from_line(line: str) -> list[Heredoc]:
    try:
        words = _Lexer(line, True, True).words()
    except _LexError:
        return []
    docs: list[Heredoc] = []
    for word in words:
        doc = _heredoc_from_word(word)
        if doc is not None:
            docs.append(doc)
    return docs


def chomp_heredoc_content(content: str) -> str:
    """Strip leading tabs from every line of a ``<<-`` heredoc body (done after parsing)."""
    return _RE_LEADING_TABS.sub("", content)


# --------------------------------------------------------------------------- instructions


@dataclass(frozen=True)
class _Parts:
    """An instruction before it knows its span (heredocs are read after it)."""

    cmd: str
    keyword: str
    flags: tuple[str, ...]
    args: tuple[str, ...]
    json: bool
    original: str
    sub: _Parts | None


def _split_command(line: str) -> tuple[str, tuple[str, ...], str, int]:
    """keyword, flags, argument text and the argument text's offset in ``line``."""
    text = _trim_go(line)
    m = _RE_TOKEN_WS.search(text)
    if m is None:
        return text, (), "", len(line)
    keyword = text[: m.start()]
    rest, flags = _extract_flags(text[m.end() :])
    args = _trim_go(rest)
    offset = len(line.rstrip(_GO_SPACE)) - len(args)
    return keyword, flags, args, max(offset, 0)


def _new_parts(line: str, escape: str) -> _Parts:
    keyword, flags, rest, offset = _split_command(line)
    cmd = _go_lower(keyword)
    is_json = False
    sub: _Parts | None = None
    args: tuple[str, ...]
    try:
        if cmd in ("run", "cmd", "entrypoint", "shell"):
            args, is_json = _maybe_json(rest)
        elif cmd in ("copy", "add", "volume"):
            args, is_json = _maybe_json_to_list(rest)
        elif cmd in ("from", "expose"):
            args = _whitespace_list(rest)
        elif cmd in ("env", "label"):
            args = _name_value(rest, cmd.upper(), escape)
        elif cmd == "arg":
            args = tuple(parse_words(rest, escape))
        elif cmd in ("maintainer", "user", "workdir", "stopsignal"):
            args = (rest,) if rest else ()
        elif cmd == "healthcheck":
            args, is_json = _healthcheck(rest)
        elif cmd == "onbuild":
            args = ()
            if rest:
                # Check the trigger before parsing it, so that a line of many
                # ONBUILDs fails at once instead of recursing through them all.
                trigger = _go_lower(_split_command(rest)[0])
                if trigger in _ONBUILD_FORBIDDEN:
                    if trigger == "onbuild":
                        message = "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
                    else:
                        message = f"{trigger.upper()} isn't allowed as an ONBUILD trigger"
                    raise _Err(
                        message, 0, "ONBUILD takes one build instruction such as RUN or COPY"
                    )
                sub = _new_parts(rest, escape)
        else:
            args = ("",)
    except _Err as exc:
        raise exc.shifted(offset) from None
    return _Parts(cmd, keyword, flags, args, is_json, line, sub)


def _takes_heredocs(parts: _Parts) -> bool:
    target = parts.sub if parts.cmd == "onbuild" and parts.sub is not None else parts
    return target.cmd in _HEREDOC_COMMANDS and not target.json


# --------------------------------------------------------------------------- the parser


def _too_long_index(raw_lines: list[str]) -> int:
    limit = MAX_LINE_BYTES
    quarter = limit // 4
    for idx, raw in enumerate(raw_lines):
        if len(raw) > quarter and _utf8_len(raw) > limit:
            return idx
    return -1


def parse(text: str | bytes, path: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile ``text`` (``str`` or ``bytes``) into a :class:`Dockerfile` tree.

    ``path`` is only used in error messages.  Raises
    :class:`~lamina.errors.DockerfileSyntaxError` for input BuildKit rejects: no
    instructions at all, ``ENV``/``LABEL`` without values, a JSON array holding a
    non-string, an unterminated heredoc, a bad or repeated parser directive, a
    forbidden ``ONBUILD`` trigger, or a physical line over 65535 bytes.
    """
    s = _to_text(text)
    raw_lines = s.split("\n")
    if raw_lines[-1] == "":
        raw_lines.pop()
    ends_with_newline = s.endswith("\n")
    if raw_lines and raw_lines[0].startswith("\ufeff"):
        raw_lines[0] = raw_lines[0][1:]
    lines = [r.rstrip("\r") if r.endswith("\r") else r for r in raw_lines]
    n = len(lines)
    too_long = _too_long_index(raw_lines)

    escape = "\\"
    directives: list[Directive] = []
    scanner = _DirectiveScanner()
    warnings: list[ParseWarning] = []
    nodes: list[Node] = []
    comments: list[str] = []
    go_space = _GO_SPACE

    def fail(message: str, line: int, column: int = 0, hint: str = "") -> DockerfileSyntaxError:
        source = lines[line - 1] if 0 < line <= n else None
        return DockerfileSyntaxError(
            message, file=path, line=line, column=column, source_line=source, hint=hint
        )

    def too_long_error(index: int) -> DockerfileSyntaxError:
        size = _utf8_len(raw_lines[index])
        return fail(
            f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES} "
            f"(line {index + 1} is {size} bytes)",
            index + 1,
            1,
            "split the line with a line continuation (the escape character at the end of a line)",
        )

    i = 0
    while i < n:
        if i == too_long:
            raise too_long_error(i)
        raw = lines[i]
        i += 1
        lineno = i
        stripped = raw.lstrip(go_space)
        is_comment = stripped.startswith("#")
        if is_comment:
            comment = _trim_go(raw[1:])
            if comment:
                comments.append(comment)
            else:
                comments = []
        if not scanner.done:
            try:
                directive = scanner.feed(stripped)
                if directive is not None:
                    if directive.name == "escape":
                        _check_escape(directive.value)
                        escape = directive.value
                    directives.append(replace(directive, line=lineno))
            except _Err as exc:
                raise fail(exc.message, lineno, len(raw) - len(stripped) + 1, exc.hint) from None
        if is_comment:
            continue
        piece, cont = _trim_continuation(stripped, escape)
        if not cont and piece == "":
            continue

        start_line = lineno
        # (offset in the logical line, physical line, column offset) of each piece
        pieces: list[tuple[int, int, int]] = [(0, lineno, len(raw) - len(stripped))]
        parts = [piece]
        length = len(piece)
        has_empty = False
        while cont and i < n:
            if i == too_long:
                raise too_long_error(i)
            raw = lines[i]
            i += 1
            lead = raw.lstrip(go_space)
            if lead.startswith("#"):
                continue
            if not lead:
                has_empty = True
                continue
            piece, cont = _trim_continuation(raw, escape)
            pieces.append((length, i, 0))
            parts.append(piece)
            length += len(piece)
        line = "".join(parts) if len(parts) > 1 else parts[0]

        if has_empty:
            warnings.append(
                ParseWarning(
                    message="Empty continuation line found in: " + line,
                    detail="Empty continuation lines will become errors in a future release",
                    line=i,
                    url="https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/",
                )
            )

        try:
            node_parts = _new_parts(line, escape)
        except _Err as exc:
            err_line, err_col = _locate(pieces, exc.offset)
            raise fail(exc.message, err_line, err_col, exc.hint) from None

        heredocs: tuple[Heredoc, ...] = ()
        if "<<" in line and _takes_heredocs(node_parts):
            try:
                opened = _heredocs_from_line(line)
            except _LexError as exc:
                raise fail(str(exc), start_line, 0) from None
            bodies: list[Heredoc] = []
            for number, doc in enumerate(opened):
                terminator = doc.name
                body: list[str] = []
                terminated = False
                while i < n:
                    if i == too_long:
                        raise too_long_error(i)
                    candidate = lines[i]
                    i += 1
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == terminator:
                        terminated = True
                        break
                    body.append(raw_lines[i - 1])
                    if i < n or ends_with_newline:
                        body.append("\n")
                if not terminated:
                    opener = _heredoc_opener_text(doc)
                    where, column = _locate(pieces, _nth_heredoc_offset(line, number))
                    raise fail(
                        f"unterminated heredoc {opener} (opened on line {where}): "
                        f"no line reading {terminator!r} before the end of the file",
                        where,
                        column,
                        f"end the heredoc with a line holding only {terminator}"
                        + (" (leading tabs allowed with <<-)" if doc.chomp else ""),
                    )
                bodies.append(replace(doc, content="".join(body)))
            heredocs = tuple(bodies)

        last = lines[i - 1].rstrip(go_space)
        span = Span(
            start_line=start_line,
            end_line=i,
            start_col=pieces[0][2] + 1,
            end_col=max(len(last), 1),
        )
        nodes.append(_build_node(node_parts, span, heredocs, tuple(comments)))
        comments = []

    if not nodes:
        raise DockerfileSyntaxError(
            "file with no instructions",
            file=path,
            hint="a Dockerfile needs at least one instruction, e.g. 'FROM alpine'",
        )
    return Dockerfile(
        nodes=tuple(nodes),
        directives=tuple(directives),
        warnings=tuple(warnings),
        escape=escape,
        path=path,
        source_lines=tuple(lines),
    )


def _locate(pieces: list[tuple[int, int, int]], offset: int | None) -> tuple[int, int]:
    """Map an offset in a joined instruction line to (physical line, 1-based column).

    ``pieces`` holds, for each physical line that went into the instruction, its
    start offset in the joined line, its line number and how many leading
    characters were cut from it.  An unknown offset gives the first line, column 0.
    """
    line, column = pieces[0][1], 0
    if offset is not None:
        for start, physical, cut in pieces:
            if start <= offset:
                line, column = physical, cut + offset - start + 1
    return line, column


def _nth_heredoc_offset(line: str, number: int) -> int | None:
    """Offset of the ``number``-th ``<<`` of ``line`` (0-based), if there is one."""
    offset = -1
    for _ in range(number + 1):
        offset = line.find("<<", offset + 1)
        if offset < 0:
            return None
    return offset


def _heredoc_opener_text(doc: Heredoc) -> str:
    fd = str(doc.file_descriptor) if doc.file_descriptor else ""
    return f"{fd}<<{'-' if doc.chomp else ''}{doc.name}"


def _build_node(
    parts: _Parts, span: Span, heredocs: tuple[Heredoc, ...], comments: tuple[str, ...]
) -> Node:
    sub = None
    if parts.sub is not None:
        sub = _build_node(parts.sub, span, heredocs, ())
    return Node(
        cmd=parts.cmd,
        keyword=parts.keyword,
        flags=parts.flags,
        args=parts.args,
        json=parts.json,
        original=parts.original,
        span=span,
        heredocs=heredocs,
        sub=sub,
        comments=comments,
    )


def parse_file(path: str | PathLike[str]) -> Dockerfile:
    """Read and parse the Dockerfile at ``path``.

    Raises :class:`DockerfileNotFound` when it does not exist, and
    :class:`~lamina.errors.InvalidArgument` when it cannot be read.
    """
    name = fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise DockerfileNotFound(
            f"no such Dockerfile: {name}", hint="check the path, or pass -f FILE"
        ) from None
    except OSError as exc:
        raise InvalidArgument(
            f"cannot read Dockerfile {name}: {exc.strerror or exc}",
            hint="pass the path of a readable regular file",
        ) from exc
    return parse(data, name)

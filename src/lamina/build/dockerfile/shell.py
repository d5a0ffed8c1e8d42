"""Word expansion for Dockerfiles: quotes, escapes and ``$VAR`` / ``${VAR…}``.

Dockerfile instructions such as ``ENV``, ``COPY``, ``WORKDIR`` and ``FROM`` expand
variables *at build time*, before anything runs in a container.  The rules are a
small, deliberately limited subset of POSIX shell, and they are **not** the rules of
``/bin/sh``: this module follows BuildKit's lexer (``frontend/dockerfile/shell``)
character for character, so that a Dockerfile means the same thing here as it does
under ``docker build``.

What a word goes through, left to right:

* ``'…'`` single quotes keep everything literally (no escapes, no ``$``);
* ``"…"`` double quotes expand ``$`` and honour the escape character only before
  ``"``, ``$`` and the escape character itself (``"a\\tb"`` stays ``a\\tb``);
* outside quotes the escape character (``\\`` or, with ``# escape=`\u0060``, a
  backtick) makes the next character literal, and a lone trailing one vanishes;
* ``$name`` and ``${name}`` expand to the variable's value, or to ``""`` when unset;
  positional and special parameters (``$1``, ``$@``, ``$#`` …) are never set;
  ``$`` followed by anything else stays a literal ``$``;
* the ``${name<op>word}`` forms below, where *word* is itself expanded.

==================  ==========================================================
form                result
==================  ==========================================================
``${v:-w}``         *w* when ``v`` is unset **or empty**, else the value
``${v-w}``          *w* when ``v`` is unset, else the value (empty counts as set)
``${v:+w}``         *w* when ``v`` is set and non-empty, else ``""``
``${v+w}``          *w* when ``v`` is set (even empty), else ``""``
``${v:?msg}``       the value, or an error ``v: msg`` when unset or empty
``${v?msg}``        the value, or an error ``v: msg`` when unset
``${v#p}``          the value without the shortest prefix matching glob *p*
``${v##p}``         … without the longest matching prefix
``${v%p}``          … without the shortest matching suffix
``${v%%p}``         … without the longest matching suffix
``${v/p/r}``        the first match of glob *p* replaced by *r*
``${v//p/r}``       every match of glob *p* replaced by *r*
==================  ==========================================================

Anything else inside braces — ``${v:=w}``, ``${v:0:1}``, ``${#v}``, ``${v^^}``,
``${}`` — is an error, as is an unterminated quote or brace.  Errors are
:class:`ShellExpansionError`.

Two entry points differ only in field splitting::

    >>> lexer = ShellLexer()
    >>> lexer.expand('a "$X" $X', {"X": "1  2"})
    'a 1  2 1  2'
    >>> lexer.expand_words('a "$X" $X', {"X": "1  2"})
    ['a', '1  2', '1', '2']

:meth:`ShellLexer.expand_with_matches` additionally reports which variables were
looked up and found set or unset (the linter and the build cache use it).

The module imports nothing heavy; ``re`` is only touched for the glob operators.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lamina.errors import InvalidArgument

__all__ = [
    "ExpansionResult",
    "ShellExpansionError",
    "ShellLexer",
    "env_from_list",
    "expand",
    "expand_words",
]

_EOF = ""

# Go's unicode.IsSpace: Latin-1 spaces plus the White_Space property beyond it.
_GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# Special parameters: never set in a Dockerfile, but a name of their own.
_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class ShellExpansionError(InvalidArgument):
    """A word that cannot be expanded (bad ``${…}`` form, unterminated quote …).

    ``word`` is the text that failed and ``reason`` the lexer's own explanation
    (e.g. ``syntax error: bad substitution``); the message combines them as
    ``failed to process "<word>": <reason>``.
    """

    code = "shell-expansion"

    def __init__(self, word: str, reason: str, *, hint: str = "") -> None:
        super().__init__(f"failed to process {_go_quote(word)}: {reason}", hint=hint)
        self.word = word
        self.reason = reason


class _LexError(Exception):
    """Internal: raised deep in the scanner, turned into ShellExpansionError at the top."""

    def __init__(self, reason: str, hint: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


@dataclass(frozen=True)
class ExpansionResult:
    """The outcome of one expansion with bookkeeping.

    ``value`` is the expanded text; ``matched`` the names that were looked up and
    set (possibly to ``""``); ``unmatched`` the names that were looked up and unset.
    """

    value: str
    matched: frozenset[str]
    unmatched: frozenset[str]


def _go_quote(text: str) -> str:
    """Render *text* the way Go's ``%q`` does for the usual printable cases."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _is_letter(ch: str) -> bool:
    return ch.isalpha()


def _is_digit(ch: str) -> bool:
    return ch.isdecimal()


class _Words:
    """Accumulates field-split words (the ``expand_words`` side of a scan).

    Characters that came from unquoted text or from an unquoted ``$`` expansion are
    split on whitespace; escaped characters and quoted text are kept verbatim.
    """

    __slots__ = ("_current", "_in_word", "words")

    def __init__(self) -> None:
        self.words: list[str] = []
        self._current: list[str] = []
        self._in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _GO_SPACES:
            if self._in_word and self._current:
                self.words.append("".join(self._current))
                self._current = []
                self._in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self._current.append(text)
        self._in_word = True

    def add_split(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def finish(self) -> list[str]:
        if self._current:
            word = "".join(self._current)
            if word:
                self.words.append(word)
            self._current = []
            self._in_word = False
        return self.words


class _Scan:
    """One expansion in progress: a cursor over the word plus the lookup record."""

    def __init__(
        self,
        text: str,
        env: Mapping[str, str],
        lexer: ShellLexer,
    ) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = lexer.escape
        self.raw_quotes = lexer.raw_quotes
        self.raw_escapes = lexer.raw_escapes
        self.skip_unset = lexer.skip_unset_env
        self.process_quotes = not lexer.skip_process_quotes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    # --- cursor ---------------------------------------------------------------

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            return ch
        return _EOF

    # --- lookup -----------------------------------------------------------------

    def lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    # --- the scanner proper -------------------------------------------------------

    def until(self, stop: str, *, raw_escapes: bool | None = None) -> tuple[str, list[str]]:
        """Expand up to *stop* (consumed) or, when *stop* is ``_EOF``, to the end.

        Returns the joined text and the field-split words.  ``raw_escapes`` keeps
        escape characters in the output (used for glob patterns, where ``\\*``
        must reach the matcher still escaped).
        """
        saved = self.raw_escapes
        if raw_escapes is not None:
            self.raw_escapes = raw_escapes
        try:
            return self._until(stop)
        finally:
            self.raw_escapes = saved

    def _until(self, stop: str) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        while (ch := self.peek()) != _EOF:
            if stop != _EOF and ch == stop:
                self.next()
                return "".join(out), words.finish()
            if ch == "$":
                value = self.dollar()
                out.append(value)
                words.add_split(value)
                continue
            if self.process_quotes and ch in "'\"":
                value = self.single_quote() if ch == "'" else self.double_quote()
                out.append(value)
                words.add_raw(value)
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    words.add_raw(ch)
                    out.append(ch)
                ch = self.next()
                if ch == _EOF:
                    break
                words.add_raw(ch)
            else:
                words.add_char(ch)
            out.append(ch)
        if stop != _EOF:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.finish()

    def single_quote(self) -> str:
        out: list[str] = []
        quote = self.next()
        if self.raw_quotes:
            out.append(quote)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise _LexError(
                    "unexpected end of statement while looking for matching single-quote",
                    "close the ' quote, or escape it as \\'",
                )
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        out: list[str] = []
        quote = self.next()
        if self.raw_quotes:
            out.append(quote)
        while True:
            ch = self.peek()
            if ch == _EOF:
                raise _LexError(
                    "unexpected end of statement while looking for matching double-quote",
                    'close the " quote, or escape it as \\"',
                )
            if ch == '"':
                self.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if following == _EOF:
                    continue  # a lone escape before the end: dropped (then EOF error)
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        """Read a variable name: letters/digits/underscore, all digits, or one special."""
        first = self.peek()
        if first == _EOF:
            return ""
        if _is_digit(first):
            start = self.pos
            while (c := self.peek()) != _EOF and _is_digit(c):
                self.pos += 1
            return self.text[start : self.pos]
        if first in _SPECIAL_PARAMS:
            return self.next()
        start = self.pos
        while (c := self.peek()) != _EOF and (_is_letter(c) or _is_digit(c) or c == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def dollar(self) -> str:
        self.next()  # the '$'
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.lookup(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        self.next()  # the '{'
        first = self.peek()
        if first == _EOF:
            raise _LexError("syntax error: missing '}'", "close the ${...} with '}'")
        if first in "{}:":
            raise _LexError(
                "syntax error: bad substitution",
                "a ${...} needs a variable name first, e.g. ${NAME:-default}",
            )
        name = self.name()
        ch = self.next()
        if ch == _EOF:
            raise _LexError("syntax error: missing '}'", "close the ${...} with '}'")
        if ch == "}":
            value, found = self.lookup(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._replace(name)
        op = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            op += ch
            if ch == _EOF:
                raise _LexError("syntax error: missing '}'", "close the ${...} with '}'")
        if ch not in ("+", "-", "?", "#", "%"):
            raise _unsupported(op)
        pattern_op = ch in ("#", "%")
        if null_is_unset and pattern_op:
            raise _unsupported(op)
        word = self._operand("}", raw_escapes=pattern_op, missing="'}'")
        value, found = self.lookup(name)
        if not found and self.skip_unset:
            return "${" + name + op + word + "}"
        empty_is_unset = null_is_unset and value == ""
        if ch == "-":
            return word if (not found or empty_is_unset) else value
        if ch == "+":
            return "" if (not found or empty_is_unset) else word
        if ch == "?":
            if not found:
                raise _LexError(
                    f"{name}: {word or 'is not allowed to be unset'}",
                    f"pass --build-arg {name}=... or set {name} with ARG/ENV",
                )
            if empty_is_unset:
                raise _LexError(
                    f"{name}: {word or 'is not allowed to be empty'}",
                    f"give {name} a non-empty value",
                )
            return value
        # '#'/'%': one char = shortest match, doubled = longest.
        greedy = word.startswith(ch)
        if greedy:
            word = word[1:]
        if ch == "%":
            return _trim_suffix(word, value, greedy)
        return _trim_prefix(word, value, greedy)

    def _operand(self, stop: str, *, raw_escapes: bool, missing: str) -> str:
        try:
            text, _ = self.until(stop, raw_escapes=raw_escapes)
        except _LexError:
            if self.peek() == _EOF:
                raise _LexError(
                    f"syntax error: missing {missing}" + (" in ${}" if stop == "/" else ""),
                    "close the ${...} with '}'"
                    if stop == "}"
                    else "use ${VAR/pattern/replacement}",
                ) from None
            raise
        return text

    def _replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        pattern = self._operand("/", raw_escapes=True, missing="'/'")
        replacement = self._operand("}", raw_escapes=True, missing="'}'")
        value, found = self.lookup(name)
        if not found and self.skip_unset:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _compile_glob(pattern, greedy=True, anchored=False)
        return _substitute(regex, value, replacement, count=0 if replace_all else 1)


def _unsupported(op: str) -> _LexError:
    return _LexError(
        f"unsupported modifier ({op}) in substitution",
        "supported: ${V:-w} ${V-w} ${V:+w} ${V+w} ${V:?m} ${V?m} ${V#p} ${V##p} "
        "${V%p} ${V%%p} ${V/p/r} ${V//p/r}",
    )


# --- glob patterns of ${v#p} ${v%p} ${v/p/r} -------------------------------------


def _compile_glob(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """Turn a shell glob (``*``, ``?``, ``\\`` escapes) into a regular expression.

    ``*`` is lazy unless *greedy*; everything else is literal.  ``\\}`` and ``\\/``
    lose their backslash (they were escaped only to get past the ``${…}`` syntax);
    any other escape must be of ``*``, ``?`` or ``\\``.
    """
    parts: list[str] = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            parts.append(star)
        elif ch == "?":
            parts.append(".")
        elif ch == "\\":
            following = pattern[i] if i < n else ""
            if following in ("}", "/"):
                continue
            i += 1
            if following not in ("*", "?", "\\"):
                shown = following if following else "EOF"
                raise _LexError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'",
                    "inside a pattern only \\*, \\? and \\\\ are escapes",
                )
            parts.append(re.escape(following))
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _compile_glob(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end() :] if match else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a glob while keeping each ``\\x`` escape pair in order (``a\\*c`` → ``c\\*a``)."""
    tokens: list[str] = []
    i = 0
    last = len(pattern) - 1
    while i <= last:
        if pattern[i] == "\\" and i != last:
            tokens.append(pattern[i : i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex finds the leftmost match; reversing both sides turns "shortest or
    # longest suffix" into "shortest or longest prefix".
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


_TEMPLATE_REF = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]+))")


def _substitute(regex: re.Pattern[str], value: str, replacement: str, *, count: int) -> str:
    """Replace matches like Go's ``Regexp.ReplaceAllString``.

    Go expands ``$0``/``${0}`` (the whole match) and ``$$`` in the replacement; the
    glob regex has no groups, so every other ``$name`` reference becomes empty.
    """

    def render(match: re.Match[str]) -> str:
        if "$" not in replacement:
            return replacement

        def ref(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1) if m.group(1) is not None else m.group(2)
            return match.group(0) if name == "0" else ""

        return _TEMPLATE_REF.sub(ref, replacement)

    return regex.sub(render, value, count=count)


# --- public API ---------------------------------------------------------------------


class ShellLexer:
    """Expands Dockerfile words; one instance per escape character is enough.

    ``escape`` is the Dockerfile's escape character (``\\`` or `` ` ``).  The flags
    mirror BuildKit's lexer options and are off for ordinary instruction words:

    * ``raw_quotes`` keeps quote characters in the output;
    * ``raw_escapes`` keeps escape characters in the output;
    * ``skip_process_quotes`` treats quotes as ordinary characters (heredoc bodies);
    * ``skip_unset_env`` leaves references to unset variables as written
      (``$NOPE`` stays ``$NOPE``), for partial, early expansion.

    Instances hold no per-call state, so one may be shared.
    """

    __slots__ = ("escape", "raw_escapes", "raw_quotes", "skip_process_quotes", "skip_unset_env")

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_process_quotes: bool = False,
        skip_unset_env: bool = False,
    ) -> None:
        if len(escape) != 1:
            raise InvalidArgument(
                f"invalid escape character {escape!r}",
                hint="the escape character is a single character: \\ or `",
            )
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env

    def _run(self, word: str, env: Mapping[str, str]) -> tuple[str, list[str], _Scan]:
        scan = _Scan(word, env, self)
        try:
            text, words = scan.until(_EOF)
        except _LexError as exc:
            raise ShellExpansionError(word, exc.reason, hint=exc.hint) from None
        return text, words, scan

    def expand(self, word: str, env: Mapping[str, str]) -> str:
        """Expand *word* to one string: quotes removed, variables substituted, no splitting."""
        return self._run(word, env)[0]

    def expand_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand *word* and split it into fields on unquoted whitespace.

        Whitespace that comes from an unquoted ``$VAR`` splits too, while quoted text
        (``"$VAR"``) and escaped characters (``a\\ b``) stay in one field.
        """
        return self._run(word, env)[1]

    def expand_with_matches(
        self, word: str, env: Mapping[str, str]
    ) -> tuple[str, frozenset[str], frozenset[str]]:
        """Like :meth:`expand`, also returning the variable names found set and unset."""
        result = self.expand_result(word, env)
        return result.value, result.matched, result.unmatched

    def expand_result(self, word: str, env: Mapping[str, str]) -> ExpansionResult:
        """:meth:`expand_with_matches` as an :class:`ExpansionResult`."""
        text, _, scan = self._run(word, env)
        return ExpansionResult(text, frozenset(scan.matched), frozenset(scan.unmatched))

    def __repr__(self) -> str:
        return f"ShellLexer(escape={self.escape!r})"


_DEFAULT_LEXERS: dict[str, ShellLexer] = {}


def _lexer_for(escape: str) -> ShellLexer:
    lexer = _DEFAULT_LEXERS.get(escape)
    if lexer is None:
        lexer = _DEFAULT_LEXERS[escape] = ShellLexer(escape)
    return lexer


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand one word (see :meth:`ShellLexer.expand`)."""
    return _lexer_for(escape).expand(word, env)


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand and field-split one word (see :meth:`ShellLexer.expand_words`)."""
    return _lexer_for(escape).expand_words(word, env)


def env_from_list(entries: Iterable[str]) -> dict[str, str]:
    """Turn ``KEY=VALUE`` strings (an image's ``Env``) into a mapping.

    A bare ``KEY`` or ``KEY=`` means an empty value; when a key repeats, the last
    entry wins — the same reading BuildKit gives an environment list.
    """
    env: dict[str, str] = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        env.pop(key, None)
        env[key] = value
    return env

"""``.dockerignore``: reading the file and deciding which context paths it excludes.

The semantics are those of moby's ``patternmatcher`` package (what both the Docker
CLI and BuildKit use), including its corner cases, so a context is filtered here
exactly as ``docker build`` filters it.

Reading (:func:`read_ignore_file`)
    A UTF-8 BOM is dropped.  A line whose *first character* is ``#`` is a comment
    (an indented ``#`` is a pattern).  Every other line is trimmed and blank lines
    are dropped.  A leading ``!`` marks an exception; the rest is cleaned like Go's
    ``filepath.Clean`` and loses a leading ``/``, so ``/foo``, ``./foo`` and
    ``foo/`` are all ``foo``.

Matching (:class:`PatternMatcher`)
    Patterns are Go ``filepath.Match`` globs plus ``**``:

    * ``*`` — any run of characters except ``/``; ``?`` — one character except ``/``;
    * ``[abc]``, ``[a-z]``, ``[^a-z]`` — character classes (``\\`` escapes inside);
    * ``\\x`` — a literal ``x``;
    * ``**`` — any number of path segments, zero included: ``**/foo`` is ``foo`` at
      any depth, ``dir/**`` is everything *below* ``dir``, ``**`` is everything.

    A pattern applies to a path when it matches the path **or one of its parent
    directories** (so ``docs`` excludes ``docs/a/b.md``).  Patterns are tried in
    order and the *last one that applies wins*: a normal pattern excludes, an
    exception (``!pattern``) re-includes.  ``.`` (the context root) is never
    excluded.

    >>> m = PatternMatcher(["*.md", "!README.md", "docs"])
    >>> [m.matches(p) for p in ("CHANGES.md", "README.md", "docs/x/README.md")]
    [True, False, True]

Malformed patterns raise :class:`IgnorePatternError`.  Like the reference, the
matcher checks syntax when it is built, but a few errors (a backwards range such
as ``[z-a]``) only show when a path is matched — then every match raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lamina.errors import InvalidArgument

__all__ = [
    "IgnorePatternError",
    "MatchInfo",
    "Pattern",
    "PatternMatcher",
    "go_clean",
    "go_path_match",
    "matches",
    "read_ignore_file",
]

# Go's unicode.IsSpace (strings.TrimSpace trims exactly these).
_SPACES = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_BOM = "\ufeff"


class IgnorePatternError(InvalidArgument):
    """A ``.dockerignore`` pattern that is not valid glob syntax."""

    code = "dockerignore-pattern"

    def __init__(self, pattern: str, reason: str = "syntax error in pattern") -> None:
        super().__init__(
            f"invalid .dockerignore pattern {pattern!r}: {reason}",
            hint="check the brackets and backslashes in that line of .dockerignore "
            "(use \\[ for a literal bracket)",
        )
        self.pattern = pattern
        self.reason = reason


class _BadPattern(Exception):
    """Internal: the glob is malformed (Go's filepath.ErrBadPattern)."""


def go_clean(path: str) -> str:
    """Go's ``path/filepath.Clean`` for ``/``-separated paths.

    Collapses repeated slashes, removes ``.`` segments, resolves ``..`` where it
    can, drops a trailing slash; an empty result is ``.``.  Unlike
    :func:`posixpath.normpath`, a leading ``//`` becomes ``/``.
    """
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _go_dir(path: str) -> str:
    """Go's ``filepath.Dir``: everything before the last ``/``, cleaned."""
    idx = path.rfind("/")
    return go_clean(path[: idx + 1])


def read_ignore_file(text: str | bytes | None) -> list[str]:
    """Read the contents of a ``.dockerignore`` file into a list of patterns.

    Exceptions keep their ``!`` prefix (``"!keep.log"``).  A lone ``!`` survives
    reading; :class:`PatternMatcher` rejects it.  ``None`` (no file) gives ``[]``.
    """
    if text is None:
        return []
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    patterns: list[str] = []
    for index, line in enumerate(text.split("\n")):
        if line.endswith("\r"):
            line = line[:-1]
        if index == 0 and line.startswith(_BOM):
            line = line[1:]
        if line.startswith("#"):
            continue
        line = line.strip(_SPACES)
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip(_SPACES)
        if line:
            line = go_clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if invert else line)
    return patterns


# --- Go filepath.Match ---------------------------------------------------------------


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise _BadPattern
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise _BadPattern
    ch, rest = chunk[0], chunk[1:]
    if not rest:
        raise _BadPattern
    return ch, rest


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    """Match *chunk* (no ``*``) at the start of *s*; keep checking syntax after a miss."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        head = chunk[0]
        if head == "[":
            ch = ""
            if not failed:
                ch, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = chunk.startswith("^")
            if negated:
                chunk = chunk[1:]
            matched = False
            nrange = 0
            while True:
                if chunk.startswith("]") and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if lo <= ch <= hi and ch:
                    matched = True
                nrange += 1
            if matched == negated:
                failed = True
        elif head == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise _BadPattern
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    if failed:
        return "", False
    return s, True


def _go_match(pattern: str, name: str) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name
        rest, ok = _match_chunk(chunk, name)
        if ok and (not rest or pattern):
            name = rest
            continue
        if star:
            matched_later = False
            i = 0
            while i < len(name) and name[i] != "/":
                rest, ok = _match_chunk(chunk, name[i + 1 :])
                if ok:
                    if not pattern and rest:
                        i += 1
                        continue
                    name = rest
                    matched_later = True
                    break
                i += 1
            if matched_later:
                continue
        # A miss: still report a malformed remainder, as Go does.
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def go_path_match(pattern: str, name: str) -> bool:
    """Go's ``path/filepath.Match`` on Unix: does *name* match the shell glob *pattern*?

    ``*`` and ``?`` never match ``/``; there is no ``**``.  A malformed pattern
    raises :class:`IgnorePatternError` (Go's ``ErrBadPattern``).
    """
    try:
        return _go_match(pattern, name)
    except _BadPattern:
        raise IgnorePatternError(pattern) from None


# --- patterns -----------------------------------------------------------------------

_EXACT, _PREFIX, _SUFFIX, _REGEX = "exact", "prefix", "suffix", "regexp"


def _class_to_regex(pattern: str, start: int) -> tuple[str, int]:
    """Translate the character class starting at ``pattern[start] == '['``."""
    i = start + 1
    negated = pattern.startswith("^", i)
    if negated:
        i += 1
    items: list[str] = []
    nrange = 0

    def one(pos: int) -> tuple[str, int]:
        if pos >= len(pattern) or pattern[pos] in "-]":
            raise _BadPattern
        if pattern[pos] == "\\":
            pos += 1
            if pos >= len(pattern):
                raise _BadPattern
        if pos + 1 >= len(pattern):
            raise _BadPattern
        return pattern[pos], pos + 1

    while True:
        if pattern.startswith("]", i) and nrange > 0:
            i += 1
            break
        lo, i = one(i)
        hi = lo
        if pattern[i] == "-":
            hi, i = one(i + 1)
        if hi < lo:  # Go's regexp rejects this only when the pattern is compiled
            raise _BadPattern
        items.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
        nrange += 1
    return ("[^" if negated else "[") + "".join(items) + "]", i


def _compile(pattern: str) -> tuple[str, re.Pattern[str] | None]:
    """Classify *pattern* as exact / prefix / suffix / regexp, as patternmatcher does.

    The classification decides the fast paths: ``dir/**`` is a prefix test,
    ``**/name`` a suffix test, plain text an equality test; anything else
    becomes an anchored regular expression.
    """
    kind = _EXACT
    parts: list[str] = []
    i = 0
    n = len(pattern)
    first = True
    while i < n:
        ch = pattern[i]
        at_start = first
        first = False
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    if kind == _EXACT:
                        kind = _PREFIX
                    else:
                        parts.append(".*")
                        kind = _REGEX
                else:
                    parts.append("(?:.*/)?")
                    kind = _REGEX
                if at_start:
                    kind = _SUFFIX
                continue
            parts.append("[^/]*")
            kind = _REGEX
            i += 1
        elif ch == "?":
            parts.append("[^/]")
            kind = _REGEX
            i += 1
        elif ch == "\\":
            if i + 1 < n:
                parts.append(re.escape(pattern[i + 1]))
                kind = _REGEX
                i += 2
            else:
                raise _BadPattern
        elif ch == "[":
            text, i = _class_to_regex(pattern, i)
            parts.append(text)
            kind = _REGEX
        else:
            parts.append(re.escape(ch))
            i += 1
    if kind != _REGEX:
        return kind, None
    return kind, re.compile("".join(parts) + r"\Z")


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern of a :class:`PatternMatcher`.

    ``text`` is the pattern without its ``!``; ``exclusion`` is true for an
    exception (``!text``), which re-includes what earlier patterns excluded.
    """

    text: str
    exclusion: bool = False
    _kind: str = field(default="", repr=False, compare=False)
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _error: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, exclusion: bool) -> Pattern:
        try:
            kind, regex = _compile(text)
        except _BadPattern:
            return cls(text, exclusion, "", None, True)
        return cls(text, exclusion, kind, regex, False)

    def __str__(self) -> str:
        return ("!" if self.exclusion else "") + self.text

    @property
    def kind(self) -> str:
        """How the pattern is tested: ``exact``, ``prefix``, ``suffix`` or ``regexp``.

        Empty for a pattern whose syntax error only shows when matching.
        """
        return self._kind

    @property
    def is_literal(self) -> bool:
        """True when the pattern has no glob characters (it names one path)."""
        return not any(c in self.text for c in "*?[]^\\")

    def match(self, path: str) -> bool:
        """Does this pattern match *path* itself (parents not considered)?"""
        if self._error:
            raise IgnorePatternError(str(self))
        if self._kind == _EXACT:
            return path == self.text
        if self._kind == _PREFIX:
            return path.startswith(self.text[:-2])
        if self._kind == _SUFFIX:
            suffix = self.text[2:]
            if suffix.startswith("/"):
                suffix = suffix[1:]
                return path == suffix or path.endswith("/" + suffix)
            return path.endswith(suffix)
        assert self._regex is not None
        return self._regex.match(path) is not None


@dataclass(frozen=True)
class MatchInfo:
    """Per-pattern memory of a directory's match, handed to its children.

    ``parent_matched[i]`` says whether pattern *i* matched the directory or one of
    its ancestors; a child then only has to test itself.  The empty value means
    "no information" (the matcher falls back to checking every ancestor).
    """

    parent_matched: tuple[bool, ...] = ()


class PatternMatcher:
    """Decides which paths a list of ``.dockerignore`` patterns excludes.

    Build it from :func:`read_ignore_file` output; patterns are trimmed and
    cleaned again, empty ones are dropped, a lone ``!`` is an error, and syntax
    is checked (:class:`IgnorePatternError`).  Paths are ``/``-separated and
    relative to the context root.
    """

    __slots__ = ("_patterns", "exclusions")

    def __init__(self, patterns: Iterable[str]) -> None:
        parsed: list[Pattern] = []
        for raw in patterns:
            text = raw.strip(_SPACES)
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise InvalidArgument(
                        'illegal exclusion pattern: "!"',
                        hint="a '!' line needs a pattern after it, e.g. !keep.txt",
                    )
                text = text[1:]
            try:
                _go_match(text, ".")
            except _BadPattern:
                raise IgnorePatternError(raw.strip(_SPACES)) from None
            parsed.append(Pattern.parse(text, exclusion))
        self._patterns = tuple(parsed)
        self.exclusions = any(p.exclusion for p in parsed)

    @property
    def patterns(self) -> tuple[Pattern, ...]:
        return self._patterns

    def __len__(self) -> int:
        return len(self._patterns)

    def __repr__(self) -> str:
        return f"PatternMatcher({[str(p) for p in self._patterns]!r})"

    def matches(self, path: str) -> bool:
        """Is *path* excluded (by a pattern matching it or one of its parents)?"""
        matched = False
        parent = _go_dir(path)
        parents = parent.split("/") if parent != "." else []
        for pattern in self._patterns:
            # Only a pattern that could change the answer needs testing.
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit:
                for i in range(len(parents)):
                    if pattern.match("/".join(parents[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched

    def matches_with_parent(self, path: str, parent: MatchInfo) -> tuple[bool, MatchInfo]:
        """Incremental :meth:`matches` for tree walks.

        Pass the :class:`MatchInfo` returned for the parent directory (or
        ``MatchInfo()`` for a top-level entry); returns the answer for *path* and
        the info to hand to *path*'s children.  Every pattern is evaluated, so the
        info is complete and the answer always equals :meth:`matches`.
        """
        known = parent.parent_matched
        if known and len(known) != len(self._patterns):
            raise ValueError("MatchInfo comes from a different PatternMatcher")
        flags: list[bool] = []
        matched = False
        for i, pattern in enumerate(self._patterns):
            hit = bool(known) and known[i]
            if not hit:
                hit = pattern.match(path)
                if not hit and not known:
                    parent_dir = _go_dir(path)
                    if parent_dir != ".":
                        dirs = parent_dir.split("/")
                        hit = any(pattern.match("/".join(dirs[: j + 1])) for j in range(len(dirs)))
            flags.append(hit)
            if hit:
                matched = not pattern.exclusion
        return matched, MatchInfo(tuple(flags))


def matches(path: str, patterns: Sequence[str]) -> bool:
    """One-shot check (moby's ``Matches``): the path is cleaned and ``.`` is never excluded."""
    matcher = PatternMatcher(patterns)
    path = go_clean(path)
    if path == ".":
        return False
    return matcher.matches(path)

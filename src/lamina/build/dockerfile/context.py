"""The build context: which files under the context directory a build may see.

``docker build DIR`` sends the files of ``DIR`` minus those its ``.dockerignore``
excludes.  :func:`walk_context` produces that file set the way BuildKit's sender
(``tonistiigi/fsutil``) walks it:

* entries come depth-first, each directory's children sorted by name (bytes), so
  ``foo``, ``foo/a``, ``foo-x`` — the order a layer tar or a checksum wants;
* symlinks are reported, never followed;
* an excluded **directory is not opened** when no exception can re-include
  anything inside it (exceptions that are plain paths are checked against it; an
  exception with a wildcard anywhere but a trailing ``/*`` or ``/**`` could match
  at any depth, so then excluded directories are still walked);
* when an exception re-includes something inside an excluded directory, that
  directory is reported too — just before its first kept descendant — so the
  re-included file has a parent in the context;
* an excluded directory that turns out to be unreadable is skipped silently;
  an unreadable *kept* directory is an error (:class:`ContextError`).

:func:`find_ignore_file` picks the ignore file the way BuildKit does: a
``<Dockerfile name>.dockerignore`` next to the Dockerfile wins over
``.dockerignore`` at the context root.

Example::

    patterns = load_ignore_patterns(ctx, ctx / "Dockerfile")
    for entry in walk_context(ctx, patterns):
        print(entry.path, entry.kind, oct(entry.perm))
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from lamina.build.dockerfile.dockerignore import MatchInfo, PatternMatcher, read_ignore_file
from lamina.errors import InvalidArgument, NotFound

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "ContextEntry",
    "ContextError",
    "EntryKind",
    "find_ignore_file",
    "find_ignore_path",
    "load_ignore_patterns",
    "walk_context",
]

# fsutil's "pattern characters": an exception containing one may match anywhere.
_PATTERN_CHARS = "*[]?^\\"


class ContextError(InvalidArgument):
    """The build context cannot be read (missing, not a directory, permission denied)."""

    code = "build-context"


class EntryKind(StrEnum):
    """The type of a context entry (from ``lstat``)."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    FIFO = "fifo"
    SOCKET = "socket"
    CHAR_DEVICE = "char"
    BLOCK_DEVICE = "block"


def _kind_of(mode: int) -> EntryKind:
    if stat.S_ISREG(mode):
        return EntryKind.FILE
    if stat.S_ISDIR(mode):
        return EntryKind.DIR
    if stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    if stat.S_ISFIFO(mode):
        return EntryKind.FIFO
    if stat.S_ISSOCK(mode):
        return EntryKind.SOCKET
    if stat.S_ISCHR(mode):
        return EntryKind.CHAR_DEVICE
    return EntryKind.BLOCK_DEVICE


@dataclass(frozen=True)
class ContextEntry:
    """One path of the build context.

    ``path`` is relative to the context root, ``/``-separated, without ``./``.
    ``mode`` is the full ``st_mode`` (type and permission bits; :attr:`perm` has
    just the permissions).  ``size`` is the byte size of regular files and 0
    otherwise.  ``link_target`` is the symlink's target as stored (``None`` for
    anything but a symlink).  ``mtime_ns``, ``uid`` and ``gid`` are as on disk
    (the builder decides what to keep: COPY resets owners to 0:0).  ``abspath`` is
    where the entry lives on this machine.  ``ctime_ns`` and ``ino`` complete the
    ``lstat`` stamp a build memo fingerprints (0 when unknown).
    """

    path: str
    kind: EntryKind
    mode: int
    size: int
    link_target: str | None
    mtime_ns: int
    uid: int
    gid: int
    abspath: str
    ctime_ns: int = 0
    ino: int = 0

    @property
    def perm(self) -> int:
        """Permission bits including setuid/setgid/sticky (``mode & 0o7777``)."""
        return stat.S_IMODE(self.mode)

    @property
    def is_dir(self) -> bool:
        return self.kind is EntryKind.DIR


def _entry(rel: str, abspath: str, st: os.stat_result) -> ContextEntry:
    kind = _kind_of(st.st_mode)
    target: str | None = None
    if kind is EntryKind.SYMLINK:
        try:
            target = os.readlink(abspath)
        except OSError as exc:
            raise ContextError(
                f"cannot read symlink {rel!r} in the build context: {exc.strerror}",
                hint="check the file's permissions, or exclude it in .dockerignore",
            ) from exc
    return ContextEntry(
        path=rel,
        kind=kind,
        mode=st.st_mode,
        size=st.st_size if kind is EntryKind.FILE else 0,
        link_target=target,
        mtime_ns=st.st_mtime_ns,
        uid=st.st_uid,
        gid=st.st_gid,
        abspath=abspath,
        ctime_ns=st.st_ctime_ns,
        ino=st.st_ino,
    )


def _without_trailing_glob(text: str) -> str:
    if text.endswith("/**"):
        text = text[:-3]
    if text.endswith("/*"):
        text = text[:-2]
    return text


def _exception_prefixes(matcher: PatternMatcher) -> tuple[str, ...] | None:
    """The exceptions as ``path/`` prefixes, or ``None`` if one has wildcards."""
    prefixes: list[str] = []
    for pattern in matcher.patterns:
        if not pattern.exclusion:
            continue
        text = _without_trailing_glob(pattern.text)
        if any(c in text for c in _PATTERN_CHARS):
            return None
        prefixes.append(text + "/")
    return tuple(prefixes)


def _sorted_children(abspath: str) -> list[os.DirEntry[str]]:
    with os.scandir(abspath) as it:
        children = list(it)
    children.sort(key=lambda e: os.fsencode(e.name))
    return children


@dataclass
class _Frame:
    children: Iterator[os.DirEntry[str]]
    rel: str
    info: MatchInfo
    pending_index: int | None  # where this (excluded) dir sits in `pending`


def walk_context(
    root: Path | str, patterns: Sequence[str] | PatternMatcher = ()
) -> Iterator[ContextEntry]:
    """Yield the entries of the context *root* that *patterns* do not exclude.

    *patterns* is the ``.dockerignore`` list (see :func:`load_ignore_patterns`) or
    a ready :class:`PatternMatcher`.  The root itself is not yielded.  Raises
    :class:`ContextError` when *root* is not a readable directory or a kept
    directory cannot be listed, and
    :class:`~lamina.build.dockerfile.dockerignore.IgnorePatternError` for a
    malformed pattern.
    """
    root_str = os.fspath(root)
    if not os.path.isdir(root_str):
        if not os.path.exists(root_str):
            raise NotFound(
                f"build context {root_str!r} does not exist",
                hint="pass an existing directory as the build context",
            )
        raise ContextError(
            f"build context {root_str!r} is not a directory",
            hint="pass a directory as the build context",
        )
    if isinstance(patterns, PatternMatcher):
        matcher: PatternMatcher | None = patterns if len(patterns) else None
    else:
        matcher = PatternMatcher(patterns) if patterns else None
    prefixes = _exception_prefixes(matcher) if matcher is not None else ()

    def prunable(rel: str) -> bool:
        if prefixes is None:
            return False
        dir_slash = rel + "/"
        return not any(p.startswith(dir_slash) for p in prefixes)

    try:
        top = _sorted_children(root_str)
    except OSError as exc:
        raise ContextError(
            f"cannot read build context {root_str!r}: {exc.strerror}",
            hint="check the directory's permissions",
        ) from exc

    pending: list[ContextEntry] = []
    stack = [_Frame(iter(top), "", MatchInfo(), None)]
    while stack:
        frame = stack[-1]
        child = next(frame.children, None)
        if child is None:
            stack.pop()
            if frame.pending_index is not None:
                del pending[frame.pending_index :]
            continue
        rel = f"{frame.rel}/{child.name}" if frame.rel else child.name
        try:
            st = child.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # vanished while walking
        except OSError as exc:
            raise ContextError(
                f"cannot stat {rel!r} in the build context: {exc.strerror}",
                hint="check the file's permissions, or exclude it in .dockerignore",
            ) from exc
        is_dir = stat.S_ISDIR(st.st_mode)
        excluded = False
        info = MatchInfo()
        if matcher is not None:
            excluded, info = matcher.matches_with_parent(rel, frame.info)
        if excluded:
            if not is_dir or prunable(rel):
                continue
            try:
                children = _sorted_children(child.path)
            except OSError:
                continue  # excluded and unreadable: nothing could be re-included
            pending.append(_entry(rel, child.path, st))
            stack.append(_Frame(iter(children), rel, info, len(pending) - 1))
            continue
        entry = _entry(rel, child.path, st)
        if pending:
            yield from pending
            pending.clear()
        yield entry
        if is_dir:
            try:
                children = _sorted_children(child.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ContextError(
                    f"cannot read directory {rel!r} in the build context: {exc.strerror}",
                    hint="fix its permissions, or exclude it in .dockerignore",
                ) from exc
            stack.append(_Frame(iter(children), rel, info, None))


def find_ignore_path(
    context_dir: str | os.PathLike[str], dockerfile_path: str | os.PathLike[str] | None = None
) -> str | None:
    """The ignore file a build of *dockerfile_path* in *context_dir* uses, if any.

    ``<Dockerfile name>.dockerignore`` in the Dockerfile's directory (e.g.
    ``build/app.Dockerfile.dockerignore``) replaces the context's
    ``.dockerignore``.  A relative *dockerfile_path* is taken as given (relative
    to the current directory, like ``docker build -f``); ``None`` means
    ``<context_dir>/Dockerfile``.  (Plain strings: no :mod:`pathlib` on the build
    memo's path.)
    """
    context = os.fspath(context_dir)
    dockerfile = (os.fspath(dockerfile_path) if dockerfile_path is not None
                  else os.path.join(context, "Dockerfile"))
    head, name = os.path.split(dockerfile.rstrip("/") or dockerfile)
    specific = os.path.join(head, name + ".dockerignore")
    if os.path.isfile(specific):
        return specific
    default = os.path.join(context, ".dockerignore")
    if os.path.isfile(default):
        return default
    return None


def find_ignore_file(
    context_dir: Path | str, dockerfile_path: Path | str | None = None
) -> Path | None:
    """:func:`find_ignore_path` as a :class:`~pathlib.Path`."""
    from pathlib import Path

    found = find_ignore_path(context_dir, dockerfile_path)
    return Path(found) if found is not None else None


def load_ignore_patterns(
    context_dir: Path | str, dockerfile_path: Path | str | None = None
) -> list[str]:
    """Find (:func:`find_ignore_file`) and read the ignore file; ``[]`` when there is none."""
    path = find_ignore_file(context_dir, dockerfile_path)
    if path is None:
        return []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContextError(
            f"cannot read {path}: {exc.strerror}", hint="check the file's permissions"
        ) from exc
    return read_ignore_file(data)

"""The build memo: a repeated build answered without running the builder.

Most builds repeat one that just ran: nothing changed, and every step would be
``CACHED``.  Answering that through the builder means parsing the Dockerfile, typing
its instructions, resolving the bases and asking the cache step by step -- and
importing all the code that does so.  The memo answers it from one row instead.

:func:`probe` computes the *memo key* of a build request from everything that decides
its result, before anything heavy is imported:

* the Dockerfile's bytes, the ignore file's path and bytes;
* the options: build args, target, labels, network, secrets (id and path),
  ``SOURCE_DATE_EPOCH``, the runtime, the machine's architecture;
* a fingerprint of every context entry the ``.dockerignore`` walk keeps: path, type
  and mode, size, mtime, ctime, inode and link target (so an edit, a ``touch`` or a
  rename all change it);
* the memo format and lamina's version.

What a build resolved by name (``FROM`` bases, ``COPY --from``/``--mount from=``
images) is not in the key: the row records each name with the image ID it named, and
a hit needs every name to still name that image.

After a successful build the builder saves ``key → image ID`` with the progress
vertices to replay, the cache keys the build used and the names it resolved
(:meth:`MemoProbe.save`; rows live in the ``build_steps`` table under
``memo:<key>``).  :meth:`MemoProbe.lookup` answers a later request with the same key
in one write transaction: the image still exists, every resolved name still names the
same image, every cache row is still there (their ``last_used`` is renewed) -- then
the tags are set.  Anything else is a miss and the full cache path runs, which still
gives every step ``CACHED`` after a mere ``touch``.

Not memoised: ``--no-cache`` and ``--pull`` (lookups only), ``ADD`` of URLs (remote
content may change), bases named by a short ID, a context from stdin, and a walk that
saw an entry changed in the last second (its stamp may not show a second change made
within the same clock tick).  ``builder prune`` deletes every memo row.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

    from lamina.build.dockerfile.context import ContextEntry
    from lamina.metadata import MetadataStore

__all__ = ["SLOT_PREFIX", "MemoHit", "MemoProbe", "probe"]

MEMO_VERSION = "lamina-build-memo-v1"
#: ``build_steps.slot`` prefix of memo rows (step slots are bare sha256 hex).
SLOT_PREFIX = "memo:"
#: An entry whose ctime is this close to the walk is "racy": no memo is saved.
RACY_NS = 1_000_000_000


class MemoHit:
    """A memo answer: the image, the vertices to replay and the names now set.

    ``vertices`` are ``(name, is_step)`` in the original order (layer steps replay as
    ``CACHED``, the others as ``DONE``); ``names`` are ``(full, familiar)``.
    """

    __slots__ = ("image_id", "names", "vertices")

    def __init__(self, image_id: str, vertices: tuple[tuple[str, bool], ...],
                 names: tuple[tuple[str, str], ...]) -> None:
        self.image_id = image_id
        self.vertices = vertices
        self.names = names


class MemoProbe:
    """One build request's memo key, and what was read to compute it.

    The builder reuses ``dockerfile_text``, ``patterns`` and ``entries`` (the walk
    of the context) instead of reading them again, so the key describes exactly what
    the build consumed.  ``entries`` is ``None`` when the walk failed (the builder
    walks again and reports the error only if a step needs the context); such a probe
    neither looks up nor saves.
    """

    __slots__ = ("dockerfile_text", "entries", "key", "patterns", "racy", "store_root")

    def __init__(self, store_root: str, key: str, dockerfile_text: str, patterns: list[str],
                 entries: list[ContextEntry] | None, racy: bool) -> None:
        self.store_root = store_root
        self.key = key
        self.dockerfile_text = dockerfile_text
        self.patterns = patterns
        self.entries = entries
        self.racy = racy

    @property
    def usable(self) -> bool:
        return self.entries is not None

    # --- lookup ---------------------------------------------------------------------

    def lookup(self, tags: Sequence[str]) -> MemoHit | None:
        """Answer the build from the memo and set ``tags`` (``None``: a miss, nothing changed)."""
        if not self.usable:
            return None
        import json
        import sqlite3

        path = os.path.join(self.store_root, "metadata.db")
        if not os.path.exists(path):
            return None
        try:
            con = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            con.execute("PRAGMA synchronous=NORMAL")  # as MetadataStore: WAL, no fsync per commit
        except sqlite3.Error:
            return None
        try:
            try:
                row = con.execute("SELECT key, inputs FROM build_steps WHERE slot = ?",
                                  (SLOT_PREFIX + self.key,)).fetchone()
            except sqlite3.Error:
                return None  # a store without the build cache tables yet
            if row is None:
                return None
            image_id: str = row[0]
            data: dict[str, Any] = json.loads(row[1])
            names = _names(tags, data.get("names") or [])
            con.execute("BEGIN IMMEDIATE")
            try:
                if not _still_valid(con, image_id, data):
                    con.execute("ROLLBACK")
                    return None
                now = _now()
                for full, _ in names:
                    con.execute(
                        "INSERT INTO refs (name, image_id, digest, updated) VALUES (?, ?, NULL, ?)"
                        " ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id,"
                        " digest = excluded.digest, updated = excluded.updated",
                        (full, image_id, now))
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        except sqlite3.Error:
            return None
        finally:
            con.close()
        vertices = tuple((str(n), bool(s)) for n, s in data.get("vertices") or [])
        return MemoHit(image_id, vertices, names)

    # --- save -----------------------------------------------------------------------

    def save(self, meta: MetadataStore, image_id: str, *, vertices: Sequence[tuple[str, bool]],
             cache_keys: Sequence[str], bases: Sequence[tuple[str, str]],
             names: Sequence[tuple[str, str, str]]) -> bool:
        """Remember that this request built ``image_id``; ``False`` if it may not be.

        ``bases`` are ``(full name, image ID)`` for every name the build resolved
        (``("", ID)`` for a full image ID); ``names`` are ``(typed, full, familiar)``
        for the tags.
        """
        if not self.usable or self.racy:
            return False
        import json

        inputs = json.dumps({"vertices": [list(v) for v in vertices],
                             "keys": sorted(set(cache_keys)),
                             "bases": [list(b) for b in bases],
                             "names": [list(n) for n in names]},
                            sort_keys=True, separators=(",", ":"))
        with meta.transaction():
            meta._q("INSERT INTO build_steps (slot, key, inputs, updated) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(slot) DO UPDATE SET key = excluded.key,"
                    " inputs = excluded.inputs, updated = excluded.updated",
                    (SLOT_PREFIX + self.key, image_id, inputs, _now()))
        return True


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def _names(tags: Sequence[str], known: Sequence[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    """``(full, familiar)`` of each tag: from the row when it saw the same spelling."""
    table = {str(t): (str(f), str(fam)) for t, f, fam in known}
    out: list[tuple[str, str]] = []
    for tag in tags:
        hit = table.get(tag)
        if hit is None:
            from lamina.reference import parse_reference

            ref = parse_reference(tag)
            hit = (str(ref), ref.familiar)
        out.append(hit)
    return tuple(out)


def _still_valid(con: Any, image_id: str, data: Mapping[str, Any]) -> bool:
    if con.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
        return False
    for name, base_id in data.get("bases") or []:
        if name:
            row = con.execute("SELECT image_id FROM refs WHERE name = ?", (name,)).fetchone()
            if row is None or row[0] != base_id:
                return False
        elif con.execute("SELECT 1 FROM images WHERE id = ?", (base_id,)).fetchone() is None:
            return False
    keys: list[str] = list(data.get("keys") or [])
    if keys:
        now = _now()
        changed = 0
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            changed += con.execute(
                f"UPDATE build_cache SET last_used = ? WHERE key IN ({','.join('?' * len(part))})",
                (now, *part)).rowcount
        if changed != len(keys):
            return False
    return True


# --- the key ------------------------------------------------------------------------


def probe(store_root: str, *, context: str, dockerfile: str | None,
          build_args: Mapping[str, str], target: str | None, labels: Mapping[str, str],
          network: str, secrets: Sequence[tuple[str, str]], source_date_epoch: int | None,
          runtime: str) -> MemoProbe:
    """Read the Dockerfile and ignore file, walk the context, and compute the memo key.

    ``dockerfile`` is ``-f`` as given (``None``: ``CONTEXT/Dockerfile``).  Raises
    :class:`~lamina.errors.BuildError` when the Dockerfile cannot be read (as the
    builder would).
    """
    from lamina.build.dockerfile.context import find_ignore_path, walk_context
    from lamina.build.dockerfile.dockerignore import read_ignore_file

    df_path = dockerfile if dockerfile is not None else os.path.join(context, "Dockerfile")
    try:
        with open(df_path, "rb") as f:
            df_bytes = f.read()
        # as Path.read_text gives it to the builder otherwise (universal newlines)
        text = df_bytes.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except (OSError, UnicodeDecodeError) as exc:
        from lamina.errors import BuildError

        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise BuildError(f"cannot read Dockerfile {df_path}: {reason}",
                         hint="pass the Dockerfile with -f, or put one in the context") from exc
    h = hashlib.sha256()

    def put(*parts: object) -> None:
        h.update("\x00".join(map(str, parts)).encode("utf-8", "surrogateescape") + b"\n")

    import lamina

    put(MEMO_VERSION, lamina.__version__, os.uname().machine)
    put("dockerfile", os.path.realpath(df_path), len(df_bytes))
    h.update(df_bytes)
    put("context", os.path.realpath(context))
    put("target", target)
    put("network", network)
    put("runtime", runtime)
    put("sde", source_date_epoch)
    for k in sorted(build_args):
        put("arg", k, build_args[k])
    for k in sorted(labels):
        put("label", k, labels[k])
    for ident, src in secrets:
        put("secret", ident, os.path.realpath(src))
    from lamina.errors import LaminaError

    entries: list[ContextEntry] | None = None
    patterns: list[str] = []
    racy = False
    started = _clock_ns()
    try:
        ignore = find_ignore_path(context, df_path)
        if ignore is not None:
            with open(ignore, "rb") as f:
                data = f.read()
            put("ignore", os.path.realpath(ignore), len(data))
            h.update(data)
            patterns = read_ignore_file(data)
        entries = list(walk_context(context, patterns))
    except (LaminaError, OSError):  # the builder reports it if a step needs the context
        entries = None
    if entries is not None:
        lines = []
        horizon = started - RACY_NS
        for e in entries:
            lines.append(f"{e.path}\x00{e.mode:o}\x00{e.size}\x00{e.mtime_ns}\x00{e.ctime_ns}"
                         f"\x00{e.ino}\x00{e.link_target or ''}\n")
            if e.ctime_ns >= horizon:
                racy = True
        h.update("".join(lines).encode("utf-8", "surrogateescape"))
    return MemoProbe(store_root, h.hexdigest(), text, patterns, entries, racy)


def _clock_ns() -> int:
    import time

    return time.time_ns()

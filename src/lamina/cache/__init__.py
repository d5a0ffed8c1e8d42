"""The build cache: step keys, remembered results and context-file digests.

* :func:`step_key` -- a step's key: sha256 over its parent's key and its expanded
  definition (:mod:`lamina.cache._keys`);
* :class:`BuildCache` -- key → layer, persistent in the metadata database, plus the
  inputs each step saw last time so a miss can be explained
  (:mod:`lamina.cache._store`);
* :class:`FileDigests` -- content digests of context files, trusted while
  ``(size, mtime, ctime, inode)`` is unchanged, so big contexts are not re-read and a
  ``touch`` still hits (:mod:`lamina.cache._digests`).
"""

from lamina.cache._digests import FileDigests, FileStamp, hash_file
from lamina.cache._keys import canonical, step_key
from lamina.cache._store import BuildCache, CacheEntry, CacheHit

__all__ = [
    "BuildCache",
    "CacheEntry",
    "CacheHit",
    "FileDigests",
    "FileStamp",
    "canonical",
    "hash_file",
    "step_key",
]

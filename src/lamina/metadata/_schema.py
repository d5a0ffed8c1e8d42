"""The metadata schema as an ordered list of migrations.

The database records which migrations it has had in ``schema_migrations``; opening
a store applies the missing ones, in order, inside one write transaction, so every
process sees either the old schema or the new one.  To change the schema, *append*
a :class:`Migration` -- never edit a released one.  Containers, volumes, leases and
the build cache arrive this way as versions 2, 3, ...

Conventions: digests are stored as text (``sha256:<hex>``), times as ISO 8601 text
in UTC, sizes in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Migration"]


@dataclass(frozen=True)
class Migration:
    """One schema step: ``version`` (1, 2, ...), a ``name`` and its SQL statements."""

    version: int
    name: str
    statements: tuple[str, ...]


_V1 = Migration(
    version=1,
    name="references, images, layers, image layers, snapshots",
    statements=(
        # One row per image, keyed by its ID (the config digest).
        """CREATE TABLE images (
            id              TEXT PRIMARY KEY,
            manifest_digest TEXT NOT NULL,
            created         TEXT,
            size            INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
            parent          TEXT REFERENCES images(id) ON DELETE RESTRICT,
            added           TEXT NOT NULL
        )""",
        "CREATE INDEX images_parent ON images(parent)",
        # Names (full normalised references) pointing at images.  ``digest`` is the
        # manifest or index digest the name was pulled/pushed as (RepoDigests).
        """CREATE TABLE refs (
            name     TEXT PRIMARY KEY,
            image_id TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
            digest   TEXT,
            updated  TEXT NOT NULL
        )""",
        "CREATE INDEX refs_image ON refs(image_id)",
        # Layers by chain ID; the blob columns describe one known compressed form.
        """CREATE TABLE layers (
            chain_id          TEXT PRIMARY KEY,
            diff_id           TEXT NOT NULL,
            parent            TEXT REFERENCES layers(chain_id) ON DELETE RESTRICT,
            blob_digest       TEXT,
            blob_media_type   TEXT,
            compressed_size   INTEGER CHECK (compressed_size >= 0),
            uncompressed_size INTEGER NOT NULL CHECK (uncompressed_size >= 0)
        )""",
        "CREATE INDEX layers_diff_id ON layers(diff_id)",
        "CREATE INDEX layers_parent ON layers(parent)",
        # The layers of each image, base first, with the blobs of *that* image's manifest.
        """CREATE TABLE image_layers (
            image_id        TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            idx             INTEGER NOT NULL CHECK (idx >= 0),
            chain_id        TEXT NOT NULL REFERENCES layers(chain_id) ON DELETE RESTRICT,
            blob_digest     TEXT,
            blob_media_type TEXT,
            compressed_size INTEGER,
            PRIMARY KEY (image_id, idx)
        )""",
        "CREATE INDEX image_layers_chain ON image_layers(chain_id)",
        # Snapshots: ``id`` names the directory (snapshots/<id>/) and never changes,
        # not even when commit renames the key; AUTOINCREMENT never reuses an id.
        """CREATE TABLE snapshots (
            id      INTEGER PRIMARY KEY AUTOINCREMENT,
            key     TEXT NOT NULL UNIQUE,
            parent  TEXT REFERENCES snapshots(key) ON DELETE RESTRICT ON UPDATE CASCADE,
            kind    TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
            created TEXT NOT NULL,
            size    INTEGER CHECK (size >= 0)
        )""",
        "CREATE INDEX snapshots_parent ON snapshots(parent)",
    ),
)

_V2 = Migration(
    version=2,
    name="containers, volumes, container volumes",
    statements=(
        # One row per container.  ``config`` is the JSON of what it was created with
        # (lamina.containers.ContainerSpec); the other columns are its life-cycle state,
        # kept as columns so ``ps`` filters and updates need no JSON rewrite.  A container
        # pins its image: the image cannot be deleted while a container uses it.
        """CREATE TABLE containers (
            id            TEXT PRIMARY KEY,
            name          TEXT NOT NULL UNIQUE,
            image_id      TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
            image_name    TEXT NOT NULL,
            created       TEXT NOT NULL,
            config        TEXT NOT NULL,
            status        TEXT NOT NULL CHECK (status IN
                              ('created', 'running', 'paused', 'restarting', 'removing',
                               'exited', 'dead')),
            pid           INTEGER NOT NULL DEFAULT 0,
            exit_code     INTEGER NOT NULL DEFAULT 0,
            oom_killed    INTEGER NOT NULL DEFAULT 0,
            error         TEXT NOT NULL DEFAULT '',
            started_at    TEXT,
            finished_at   TEXT,
            restart_count INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX containers_image ON containers(image_id)",
        # Named and anonymous volumes (files under volumes/<name>/_data).
        """CREATE TABLE volumes (
            name      TEXT PRIMARY KEY,
            driver    TEXT NOT NULL DEFAULT 'local',
            created   TEXT NOT NULL,
            labels    TEXT NOT NULL DEFAULT '{}',
            options   TEXT NOT NULL DEFAULT '{}',
            anonymous INTEGER NOT NULL DEFAULT 0 CHECK (anonymous IN (0, 1))
        )""",
        # Which container mounts which volume where: a volume in use cannot be removed.
        """CREATE TABLE container_volumes (
            container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
            volume       TEXT NOT NULL REFERENCES volumes(name) ON DELETE RESTRICT,
            destination  TEXT NOT NULL,
            PRIMARY KEY (container_id, destination)
        )""",
        "CREATE INDEX container_volumes_volume ON container_volumes(volume)",
    ),
)

_V3 = Migration(
    version=3,
    name="build cache: step results, step inputs, file digests",
    statements=(
        # One row per cached build step that made a layer: ``key`` is the step's cache key
        # (sha256 hex over its parent's key and its expanded definition, see
        # lamina.cache), ``chain_id`` the layer it produced, ``created`` the time that
        # layer was first made (it becomes the history entry's time, so a cached rebuild
        # gives the same image ID).  GC keeps layers named here.
        """CREATE TABLE build_cache (
            key         TEXT PRIMARY KEY,
            chain_id    TEXT NOT NULL REFERENCES layers(chain_id) ON DELETE CASCADE,
            created     TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            last_used   TEXT NOT NULL
        )""",
        "CREATE INDEX build_cache_chain ON build_cache(chain_id)",
        # What each step of a Dockerfile saw the last time it ran (JSON), so that a
        # cache miss can say *why*: which file, build arg or ENV changed.
        """CREATE TABLE build_steps (
            slot    TEXT PRIMARY KEY,
            key     TEXT NOT NULL,
            inputs  TEXT NOT NULL,
            updated TEXT NOT NULL
        )""",
        # Content digests of build-context files, trusted while the file's size,
        # mtime, ctime and inode are unchanged (so unchanged files are not re-read).
        """CREATE TABLE build_file_digests (
            path     TEXT PRIMARY KEY,
            size     INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            ctime_ns INTEGER NOT NULL,
            ino      INTEGER NOT NULL,
            digest   TEXT NOT NULL
        )""",
    ),
)

_V4 = Migration(
    version=4,
    name="registry blob history: compressed forms of layers, blob locations",
    statements=(
        # The compressed form (gzip, zstd) of a layer tar, by its diff ID, so that a
        # second push of a locally built layer neither compresses nor uploads it again
        # (lamina.metadata._registry).
        """CREATE TABLE blob_compressions (
            diff_id     TEXT NOT NULL,
            compression TEXT NOT NULL CHECK (compression IN ('gzip', 'zstd')),
            digest      TEXT NOT NULL,
            size        INTEGER NOT NULL CHECK (size >= 0),
            PRIMARY KEY (diff_id, compression)
        )""",
        # Registry repositories known to hold a blob: sources for cross-repository mounts.
        """CREATE TABLE blob_locations (
            digest     TEXT NOT NULL,
            registry   TEXT NOT NULL,
            repository TEXT NOT NULL,
            updated    TEXT NOT NULL,
            PRIMARY KEY (digest, registry, repository)
        )""",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3, _V4)
"""Every schema migration lamina knows, oldest first."""

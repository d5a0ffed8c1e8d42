"""Image verbs: import, images, inspect, history, tag, rmi, save, load (and ``image …``).

Output shapes follow Docker's: the same columns, the same ``--format`` fields, the same
``Untagged:``/``Deleted:``/``Loaded image:`` lines, so scripts written for ``docker``
keep working.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lamina.cli._format import (
    emit_inspect,
    human_duration,
    human_size,
    render_table,
    render_template,
)

if TYPE_CHECKING:
    from lamina.images.store import ImageStore, ResolvedImage

__all__ = ["commands"]


def _store(ctx: click.Context) -> ImageStore:
    from lamina.images.store import ImageStore

    store = ImageStore(ctx.obj["root"])
    ctx.call_on_close(store.close)
    return store


def _familiar(name: str) -> str:
    from lamina.reference import parse_reference

    return parse_reference(name).familiar


def _split_familiar(name: str) -> tuple[str, str]:
    fam = _familiar(name)
    repo, sep, tag = fam.rpartition(":")
    if not sep or "/" in tag:
        return fam, "<none>"
    return repo, tag


def _created(img: ResolvedImage) -> datetime | None:
    return img.config.created_at


def _go_time(dt: datetime | None) -> str:
    if dt is None:
        return ""
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def _since(dt: datetime | None) -> str:
    if dt is None:
        return "N/A"
    return human_duration(time.time() - dt.timestamp()) + " ago"


# --- import ------------------------------------------------------------------------


@click.command("import")
@click.option("-c", "--change", "changes", multiple=True,
              help="Apply a Dockerfile instruction to the image (CMD, ENV, EXPOSE…).")
@click.option("-m", "--message", default="", help="Commit message for the imported image.")
@click.option("--platform", default=None, help="Accepted for compatibility (host platform only).")
@click.argument("source")
@click.argument("repository", required=False)
@click.pass_context
def import_cmd(ctx: click.Context, changes: tuple[str, ...], message: str, platform: str | None,
               source: str, repository: str | None) -> None:
    """Import a rootfs tarball (plain or compressed; - for stdin) as an image."""
    from lamina.errors import InvalidArgument
    from lamina.images.changes import apply_change_lines

    store = _store(ctx)
    cfg = apply_change_lines({}, changes) if changes else {}
    names = [repository] if repository else []
    if source == "-":
        record = store.import_tar(sys.stdin.buffer, names=names, container_config=cfg,
                                  message=message, source="-")
    else:
        try:
            fh = open(source, "rb")  # noqa: SIM115
        except OSError as exc:
            raise InvalidArgument(f"cannot open {source}: {exc.strerror}",
                                  hint="pass a tar file of a root filesystem, or - for stdin") from exc
        with fh:
            record = store.import_tar(fh, names=names, container_config=cfg, message=message,
                                      source="-")
    click.echo(str(record.id))


# --- images ------------------------------------------------------------------------


def _image_rows(store: ImageStore, filter_ref: str | None, digests: bool) -> list[dict[str, Any]]:
    from lamina.reference import parse_reference

    want_repo = want_tag = None
    if filter_ref:
        ref = parse_reference(filter_ref, default_tag=None)
        want_repo, want_tag = ref.name, ref.tag
    rows: list[dict[str, Any]] = []
    for img in store.images():
        created = _created(img)
        base = {
            "ID": img.id.hex[:12], "FullID": str(img.id),
            "CreatedSince": _since(created), "CreatedAt": _go_time(created),
            "Size": human_size(img.record.size), "VirtualSize": human_size(img.record.size),
            "SharedSize": "N/A", "UniqueSize": "N/A", "Containers": "N/A",
        }
        refs = store.meta.references(img.id)
        if not refs:
            if filter_ref:
                continue
            rows.append({**base, "Repository": "<none>", "Tag": "<none>", "Digest": "<none>"})
            continue
        for r in refs:
            ref = parse_reference(r.name, default_tag=None)
            if want_repo and (ref.name != want_repo or (want_tag and ref.tag != want_tag)):
                continue
            repo, tag = _split_familiar(r.name)
            rows.append({**base, "Repository": repo, "Tag": tag,
                         "Digest": str(r.digest) if r.digest else "<none>"})
    return rows


@click.command("images")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--format", "fmt", default=None, help="Format output with a Go template.")
@click.argument("repository", required=False)
@click.pass_context
def images_cmd(ctx: click.Context, all_: bool, quiet: bool, digests: bool, no_trunc: bool,
               fmt: str | None, repository: str | None) -> None:
    """List images."""
    rows = _image_rows(_store(ctx), repository, digests)
    if no_trunc:
        for r in rows:
            r["ID"] = r["FullID"]
    if quiet:
        seen: list[str] = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        click.echo("".join(f"{i}\n" for i in seen), nl=False)
        return
    if fmt:
        _print_formatted(fmt, rows)
        return
    headers = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + \
        ["IMAGE ID", "CREATED", "SIZE"]
    table = [[r["Repository"], r["Tag"], *([r["Digest"]] if digests else []),
              r["ID"], r["CreatedSince"], r["Size"]] for r in rows]
    click.echo(render_table(headers, table), nl=False)


def _print_formatted(fmt: str, rows: list[dict[str, Any]]) -> None:
    data = [{k: v for k, v in r.items() if k != "FullID"} for r in rows]
    if fmt.startswith("table"):
        body = fmt[len("table"):].strip()
        cells = [render_template(body, r).split("\t") for r in data]
        header = [h.strip("{}. ").upper().replace("CREATEDSINCE", "CREATED") for h in body.split("\\t")]
        click.echo(render_table(header, cells), nl=False)
        return
    for r in data:
        click.echo(render_template(fmt, r))


# --- inspect -----------------------------------------------------------------------

_CONFIG_KEYS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", None), ("Tty", False),
    ("OpenStdin", False), ("StdinOnce", False), ("Env", None), ("Cmd", None),
    ("Healthcheck", None), ("ArgsEscaped", None), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("OnBuild", None), ("Labels", None),
    ("StopSignal", None), ("Shell", None),
)
_OMIT_EMPTY = {"ExposedPorts", "Healthcheck", "ArgsEscaped", "StopSignal", "Shell"}


def docker_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """An image's runtime config with every key Docker shows, in Docker's order."""
    cfg = cfg or {}
    out: dict[str, Any] = {}
    for key, default in _CONFIG_KEYS:
        value = cfg.get(key, default)
        if key in _OMIT_EMPTY and not value:
            continue
        out[key] = value
    return out


def inspect_image(store: ImageStore, img: ResolvedImage) -> dict[str, Any]:
    raw = json.loads(img.config_bytes)
    refs = store.meta.references(img.id)
    tags = [_familiar(r.name) for r in refs]
    digests = sorted({f"{_split_familiar(r.name)[0]}@{r.digest}" for r in refs if r.digest})
    out: dict[str, Any] = {
        "Id": str(img.id),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": str(img.record.parent) if img.record.parent else "",
        "Comment": raw.get("comment", ""),
        "Created": raw.get("created", ""),
        "DockerVersion": raw.get("docker_version", ""),
        "Author": raw.get("author", ""),
        "Config": docker_config(raw.get("config")),
        "Architecture": raw.get("architecture", ""),
    }
    if raw.get("variant"):
        out["Variant"] = raw["variant"]
    out.update({
        "Os": raw.get("os", ""),
        "Size": img.record.size,
        "VirtualSize": img.record.size,
        "GraphDriver": {"Name": "overlay", "Data": _graph_data(store, img)},
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in img.config.rootfs.diff_ids]},
        "Metadata": {"LastTagTime": _rfc3339(max((r.updated for r in refs if r.updated),
                                                 default=None))},
    })
    return out


def _rfc3339(dt: datetime | None) -> str:
    if dt is None:
        return "0001-01-01T00:00:00Z"
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _graph_data(store: ImageStore, img: ResolvedImage) -> dict[str, str]:
    dirs = []
    for layer in reversed(img.layers):
        try:
            dirs.append(str(store.snapshots.fs_path(str(layer.chain_id))))
        except Exception:
            continue
    if not dirs:
        return {}
    return {"UpperDir": dirs[0], "LowerDir": ":".join(dirs[1:])} if len(dirs) > 1 \
        else {"UpperDir": dirs[0]}


@click.command("inspect")
@click.option("-f", "--format", "fmt", default=None, help="Format output with a Go template.")
@click.option("--type", "kind", default=None,
              type=click.Choice(["image", "container", "volume"]),
              help="Only look for this kind of object.")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect_cmd(ctx: click.Context, fmt: str | None, kind: str | None, names: tuple[str, ...]) -> None:
    """Show low-level information on images, containers or volumes as a JSON array.

    A name is looked up as an image first, then as a container, then as a volume
    (``--type`` restricts the search), as Docker does.
    """
    from lamina.errors import LaminaError, NotFound

    store = _store(ctx)
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    containers: Any = None

    def lookup_container(name: str) -> dict[str, Any]:
        nonlocal containers
        from lamina.cli.cmd_container import inspect_container
        from lamina.containers.store import ContainerStore

        if containers is None:
            containers = ContainerStore(store)
        return inspect_container(containers, containers.get(name))

    def lookup_volume(name: str) -> dict[str, Any]:
        from lamina.cli.cmd_volume import inspect_volume
        from lamina.containers.volumes import VolumeStore

        return inspect_volume(VolumeStore(store.root, store.meta), name)

    def lookup_image(name: str) -> dict[str, Any]:
        return inspect_image(store, store.resolve(name))

    lookups = [("image", lookup_image),
               ("container", lookup_container), ("volume", lookup_volume)]
    for name in names:
        found = None
        failure: LaminaError | None = None
        for what, lookup in lookups:
            if kind is not None and what != kind:
                continue
            try:
                found = lookup(name)
                break
            except NotFound:
                continue
            except LaminaError as exc:  # e.g. a container name that is no image reference
                failure = failure or exc
                continue
        if found is not None:
            results.append(found)
        elif failure is not None and kind is not None:
            errors.append(f"Error: {failure.message}")
        else:
            errors.append(f"Error: No such {kind or 'object'}: {name}")
    emit_inspect(ctx, results, errors, fmt)


# --- history -----------------------------------------------------------------------


@click.command("history")
@click.option("-H", "--human", default=True, type=bool, help="Print sizes and dates in human form.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--format", "fmt", default=None, help="Format output with a Go template.")
@click.argument("image")
@click.pass_context
def history_cmd(ctx: click.Context, human: bool, no_trunc: bool, quiet: bool, fmt: str | None,
                image: str) -> None:
    """Show the history of an image, newest first."""
    from lamina.oci import parse_timestamp

    store = _store(ctx)
    img = store.resolve(image)
    layers = list(img.layers)
    entries: list[dict[str, Any]] = []
    li = 0
    for h in img.config.history:
        size = 0
        if not h.empty_layer and li < len(layers):
            size = store.layer_size(layers[li].chain_id)
            li += 1
        created = parse_timestamp(h.created) if h.created else None
        entries.append({"CreatedBy": h.created_by or "", "Comment": h.comment or "",
                        "CreatedAt": created, "Size": size})
    if not entries:  # a config without history: one row per layer
        entries = [{"CreatedBy": "", "Comment": "", "CreatedAt": img.config.created_at,
                    "Size": store.layer_size(x.chain_id)} for x in layers]
    entries.reverse()
    rows: list[dict[str, str]] = []
    for i, e in enumerate(entries):
        ident = (str(img.id) if no_trunc else img.id.hex[:12]) if i == 0 else "<missing>"
        by = str(e["CreatedBy"])
        if not no_trunc and len(by) > 45:
            by = by[:44] + "…"
        created_dt: datetime | None = e["CreatedAt"]
        rows.append({
            "ID": ident,
            "CreatedSince": _since(created_dt) if human else _rfc3339(created_dt),
            "CreatedAt": _rfc3339(created_dt),
            "CreatedBy": by,
            "Size": human_size(int(e["Size"])) if human else str(e["Size"]),
            "Comment": e["Comment"],
        })
    if quiet:
        click.echo("".join(f"{r['ID']}\n" for r in rows), nl=False)
        return
    if fmt:
        _print_formatted(fmt, rows)
        return
    click.echo(render_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
                            [[r["ID"], r["CreatedSince"], r["CreatedBy"], r["Size"], r["Comment"]]
                             for r in rows]), nl=False)


# --- tag / rmi ---------------------------------------------------------------------


@click.command("tag")
@click.argument("source")
@click.argument("target")
@click.pass_context
def tag_cmd(ctx: click.Context, source: str, target: str) -> None:
    """Create a tag TARGET that refers to SOURCE."""
    _store(ctx).tag(source, target)


@click.command("rmi")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def rmi_cmd(ctx: click.Context, force: bool, no_prune: bool, images: tuple[str, ...]) -> None:
    """Remove one or more images."""
    from lamina.errors import LaminaError

    store = _store(ctx)
    failed = False
    for name in images:
        try:
            res = store.remove(name, force=force, prune=not no_prune)
        except LaminaError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            failed = True
            continue
        for u in res.untagged:
            click.echo(f"Untagged: {u}")
        for d in res.deleted:
            click.echo(f"Deleted: {d}")
    if failed:
        ctx.exit(1)


# --- save / load -------------------------------------------------------------------


@click.command("save")
@click.option("-o", "--output", default=None, help="Write to a file instead of stdout.")
@click.option("--format", "fmt", type=click.Choice(["docker", "oci"]), default="docker",
              show_default=True, help="docker: also readable by docker load; oci: OCI layout only.")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def save_cmd(ctx: click.Context, output: str | None, fmt: str, images: tuple[str, ...]) -> None:
    """Save one or more images to a tar archive (stdout by default)."""
    from lamina.errors import InvalidArgument

    store = _store(ctx)
    for name in images:
        store.resolve(name)  # fail before creating the output
    docker = fmt == "docker"
    if output is None:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal",
                                  hint="use -o FILE or redirect stdout")
        store.save(sys.stdout.buffer, list(images), docker=docker)
        return
    out_path = Path(output)
    fd, tmp = tempfile.mkstemp(prefix=".lamina-save-", dir=out_path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            store.save(fh, list(images), docker=docker)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("load")
@click.option("-i", "--input", "input_", default=None, help="Read from a tar file instead of stdin.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@click.pass_context
def load_cmd(ctx: click.Context, input_: str | None, quiet: bool) -> None:
    """Load images from a tar archive (docker save format or OCI layout, maybe compressed)."""
    from lamina.errors import InvalidArgument

    store = _store(ctx)
    if input_ is None:
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty",
                                  hint="use -i FILE or pipe an archive in")
        fd, tmp = tempfile.mkstemp(prefix="stdin-", suffix=".tar", dir=store.tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                while chunk := sys.stdin.buffer.read(1 << 20):
                    fh.write(chunk)
            lines = store.load(Path(tmp), display_name="stdin")
        finally:
            Path(tmp).unlink(missing_ok=True)
    else:
        if not Path(input_).is_file():
            raise InvalidArgument(f"open {input_}: no such file",
                                  hint="pass the archive written by `docker save` or `lamina save`")
        lines = store.load(Path(input_))
    if not quiet:
        for line in lines:
            click.echo(line)


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_context
def image_prune_cmd(ctx: click.Context, all_: bool, force: bool) -> None:
    """Remove unused images (by default only those without a name)."""
    deleted = _store(ctx).prune_images(all_images=all_)
    if deleted:
        click.echo("Deleted Images:")
        for d in deleted:
            click.echo(f"deleted: {d}")
    click.echo(f"Total images removed: {len(deleted)}")


@click.group("image")
def image_group() -> None:
    """Manage images."""


for _name, _cmd in (("import", import_cmd), ("ls", images_cmd), ("list", images_cmd),
                    ("inspect", inspect_cmd), ("history", history_cmd), ("tag", tag_cmd),
                    ("rm", rmi_cmd), ("save", save_cmd), ("load", load_cmd),
                    ("prune", image_prune_cmd)):
    image_group.add_command(_cmd, _name)


commands: dict[str, click.Command] = {
    "import": import_cmd,
    "images": images_cmd,
    "inspect": inspect_cmd,
    "history": history_cmd,
    "tag": tag_cmd,
    "rmi": rmi_cmd,
    "save": save_cmd,
    "load": load_cmd,
    "image": image_group,
}

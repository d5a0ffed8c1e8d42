"""``volume create | ls | inspect | rm | prune``: named and anonymous volumes, as Docker shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lamina.containers.volumes import VolumeStore

__all__ = ["command", "inspect_volume"]

_NO_H = {"help_option_names": ["-h", "--help"]}


def _volumes(ctx: click.Context) -> VolumeStore:
    from lamina.containers.volumes import VolumeStore
    from lamina.metadata import MetadataStore

    root = ctx.obj["root"]
    from pathlib import Path

    Path(root).mkdir(parents=True, exist_ok=True)
    meta = MetadataStore(Path(root) / "metadata.db")
    ctx.call_on_close(meta.close)
    return VolumeStore(root, meta)


def inspect_volume(store: VolumeStore, name: str) -> dict[str, Any]:
    """A volume in Docker's ``volume inspect`` shape."""
    vol = store.get(name)
    return {
        "CreatedAt": vol.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Driver": vol.driver,
        "Labels": dict(vol.labels) or None,
        "Mountpoint": str(store.path(vol.name)),
        "Name": vol.name,
        "Options": dict(vol.options) or None,
        "Scope": "local",
    }


def _labels(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


@click.group("volume", context_settings=_NO_H)
def command() -> None:
    """Manage volumes."""


@command.command("create", context_settings=_NO_H)
@click.option("-d", "--driver", default="local", show_default=True, help="Volume driver.")
@click.option("--label", "labels", multiple=True, help="Set metadata (KEY=VALUE).")
@click.option("-o", "--opt", "opts", multiple=True, help="Driver options (not supported).")
@click.argument("name", required=False)
@click.pass_context
def create_cmd(ctx: click.Context, driver: str, labels: tuple[str, ...], opts: tuple[str, ...],
               name: str | None) -> None:
    """Create a volume (a random name when none is given); print its name."""
    from lamina.errors import InvalidArgument

    if opts:
        raise InvalidArgument("volume options (-o) are not supported by the local driver here",
                              hint="create the volume without -o")
    vol = _volumes(ctx).create(name, labels=_labels(labels), driver=driver)
    click.echo(vol.name)


@command.command("ls", context_settings=_NO_H)
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Filter: dangling=true|false, name=…, label=….")
@click.option("--format", "fmt", default=None, help="Format with a Go template.")
@click.pass_context
def ls_cmd(ctx: click.Context, quiet: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List volumes."""
    from lamina.cli._format import render_table, render_template
    from lamina.errors import InvalidArgument

    store = _volumes(ctx)
    vols = store.all()
    for f in filters:
        key, _, value = f.partition("=")
        if key == "dangling":
            want = value.lower() in ("1", "true")
            vols = [v for v in vols if (not store.in_use(v.name)) == want]
        elif key == "name":
            vols = [v for v in vols if value in v.name]
        elif key == "label":
            k, eq, val = value.partition("=")
            vols = [v for v in vols if k in dict(v.labels) and
                    (not eq or dict(v.labels)[k] == val)]
        elif key == "driver":
            vols = [v for v in vols if v.driver == value]
        else:
            raise InvalidArgument(f"invalid filter '{key}'",
                                  hint="use dangling, name, label or driver")
    if quiet:
        for v in vols:
            click.echo(v.name)
        return
    rows = [{"Driver": v.driver, "Name": v.name, "Mountpoint": str(store.path(v.name)),
             "Scope": "local", "Labels": ",".join(f"{k}={val}" for k, val in v.labels)}
            for v in vols]
    if fmt:
        for r in rows:
            click.echo(render_template(fmt, r))
        return
    click.echo(render_table(["DRIVER", "VOLUME NAME"], [[r["Driver"], r["Name"]] for r in rows]),
               nl=False)


@command.command("inspect", context_settings=_NO_H)
@click.option("-f", "--format", "fmt", default=None, help="Format with a Go template.")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect_cmd(ctx: click.Context, fmt: str | None, names: tuple[str, ...]) -> None:
    """Show detailed information on volumes."""
    from lamina.cli._format import emit_inspect
    from lamina.errors import LaminaError

    store = _volumes(ctx)
    results, errors = [], []
    for name in names:
        try:
            results.append(inspect_volume(store, name))
        except LaminaError as exc:
            errors.append(f"Error: {exc.message}")
    emit_inspect(ctx, results, errors, fmt)


@command.command("rm", context_settings=_NO_H)
@click.option("-f", "--force", is_flag=True, help="Do not complain about missing volumes.")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def rm_cmd(ctx: click.Context, force: bool, names: tuple[str, ...]) -> None:
    """Remove volumes (refused while a container uses one)."""
    from lamina.errors import LaminaError

    store = _volumes(ctx)
    failed = False
    for name in names:
        try:
            store.remove(name, force=force)
            click.echo(name)
        except LaminaError as exc:
            click.echo(f"Error response from daemon: {exc.message}", err=True)
            failed = True
    if failed:
        ctx.exit(1)


@command.command("prune", context_settings=_NO_H)
@click.option("-a", "--all", "all_volumes", is_flag=True,
              help="Remove all unused volumes, not just anonymous ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="label=KEY[=VALUE].")
@click.pass_context
def prune_cmd(ctx: click.Context, all_volumes: bool, force: bool,
              filters: tuple[str, ...]) -> None:
    """Remove unused anonymous volumes (all unused volumes with -a)."""
    from lamina.cli._format import human_size

    if not force:
        click.confirm("WARNING! This will remove anonymous local volumes not used by at least "
                      "one container.\nAre you sure you want to continue?", abort=True)
    labels = {}
    for f in filters:
        key, _, value = f.partition("=")
        if key == "label":
            labels.update(_labels((value,)))
    result = _volumes(ctx).prune(all_volumes=all_volumes, labels=labels)
    if result.deleted:
        click.echo("Deleted Volumes:")
        for name in result.deleted:
            click.echo(name)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(result.reclaimed)}")

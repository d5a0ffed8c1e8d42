"""``system df`` and ``system prune``: what the store holds and what sharing saves."""

from __future__ import annotations

import click

from lamina.cli._format import human_size, render_table

__all__ = ["command"]


@click.group("system")
def command() -> None:
    """Disk usage and cleanup."""


@command.command("df")
@click.option("-v", "--verbose", is_flag=True, help="Show per-image and per-layer detail.")
@click.pass_context
def df_cmd(ctx: click.Context, verbose: bool) -> None:
    """Show disk usage: images, layers, and the bytes that shared layers save."""
    from lamina.images.store import ImageStore

    with ImageStore(ctx.obj["root"]) as store:
        u = store.usage()
        rows = [
            ["Images", str(u.images), human_size(u.images_size), human_size(u.shared_savings)],
            ["Layers", str(u.layers), human_size(u.unique_size), "0B"],
            ["Blobs", str(u.blobs), human_size(u.blobs_size), f"{u.reclaimable_blobs} unused"],
            ["Snapshots", str(u.snapshots), "", f"{u.reclaimable_snapshots} unused"],
        ]
        click.echo(render_table(["TYPE", "TOTAL", "SIZE", "SHARED/RECLAIMABLE"], rows), nl=False)
        click.echo(f"Sharing saves {human_size(u.shared_savings)}: images add up to "
                   f"{human_size(u.images_size)}, their distinct layers to {human_size(u.unique_size)}.")
        if verbose:
            click.echo("\nLayers (chain ID, size, images using it):")
            use: dict[str, int] = {}
            for img in store.meta.images():
                for layer in store.meta.image_layers(img.id):
                    use[str(layer.chain_id)] = use.get(str(layer.chain_id), 0) + 1
            table = [[cid[7:19], human_size(store.layer_size(layer.chain_id)), str(use.get(cid, 0))]
                     for layer in store.meta.layers() for cid in [str(layer.chain_id)]]
            click.echo(render_table(["LAYER", "SIZE", "IMAGES"], table), nl=False)


@command.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Accepted for compatibility.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_context
def prune_cmd(ctx: click.Context, all_: bool, force: bool) -> None:
    """Remove blobs, layers and snapshots that no image uses."""
    from lamina.images.store import ImageStore

    with ImageStore(ctx.obj["root"]) as store:
        removed = store.prune()
    for key in removed:
        click.echo(f"deleted: {key}")
    click.echo(f"Total reclaimed layers: {len(removed)}")

"""``lamina analyze``: an image's layers, their sizes, wasted space and advice.

Exit status: 0, or 1 when ``--ci`` is on and a threshold is crossed (the report names
which), 125 for bad arguments.  Any threshold option turns ``--ci`` on.  Threshold
names and meanings follow ``dive``: ``--lowest-efficiency`` (ratio 0-1, default 0.9
under ``--ci``), ``--highest-wasted-bytes`` (a size such as ``20MB``, default
disabled), ``--highest-user-wasted-percent`` (a ratio 0-1, default 0.1); ``disabled``
turns one off.  See docs/analyze.md.
"""

from __future__ import annotations

import json
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from lamina.errors import InvalidArgument

if TYPE_CHECKING:
    from lamina.analyze.source import StoreOpener


def _ratio(value: str | None, option: str, default: float | None) -> float | None:
    """Parse a 0-1 ratio option; ``disabled`` is ``None``; not given is *default*."""
    if value is None:
        return default
    if value.strip().lower() == "disabled":
        return None
    try:
        r = float(value)
    except ValueError:
        raise InvalidArgument(f"{option} wants a ratio between 0 and 1, not {value!r}",
                              hint=f"for example {option} 0.9, or {option} disabled") from None
    if not 0.0 <= r <= 1.0:
        raise InvalidArgument(f"{option} {value} is outside 0-1",
                              hint="write a ratio: 0.1 means 10%")
    return r


def _store_opener(root: str) -> StoreOpener | None:
    """The seam for images in lamina's store (bare ``IMAGE`` names).

    Returns ``None`` when there is no store at *root* (names are then refused with a hint).
    """
    import os

    if not root or not os.path.exists(os.path.join(root, "metadata.db")):
        return None
    from lamina.engine.sources import store_opener

    return cast("StoreOpener", store_opener(root))


@click.command("analyze")
@click.argument("image", metavar="IMAGE|docker-archive:FILE|oci-archive:FILE")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text",
              show_default=True, help="Report format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              metavar="FILE", help="Write the report to FILE instead of standard output.")
@click.option("--ci", is_flag=True, help="Check thresholds; exit 1 when one is crossed.")
@click.option("--lowest-efficiency", metavar="RATIO",
              help="Fail below this efficiency (final ÷ stored bytes; default 0.9 with --ci).")
@click.option("--highest-wasted-bytes", metavar="SIZE",
              help="Fail above this many wasted bytes, e.g. 20MB (default disabled).")
@click.option("--highest-user-wasted-percent", metavar="RATIO",
              help="Fail above this ratio of your layers' bytes wasted (default 0.1 with --ci).")
@click.option("--base", metavar="IMAGE",
              help="The base image (name or archive spec): layers shared with it are the base.")
@click.option("--layer", "layer_index", type=int, metavar="N", help="Show one layer's changes.")
@click.option("--tree", is_flag=True, help="With --layer: show the changes as a file tree.")
@click.option("--verify/--no-verify", "verify", default=True, show_default=True,
              help="Check each layer against the digests that name it while reading it.")
@click.pass_context
def command(ctx: click.Context, image: str, fmt: str, output: str | None, ci: bool,
            lowest_efficiency: str | None, highest_wasted_bytes: str | None,
            highest_user_wasted_percent: str | None, base: str | None, layer_index: int | None,
            tree: bool, verify: bool) -> None:
    """Show an image's layers, the instruction and changes of each, the bytes that are
    wasted (unreachable in the final filesystem), efficiency, and advice.

    IMAGE is an image in the local store, docker-archive:FILE (`docker save` output) or
    oci-archive:FILE (an OCI layout tar); archives are read in place (one compressed
    as a whole, `docker save | gzip`, is inflated to a temporary file first).  Each
    layer is checked against its diff_id (and blob digest) as it is read.
    """
    from lamina.analyze import (
        AnalyzeOptions,
        CiThresholds,
        analyze,
        evaluate_ci,
        open_source,
        render_html,
        render_layer,
        render_text,
        render_tree,
        to_json,
    )
    from lamina.analyze.render import render_ci
    from lamina.analyze.units import parse_size

    if tree and layer_index is None:
        raise InvalidArgument("--tree needs --layer N", hint="e.g. --layer 2 --tree")

    defaults = CiThresholds()
    wasted_limit = defaults.highest_wasted_bytes
    if highest_wasted_bytes is not None and highest_wasted_bytes.strip().lower() != "disabled":
        wasted_limit = parse_size(highest_wasted_bytes)
    thresholds = CiThresholds(
        lowest_efficiency=_ratio(lowest_efficiency, "--lowest-efficiency",
                                 defaults.lowest_efficiency),
        highest_wasted_bytes=wasted_limit,
        highest_user_wasted_percent=_ratio(highest_user_wasted_percent,
                                           "--highest-user-wasted-percent",
                                           defaults.highest_user_wasted_percent),
    )
    ci = ci or any(v is not None for v in (lowest_efficiency, highest_wasted_bytes,
                                           highest_user_wasted_percent))

    store = _store_opener(ctx.obj["root"] if ctx.obj else "")
    with ExitStack() as stack:
        src = stack.enter_context(open_source(image, store=store))
        base_src = stack.enter_context(open_source(base, store=store)) if base else None
        result = analyze(src, base=base_src, options=AnalyzeOptions(verify_digests=verify))

    if layer_index is not None and not 0 <= layer_index < len(result.layers):
        raise InvalidArgument(
            f"--layer {layer_index}: the image has layers 0 to {len(result.layers) - 1}"
        )
    verdicts = evaluate_ci(result, thresholds) if ci else ()

    if fmt == "json":
        doc = to_json(result, verdicts if ci else None)
        if layer_index is not None:
            doc = doc["layers"][layer_index]
        text = json.dumps(doc, indent=2) + "\n"
    elif fmt == "html":
        text = render_html(result, verdicts)
    elif layer_index is not None:
        chosen = result.layers[layer_index]
        text = render_tree(chosen) if tree else render_layer(chosen)
        if verdicts:
            text += "\n" + render_ci(verdicts)
    else:
        text = render_text(result, verdicts, width=shutil.get_terminal_size((100, 24)).columns)

    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidArgument(f"cannot write {output}: {exc.strerror}") from exc
    else:
        sys.stdout.write(text)

    if any(r.failed for r in verdicts):
        failed = ", ".join(r.rule for r in verdicts if r.failed)
        click.echo(f"analyze: CI failed: {failed}", err=True)
        ctx.exit(1)

"""Layer analysis: per-layer sizes and changes, honest wasted space, and advice.

Open an image with :func:`open_source` (``docker-archive:FILE``, ``oci-archive:FILE``),
run :func:`analyze`, then render the :class:`Analysis` as text, JSON or HTML::

    from lamina.analyze import analyze, open_source, render_text

    with open_source("docker-archive:app.tar") as src:
        result = analyze(src)
    print(render_text(result))
    print(f"{result.wasted_bytes} bytes unreachable, efficiency {result.efficiency:.0%}")

*Waste* here counts only copies that are unreachable in the final filesystem; a path's
surviving copy is never waste (``total_bytes == final_bytes + wasted_bytes``).  See
:mod:`lamina.analyze.model` for the vocabulary and ``docs/analyze.md`` for the JSON.
"""

from lamina.analyze.ci import CiResult, CiThresholds, evaluate_ci
from lamina.analyze.core import AnalyzeOptions, analyze, shared_chain
from lamina.analyze.htmlpage import render_html
from lamina.analyze.model import (
    Advice,
    Analysis,
    Change,
    ChangeKind,
    HistoryStep,
    LayerReport,
    WastedCopy,
    WastedPath,
    WasteReason,
)
from lamina.analyze.render import SCHEMA, render_layer, render_text, render_tree, to_json
from lamina.analyze.source import (
    Compression,
    DockerArchiveSource,
    ImageSource,
    LayerBlob,
    OciArchiveSource,
    StoreOpener,
    detect_compression,
    open_source,
)

__all__ = [
    "SCHEMA",
    "Advice",
    "Analysis",
    "AnalyzeOptions",
    "Change",
    "ChangeKind",
    "CiResult",
    "CiThresholds",
    "Compression",
    "DockerArchiveSource",
    "HistoryStep",
    "ImageSource",
    "LayerBlob",
    "LayerReport",
    "OciArchiveSource",
    "StoreOpener",
    "WasteReason",
    "WastedCopy",
    "WastedPath",
    "analyze",
    "detect_compression",
    "evaluate_ci",
    "open_source",
    "render_html",
    "render_layer",
    "render_text",
    "render_tree",
    "shared_chain",
    "to_json",
]

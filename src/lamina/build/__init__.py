"""lamina.build: Dockerfile builds.

* :mod:`lamina.build.dockerfile` -- the Dockerfile frontend (parser, instructions,
  stages, variable expansion, ``.dockerignore``); pure, level 2;
* :func:`build` (:mod:`~lamina.build.builder`) -- stages → steps → cache → layers →
  image; :class:`BuildOptions` / :class:`BuildResult` (:mod:`~lamina.build.options`);
* :mod:`~lamina.build.progress` -- the events a build reports (rendered by the CLI);
* :mod:`~lamina.build.worker`, :mod:`~lamina.build.fileops`,
  :mod:`~lamina.build.sources` -- running RUN, copying files, selecting context files.

Submodules load on first use, so importing :mod:`lamina.build` costs nothing.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

    from lamina.build.builder import Builder, StageResult, build
    from lamina.build.options import BuildOptions, BuildResult, OutputSpec, SecretSpec

__all__ = ["BuildOptions", "BuildResult", "Builder", "OutputSpec", "SecretSpec", "StageResult",
           "build"]

_WHERE = {"Builder": "builder", "StageResult": "builder", "build": "builder",
          "BuildOptions": "options", "BuildResult": "options", "OutputSpec": "options",
          "SecretSpec": "options"}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lamina.build' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lamina.build.{module}"), name)
    globals()[name] = value
    return value

"""``lamina lint``: a Dockerfile best-practice linter.

The core is pure: :func:`lint_document` takes a parsed
:class:`~lamina.build.dockerfile.ast.Dockerfile` and
:class:`~lamina.lint.model.LintOptions` (build args, configuration, facts about
base images and the build context) and returns :class:`~lamina.lint.model.Finding`
values.  The rules live in :mod:`lamina.lint.rules`, each one a record with a
stable code (``LM301``), a severity, the equivalent hadolint codes and a docs page
(``docs/lint/LM301.md``).

The outer layer, :mod:`lamina.lint.runner`, reads files and configuration, scans
the build context and asks the image store about base images.  The builder uses
:func:`lint_for_build`; the CLI uses :func:`lint_file` / :func:`lint_source`.

Names are loaded lazily so that importing :mod:`lamina.lint` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BaseFacts",
    "ContextFacts",
    "Finding",
    "LintConfig",
    "LintOptions",
    "LintSettings",
    "Severity",
    "fix_file",
    "lint_document",
    "lint_file",
    "lint_for_build",
    "lint_source",
    "lint_text",
]

_WHERE = {
    "BaseFacts": "model", "ContextFacts": "model", "Finding": "model", "LintConfig": "model",
    "LintOptions": "model", "Severity": "model", "LintSettings": "runner", "fix_file": "runner",
    "lint_file": "runner", "lint_for_build": "runner", "lint_source": "runner",
    "lint_document": "engine", "lint_text": "engine",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"lamina.lint.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'lamina.lint' has no attribute {name!r}")

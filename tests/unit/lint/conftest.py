"""Shared helpers for the lint tests: parse a Dockerfile text and lint it."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest

from lamina.build.dockerfile.ast import Dockerfile
from lamina.lint.engine import lint_document
from lamina.lint.model import Finding, LintOptions


def parse_df(text: str, path: str = "Dockerfile") -> Dockerfile:
    """The real parser when it exists, else the tests' small stand-in."""
    try:
        mod = importlib.import_module("lamina.build.dockerfile.parser")
    except ImportError:
        from _lint_mini import parse

        return parse(text, path)
    doc: Dockerfile = mod.parse(text, path=path)
    return doc


def lint(text: str, options: LintOptions | None = None) -> tuple[Finding, ...]:
    return lint_document(parse_df(text), options)


def codes(text: str, options: LintOptions | None = None) -> set[str]:
    return {f.code for f in lint(text, options)}


@pytest.fixture
def lint_codes() -> Callable[..., set[str]]:
    return codes

"""BuildKit's own expansion tables (``shared/conformance/shell-expansion``), row by row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lamina.build.dockerfile.shell import (
    ShellExpansionError,
    ShellLexer,
    env_from_list,
    expand,
)

DATA = Path("/work/shared/conformance/shell-expansion")
ENV_VAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_var_rows() -> list[Any]:
    rows = []
    for lineno, line in enumerate((DATA / "envVarTest").read_text("utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        platform, source, expected = (part.strip() for part in line.split("|"))
        if platform == "W":  # Windows-only: case-insensitive names
            continue
        rows.append(pytest.param(source, expected, id=f"L{lineno}:{source}"))
    return rows


def _words_rows() -> list[Any]:
    rows = []
    env: dict[str, str] = {}
    for lineno, line in enumerate((DATA / "wordsTest").read_text("utf-8").splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        if line.startswith("ENV "):
            key, _, value = line[4:].lstrip().partition("=")
            env[key] = value
            continue
        source, expected = line.split("|")
        rows.append(
            pytest.param(source.strip(), expected.lstrip().split(","), dict(env), id=f"L{lineno}")
        )
    return rows


_MATCHES = json.loads((DATA / "process-with-matches.json").read_text("utf-8"))


def test_tables_have_the_documented_size() -> None:
    assert len(_env_var_rows()) == 228  # 226 A + 2 U
    assert len(_words_rows()) == 24
    assert len(_MATCHES["process_with_matches"]) == 47


@pytest.mark.parametrize(("source", "expected"), _env_var_rows())
def test_env_var_table(source: str, expected: str) -> None:
    if expected == "error":
        with pytest.raises(ShellExpansionError):
            expand(source, ENV_VAR_ENV)
    else:
        assert expand(source, ENV_VAR_ENV) == expected


@pytest.mark.parametrize(("source", "expected", "env"), _words_rows())
def test_words_table(source: str, expected: list[str], env: dict[str, str]) -> None:
    lexer = ShellLexer()
    if expected == ["error"]:
        with pytest.raises(ShellExpansionError):
            lexer.expand_words(source, env)
    else:
        assert lexer.expand_words(source, env) == expected


@pytest.mark.parametrize("case", _MATCHES["process_with_matches"], ids=lambda c: str(c["input"]))
def test_process_with_matches(case: dict[str, Any]) -> None:
    lexer = ShellLexer()
    if case.get("expect_error"):
        with pytest.raises(ShellExpansionError):
            lexer.expand_with_matches(case["input"], case["env"])
        return
    value, matched, unmatched = lexer.expand_with_matches(case["input"], case["env"])
    assert value == case["expected"]
    assert matched == frozenset(case["matched"])
    assert unmatched == frozenset(case["unmatched"])


@pytest.mark.parametrize("case", _MATCHES["mandatory_vars"], ids=lambda c: str(c["env"]))
def test_mandatory_vars(case: dict[str, Any]) -> None:
    if "expect_error_contains" in case:
        with pytest.raises(ShellExpansionError) as info:
            expand(case["input"], case["env"])
        assert case["expect_error_contains"] in str(info.value)
    else:
        assert expand(case["input"], case["env"]) == case["expected"]


@pytest.mark.parametrize("case", _MATCHES["platform_release_name"])
def test_platform_release_name(case: dict[str, Any]) -> None:
    assert expand(case["input"], case["env"]) == case["expected"]


@pytest.mark.parametrize("case", _MATCHES["env_lookup"]["cases"])
def test_env_lookup(case: dict[str, Any]) -> None:
    assert env_from_list(case["env_list"]).get(case["get"], "") == case["expect"]

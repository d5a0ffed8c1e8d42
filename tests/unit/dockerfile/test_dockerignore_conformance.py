"""moby/patternmatcher's tables (``shared/conformance/dockerignore``), row by row."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from lamina.build.dockerfile.dockerignore import (
    IgnorePatternError,
    MatchInfo,
    PatternMatcher,
    matches,
    read_ignore_file,
)
from lamina.errors import InvalidArgument

DATA = Path("/work/shared/conformance/dockerignore")


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


CASES = _rows("cases.tsv")


def _walk_answer(matcher: PatternMatcher, path: str) -> bool:
    """Answer the question the way a tree walk does: parent info handed down."""
    parts = path.split("/")
    info = MatchInfo()
    answer = False
    for depth in range(1, len(parts) + 1):
        answer, info = matcher.matches_with_parent("/".join(parts[:depth]), info)
    return answer


def test_table_size() -> None:
    assert len(CASES) == 138


@pytest.mark.parametrize(
    "row", CASES, ids=[f"{r['suite']}:{r['patterns']}:{r['path']}" for r in CASES]
)
def test_cases_table(row: dict[str, str]) -> None:
    patterns: list[str] = json.loads(row["patterns"])
    path: str = json.loads(row["path"])
    expected = row["expected"]
    if row["api"] == "Matches":
        if expected == "error":
            with pytest.raises(InvalidArgument):
                matches(path, patterns)
        else:
            assert matches(path, patterns) is (expected == "true")
        return
    if row["api"] == "MatchesOrParentMatches":
        matcher = PatternMatcher(patterns)  # construction succeeds ...
        for _ in range(3):  # ... but every match fails
            with pytest.raises(IgnorePatternError):
                matcher.matches(path)
        return
    matcher = PatternMatcher(patterns)
    want = expected == "true"
    assert matcher.matches(path) is want
    assert matcher.matches_with_parent(path, MatchInfo())[0] is want
    if not path.startswith("/") and not path.endswith("/"):
        assert _walk_answer(matcher, path) is want


READALL = json.loads((DATA / "readall.json").read_text("utf-8"))["cases"]


@pytest.mark.parametrize("case", READALL, ids=lambda c: c["note"][:30])
def test_readall(case: dict[str, Any]) -> None:
    assert read_ignore_file(case["input"]) == case["expect"]


def test_readall_bom_crlf_and_comment_column() -> None:
    text = "\ufeff# comment\r\n  # not a comment\r\n./a//b/../c/\r\n!/x\r\n"
    assert read_ignore_file(text) == ["# not a comment", "a/c", "!x"]
    assert read_ignore_file(text.encode()) == ["# not a comment", "a/c", "!x"]


NEW_MATCHER = json.loads((DATA / "new-matcher.json").read_text("utf-8"))["cases"]


@pytest.mark.parametrize("case", NEW_MATCHER, ids=lambda c: repr(c["patterns"]))
def test_new_matcher(case: dict[str, Any]) -> None:
    if "expect_error" in case:
        with pytest.raises(InvalidArgument) as info:
            PatternMatcher(case["patterns"])
        assert str(info.value) == case["expect_error"]
        return
    matcher = PatternMatcher(case["patterns"])
    if "expect_pattern_count" in case:
        assert len(matcher) == case["expect_pattern_count"]
    if "expect_has_exclusions" in case:
        assert matcher.exclusions is case["expect_has_exclusions"]


COMPILE = _rows("compile.tsv")


@pytest.mark.parametrize("row", COMPILE, ids=[r["pattern"] for r in COMPILE])
def test_compile_strategy(row: dict[str, str]) -> None:
    """The fast-path classification (exact / prefix / suffix / regexp) agrees."""
    (pattern,) = PatternMatcher([row["pattern"]]).patterns
    assert pattern.kind == row["strategy"]

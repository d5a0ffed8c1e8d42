"""Matcher behaviour beyond the upstream tables: Go Match, Clean and error reporting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.build.dockerfile.dockerignore import (
    IgnorePatternError,
    MatchInfo,
    PatternMatcher,
    go_clean,
    go_path_match,
    read_ignore_file,
)


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("", "."),
        ("/", "/"),
        ("//a//b/", "/a/b"),
        ("./a/./b/..", "a"),
        ("../../x", "../../x"),
        ("/../x", "/x"),
        ("a/../..", ".."),
    ],
)
def test_go_clean(path: str, cleaned: str) -> None:
    assert go_clean(path) == cleaned


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*.txt", "a.txt", True),
        ("*.txt", "dir/a.txt", False),
        ("dir/*", "dir/a", True),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("[!x]", "!", True),
        ("[^x]", "y", True),
        ("\\*", "*", True),
        ("\\*", "a", False),
        ("*", "", True),
    ],
)
def test_go_path_match(pattern: str, name: str, expected: bool) -> None:
    assert go_path_match(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["[", "a[", "[]a]", "[x-]", "\\", "[a-b-c]", "*["])
def test_go_path_match_bad_patterns(pattern: str) -> None:
    with pytest.raises(IgnorePatternError):
        go_path_match(pattern, "zzz")


def test_syntax_errors_name_the_pattern() -> None:
    with pytest.raises(IgnorePatternError) as info:
        PatternMatcher(["ok", "  src/[abc  "])
    assert info.value.pattern == "src/[abc"
    assert "src/[abc" in str(info.value)
    assert info.value.hint


def test_backwards_range_fails_only_when_matching() -> None:
    matcher = PatternMatcher(["keep", "[z-a]"])
    assert len(matcher) == 2
    with pytest.raises(IgnorePatternError):
        matcher.matches("x")
    # A path already excluded never needs the broken pattern's answer.
    assert PatternMatcher(["*", "[z-a]"]).matches("x") is True


def test_exception_examples_from_the_docs() -> None:
    matcher = PatternMatcher(read_ignore_file("*.md\n!README*.md\nREADME-secret.md\n"))
    assert matcher.matches("CHANGES.md")
    assert not matcher.matches("README.md")
    assert matcher.matches("README-secret.md")
    assert not matcher.matches("docs/CHANGES.md")  # *.md is anchored at the root


def test_double_star_forms() -> None:
    m = PatternMatcher(["**/tmp", "a**b"])
    assert m.matches("tmp") and m.matches("x/y/tmp") and m.matches("x/tmp/f")
    assert not m.matches("xtmp")
    assert m.matches("ab") and m.matches("a/b") and m.matches("ax/b")


def test_match_info_from_another_matcher_is_rejected() -> None:
    info = PatternMatcher(["a", "b"]).matches_with_parent("a", MatchInfo())[1]
    with pytest.raises(ValueError):
        PatternMatcher(["a"]).matches_with_parent("a/x", info)


_SEGMENT = st.sampled_from(["a", "b", "ab", ".x", "x.go"])
_PATTERN = st.sampled_from(
    ["a", "b", "!a", "!b/x.go", "*.go", "!*.go", "**/b", "a/**", "!a/ab", "**", "a*", "?b"]
)


@given(st.lists(_PATTERN, max_size=5), st.lists(_SEGMENT, min_size=1, max_size=4))
def test_incremental_walk_agrees_with_direct_check(patterns: list[str], parts: list[str]) -> None:
    matcher = PatternMatcher(patterns)
    info = MatchInfo()
    for depth in range(1, len(parts) + 1):
        path = "/".join(parts[:depth])
        answer, info = matcher.matches_with_parent(path, info)
        assert answer is matcher.matches(path)

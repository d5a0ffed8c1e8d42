"""Behaviour of the expansion lexer beyond the upstream tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.build.dockerfile.shell import (
    ShellExpansionError,
    ShellLexer,
    expand,
    expand_words,
)
from lamina.errors import InvalidArgument


def test_backtick_escape_makes_backslash_literal() -> None:
    lexer = ShellLexer("`")
    assert lexer.expand(r"C:\path\$X", {"X": "1"}) == r"C:\path\1"
    assert lexer.expand("`$X", {"X": "1"}) == "$X"
    assert lexer.expand('"a``b`"c"', {}) == 'a`b"c'


def test_error_message_names_the_word_and_reason() -> None:
    with pytest.raises(ShellExpansionError) as info:
        expand("x${V:0:1}", {"V": "abc"})
    err = info.value
    assert isinstance(err, InvalidArgument)
    assert str(err) == 'failed to process "x${V:0:1}": unsupported modifier (:0) in substitution'
    assert err.word == "x${V:0:1}"
    assert "${V:-w}" in err.hint


@pytest.mark.parametrize("word", ["${#V}", "${V^^}", "${V,,}", "${V:=x}", "${V=x}", "${}"])
def test_unsupported_forms_are_errors(word: str) -> None:
    with pytest.raises(ShellExpansionError):
        expand(word, {"V": "abc"})


def test_unterminated_brace_says_missing_brace() -> None:
    with pytest.raises(ShellExpansionError, match="missing '}'"):
        expand("${PWD", {})
    with pytest.raises(ShellExpansionError, match="missing '/'"):
        expand("${V/abc}", {"V": "x"})


def test_required_variable_message() -> None:
    with pytest.raises(ShellExpansionError, match="V: is not allowed to be unset"):
        expand("${V?}", {})
    with pytest.raises(ShellExpansionError, match="V: is not allowed to be empty"):
        expand("${V:?}", {"V": ""})


def test_pattern_operators() -> None:
    env = {"F": "archive.tar.gz", "P": "/usr/local/bin"}
    assert expand("${F%.*}", env) == "archive.tar"
    assert expand("${F%%.*}", env) == "archive"
    assert expand("${F#*.}", env) == "tar.gz"
    assert expand("${F##*.}", env) == "gz"
    assert expand("${P//\\//:}", env) == ":usr:local:bin"
    assert expand("${P/local/}", env) == "/usr//bin"


def test_replacement_follows_go_template_rules() -> None:
    # Go's ReplaceAllString expands $0 (whole match) and $$; other refs are empty.
    # (the lexer expands "$$" itself, so the template has to arrive via a variable)
    assert expand("${V/b/$R}", {"V": "abc", "R": "[$0]"}) == "a[b]c"
    assert expand("${V/b/$R}", {"V": "abc", "R": "$$-$x-${0}"}) == "a$--bc"


def test_bad_escape_in_pattern_is_an_error() -> None:
    with pytest.raises(ShellExpansionError, match="invalid escape"):
        expand("${V#$P}", {"V": "abc", "P": "\\a"})


def test_skip_unset_env_keeps_references() -> None:
    lexer = ShellLexer(skip_unset_env=True)
    assert lexer.expand("$A-${B}-${C:-x}-$D", {"D": "d"}) == "$A-${B}-${C:-x}-d"


def test_raw_quotes_and_skip_quotes() -> None:
    assert ShellLexer(raw_quotes=True).expand("'a' \"$X\"", {"X": "1"}) == "'a' \"1\""
    assert ShellLexer(skip_process_quotes=True).expand("'$X'", {"X": "1"}) == "'1'"


def test_matches_record_lookups_even_in_unused_branches() -> None:
    value, matched, unmatched = ShellLexer().expand_with_matches(
        "${A:-$B}${C:+$D}", {"A": "a", "D": "d"}
    )
    assert value == "a"
    assert matched == {"A", "D"}
    assert unmatched == {"B", "C"}


def test_unicode_letters_are_name_characters() -> None:
    assert expand("$변수x", {"변수x": "ok"}) == "ok"
    assert expand_words("a\u00a0b c", {}) == ["a", "b", "c"]


def test_escape_must_be_one_character() -> None:
    with pytest.raises(InvalidArgument):
        ShellLexer("ab")


_PLAIN = st.text(alphabet=st.characters(blacklist_characters="$'\"\\"), max_size=30)


@given(_PLAIN)
def test_text_without_specials_is_unchanged(text: str) -> None:
    assert expand(text, {}) == text


@given(st.text(max_size=20))
def test_single_quoted_values_are_literal(text: str) -> None:
    quoted = "'" + text.replace("'", "'\\''") + "'"
    assert expand(quoted, {"X": "expanded"}) == text


@given(st.lists(st.text(alphabet="ab $", min_size=1, max_size=6), max_size=4))
def test_words_join_like_expand_for_simple_values(parts: list[str]) -> None:
    env = {f"V{i}": p for i, p in enumerate(parts)}
    word = " ".join(f"$V{i}" for i in range(len(parts)))
    assert expand_words(word, env) == expand(word, env).split()

"""Property tests: the parser never fails except with DockerfileSyntaxError, and
``render`` writes text that parses back to the same tree."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lamina.build.dockerfile.ast import Dockerfile, Node
from lamina.build.dockerfile.dump import dump_buildkit, dump_json, go_quote, render
from lamina.build.dockerfile.parser import parse
from lamina.errors import DockerfileSyntaxError

KEYWORDS = [
    "FROM", "RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME", "EXPOSE", "ENV",
    "LABEL", "ARG", "USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER", "HEALTHCHECK", "ONBUILD",
    "from", "Run", "WOKRDIR", "#", "# escape=`", "# escape=\\", "# syntax=x", "#check=skip=all",
    "", " ", "\t", "\ufeff",
]  # fmt: skip

FRAGMENTS = [
    " ", "  ", "\t", "--from=x", "--mount=type=cache", "--chown='a b'", "--", '"', "'", "\\",
    "`", "\\\\", "[", "]", '["a", "b"]', "[1]", '["x"] tail', ",", "=", "a", "b c", "k=v",
    'k="v w"', "<<EOF", "<<-EOF", "<<'EOF'", "<< EOF", "2<<X", "EOF", "X", "\tEOF", "$VAR",
    "${A:-b}", "\r", "\x00", "é", "\u00a0", "\u3000", "\x85", "#", "CMD", "NONE", "RUN",
    "ONBUILD", "COPY", "{", "}", "\\\n", "\n", "\r\n", "\n\n", "\n#c\n", "\\ \n",
]  # fmt: skip

fragment = st.sampled_from(FRAGMENTS) | st.text(max_size=4)
line = st.tuples(st.sampled_from(KEYWORDS), st.lists(fragment, max_size=8)).map(
    lambda kw_parts: kw_parts[0] + " " + "".join(kw_parts[1])
)
dockerfile_like = st.tuples(
    st.lists(line, min_size=0, max_size=10), st.sampled_from(["", "\n", "\r\n"])
).map(lambda ls_end: "\n".join(ls_end[0]) + ls_end[1])


def _parse_or_error(text: str | bytes) -> Dockerfile | None:
    try:
        return parse(text)
    except DockerfileSyntaxError as exc:
        assert exc.message and "\n" not in exc.message
        assert exc.line >= 0 and exc.column >= 0
        return None


def _node_key(node: Node | None) -> Any:
    if node is None:
        return None
    return (
        node.cmd,
        node.keyword,
        node.flags,
        node.args,
        node.json,
        node.heredocs,
        _node_key(node.sub),
    )


def _tree(doc: Dockerfile) -> Any:
    return (
        doc.escape,
        tuple((d.name, d.value) for d in doc.directives),
        tuple(_node_key(n) for n in doc.nodes),
    )


def _check_views(doc: Dockerfile) -> None:
    dump = dump_buildkit(doc)
    assert dump.count("\n") == len(doc.nodes) - 1
    json.dumps(dump_json(doc))  # serialisable


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(dockerfile_like)
@example("FROM x\nRUN a\\ \\")  # ends in a continuation whose text ends in an escape
@example("\\\n \\\n")  # an instruction with an empty keyword
@example("\ufeff\ufeffRUN x\n")  # a second BOM is part of the keyword
@example("# escape=`\nRUN a `\n b\nCOPY <<EOF <<-X /d\nbody\nEOF\n\tX\n")
def test_dockerfile_like_text_only_raises_syntax_errors(text: str) -> None:
    doc = _parse_or_error(text)
    if doc is not None:
        _check_views(doc)


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_syntax_errors(data: bytes) -> None:
    doc = _parse_or_error(data)
    if doc is not None:
        _check_views(doc)


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_syntax_errors(text: str) -> None:
    _parse_or_error(text)


@SETTINGS
@given(dockerfile_like)
@example("FROM x\nRUN a\\ \\")
@example("\\\n \\\n")
@example("\ufeff\ufeffRUN x\n")
@example("# escape=`\nRUN a `\n b\nCOPY <<EOF <<-X /d\nbody\nEOF\n\tX\n")
@example("FROM x\nONBUILD RUN <<EOF\r\nhi\r\nEOF\r\n")
def test_render_parses_back_to_the_same_tree(text: str) -> None:
    doc = _parse_or_error(text)
    if doc is None:
        return
    again = parse(render(doc))
    assert _tree(again) == _tree(doc)
    # and rendering is stable
    assert render(again) == render(doc)


@given(st.text())
def test_go_quote_round_trips_through_json_for_printable_ascii(text: str) -> None:
    quoted = go_quote(text)
    assert quoted.startswith('"') and quoted.endswith('"')
    if text.isascii() and all(ch.isprintable() or ch in "\t\n\r" for ch in text):
        # for this subset Go's quoting is valid JSON
        assert json.loads(quoted) == text

"""The parser against BuildKit's own test data (``shared/conformance/dockerfile-parser``).

Every table of the conformance README that concerns the parser is checked here:
the 33 golden dumps, the negative cases, line ranges, empty-continuation warnings,
heredoc extraction, heredoc word classification, and the small tables of
``misc-cases.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lamina.build.dockerfile.dump import dump_buildkit
from lamina.build.dockerfile.parser import (
    chomp_heredoc_content,
    detect_syntax,
    heredocs_from_line,
    parse,
    parse_directive,
    parse_heredoc_word,
    parse_json_array,
    parse_words,
    scan_directives,
)
from lamina.errors import DockerfileSyntaxError

SHARED = Path(
    os.environ.get("LAMINA_SHARED") or Path(__file__).resolve().parents[3] / ".." / "shared"
)
DATA = SHARED / "conformance" / "dockerfile-parser"


def _dirs(sub: str) -> list[str]:
    base = DATA / sub
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def _misc() -> dict[str, Any]:
    path = DATA / "misc-cases.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


MISC = _misc()


def test_shared_data_is_present() -> None:
    assert DATA.is_dir(), f"conformance data not found at {DATA} (set LAMINA_SHARED)"
    assert len(_dirs("testfiles")) == 33
    assert len(_dirs("negative")) == 4


# --------------------------------------------------------------------------- golden dumps


@pytest.mark.parametrize("case", _dirs("testfiles"))
def test_golden_dump_is_byte_identical(case: str) -> None:
    folder = DATA / "testfiles" / case
    doc = parse((folder / "Dockerfile").read_bytes(), str(folder / "Dockerfile"))
    expected = (folder / "result").read_bytes().decode("utf-8")
    assert dump_buildkit(doc) + "\n" == expected


@pytest.mark.parametrize("case", _dirs("negative"))
def test_negative_cases_are_rejected(case: str) -> None:
    path = DATA / "negative" / case / "Dockerfile"
    with pytest.raises(DockerfileSyntaxError) as info:
        parse(path.read_bytes(), str(path))
    expected = {
        "empty_dockerfile": "file with no instructions",
        "only_comments": "file with no instructions",
        "env_no_value": "ENV must have two arguments",
        "shykes-nested-json": "arrays must be comprised of strings only",
    }[case]
    assert expected in info.value.message
    assert info.value.file == str(path)


def test_nested_json_error_names_the_element() -> None:
    path = DATA / "negative" / "shykes-nested-json" / "Dockerfile"
    with pytest.raises(DockerfileSyntaxError) as info:
        parse(path.read_bytes())
    err = info.value
    assert "element 2" in err.message and "an array" in err.message
    assert err.source_line == 'CMD [ "echo", [ "nested json" ] ]'
    assert (err.line, err.column) == (1, err.source_line.index('[ "nested') + 1)


def test_env_without_value_points_at_the_line() -> None:
    with pytest.raises(DockerfileSyntaxError) as info:
        parse((DATA / "negative" / "env_no_value" / "Dockerfile").read_bytes())
    assert info.value.line == 3
    assert info.value.source_line == "ENV PATH"
    assert info.value.hint


def test_line_info() -> None:
    spec = MISC["line_info"]
    doc = parse((DATA / spec["file"]).read_bytes())
    ranges = [[n.span.start_line, n.span.end_line] for n in doc.nodes]
    assert ranges == spec["children_line_ranges"]
    assert doc.nodes[0].span.start_line == spec["root_start_line"]
    assert doc.nodes[-1].span.end_line == spec["root_end_line"]
    assert doc.escape == "\\"
    assert [(d.name, d.value, d.line) for d in doc.directives] == [("escape", "\\", 1)]


def test_empty_continuation_warnings() -> None:
    spec = MISC["empty_continuation_warnings"]
    doc = parse((DATA / spec["file"]).read_bytes())
    assert len(doc.warnings) == spec["warning_count"]
    for needle in spec["warning_0_contains"]:
        assert needle in doc.warnings[0].message
    for needle in spec["warning_1_contains"]:
        assert needle in doc.warnings[1].message
    assert spec["warning_0_detail_contains"] in doc.warnings[0].detail
    # the warning sits on the last line of the instruction it concerns
    run = next(n for n in doc.nodes if n.original.startswith("RUN something"))
    assert doc.warnings[0].line == run.span.end_line


def test_line_too_long() -> None:
    spec = MISC["line_too_long"]
    text = "FROM busybox\nLABEL test=" + "a" * 65536 + "\n"
    with pytest.raises(DockerfileSyntaxError) as info:
        parse(text)
    assert spec["expect_error"] in info.value.message
    assert info.value.line == 2


def test_line_at_the_limit_is_accepted() -> None:
    prefix = "LABEL t="
    text = "FROM busybox\n" + prefix + "a" * (65535 - len(prefix)) + "\n"
    doc = parse(text)
    assert len(doc.nodes[1].args[1]) == 65535 - len(prefix)
    # the limit counts UTF-8 bytes, not characters
    with pytest.raises(DockerfileSyntaxError):
        parse("FROM busybox\n" + prefix + "é" * 32764 + "\n")


# --------------------------------------------------------------------------- heredocs


def test_extract_heredocs_expected_data() -> None:
    folder = DATA / "heredoc" / "extract-heredocs"
    doc = parse((folder / "Dockerfile").read_bytes())
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    assert len(doc.nodes) == 1 + len(expected["children"])
    for child in expected["children"]:
        node = doc.nodes[child["child_index"]]
        assert node.original.startswith(child["first_line_of_instruction"])
        got = [
            {
                "name": h.name,
                "file_descriptor": h.file_descriptor,
                "expand": h.expand,
                "chomp": h.chomp,
                "content": h.content,
            }
            for h in node.heredocs
        ]
        assert (got or None) == child["heredocs"], child["first_line_of_instruction"]


def test_json_form_takes_no_heredoc() -> None:
    folder = DATA / "heredoc" / "json-form-no-heredoc"
    doc = parse((folder / "Dockerfile").read_bytes())
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    for index in expected["children_without_heredocs"]:
        assert doc.nodes[index].json
        assert doc.nodes[index].heredocs == ()


def _tsv(name: str) -> list[list[str]]:
    path = DATA / "heredoc" / name
    if not path.is_file():
        return []
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if not r[0].startswith("#")][1:]  # drop comment and header


@pytest.mark.parametrize(("word", "expect", "name"), _tsv("parse-heredoc-word.tsv"))
def test_parse_heredoc_word(word: str, expect: str, name: str) -> None:
    if expect == "error":
        with pytest.raises(DockerfileSyntaxError):
            parse_heredoc_word(word)
        return
    heredoc = parse_heredoc_word(word)
    if expect == "none":
        assert heredoc is None
    else:
        assert heredoc is not None and heredoc.name == name


@pytest.mark.parametrize(("line", "names"), _tsv("heredocs-from-line.tsv"))
def test_heredocs_from_line(line: str, names: str) -> None:
    expected = names.split(",") if names else []
    assert [h.name for h in heredocs_from_line(line)] == expected


def test_heredoc_chomp() -> None:
    spec = MISC["heredoc_chomp"]
    assert chomp_heredoc_content(spec["input"]) == spec["expect"]


# --------------------------------------------------------------------------- misc tables


@pytest.mark.parametrize("case", MISC.get("parse_words", []), ids=lambda c: c["input"])
def test_parse_words(case: dict[str, Any]) -> None:
    assert parse_words(case["input"]) == case["expect"]


@pytest.mark.parametrize(
    "case", MISC.get("json_string_arrays", {}).get("valid", []), ids=lambda c: c["input"]
)
def test_json_string_arrays_valid(case: dict[str, Any]) -> None:
    assert parse_json_array(case["input"]) == case["expect"]
    # and through the parser, as CMD arguments
    doc = parse("CMD " + case["input"])
    assert doc.nodes[0].json
    assert list(doc.nodes[0].args) == case["expect"]


@pytest.mark.parametrize(
    "text", MISC.get("json_string_arrays", {}).get("invalid_not_string_array", [])
)
def test_json_string_arrays_not_strings(text: str) -> None:
    with pytest.raises(DockerfileSyntaxError, match="arrays must be comprised of strings only"):
        parse_json_array(text)
    with pytest.raises(DockerfileSyntaxError) as info:
        parse("FROM x\nRUN " + text)
    assert info.value.line == 2
    assert "element 2" in info.value.message
    # the column points at the offending element
    assert info.value.column == len("RUN ") + text.index(",") + 2


@pytest.mark.parametrize("case", MISC.get("name_value", []), ids=lambda c: c["args"])
def test_name_value(case: dict[str, Any]) -> None:
    text = f"{case['instruction']} {case['args']}"
    if "expect_error" in case:
        with pytest.raises(DockerfileSyntaxError, match=case["expect_error"]):
            parse(text)
        return
    node = parse(text).nodes[0]
    assert list(node.args) == case["expect_nodes"]


@pytest.mark.parametrize("case", MISC.get("directives", []), ids=lambda c: c["text"])
def test_directives(case: dict[str, Any]) -> None:
    found = scan_directives(case["text"])
    assert [{"name": d.name, "value": d.value} for d in found] == case["expect"]


@pytest.mark.parametrize("case", MISC.get("detect_syntax", []), ids=lambda c: c["text"])
def test_detect_syntax(case: dict[str, Any]) -> None:
    found = detect_syntax(case["text"])
    if not case["found"]:
        assert found is None
        return
    assert found is not None
    assert found.value == case["ref"]
    if "cmdline" in case:
        assert found.cmdline == case["cmdline"]
    if "line" in case:
        assert found.line == case["line"]


@pytest.mark.parametrize("case", MISC.get("parse_directive_check", []), ids=lambda c: c["text"])
def test_parse_directive_check(case: dict[str, Any]) -> None:
    found = parse_directive("check", case["text"])
    if not case["found"]:
        assert found is None
        return
    assert found is not None
    assert found.value == case["value"]
    if "cmdline" in case:
        assert found.cmdline == case["cmdline"]
    if "line" in case:
        assert found.line == case["line"]

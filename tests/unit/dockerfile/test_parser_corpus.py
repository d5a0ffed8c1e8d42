"""Every corpus Dockerfile parses, and agrees with the reference parser instruction by instruction.

The oracle is PyPI ``dockerfile`` 3.4.0, which embeds BuildKit's parser at
v0.12.5.  BuildKit has moved on since; the places where lamina follows today's
BuildKit rather than the oracle are listed in :data:`KNOWN_ORACLE_GAPS` and
normalised (or skipped) with that reason, nothing else is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lamina.build.dockerfile.dump import dump_json
from lamina.build.dockerfile.parser import parse

SHARED = Path(
    os.environ.get("LAMINA_SHARED") or Path(__file__).resolve().parents[3] / ".." / "shared"
)
CORPUS = SHARED / "corpus"

#: Where the oracle (BuildKit v0.12.5) is older than the BuildKit lamina follows.
KNOWN_ORACLE_GAPS = {
    "env-label-separators": "BuildKit >= v0.14.0 adds a separator node after each ENV/LABEL "
    'key/value pair ("" legacy form, "=" key=value form); v0.12.5 has only key and value',
    "heredoc-whitespace": "BuildKit >= v0.22.0 accepts blanks between << and the heredoc word "
    "('<<  EOF'); v0.12.5 treats such a line as plain text",
    "nul-truncation": "the oracle passes values through C strings, so a NUL truncates them",
    "onbuild-heredocs": "the oracle reports an ONBUILD instruction's heredocs as empty (it "
    "reads them from the wrapped node; BuildKit attaches them to the ONBUILD node)",
}


def _manifest() -> list[str]:
    path = CORPUS / "manifest.tsv"
    if not path.is_file():
        return []
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    return [r[0] for r in rows[1:] if r and r[0]]


FILES = _manifest()


def test_corpus_is_present() -> None:
    assert len(FILES) > 200, f"corpus manifest not found under {CORPUS} (set LAMINA_SHARED)"


def _normalise(mine: dict[str, Any]) -> dict[str, Any]:
    """lamina's view of one instruction, in the oracle's terms (see KNOWN_ORACLE_GAPS)."""
    value = list(mine["value"])
    if mine["cmd"] in ("env", "label") or mine["sub_cmd"] in ("env", "label"):
        value = [v for i, v in enumerate(value) if i % 3 != 2]  # env-label-separators
    value = [v.split("\0", 1)[0] for v in value]  # nul-truncation
    heredocs = [(h["name"], h["content"], h["file_descriptor"]) for h in mine["heredocs"]]
    if mine["cmd"] == "onbuild":
        heredocs = []  # onbuild-heredocs
    return {
        "cmd": mine["cmd"],
        "sub_cmd": mine["sub_cmd"],
        "json": mine["json"],
        "flags": list(mine["flags"]),
        "value": value,
        "start_line": mine["start_line"],
        "end_line": mine["end_line"],
        "heredocs": heredocs,
    }


def _oracle_view(command: Any) -> dict[str, Any]:
    return {
        "cmd": command.cmd.lower(),
        "sub_cmd": command.sub_cmd.lower() if command.sub_cmd else None,
        "json": command.json,
        "flags": list(command.flags),
        "value": list(command.value),
        "start_line": command.start_line,
        "end_line": command.end_line,
        "heredocs": [(h.name, h.content, h.file_descriptor) for h in command.heredocs],
    }


def _uses_new_heredoc_whitespace(doc_text: str) -> bool:
    return "<< " in doc_text or "<<\t" in doc_text or "<<- " in doc_text


@pytest.mark.parametrize("name", FILES)
def test_corpus_file_parses(name: str) -> None:
    path = CORPUS / "dockerfiles" / name
    doc = parse(path.read_bytes(), str(path))
    assert doc.nodes
    # spans are well formed and in file order
    previous_end = 0
    for node in doc.nodes:
        assert previous_end < node.span.start_line <= node.span.end_line <= len(doc.source_lines)
        previous_end = node.span.end_line


@pytest.mark.parametrize("name", FILES)
def test_corpus_agrees_with_oracle(name: str) -> None:
    oracle = pytest.importorskip("dockerfile")
    path = CORPUS / "dockerfiles" / name
    data = path.read_bytes()
    text = data.decode("utf-8")
    if _uses_new_heredoc_whitespace(text):
        pytest.skip(KNOWN_ORACLE_GAPS["heredoc-whitespace"])
    expected = [_oracle_view(c) for c in oracle.parse_string(text)]
    got = [_normalise(m) for m in dump_json(parse(data))]
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == theirs


def test_onbuild_heredoc_gap_is_real() -> None:
    """The one normalisation the corpus needs for ONBUILD: lamina does keep the heredoc."""
    doc = parse("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\n")
    node = doc.nodes[1]
    assert [h.content for h in node.heredocs] == ["echo hi\n"]
    assert node.sub is not None and node.sub.heredocs == node.heredocs

"""Every corpus Dockerfile parses, types and splits into stages without a crash."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lamina.build.dockerfile.instructions import Instruction, parse_instructions
from lamina.build.dockerfile.parser import parse
from lamina.build.dockerfile.stages import parse_stages

CORPUS = Path("/work/shared/corpus")


def _files() -> list[str]:
    with (CORPUS / "manifest.tsv").open(encoding="utf-8", newline="") as fh:
        return [row["file"] for row in csv.DictReader(fh, delimiter="\t")]


FILES = _files()


def test_corpus_is_present() -> None:
    assert len(FILES) == 229


@pytest.mark.parametrize("name", FILES)
def test_corpus_file_types_and_stages(name: str) -> None:
    path = CORPUS / "dockerfiles" / name
    doc = parse(path.read_bytes(), str(path))
    typed = parse_instructions(doc)
    assert len(typed) == len(doc.nodes)
    assert all(isinstance(i, Instruction) for i in typed)
    assert [i.node for i in typed] == list(doc.nodes)
    stages = parse_stages(doc)
    assert stages and all(s.base for s in stages)
    assert sum(len(s.instructions) + 1 for s in stages) <= len(typed)

"""Every Dockerfile of the shared corpus lints without a crash, and the deliberately
flawed ones get the findings their header comments promise."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lamina.lint.runner import lint_file

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus")
MANIFEST = CORPUS / "manifest.tsv"


def _files() -> list[str]:
    if not MANIFEST.is_file():
        return []
    with MANIFEST.open(newline="") as fh:
        return [row["file"] for row in csv.DictReader(fh, delimiter="\t")]


FILES = _files()


@pytest.mark.skipif(not FILES, reason="shared corpus not present")
@pytest.mark.parametrize("name", FILES)
def test_corpus_file_lints_without_crash(name: str) -> None:
    report = lint_file(CORPUS / "dockerfiles" / name)
    for f in report.findings:
        assert f.line >= 1 and f.column >= 1 and f.message and f.fix and f.doc
        assert f.code != "LM001", f.message  # every corpus file is valid


# header-comment flaws -> codes we must report (a subset: some flaws are out of scope)
FLAWED = {
    "flawed-add-local-files-maintainer": {"LM102", "LM202", "LM206", "LM207", "LM401"},
    "flawed-alpine-apt-get": {"LM301", "LM308", "LM310", "LM207", "LM205", "LM211", "LM401"},
    "flawed-apt-no-cleanup-latest": {"LM102", "LM303", "LM305", "LM306", "LM302", "LM307",
                                     "LM401", "LM205"},
    "flawed-buildkit-check-violations": {"LM202", "LM403", "LM211", "LM206", "LM205", "LM203"},
    "flawed-curl-pipe-sh-sshd": {"LM102", "LM302", "LM306", "LM311", "LM203"},
    "flawed-go-single-stage-latest": {"LM102", "LM312", "LM301", "LM208", "LM205", "LM401"},
    "flawed-heredoc-no-errexit": {"LM102", "LM313", "LM306", "LM314", "LM401"},
    "flawed-node-copy-all-before-install": {"LM101", "LM312", "LM401"},
    "flawed-php-apache-pinned-nothing": {"LM304", "LM311", "LM312", "LM314"},
    "flawed-python-secrets-in-env": {"LM403", "LM209", "LM312", "LM307", "LM401"},
    "flawed-yum-no-clean-ssh-key": {"LM102", "LM309", "LM404", "LM401"},
}


@pytest.mark.skipif(not FILES, reason="shared corpus not present")
@pytest.mark.parametrize("stem", sorted(FLAWED))
def test_flawed_files_get_their_findings(stem: str) -> None:
    report = lint_file(CORPUS / "dockerfiles" / "original" / f"{stem}.Dockerfile")
    got = {f.code for f in report.findings}
    assert FLAWED[stem] <= got, sorted(FLAWED[stem] - got)

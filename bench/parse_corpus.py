#!/usr/bin/env python3
"""Time parsing the whole Dockerfile corpus with lamina and with the reference parser.

Usage::

    python bench/parse_corpus.py [--repeat N] [--shared DIR]

Every file listed in ``shared/corpus/manifest.tsv`` is read into memory once;
then each parser parses all of them ``N`` times and the best and median wall
times of one full pass are printed.  The reference is PyPI ``dockerfile``
3.4.0 (BuildKit's Go parser v0.12.5 in a CPython extension); it is timed in the
same run when installed, and skipped otherwise.  Both parsers get ``str`` input
(the oracle cannot take bytes), so decoding is outside the timed region.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_corpus(shared: Path) -> list[str]:
    corpus = shared / "corpus"
    rows = (corpus / "manifest.tsv").read_text(encoding="utf-8").splitlines()[1:]
    names = [row.split("\t", 1)[0] for row in rows if row.strip()]
    return [(corpus / "dockerfiles" / name).read_text(encoding="utf-8") for name in names]


def time_passes(parse_one: Callable[[str], object], texts: list[str], repeat: int) -> list[float]:
    passes = []
    for _ in range(repeat):
        start = time.perf_counter()
        for text in texts:
            parse_one(text)
        passes.append(time.perf_counter() - start)
    return passes


def report(name: str, passes: list[float], files: int, size: int) -> None:
    best = min(passes)
    print(
        f"{name:<28} best {best * 1000:8.1f} ms   median {statistics.median(passes) * 1000:8.1f} ms"
        f"   {files / best:8.0f} files/s   {size / best / 1e6:6.2f} MB/s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="full passes per parser")
    parser.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("LAMINA_SHARED") or REPO.parent / "shared"),
        help="the shared/ folder (default: beside the repository, or $LAMINA_SHARED)",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from lamina.build.dockerfile.parser import parse

    texts = load_corpus(args.shared)
    size = sum(len(t.encode("utf-8")) for t in texts)
    lines = sum(t.count("\n") for t in texts)
    print(
        f"corpus: {len(texts)} Dockerfiles, {lines} lines, {size / 1e6:.2f} MB; {args.repeat} passes"
    )

    report("lamina", time_passes(parse, texts, args.repeat), len(texts), size)
    try:
        import dockerfile  # type: ignore[import-not-found]  # the oracle
    except ImportError:
        print("oracle (dockerfile 3.4.0)    not installed: pip install dockerfile==3.4.0")
        return 0
    report(
        "oracle (BuildKit v0.12.5, Go)",
        time_passes(dockerfile.parse_string, texts, args.repeat),
        len(texts),
        size,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

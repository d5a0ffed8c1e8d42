"""Text, tree, JSON and HTML renderings, and the ``lamina analyze`` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from imagekit import File, Layer, MiB, build_docker_archive, waste_image_steps

from lamina.analyze import (
    SCHEMA,
    CiThresholds,
    analyze,
    evaluate_ci,
    open_source,
    render_html,
    render_text,
    render_tree,
    to_json,
)
from lamina.cli import cli


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("img") / "waste.tar"
    build_docker_archive(out, waste_image_steps())
    return out


@pytest.fixture(scope="module")
def result(archive: Path):  # type: ignore[no-untyped-def]
    with open_source(f"docker-archive:{archive}") as src:
        return analyze(src)


def test_text_report_names_layers_waste_and_advice(result) -> None:  # type: ignore[no-untyped-def]
    text = render_text(result, evaluate_ci(result, CiThresholds()))
    assert "efficiency 24.62%" in text
    assert "wasted 7.0 MiB" in text
    for path in ("/app/data.bin", "/app/config.bin", "/app/script.bin"):
        assert path in text
    assert "metadata-only" in text and "[copy-with-chmod]" in text
    assert "FAIL lowestEfficiency" in text and "SKIP highestWastedBytes" in text
    assert "RUN rm /app/data.bin" in text  # instructions shown, BuildKit suffix gone
    assert "# buildkit" not in text


def test_tree_marks_changes(result) -> None:  # type: ignore[no-untyped-def]
    tree = render_tree(result.layers[3]).splitlines()
    assert any(line.startswith("D ") and "data.bin" in line and "5.0 MiB" in line for line in tree)
    assert any(line.startswith("M ") and "script.bin" in line and "content unchanged" in line
               for line in tree)
    assert any(line.strip().endswith("app/") for line in tree)


def test_json_fields_are_stable(result) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(json.dumps(to_json(result, evaluate_ci(result, CiThresholds()))))
    assert doc["schema"] == SCHEMA
    s = doc["summary"]
    assert s["wasted_bytes"] == 7 * MiB
    assert s["total_bytes"] == s["final_bytes"] + s["wasted_bytes"]
    assert set(s) == {"layers", "total_bytes", "final_bytes", "final_files", "wasted_bytes",
                      "efficiency", "base_layers", "base_source", "base_bytes",
                      "base_wasted_bytes", "user_bytes", "user_wasted_bytes", "user_wasted_ratio"}
    layer = doc["layers"][3]
    assert layer["instruction"].startswith("RUN rm /app/data.bin")
    assert layer["removed"] == {"files": 1, "bytes": 5 * MiB}
    assert {c["change"] for c in layer["changes"]} == {"removed", "modified"}
    assert {w["reason"] for w in doc["wasted"]} == {"removed", "overwritten", "metadata-only"}
    assert doc["top_wasted"][0]["path"] == "/app/data.bin"
    assert doc["ci"]["passed"] is False
    assert [r["rule"] for r in doc["ci"]["rules"]] == [
        "lowestEfficiency", "highestWastedBytes", "highestUserWastedPercent"]
    assert [h["layer"] for h in doc["history"]] == [0, None, 1, 2, 3, None]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str | None]] = []
        self.details = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "layer-bar" in (a.get("class") or "").split():
            self.bars.append(a)
        if tag == "details":
            self.details += 1
        if tag in ("script", "link", "img", "iframe") or (a.get("src") or "").startswith("http"):
            self.external.append(tag)


def test_html_is_self_contained_with_one_bar_per_layer(result) -> None:  # type: ignore[no-untyped-def]
    page = render_html(result)
    p = _Collect()
    p.feed(page)
    assert len(p.bars) == len(result.layers) == 4
    assert [b["data-wasted"] for b in p.bars] == [str(layer.wasted_bytes) for layer in result.layers]
    assert "base" in (p.bars[0]["class"] or "") and "base" not in (p.bars[1]["class"] or "")
    assert p.details >= len(result.layers)
    assert p.external == []
    assert "@import" not in page and "url(" not in page


def test_html_escapes_image_strings(tmp_path: Path) -> None:
    out = tmp_path / "x.tar"
    build_docker_archive(out, [Layer([File("<b>evil</b>.txt", 3)], "RUN echo '<script>x</script>'")])
    with open_source(f"docker-archive:{out}") as src:
        page = render_html(analyze(src))
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;evil" in page


# --- the command ------------------------------------------------------------------------


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), obj={})


def test_cli_text_and_ci_exit_status(archive: Path) -> None:
    ok = invoke("analyze", f"docker-archive:{archive}")
    assert ok.exit_code == 0, ok.output
    assert "Top wasted paths" in ok.output
    failing = invoke("analyze", "--ci", f"docker-archive:{archive}")
    assert failing.exit_code == 1
    assert "lowestEfficiency" in failing.output
    relaxed = invoke("analyze", "--lowest-efficiency", "0.2", "--highest-user-wasted-percent",
                     "disabled", "--highest-wasted-bytes", "8MiB", f"docker-archive:{archive}")
    assert relaxed.exit_code == 0, relaxed.output
    assert "CI: PASS" in relaxed.output  # a threshold option implies --ci
    over = invoke("analyze", "--lowest-efficiency", "disabled", "--highest-user-wasted-percent",
                  "disabled", "--highest-wasted-bytes", "7MB", f"docker-archive:{archive}")
    assert over.exit_code == 1 and "FAIL highestWastedBytes" in over.output


def test_cli_json_html_and_output_file(archive: Path, tmp_path: Path) -> None:
    res = invoke("analyze", "--format", "json", f"docker-archive:{archive}")
    assert json.loads(res.output)["summary"]["wasted_bytes"] == 7 * MiB
    one = json.loads(invoke("analyze", "--format", "json", "--layer", "2",
                            f"docker-archive:{archive}").output)
    assert one["index"] == 2 and one["changes"][0]["path"] == "/app/config.bin"
    page = tmp_path / "r.html"
    res = invoke("analyze", "--format", "html", "-o", str(page), f"docker-archive:{archive}")
    assert res.exit_code == 0 and res.output == ""
    assert page.read_text().count('class="layer-bar') == 4


def test_cli_layer_tree_and_argument_errors(archive: Path) -> None:
    res = invoke("analyze", "--layer", "3", "--tree", f"docker-archive:{archive}")
    assert res.exit_code == 0 and "D " in res.output and "└── " in res.output
    from lamina.errors import InvalidArgument

    for args in (["--tree"], ["--layer", "9"], ["--lowest-efficiency", "2"],
                 ["--highest-wasted-bytes", "lots"]):
        res = invoke("analyze", *args, f"docker-archive:{archive}")
        assert isinstance(res.exception, InvalidArgument), args


def test_cli_with_base_archive(tmp_path: Path) -> None:
    base = [Layer([File("lib/a", 1000, seed=1)], "base0"), Layer([File("lib/b", 10, seed=2)], "base1")]
    build_docker_archive(tmp_path / "base.tar", base)
    build_docker_archive(tmp_path / "app.tar", [*base, Layer([File("app", 5, seed=3)], "COPY app")])
    res = invoke("analyze", "--format", "json", "--base", f"docker-archive:{tmp_path / 'base.tar'}",
                 f"docker-archive:{tmp_path / 'app.tar'}")
    doc = json.loads(res.output)
    assert doc["summary"]["base_layers"] == 2 and doc["summary"]["user_bytes"] == 5


# --- the page in a real browser ---------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed "
                    "(apt-get install chromium)")
def test_html_opens_in_headless_chromium(result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "report.html"
    page.write_text(render_html(result))
    exe = _chromium()
    assert exe is not None
    proc = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Collect()
    dom.feed(proc.stdout)
    assert len(dom.bars) == len(result.layers)
    assert [b["data-layer"] for b in dom.bars] == ["0", "1", "2", "3"]
    assert dom.details >= len(result.layers)

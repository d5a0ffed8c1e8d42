from __future__ import annotations

import pytest

from lamina.cli._format import (
    TemplateError,
    human_duration,
    human_size,
    render_table,
    render_template,
)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (999, "999B"), (1000, "1kB"), (1240, "1.24kB"), (4263936, "4.26MB"),
     (1_500_000_000, "1.5GB")],
)
def test_human_size_matches_docker_units(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "Less than a second"), (1, "1 second"), (45, "45 seconds"), (61, "About a minute"),
     (600, "10 minutes"), (3600, "About an hour"), (7300, "2 hours"), (3 * 86400, "3 days"),
     (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years")],
)
def test_human_duration_matches_docker(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_template_fields_json_and_escapes() -> None:
    data = {"Repository": "busybox", "Tag": "latest", "Labels": {"a": "1"}}
    assert render_template(r"{{.Repository}}\t{{.Tag}}", data) == "busybox\tlatest"
    assert render_template("{{json .Labels}}", data) == '{"a":"1"}'
    assert render_template("{{upper .Tag}}:{{index .Labels \"a\"}}", data) == "LATEST:1"
    with pytest.raises(TemplateError):
        render_template("{{.Nope}}", data)


def test_table_aligns_like_tabwriter() -> None:
    out = render_table(["A", "LONGER HEADER"], [["x", "y"], ["wider-cell-here", "z"]])
    lines = out.splitlines()
    assert lines[0].index("LONGER") == lines[1].index("y") == lines[2].index("z")
    assert lines[2].index("z") == len("wider-cell-here") + 3

"""History text in BuildKit's spelling, and cache keys that chain through parents."""

from __future__ import annotations

from lamina.build.history import (
    expose_text,
    go_duration,
    go_quote,
    go_quote_list,
    healthcheck_text,
    run_text,
)
from lamina.cache import canonical, step_key


def test_go_formatting_matches_buildkit_history() -> None:
    # observed in Docker 20.10's BuildKit: see docs/build.md
    assert go_quote_list(["/bin/sh", "-ec", "echo hi"]) == '["/bin/sh" "-ec" "echo hi"]'
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert expose_text(["8000/tcp", "80/udp", "8000/tcp"]) == "EXPOSE map[80/udp:{} 8000/tcp:{}]"
    assert healthcheck_text(["CMD-SHELL", "echo ok"], 5_000_000_000, None, None, None) == \
        'HEALTHCHECK &{["CMD-SHELL" "echo ok"] "5s" "0s" "0s" \'\\x00\'}'
    assert healthcheck_text(["CMD", "true"], 90_000_000_000, 1_500_000_000, 0, 3).endswith(
        '"1m30s" "1.5s" "0s" \'\\x03\'}')
    assert [go_duration(n) for n in (0, 500, 2_000, 250_000_000, 3_600_000_000_000)] == \
        ["0s", "500ns", "2µs", "250ms", "1h0m0s"]


def test_run_text_has_arg_prefix_only_with_args() -> None:
    assert run_text(["/bin/sh", "-c", "make"], []) == "RUN /bin/sh -c make # buildkit"
    assert run_text(["/bin/sh", "-c", "make"], [("A", "1"), ("B", "x y")]) == \
        "RUN |2 A=1 B=x y /bin/sh -c make # buildkit"


def test_step_keys_chain_and_ignore_dict_order() -> None:
    base = step_key(None, {"from": "sha256:aa"})
    a = step_key(base, {"op": "run", "args": ["x"], "env": ["A=1"]})
    b = step_key(base, {"env": ["A=1"], "args": ["x"], "op": "run"})
    assert a == b and len(a) == 64
    assert step_key(base, {"op": "run", "args": ["y"], "env": ["A=1"]}) != a
    other_base = step_key(None, {"from": "sha256:bb"})
    assert step_key(other_base, {"op": "run", "args": ["x"], "env": ["A=1"]}) != a
    assert canonical({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()

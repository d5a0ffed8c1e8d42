"""Stages, global/stage ARG scoping and build args (BuildKit semantics)."""

from __future__ import annotations

import pytest

from lamina.build.dockerfile.instructions import (
    Arg,
    Env,
    Run,
    expand_instruction,
    parse_instructions,
)
from lamina.build.dockerfile.parser import parse
from lamina.build.dockerfile.stages import (
    PLATFORM_ARGS,
    StageScope,
    global_args,
    parse_stages,
    platform_args,
)
from lamina.errors import DockerfileSyntaxError
from lamina.oci import Platform

ARM = Platform.parse("linux/arm/v7")
AMD = Platform.parse("linux/amd64")


def test_stages_split_and_names() -> None:
    doc = parse(
        "ARG BASE=alpine\n"
        "FROM $BASE:3.20 AS Build\n"
        "RUN make\n"
        "FROM build\n"
        "COPY --from=build /out /out\n"
        "FROM scratch AS final\n"
    )
    stages = parse_stages(doc)
    assert [s.display_name for s in stages] == ["build", "1", "final"]
    assert stages[0].base == "alpine:3.20"
    assert [type(i).__name__ for i in stages[0].instructions] == ["Run"]
    assert stages[1].base_stage == 0 and stages[1].base == "build"
    assert stages[2].is_scratch and stages[0].base_stage is None


def test_build_arg_overrides_global_default_and_chains() -> None:
    doc = parse("ARG V=1\nARG IMG=app:$V\nFROM $IMG\n")
    assert parse_stages(doc)[0].base == "app:1"
    assert parse_stages(doc, {"V": "2"})[0].base == "app:2"
    assert parse_stages(doc, {"IMG": "other"})[0].base == "other"


def test_undeclared_build_arg_is_not_visible_in_from() -> None:
    doc = parse("FROM img:${TAG:-latest}\n")
    assert parse_stages(doc, {"TAG": "1.0"})[0].base == "img:latest"


def test_platform_args_in_from() -> None:
    doc = parse("FROM --platform=$BUILDPLATFORM golang AS b\nFROM base-$TARGETARCH$TARGETVARIANT\n")
    stages = parse_stages(doc, target_platform=ARM, build_platform=AMD)
    assert stages[0].platform == "linux/amd64"
    assert stages[1].base == "base-armv7"
    values = platform_args(ARM, AMD)
    assert set(values) == set(PLATFORM_ARGS)
    assert values["TARGETPLATFORM"] == "linux/arm/v7" and values["BUILDVARIANT"] == ""


def test_target_truncates_and_unknown_target_suggests() -> None:
    doc = parse("FROM a AS deps\nFROM b AS build\nFROM c AS test\n")
    assert [s.name for s in parse_stages(doc, target="BUILD")] == ["deps", "build"]
    with pytest.raises(DockerfileSyntaxError, match="did you mean build") as info:
        parse_stages(doc, target="biuld")
    assert "deps, build, test" in info.value.hint


def test_errors() -> None:
    with pytest.raises(DockerfileSyntaxError, match="before the first FROM") as info:
        parse_stages(parse("ARG X\nRUN echo\nFROM a\n"))
    assert info.value.line == 2
    with pytest.raises(DockerfileSyntaxError, match="no stages"):
        parse_stages(parse("ARG X=1\n"))
    with pytest.raises(DockerfileSyntaxError, match="should not be blank"):
        parse_stages(parse("ARG IMG\nFROM $IMG\n"))
    with pytest.raises(DockerfileSyntaxError, match="bad substitution"):
        parse_stages(parse("FROM ${}\n"))


def _walk(text: str, build_args: dict[str, str] | None = None) -> StageScope:
    """Walk the last stage the way a builder does, returning its scope."""
    doc = parse(text)
    stages = parse_stages(doc, build_args, target_platform=ARM, build_platform=AMD)
    meta_args: list[Arg] = []
    for instr in parse_instructions(doc):
        if not isinstance(instr, Arg):
            break
        meta_args.append(instr)
    scope_values = global_args(meta_args, build_args or {}, platform_args(ARM, AMD))
    scope = StageScope(scope_values, build_args or {}, {"PATH": "/bin"})
    for instr in stages[-1].instructions:
        if isinstance(instr, Arg):
            scope.declare_all(instr)
        elif isinstance(instr, Env):
            expanded = expand_instruction(instr, scope.expander())
            assert isinstance(expanded, Env)
            for pair in expanded.pairs:
                scope.set_env(pair.key, pair.value)
    return scope


def test_global_arg_needs_redeclaration_in_stage() -> None:
    text = "ARG G=global\nFROM a\nENV BEFORE=${G:-unset}\nARG G\nENV AFTER=$G\n"
    scope = _walk(text)
    assert scope.env["BEFORE"] == "unset" and scope.env["AFTER"] == "global"
    assert _walk(text, {"G": "cli"}).env["AFTER"] == "cli"


def test_stage_arg_defaults_build_args_and_env_precedence() -> None:
    text = "FROM a\nARG A=1 B=${A}2\nARG C\nENV A=env\nENV D=$A-$B-${C:-none}\n"
    scope = _walk(text)
    assert scope.env["D"] == "env-12-none"
    scope = _walk(text, {"B": "bb", "C": "cc", "UNUSED": "x"})
    assert scope.env["D"] == "env-bb-cc"
    assert "UNUSED" not in scope.expansion_env()
    assert scope.run_env()["A"] == "env"  # ENV beats ARG in RUN too
    assert scope.args_for_history() == [("B", "bb"), ("C", "cc")]


def test_platform_args_visible_after_arg_line() -> None:
    scope = _walk("FROM a\nENV X=${TARGETARCH:-none}\nARG TARGETARCH\nENV Y=$TARGETARCH\n")
    assert scope.env["X"] == "none" and scope.env["Y"] == "arm"


def test_proxy_args_reach_run_without_declaration() -> None:
    scope = _walk("FROM a\nRUN true\n", {"HTTP_PROXY": "http://p:3128", "OTHER": "x"})
    assert scope.run_env()["HTTP_PROXY"] == "http://p:3128"
    assert "OTHER" not in scope.run_env()
    assert "HTTP_PROXY" not in scope.expansion_env()


def test_unset_arg_stays_unset() -> None:
    scope = _walk("FROM a\nARG NOVALUE\n")
    assert "NOVALUE" not in scope.expansion_env() and scope.declared == ["NOVALUE"]


def test_run_is_not_expanded_but_its_mounts_are() -> None:
    scope = _walk("FROM a\nARG CACHE=/c\n")
    run = parse_stages(parse("FROM a\nRUN --mount=type=cache,target=$CACHE echo $CACHE\n"))[0]
    instr = run.instructions[0]
    expanded = expand_instruction(instr, scope.expander())
    assert isinstance(expanded, Run)
    assert expanded.command == ("echo $CACHE",) and expanded.mounts[0].target == "/c"

"""Build stages and build-time variable scoping (``FROM``, ``ARG``, ``--build-arg``).

A Dockerfile is a list of *stages*, each starting with ``FROM``.  This module
splits the typed instructions into :class:`Stage` objects and implements the
BuildKit rules for variables::

    ARG VERSION=3.12                       # global ARG: visible in FROM lines only
    FROM python:${VERSION}-slim AS base    # → python:3.12-slim
    ARG VERSION                            # re-declared: now visible in this stage
    RUN echo $VERSION                      # 3.12 (or the --build-arg value)

The rules (``../shared/design/build-semantics.md``, BuildKit column):

* **Global ARGs** are the ARGs before the first ``FROM``.  Their defaults are
  expanded with the global ARGs declared before them; a ``--build-arg`` replaces
  the value.  ``FROM`` lines (image and ``--platform``) expand with them.
* **Platform ARGs** — ``TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT
  BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT`` — are predefined globals.
* Inside a stage nothing global is visible until an ``ARG NAME`` line (no
  default) re-declares it; it then takes the global value (or the build arg).
* A **stage ARG** is visible from its line to the end of its stage.  Value:
  the ``--build-arg`` if given, else its default expanded at that point, else
  unset.  An ``ENV`` of the same name wins over the ARG.
* **Proxy ARGs** (``HTTP_PROXY`` … and lower-case forms) reach ``RUN``'s
  environment without any ``ARG`` line when given as build args.

:func:`parse_stages` does the splitting and the FROM expansion;
:class:`StageScope` is the running variable state a builder keeps while it walks
a stage's instructions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lamina.build.dockerfile.ast import Dockerfile
from lamina.build.dockerfile.instructions import (
    Arg,
    ArgDef,
    Expander,
    From,
    Instruction,
    expand_instruction,
    parse_instructions,
)
from lamina.errors import DockerfileSyntaxError

if TYPE_CHECKING:
    from lamina.oci import Platform

__all__ = [
    "PLATFORM_ARGS",
    "PROXY_ARGS",
    "Stage",
    "StageScope",
    "global_args",
    "parse_stages",
    "platform_args",
    "stage_names",
]

#: Build args that need no ARG line; they reach RUN but never the image history.
PROXY_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)

#: The predefined global platform ARGs.
PLATFORM_ARGS = (
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
)


@dataclass(frozen=True)
class Stage:
    """One build stage.

    ``index`` is its position (0-based); ``name`` the lower-cased ``AS`` name or
    ``None``.  ``base`` is the FROM image after expansion with the global ARGs
    (``scratch``, an image reference, or the name of an earlier stage, in which
    case ``base_stage`` is that stage's index).  ``platform`` is the expanded
    ``--platform`` value or ``None``.  ``from_`` is the FROM instruction as written
    and ``instructions`` the rest of the stage, unexpanded.
    """

    index: int
    name: str | None
    base: str
    platform: str | None
    from_: From
    instructions: tuple[Instruction, ...]
    base_stage: int | None = None

    @property
    def display_name(self) -> str:
        """The name, or the index as text (``COPY --from=0`` style)."""
        return self.name if self.name is not None else str(self.index)

    @property
    def is_scratch(self) -> bool:
        return self.base_stage is None and self.base.lower() == "scratch"


def platform_args(target: Platform | None = None, build: Platform | None = None) -> dict[str, str]:
    """Values of the predefined platform ARGs; both platforms default to the host."""
    from lamina.oci import Platform

    build_p = build or Platform.host()
    target_p = target or build_p
    values: dict[str, str] = {}
    for prefix, plat in (("TARGET", target_p), ("BUILD", build_p)):
        values[f"{prefix}PLATFORM"] = str(plat)
        values[f"{prefix}OS"] = plat.os
        values[f"{prefix}ARCH"] = plat.architecture
        values[f"{prefix}VARIANT"] = plat.variant or ""
    return values


def _fail(
    doc: Dockerfile, instr: Instruction, message: str, hint: str = ""
) -> DockerfileSyntaxError:
    line = instr.node.span.start_line
    source = doc.source_lines[line - 1] if 0 < line <= len(doc.source_lines) else None
    return DockerfileSyntaxError(
        f"{doc.path}:{line}: {message}",
        file=doc.path,
        line=line,
        column=instr.node.span.start_col,
        source_line=source,
        hint=hint,
    )


def global_args(
    meta_args: Sequence[Arg],
    build_args: Mapping[str, str],
    predefined: Mapping[str, str],
    *,
    escape: str = "\\",
    doc: Dockerfile | None = None,
) -> dict[str, str]:
    """Resolve the global scope: predefined values, then each ARG before the first FROM.

    Build args override defaults; a default is expanded with the scope so far.
    An ARG with neither leaves an existing (predefined) value alone.
    """
    scope = dict(predefined)
    for instr in meta_args:
        ex = Expander(scope, escape)
        expanded = expand_instruction(
            instr,
            ex,
            file=doc.path if doc else "Dockerfile",
            source_lines=doc.source_lines if doc else (),
        )
        assert isinstance(expanded, Arg)
        for original, arg in zip(instr.args, expanded.args, strict=True):
            if original.name in build_args:
                scope[original.name] = build_args[original.name]
            elif arg.default is not None:
                scope[original.name] = arg.default
    return scope


def parse_stages(
    doc: Dockerfile,
    build_args: Mapping[str, str] | None = None,
    *,
    target: str | None = None,
    target_platform: Platform | None = None,
    build_platform: Platform | None = None,
) -> list[Stage]:
    """Split *doc* into stages, with FROM lines expanded by the global ARGs.

    With *target*, the list ends at that stage (later stages are never needed).
    Raises :class:`DockerfileSyntaxError` for instructions before the first FROM
    (other than ARG), a file without FROM, an unknown *target*, or a FROM that
    expands to an empty image name.
    """
    build_args = dict(build_args or {})
    instructions = parse_instructions(doc)
    meta: list[Arg] = []
    groups: list[tuple[From, list[Instruction]]] = []
    for instr in instructions:
        if isinstance(instr, From):
            groups.append((instr, []))
        elif groups:
            groups[-1][1].append(instr)
        elif isinstance(instr, Arg):
            meta.append(instr)
        else:
            raise _fail(
                doc,
                instr,
                f"{instr.name} before the first FROM: no build stage in current context",
                "start the Dockerfile with FROM (only ARG may come before it)",
            )
    if not groups:
        line_hint = "add a FROM line, e.g. FROM alpine:3.20"
        raise DockerfileSyntaxError(
            f"{doc.path}: the Dockerfile contains no stages to build (no FROM)",
            file=doc.path,
            hint=line_hint,
        )
    scope = global_args(
        meta,
        build_args,
        platform_args(target_platform, build_platform),
        escape=doc.escape,
        doc=doc,
    )
    stages: list[Stage] = []
    by_name: dict[str, int] = {}
    for index, (from_instr, body) in enumerate(groups):
        ex = Expander(scope, doc.escape)
        expanded = expand_instruction(from_instr, ex, file=doc.path, source_lines=doc.source_lines)
        assert isinstance(expanded, From)
        if not expanded.image:
            raise _fail(
                doc,
                from_instr,
                f"base name ({from_instr.image}) should not be blank",
                "set the ARG it uses before the first FROM, or pass --build-arg",
            )
        base_stage = by_name.get(expanded.image.lower())
        stages.append(
            Stage(
                index=index,
                name=from_instr.stage_name,
                base=expanded.image,
                platform=expanded.platform or None,
                from_=from_instr,
                instructions=tuple(body),
                base_stage=base_stage,
            )
        )
        if from_instr.stage_name is not None:
            by_name[from_instr.stage_name] = index
    if target is None:
        return stages
    wanted = target.lower()
    for stage in stages:
        if stage.name == wanted:
            return stages[: stage.index + 1]
    names = [s.name for s in stages if s.name]
    import difflib

    close = difflib.get_close_matches(wanted, names, n=1)
    suggestion = f" (did you mean {close[0]}?)" if close else ""
    raise DockerfileSyntaxError(
        f"{doc.path}: target stage {target!r} could not be found{suggestion}",
        file=doc.path,
        hint=("stages: " + ", ".join(names)) if names else "this Dockerfile has no named stages",
    )


class StageScope:
    """The variables in scope while a builder walks one stage.

    Start it with the resolved global scope (:func:`global_args`), the build args
    and the base image's environment; feed it each ``ARG`` (:meth:`declare`) and
    ``ENV`` (:meth:`set_env`) as they are reached.  :meth:`expansion_env` is the
    mapping for expanding the next instruction; :meth:`run_env` the environment a
    ``RUN`` gets.  A mutable, single-stage helper (not shared between threads).
    """

    def __init__(
        self,
        global_scope: Mapping[str, str],
        build_args: Mapping[str, str],
        image_env: Mapping[str, str] | None = None,
        *,
        escape: str = "\\",
    ) -> None:
        self.global_scope = dict(global_scope)
        self.build_args = dict(build_args)
        self.env: dict[str, str] = dict(image_env or {})
        self.args: dict[str, str] = {}
        self.declared: list[str] = []
        self.escape = escape

    def declare(self, arg: ArgDef) -> None:
        """Apply one ``ARG`` definition (its default not yet expanded)."""
        if arg.name not in self.declared:
            self.declared.append(arg.name)
        if arg.name in self.build_args:
            self.args[arg.name] = self.build_args[arg.name]
            return
        if arg.default is not None:
            self.args[arg.name] = self.expander().word(arg.default)
            return
        if arg.name in self.global_scope:
            self.args[arg.name] = self.global_scope[arg.name]
        # Otherwise the ARG stays unset (and an earlier value is kept).

    def declare_all(self, instr: Arg) -> None:
        """Apply an ``ARG`` instruction left to right (later names see earlier ones)."""
        for arg in instr.args:
            self.declare(arg)

    def set_env(self, key: str, value: str) -> None:
        """Record an ``ENV`` (already expanded)."""
        self.env[key] = value

    def expansion_env(self) -> dict[str, str]:
        """Variables for expanding the next instruction: ARGs, with ENV winning."""
        return {**self.args, **self.env}

    def expander(self) -> Expander:
        return Expander(self.expansion_env(), self.escape)

    def run_env(self) -> dict[str, str]:
        """The environment of a ``RUN``: ENV, then ARGs ENV does not shadow, then proxies."""
        env = dict(self.env)
        for key, value in self.args.items():
            env.setdefault(key, value)
        for key in sorted(PROXY_ARGS & self.build_args.keys()):
            env.setdefault(key, self.build_args[key])
        return env

    def args_for_history(self) -> list[tuple[str, str]]:
        """In-scope ARGs not shadowed by ENV, sorted (the ``|N K=V`` RUN history prefix)."""
        return sorted((k, v) for k, v in self.args.items() if k not in self.env)


def stage_names(stages: Sequence[Stage]) -> list[str]:
    """Names of the stages (index for unnamed ones), for messages."""
    return [s.display_name for s in stages]

"""Facts derived once from a parsed Dockerfile and shared by every rule.

A rule asks questions such as "which stage is this RUN in, what is its base image
once ``FROM ${BASE}`` is resolved, which package manager does that base use, is
this stage shipped in the final image, which users exist at this ``USER``?".
:func:`analyze` answers them in one pass and returns an :class:`Analysis`:

* ``FROM`` references are expanded with the global ``ARG`` defaults and the
  ``--build-arg`` values, like the builder does; ``FROM builder`` naming an earlier
  stage is recognised as a stage, not as an image.
* each ``RUN`` is parsed once into a :class:`~lamina.lint.shell.Script` (heredoc
  bodies included when they are run by the shell) together with its ``--mount``
  options;
* a stage is *shipped* when it is the final stage or an ancestor of it through
  ``FROM``; stages only used by ``COPY --from`` are build-only, and advice about
  image size does not apply to them.

Pure: no I/O.  Expansion is the builder's own
(:func:`lamina.build.dockerfile.shell.expand`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from lamina.build.dockerfile.ast import Dockerfile, Node
from lamina.lint.images import infer_os, known_users
from lamina.lint.model import BaseFacts
from lamina.lint.shell import Script, exec_script, parse_script

__all__ = ["Analysis", "Mount", "RunInfo", "Stage", "analyze", "base_image_refs", "expand"]


@dataclass(frozen=True)
class Mount:
    """One ``RUN --mount=…`` option (``type=cache,target=/root/.cache`` …)."""

    type: str
    target: str
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RunInfo:
    """A RUN instruction with its parsed script (``None`` for non-POSIX shells)."""

    node: Node
    script: Script | None
    mounts: tuple[Mount, ...]
    pipefail_shell: bool = False  # a SHELL instruction already sets -o pipefail

    def cache_mounted(self, *prefixes: str) -> bool:
        """Whether a cache (or tmpfs) mount covers a path starting with one of ``prefixes``."""
        for m in self.mounts:
            if m.type in ("cache", "tmpfs"):
                t = m.target.rstrip("/")
                if any(t == p.rstrip("/") or t.startswith(p) or p.startswith(t + "/")
                       for p in prefixes):
                    return True
        return False


@dataclass(frozen=True)
class Stage:
    """One build stage: its FROM, resolved image, parent stage and instructions.

    ``image`` is the expanded reference (``None`` when an ARG has no value);
    ``parent`` the index of the stage it builds on, if it names one; ``family``
    the package-manager family (``apk``, ``apt``, ``rpm``…) or ``None``.
    """

    index: int
    name: str | None
    from_node: Node
    raw_image: str
    image: str | None
    parent: int | None
    family: str | None
    nodes: tuple[Node, ...]
    shipped: bool = False


@dataclass(frozen=True)
class Analysis:
    """Everything rules share: stages, global args, per-RUN scripts, users at each USER."""

    doc: Dockerfile
    stages: tuple[Stage, ...]
    global_args: Mapping[str, str | None]
    preamble: tuple[Node, ...]
    runs: Mapping[Node, RunInfo] = field(default_factory=dict)
    stage_of: Mapping[Node, int] = field(default_factory=dict)
    users_at: Mapping[Node, frozenset[str] | None] = field(default_factory=dict)
    user_text: Mapping[Node, str | None] = field(default_factory=dict)

    def stage(self, node: Node) -> Stage | None:
        """The stage ``node`` belongs to (``None`` for instructions before the first FROM)."""
        i = self.stage_of.get(node)
        return None if i is None else self.stages[i]

    @property
    def final(self) -> Stage | None:
        """The last stage, whose filesystem becomes the image."""
        return self.stages[-1] if self.stages else None


_VAR = re.compile(r"\$(?:\{(?P<b>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-+])?(?P<w>[^}]*)\}"
                  r"|(?P<n>[A-Za-z_][A-Za-z0-9_]*))")


def expand(word: str, env: Mapping[str, str | None], escape: str = "\\") -> str | None:
    """Expand ``$VAR`` references in ``word`` like the builder does.

    Returns ``None`` when the word refers to a variable whose value is unknown
    (an ``ARG`` without default and no ``--build-arg``) and gives no default of
    its own, or when the expansion is malformed: the caller then knows it cannot
    reason about the value, instead of reasoning about an empty string.
    """
    if "$" not in word:
        return word
    from lamina.build.dockerfile.shell import expand as builder_expand

    known = {k: v for k, v in env.items() if v is not None}
    for m in _VAR.finditer(word):
        if (m.group("b") or m.group("n")) not in known and not m.group("op"):
            return None
    try:
        return builder_expand(word, known, escape)
    except ValueError:
        return None


def _from_parts(node: Node) -> tuple[str, str | None, tuple[str, ...]]:
    """(image text, stage name, flags) of a FROM node."""
    args = node.args
    image = args[0] if args else ""
    name = args[2].lower() if len(args) >= 3 and args[1].lower() == "as" else None
    return image, name, node.flags


def _arg_pairs(node: Node) -> list[tuple[str, str | None]]:
    """``ARG a=1 b`` → ``[("a", "1"), ("b", None)]`` with surrounding quotes removed."""
    out: list[tuple[str, str | None]] = []
    for word in node.args:
        if "=" in word:
            k, v = word.split("=", 1)
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            out.append((k, v))
        else:
            out.append((word, None))
    return out


def base_image_refs(doc: Dockerfile, build_args: Mapping[str, str] | None = None) -> list[str]:
    """The external images the FROM lines name, ARGs resolved (stages and scratch left out).

    The runner calls this to ask the local store about each base before linting.
    """
    a = analyze(doc, build_args or {})
    return sorted({s.image for s in a.stages
                   if s.image and s.parent is None and s.image.lower() != "scratch"})


_HEREDOC_MARK = re.compile(r"\d*<<-?\s*(?:'[^']*'|\"[^\"]*\"|[^\s;&|<>()]+)")
_SHELL_NAMES = ("sh", "bash", "ash", "dash", "/bin/sh", "/bin/bash", "/bin/ash", "/bin/dash")


def _run_script(node: Node) -> Script:
    if node.json:
        return exec_script(node.args)
    text = node.args[0] if node.args else ""
    if not node.heredocs:
        return parse_script(text)
    line = _HEREDOC_MARK.sub(" ", text)
    line_script = parse_script(line)
    words = line.split()
    runs_body = not words or words[0] in _SHELL_NAMES
    if not runs_body:
        return line_script
    body = node.heredocs[0].content
    if body.startswith("#!") and not any(body.split("\n", 1)[0].endswith(s) for s in
                                         ("sh", "bash", "ash", "dash", "sh -e", "bash -e")):
        return line_script
    body_script = parse_script(body)
    return Script(
        text=body,
        commands=line_script.commands + body_script.commands,
        has_pipe=line_script.has_pipe or body_script.has_pipe,
        sets_pipefail=body_script.sets_pipefail or line_script.sets_pipefail,
        sets_errexit=body_script.sets_errexit or any(w in ("-e", "-ex", "-eux", "-xe", "-eu")
                                                     for w in words[1:]),
        parser=body_script.parser,
    )


def _mounts(node: Node) -> tuple[Mount, ...]:
    out: list[Mount] = []
    for flag in node.flags:
        if not flag.startswith("--mount="):
            continue
        opts: list[tuple[str, str]] = []
        for part in flag[len("--mount="):].split(","):
            k, _, v = part.partition("=")
            opts.append((k.strip().lower(), v.strip()))
        d = dict(opts)
        target = d.get("target") or d.get("dst") or d.get("destination") or ""
        out.append(Mount(d.get("type", "bind"), target, tuple(opts)))
    return tuple(out)


_USER_OPTS_WITH_VALUE = frozenset(
    {"-u", "-g", "-G", "-d", "-s", "-c", "-k", "-e", "-f", "-K", "-p", "-R", "-b", "-Z",
     "-h", "--uid", "--gid", "--home", "--shell", "--gecos", "--comment", "--ingroup",
     "--groups", "--home-dir", "--base-dir", "--skel", "--key", "--password", "--root",
     "--expiredate", "--inactive", "--firstuid", "--lastuid", "--prefix", "--extrausers"}
)


def _created_names(words: tuple[str, ...]) -> list[str]:
    """Positional names given to useradd/adduser/groupadd/addgroup."""
    names: list[str] = []
    skip = False
    for w in words[1:]:
        if skip:
            skip = False
            continue
        if w.startswith("-"):
            if w in _USER_OPTS_WITH_VALUE:
                skip = True
            continue
        names.append(w)
    return names


def analyze(doc: Dockerfile, build_args: Mapping[str, str] | None = None,
            base_facts: Mapping[str, BaseFacts] | None = None) -> Analysis:
    """Build the :class:`Analysis` of ``doc`` (see the module docstring)."""
    build_args = build_args or {}
    base_facts = base_facts or {}
    global_args: dict[str, str | None] = {}
    preamble: list[Node] = []
    groups: list[tuple[Node, list[Node]]] = []
    for node in doc.nodes:
        if node.cmd == "from":
            groups.append((node, []))
        elif not groups:
            preamble.append(node)
            if node.cmd == "arg":
                for k, v in _arg_pairs(node):
                    global_args[k] = build_args.get(k, v)
        else:
            groups[-1][1].append(node)

    stages: list[Stage] = []
    names: dict[str, int] = {}
    for idx, (fnode, body) in enumerate(groups):
        raw, name, _ = _from_parts(fnode)
        image = expand(raw, global_args, doc.escape)
        parent = names.get(image.lower()) if image else None
        if parent is not None:
            family = stages[parent].family
        elif image:
            family = infer_os(image, base_facts.get(image))
        else:
            family = None
        stages.append(Stage(idx, name, fnode, raw, image, parent, family, tuple(body)))
        if name:
            names[name] = idx
        names.setdefault(str(idx), idx)

    # shipped: the final stage and its FROM ancestors
    shipped: set[int] = set()
    cur: int | None = len(stages) - 1 if stages else None
    while cur is not None and cur not in shipped:
        shipped.add(cur)
        cur = stages[cur].parent
    stages = [Stage(s.index, s.name, s.from_node, s.raw_image, s.image, s.parent, s.family,
                    s.nodes, s.index in shipped) for s in stages]

    runs: dict[Node, RunInfo] = {}
    stage_of: dict[Node, int] = {}
    users_at: dict[Node, frozenset[str] | None] = {}
    user_text: dict[Node, str | None] = {}
    created_by_stage: list[frozenset[str] | None] = []
    for st in stages:
        stage_of[st.from_node] = st.index
        if st.parent is not None:
            users: set[str] | None = (
                None if created_by_stage[st.parent] is None
                else set(created_by_stage[st.parent] or ())
            )
        elif st.image:
            known = known_users(st.image, base_facts.get(st.image))
            users = None if known is None else set(known)
        else:
            users = None
        env: dict[str, str | None] = {}
        posix = st.family != "windows"
        pipefail_shell = False
        for node in st.nodes:
            stage_of[node] = st.index
            if node.cmd == "arg":
                for k, v in _arg_pairs(node):
                    env[k] = build_args.get(k, v if v is not None else global_args.get(k))
            elif node.cmd == "env":
                a = node.args
                for i in range(0, len(a) - 2, 3):
                    env[a[i]] = expand(a[i + 1].strip("\"'"), env, doc.escape)
            elif node.cmd == "shell":
                exe = node.args[0].rsplit("/", 1)[-1].lower() if node.args else ""
                posix = exe in ("sh", "bash", "ash", "dash", "zsh", "ksh")
                pipefail_shell = "pipefail" in node.args
            elif node.cmd == "copy" and any(a.rstrip("/").endswith("/etc/passwd")
                                            for a in node.args[-1:]):
                users = None  # a passwd file copied in: anything may exist
            elif node.cmd == "run":
                script = _run_script(node) if posix else None
                runs[node] = RunInfo(node, script, _mounts(node), pipefail_shell)
                if script is not None and users is not None:
                    for c in script.commands:
                        if c.name in ("useradd", "adduser"):
                            created = _created_names(c.words)
                            if created:
                                users.add(created[0])
                        if any(r.endswith("/etc/passwd") for r in c.redirects):
                            users = None
                            break
            elif node.cmd == "user":
                text = node.args[0] if node.args else ""
                user_text[node] = expand(text.strip(), env | {k: v for k, v in
                                                             global_args.items()
                                                             if k not in env}, doc.escape)
                users_at[node] = None if users is None else frozenset(users)
        created_by_stage.append(None if users is None else frozenset(users))

    return Analysis(doc, tuple(stages), global_args, tuple(preamble), runs, stage_of,
                    users_at, user_text)

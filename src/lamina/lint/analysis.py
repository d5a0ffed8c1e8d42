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
* ``ONBUILD`` triggers are unwrapped: the wrapped instruction is linted like any
  other, in the context it will really run in.  A trigger runs at the start of a
  build that says ``FROM`` this image, so it sees the stage as it is at its *end*
  (every user created in the stage, its last ``SHELL``), plus the triggers before
  it; it does not change the stage itself (``ONBUILD RUN useradd app`` creates no
  user for a later ``USER app`` of the same stage).
* users and groups are tracked through the stage: the base image's accounts
  (:func:`~lamina.lint.images.known_users` / :func:`~lamina.lint.images.known_groups`),
  then ``useradd``/``adduser``/``groupadd``/``addgroup`` in RUN.  ``None`` means
  "unknown" (an unknown base, a copied or rewritten ``/etc/passwd``): the rules that
  need the answer then stay quiet.

Pure: no I/O.  Expansion is the builder's own
(:func:`lamina.build.dockerfile.shell.expand`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lamina.build.dockerfile.ast import Dockerfile, Node
from lamina.lint.images import infer_os, known_groups, known_users
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
    """A RUN instruction with its parsed script (``None`` for non-POSIX shells).

    ``shell`` is the dialect the script is written for, as shellcheck names it
    (``sh``, ``bash``, ``dash``, ``ksh``; empty when shellcheck cannot check it, e.g.
    zsh): the stage's ``SHELL`` decides, and a heredoc body's ``#!`` line or the
    program the heredoc is fed to (``RUN bash <<EOF``) overrides it.  ``env_names``
    are the ARG and ENV names set before this RUN in its stage and the stages it is
    built on, so that an external checker does not call them unassigned.
    ``body_line`` is the Dockerfile line of the first heredoc body line when
    ``script.text`` is that body (``0`` otherwise).
    """

    node: Node
    script: Script | None
    mounts: tuple[Mount, ...]
    pipefail_shell: bool = False  # a SHELL instruction already sets -o pipefail
    shell: str = "sh"
    env_names: tuple[str, ...] = ()
    body_line: int = 0

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
    groups_at: Mapping[Node, frozenset[str] | None] = field(default_factory=dict)
    chown_text: Mapping[Node, str | None] = field(default_factory=dict)
    triggers: Mapping[Node, Node] = field(default_factory=dict)

    @property
    def instructions(self) -> tuple[Node, ...]:
        """Every instruction in source order, each ONBUILD followed by its trigger.

        Rules that judge one instruction on its own (a relative WORKDIR, a secret in
        ENV, ``ADD`` of a local file…) iterate this instead of ``doc.nodes`` so that
        ``ONBUILD WORKDIR app`` is judged like ``WORKDIR app``.
        """
        out: list[Node] = []
        for node in self.doc.nodes:
            out.append(node)
            if node.sub is not None and node.sub in self.triggers:
                out.append(node.sub)
        return tuple(out)

    def keyword_column(self, node: Node) -> int:
        """The column of ``node``'s keyword: for a trigger, the word after ``ONBUILD``."""
        outer = self.triggers.get(node)
        if outer is None:
            return node.span.start_col
        lines = self.doc.source_lines
        line = lines[node.span.start_line - 1] if node.span.start_line <= len(lines) else ""
        after = outer.span.start_col - 1 + len(outer.keyword)
        col = line.find(node.keyword, after)
        return col + 1 if col >= 0 else node.span.start_col

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


_DIALECTS = {"sh": "sh", "bash": "bash", "dash": "dash", "ash": "dash", "ksh": "ksh",
             "mksh": "ksh", "ksh93": "ksh"}


def dialect(program: str) -> str:
    """The shellcheck dialect of a shell program (``/bin/bash`` → ``bash``; ``""`` if none).

    ``ash`` (busybox) is checked as ``dash``, its closest relative shellcheck knows.
    """
    return _DIALECTS.get(program.rsplit("/", 1)[-1].lower(), "")


def _shebang_dialect(body: str) -> str | None:
    """The dialect a ``#!`` line asks for (``#!/usr/bin/env bash`` → ``bash``), if any."""
    if not body.startswith("#!"):
        return None
    words = body[2:].split("\n", 1)[0].split()
    if words and words[0].rsplit("/", 1)[-1] == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    return dialect(words[0]) if words else None


def _run_script(node: Node, shell: str) -> tuple[Script, str, bool]:
    """(script, its dialect, whether the script is the first heredoc's body)."""
    if node.json:
        return exec_script(node.args), shell, False
    text = node.args[0] if node.args else ""
    if not node.heredocs:
        return parse_script(text), shell, False
    line = _HEREDOC_MARK.sub(" ", text)
    line_script = parse_script(line)
    words = line.split()
    runs_body = not words or words[0] in _SHELL_NAMES
    if not runs_body:
        return line_script, shell, False
    body = node.heredocs[0].content
    from_line = dialect(words[0]) if words else shell
    body_shell = _shebang_dialect(body)
    if body_shell == "" and not body.split("\n", 1)[0].rstrip().endswith("zsh"):
        return line_script, shell, False  # a #! line naming something that is not a shell
    body_script = parse_script(body)
    return Script(
        text=body,
        commands=line_script.commands + body_script.commands,
        has_pipe=line_script.has_pipe or body_script.has_pipe,
        sets_pipefail=body_script.sets_pipefail or line_script.sets_pipefail,
        sets_errexit=body_script.sets_errexit or any(w in ("-e", "-ex", "-eux", "-xe", "-eu")
                                                     for w in words[1:]),
        parser=body_script.parser,
    ), body_shell or from_line, True


def _body_line(node: Node) -> int:
    """The Dockerfile line holding the first line of ``node``'s first heredoc body.

    The bodies and their terminator lines end the instruction, so counting back
    from its last line finds where they start.
    """
    tail = sum(len(h.content.splitlines()) + 1 for h in node.heredocs)
    return node.span.end_line - tail + 1


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

    walk = _Walk(doc, build_args, global_args)
    end_of_stage: list[_Accounts] = []
    names_of_stage: list[tuple[str, ...]] = []
    for st in stages:
        walk.stage_of[st.from_node] = st.index
        if st.parent is not None:
            acc = end_of_stage[st.parent].copy()
            inherited = names_of_stage[st.parent]
        else:
            acc = _Accounts.of_base(st.image, base_facts)
            inherited = ()
        state = _StageState(names=list(inherited), posix=st.family != "windows")
        onbuild: list[Node] = []
        for node in st.nodes:
            walk.stage_of[node] = st.index
            if node.cmd == "onbuild" and node.sub is not None:
                onbuild.append(node)
            walk.visit(node, state, acc)
        end_of_stage.append(acc)
        names_of_stage.append(tuple(state.names))
        # Triggers run in a later build, on this stage as it ends; they change a copy.
        later = acc.copy()
        for outer in onbuild:
            sub = outer.sub
            assert sub is not None
            walk.triggers[sub] = outer
            walk.stage_of[sub] = st.index
            walk.visit(sub, state, later)

    return Analysis(doc, tuple(stages), global_args, tuple(preamble), walk.runs, walk.stage_of,
                    walk.users_at, walk.user_text, walk.groups_at, walk.chown_text,
                    walk.triggers)


@dataclass
class _StageState:
    """What one stage has set so far while :func:`analyze` walks it (mutable, private)."""

    names: list[str]
    posix: bool
    env: dict[str, str | None] = field(default_factory=dict)
    shell: str = "sh"
    pipefail_shell: bool = False


class _Walk:
    """The per-instruction facts :func:`analyze` collects, and the step that collects them."""

    def __init__(self, doc: Dockerfile, build_args: Mapping[str, str],
                 global_args: Mapping[str, str | None]) -> None:
        self.doc = doc
        self.build_args = build_args
        self.global_args = global_args
        self.runs: dict[Node, RunInfo] = {}
        self.stage_of: dict[Node, int] = {}
        self.users_at: dict[Node, frozenset[str] | None] = {}
        self.user_text: dict[Node, str | None] = {}
        self.groups_at: dict[Node, frozenset[str] | None] = {}
        self.chown_text: dict[Node, str | None] = {}
        self.triggers: dict[Node, Node] = {}

    def _expand(self, text: str, state: _StageState) -> str | None:
        scope = state.env | {k: v for k, v in self.global_args.items() if k not in state.env}
        return expand(text.strip(), scope, self.doc.escape)

    def visit(self, node: Node, state: _StageState, acc: _Accounts) -> None:
        """Record what ``node`` needs (its script, the users it may name) and apply what it
        changes: variables and the shell to ``state``, accounts to ``acc``."""
        if node.cmd == "arg":
            for k, v in _arg_pairs(node):
                state.env[k] = self.build_args.get(k, v if v is not None
                                                   else self.global_args.get(k))
                state.names.append(k)
        elif node.cmd == "env":
            a = node.args
            for i in range(0, len(a) - 2, 3):
                state.env[a[i]] = expand(a[i + 1].strip("\"'"), state.env, self.doc.escape)
                state.names.append(a[i])
        elif node.cmd == "shell":
            exe = node.args[0].rsplit("/", 1)[-1].lower() if node.args else ""
            state.posix = exe in ("sh", "bash", "ash", "dash", "zsh", "ksh")
            state.shell = dialect(exe)
            state.pipefail_shell = "pipefail" in node.args
        elif node.cmd == "run":
            script, dial, is_body = (_run_script(node, state.shell) if state.posix
                                     else (None, "", False))
            self.runs[node] = RunInfo(node, script, _mounts(node), state.pipefail_shell, dial,
                                      tuple(dict.fromkeys(state.names)),
                                      _body_line(node) if is_body else 0)
            if script is not None:
                acc.run(script, lambda word: self._expand(word, state))
        elif node.cmd == "user":
            self.user_text[node] = self._expand(node.args[0] if node.args else "", state)
            self.users_at[node] = acc.frozen_users()
        elif node.cmd in ("copy", "add"):
            chown = next((f.split("=", 1)[1] for f in node.flags
                          if f.lower().startswith("--chown=")), None)
            if chown is not None:
                self.chown_text[node] = self._expand(chown, state)
                self.users_at[node] = acc.frozen_users()
                self.groups_at[node] = acc.frozen_groups()
            dest = node.args[-1].rstrip("/") if node.args else ""
            if dest.endswith(("/etc/passwd", "/etc")):
                acc.users = None  # account files copied in: anything may exist
            if dest.endswith(("/etc/group", "/etc")):
                acc.groups = None


class _Accounts:
    """The users and groups known to exist at one point of a stage (``None``: unknown).

    A small mutable helper used only while :func:`analyze` walks a stage; the
    :class:`Analysis` it produces holds frozen snapshots.
    """

    def __init__(self, users: set[str] | None, groups: set[str] | None) -> None:
        self.users = users
        self.groups = groups

    @classmethod
    def of_base(cls, image: str | None, facts: Mapping[str, BaseFacts]) -> _Accounts:
        if not image:
            return cls(None, None)
        users = known_users(image, facts.get(image))
        groups = known_groups(image, facts.get(image))
        return cls(None if users is None else set(users), None if groups is None else set(groups))

    def copy(self) -> _Accounts:
        return _Accounts(None if self.users is None else set(self.users),
                         None if self.groups is None else set(self.groups))

    def frozen_users(self) -> frozenset[str] | None:
        return None if self.users is None else frozenset(self.users)

    def frozen_groups(self) -> frozenset[str] | None:
        return None if self.groups is None else frozenset(self.groups)

    def run(self, script: Script, expand_word: Callable[[str], str | None]) -> None:
        """Apply what a RUN does to the account databases.

        Names are expanded with the stage's ARG/ENV values (``useradd ${user}`` with
        ``ARG user=jenkins`` creates ``jenkins``); a name that cannot be resolved makes
        the accounts unknown rather than wrong.
        """
        for c in script.commands:
            if any(r.endswith("/etc/passwd") for r in c.redirects):
                self.users = None
            if any(r.endswith("/etc/group") for r in c.redirects):
                self.groups = None
            names = _created_names(c.words) if c.name in _ACCOUNT_TOOLS else []
            created = [expand_word(n) for n in names]
            if None in created:
                self.users = self.groups = None
                continue
            if not created:
                continue
            if c.name in ("useradd", "adduser"):
                if self.users is not None:
                    self.users.add(str(created[0]))
                # Both usually create a group of the same name (useradd -U, adduser -D);
                # assuming it keeps the rule from flagging a group that does exist.
                if self.groups is not None and len(created) == 1:
                    self.groups.add(str(created[0]))
            elif self.groups is not None and (c.name == "groupadd" or len(created) == 1):
                self.groups.add(str(created[0]))  # "addgroup USER GROUP" only adds a member


_ACCOUNT_TOOLS = frozenset({"useradd", "adduser", "groupadd", "addgroup"})

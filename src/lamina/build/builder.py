"""The builder: Dockerfile stages → steps → cache lookups → layers → an image.

:func:`build` drives one build:

1. parse the Dockerfile and split it into stages (``--target`` cuts the list);
2. find the stages the target needs (its ``FROM`` stage, ``COPY --from`` and
   ``RUN --mount from=`` references), and build only those, dependencies first;
3. walk each stage's instructions keeping the image config, history and variable
   scope (:class:`~lamina.build.dockerfile.stages.StageScope`) up to date.  Metadata
   instructions (``ENV``, ``CMD``, ``LABEL``…) only change the config and add an
   ``empty_layer`` history entry.  ``RUN``, ``COPY``, ``ADD`` and ``WORKDIR`` are
   *layer steps*: each gets a cache key (:func:`lamina.cache.step_key` over the parent
   step's key and its expanded definition) and is either answered from the
   :class:`~lamina.cache.BuildCache` or executed by the
   :class:`~lamina.build.worker.Worker` and committed as a layer;
4. write the image config (BuildKit's shape and history text) and register the image.

Cache keys cover exactly what decides a step's result: for RUN the argv, the
environment (ENV plus every in-scope ARG, proxies excluded), working directory, user,
network and mounts; for COPY/ADD the content checksum of the selected sources (never
mtimes), the destination and the flags; for WORKDIR the path and the user.  A miss
sets every later step of the stage missing too, because their keys chain through it.
For every miss the progress says *why* (:meth:`_Explain`): which files changed, which
build arg or ENV changed, or that the step above changed.

History times come from the cache (when each layer was first made), so a fully cached
rebuild writes a byte-identical config and keeps the image ID; with
``SOURCE_DATE_EPOCH`` every time is that epoch, and layer mtimes are clamped to it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina.build.dockerfile import instructions as ins
from lamina.build.dockerfile.stages import Stage, StageScope
from lamina.build.history import (
    COMMENT,
    expose_text,
    go_quote_list,
    healthcheck_text,
    run_text,
)
from lamina.build.options import BuildOptions, BuildResult
from lamina.build.progress import Cached, Done, Failed, Log, Note, Reporter, Started
from lamina.cache import step_key
from lamina.digest import Digest
from lamina.errors import BuildError, BuildStepFailed, ImageNotFound, LaminaError

if TYPE_CHECKING:
    from lamina.build.memo import MemoProbe
    from lamina.build.sources import ContextIndex
    from lamina.build.worker import Active, Worker
    from lamina.cache import BuildCache, FileDigests
    from lamina.images.store import ImageStore
    from lamina.metadata import LayerRecord

__all__ = ["DEFAULT_PATH", "Fetch", "build"]

#: Pulls a base image into the store: ``fetch(name, policy)`` with policy ``"missing"``
#: (only if no local image has the name) or ``"always"`` (``--pull``).  The caller
#: provides it (``lamina.transfer.pull.ensure_image``); without one, bases must be local.
Fetch = Callable[[str, str], object]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ("/bin/sh", "-c")
#: Order of the keys in an image's runtime config, as Docker's Go struct writes them.
_CONFIG_ORDER = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                 "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Entrypoint", "Cmd",
                 "Image", "Volumes", "WorkingDir", "Labels", "StopSignal", "Healthcheck",
                 "ArgsEscaped", "OnBuild", "Shell")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _rfc3339(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}000Z" if ts % 1 else \
        dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class StageResult:
    """A built stage: its layers, its image config document and its final cache key."""

    stage: Stage
    layers: tuple[LayerRecord, ...]
    image: dict[str, Any]
    key: str


@dataclass
class _State:
    """The mutable state of one stage while its instructions are walked."""

    stage: Stage
    prefix: str
    total: int
    layers: list[LayerRecord]
    image: dict[str, Any]
    cfg: dict[str, Any]
    history: list[dict[str, Any]]
    key: str
    scope: StageScope
    op: int = 1
    ordinal: int = 0
    missed: bool = False
    cmd_set: bool = False
    new_history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def top(self) -> LayerRecord | None:
        return self.layers[-1] if self.layers else None


class Builder:
    """One build of ``options`` into ``store``; see the module docstring."""

    def __init__(self, store: ImageStore, options: BuildOptions, reporter: Reporter,
                 memo: MemoProbe | None = None, fetch: Fetch | None = None) -> None:
        from lamina.cache import BuildCache

        self.store = store
        self.fetch = fetch
        self._fetched: set[str] = set()
        self.opts = options
        self.reporter = reporter
        self.memo = memo if memo is not None and memo.usable else None
        self._memo_ok = True  # false once the build used something the memo cannot check
        self._vertices: list[tuple[str, bool]] = []
        self._keys: list[str] = []
        self._bases: list[tuple[str, str]] = []
        self.cache: BuildCache = BuildCache(store.meta)
        self._vertex = 0
        self._worker: Worker | None = None
        self._context: ContextIndex | None = None
        self._digests: FileDigests | None = None
        self._remember: list[tuple[str, str, dict[str, Any]]] = []
        self.cached_steps = 0
        self.run_steps = 0
        self.dockerfile_name = "Dockerfile"
        self._slot_base = ""

    # --- plumbing -----------------------------------------------------------------------

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            from lamina.build.worker import Worker

            self._worker = Worker(self.store, runtime=self.opts.runtime,
                                  source_date_epoch=self.opts.source_date_epoch)
        return self._worker

    def _start(self, name: str, *, step: bool = False, replay: bool = True) -> tuple[int, float]:
        self._vertex += 1
        if replay:  # a build memo hit prints this vertex again
            self._vertices.append((name, step))
        self.reporter.emit(Started(self._vertex, name))
        return self._vertex, time.monotonic()

    def _done(self, vertex: int, t0: float) -> None:
        self.reporter.emit(Done(vertex, time.monotonic() - t0))

    @property
    def context(self) -> ContextIndex:
        if self._context is None:
            from lamina.build.dockerfile.context import load_ignore_patterns
            from lamina.build.sources import ContextIndex

            if self.opts.context is None:
                raise BuildError("this build has no context, but a COPY/ADD reads from it",
                                 hint="pass a context directory instead of -")
            if self.memo is not None:  # walked already, to compute the memo key
                self._context = ContextIndex(self.opts.context, self.memo.patterns,
                                             self.memo.entries)
            else:
                patterns = load_ignore_patterns(self.opts.context, self.opts.dockerfile_path)
                self._context = ContextIndex(self.opts.context, patterns)
        return self._context

    @property
    def digests(self) -> FileDigests:
        if self._digests is None:
            from lamina.cache import FileDigests

            self._digests = FileDigests.load(self.store.meta, str(self.context.root))
        return self._digests

    def _now(self) -> str:
        if self.opts.source_date_epoch is not None:
            return _rfc3339(self.opts.source_date_epoch)
        return _rfc3339(time.time())

    # --- the build ----------------------------------------------------------------------

    def build(self) -> BuildResult:
        from lamina.build.dockerfile.parser import parse
        from lamina.build.dockerfile.stages import parse_stages

        t_start = time.monotonic()
        opts = self.opts
        v, t0 = self._start(f"[internal] load build definition from {opts.dockerfile_path.name}")
        if opts.dockerfile_text is not None:
            text = opts.dockerfile_text
            self.dockerfile_name = "Dockerfile"
        elif self.memo is not None:  # the bytes the memo key covers
            text = self.memo.dockerfile_text
            self.dockerfile_name = opts.dockerfile_path.name
        else:
            path = opts.dockerfile_path
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise BuildError(f"cannot read Dockerfile {path}: {exc.strerror}",
                                 hint="pass the Dockerfile with -f, or put one in the context") from exc
            self.dockerfile_name = path.name
        self._slot_base = f"{opts.context.resolve() if opts.context else '-'}\x00" \
                          f"{opts.dockerfile_path.resolve() if opts.dockerfile_text is None else '-'}"
        doc = parse(text, path=self.dockerfile_name)
        stages = parse_stages(doc, opts.build_args, target=opts.target)
        self._doc = doc
        self._global_scope = self._global_args(doc)
        self._done(v, t0)

        target = stages[-1]
        order = self._needed(stages, target.index)
        results: dict[int, StageResult] = {}
        for index in order:
            results[index] = self._build_stage(stages[index], stages, results)
        final = results[target.index]
        image_id, names, familiar = self._export(final)
        with self.store.meta.transaction():  # one commit for the build's bookkeeping
            if self._digests is not None:
                self._digests.save()
            self.cache.touch_used()
            self.cache.remember_inputs(self._remember)
            if self.memo is not None and self._memo_ok:
                self.memo.save(self.store.meta, str(image_id), vertices=self._vertices[:-1],
                               cache_keys=self._keys, bases=self._bases,
                               names=list(zip(self.opts.tags, names, familiar, strict=True)))
        return BuildResult(image_id, names, self.cached_steps, self.run_steps,
                           time.monotonic() - t_start, familiar)

    def _resolve(self, text: str) -> Any:
        """``store.resolve(text)``, remembering what the name meant for the build memo."""
        resolved = self.store.resolve(text)
        self._note_resolved(text, resolved.id)
        return resolved

    def _note_resolved(self, text: str, image_id: Digest) -> None:
        raw = text.removeprefix("sha256:")
        if all(c in "0123456789abcdef" for c in raw):
            if len(raw) == 64:
                self._bases.append(("", str(image_id)))
            else:  # a short ID (or a hex name): what it names may change
                self._memo_ok = False
            return
        try:
            full = str(self.store._parse(text))
        except LaminaError:
            self._memo_ok = False
            return
        rec = self.store.meta.find_reference(full)
        if rec is None or rec.image_id != image_id:
            self._memo_ok = False  # found by digest among other names
        else:
            self._bases.append((full, str(image_id)))

    def _global_args(self, doc: Any) -> dict[str, str]:
        from lamina.build.dockerfile.stages import global_args, platform_args

        meta: list[ins.Arg] = []
        for instr in ins.parse_instructions(doc):
            if isinstance(instr, ins.From):
                break
            if isinstance(instr, ins.Arg):
                meta.append(instr)
        return global_args(meta, self.opts.build_args, platform_args(), escape=doc.escape, doc=doc)

    # --- stage graph ----------------------------------------------------------------------

    @staticmethod
    def _stage_ref(ref: str, stages: Sequence[Stage], before: int) -> int | None:
        lowered = ref.lower()
        for s in stages[:before]:
            if s.name == lowered:
                return s.index
        if ref.isdigit() and int(ref) < before:
            return int(ref)
        return None

    def _deps(self, stage: Stage, stages: Sequence[Stage]) -> list[int]:
        deps: list[int] = []
        if stage.base_stage is not None:
            deps.append(stage.base_stage)
        for instr in stage.instructions:
            refs: list[str] = []
            if isinstance(instr, ins.Copy) and instr.from_:
                refs.append(instr.from_)
            elif isinstance(instr, ins.Run):
                refs.extend(m.from_ for m in instr.mounts if m.from_)
            for ref in refs:
                idx = self._stage_ref(ref, stages, stage.index)
                if idx is not None and idx not in deps:
                    deps.append(idx)
        return deps

    def _needed(self, stages: Sequence[Stage], target: int) -> list[int]:
        """The stages ``target`` needs, dependencies first (unneeded stages never build)."""
        order: list[int] = []
        seen: set[int] = set()

        def visit(i: int) -> None:
            if i in seen:
                return
            seen.add(i)
            for d in self._deps(stages[i], stages):
                visit(d)
            order.append(i)

        visit(target)
        return order

    # --- one stage ------------------------------------------------------------------------

    def _base(self, stage: Stage, results: Mapping[int, StageResult]) -> tuple[
            list[LayerRecord], dict[str, Any], str, str]:
        if stage.base_stage is not None:
            parent = results[stage.base_stage]
            return list(parent.layers), json.loads(json.dumps(parent.image)), parent.key, \
                f"FROM {parent.stage.display_name}"
        if stage.is_scratch:
            from lamina.images.store import docker_arch

            image: dict[str, Any] = {"architecture": docker_arch(), "os": "linux", "config": {},
                                     "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            return [], image, step_key(None, {"from": "scratch"}), "FROM scratch"
        try:
            if self.opts.pull:
                self._pull(stage.base, "always")
            resolved = self._resolve(stage.base)
        except ImageNotFound as exc:
            line = stage.from_.line
            if self.fetch is None or self.opts.pull:
                raise BuildError(
                    f"{self.dockerfile_name}:{line}: base image {stage.base!r} not found in the "
                    "store", hint="import, load or pull it first (lamina import / load / pull)"
                ) from exc
            try:
                self._pull(stage.base, "missing")
                resolved = self._resolve(stage.base)
            except LaminaError as pull_exc:
                raise BuildError(
                    f"{self.dockerfile_name}:{line}: base image {stage.base!r} is not in the store "
                    f"and could not be pulled: {pull_exc.message}", hint=pull_exc.hint
                ) from pull_exc
        name = resolved.names[0] if resolved.names else str(resolved.id)
        return list(resolved.layers), json.loads(resolved.config_bytes), \
            step_key(None, {"from": str(resolved.id)}), f"FROM {name}"

    def _pull(self, name: str, policy: str) -> None:
        """Pull ``name`` once per build (``--pull``, or a base missing from the store)."""
        if self.fetch is None or name in self._fetched:
            return
        v, t0 = self._start(f"[internal] load metadata for {name}", replay=False)
        try:
            self.fetch(name, policy)
        except LaminaError as exc:
            self.reporter.emit(Failed(v, exc.message))
            raise
        self._fetched.add(name)
        self._done(v, t0)

    def _triggers(self, cfg: dict[str, Any]) -> list[ins.Instruction]:
        from lamina.build.dockerfile.parser import parse

        out: list[ins.Instruction] = []
        for text in cfg.pop("OnBuild", None) or []:
            doc = parse(text + "\n", path="ONBUILD")
            out.extend(ins.parse_instructions(doc))
        return out

    def _build_stage(self, stage: Stage, stages: Sequence[Stage],
                     results: Mapping[int, StageResult]) -> StageResult:
        from lamina.build.dockerfile.shell import env_from_list

        layers, image, key, from_text = self._base(stage, results)
        cfg: dict[str, Any] = dict(image.get("config") or {})
        env = list(cfg.get("Env") or [])
        if not any(e.split("=", 1)[0] == "PATH" for e in env):
            env.insert(0, f"PATH={DEFAULT_PATH}")
        cfg["Env"] = env
        triggers = self._triggers(cfg) if stage.base_stage is None else []
        if stage.base_stage is not None:
            cfg.pop("OnBuild", None)
        body = [*triggers, *stage.instructions]
        ops = sum(1 for i in body if isinstance(i, (ins.Run, ins.Copy, ins.Add, ins.Workdir)))
        prefix = f"{stage.name} " if stage.name else ""
        scope = StageScope(self._global_scope, self.opts.build_args, env_from_list(env),
                           escape=self._doc.escape)
        st = _State(stage=stage, prefix=prefix, total=ops + 1, layers=layers, image=image, cfg=cfg,
                    history=list(image.get("history") or []), key=key, scope=scope)
        v, t0 = self._start(f"[{prefix}1/{st.total}] {from_text}")
        self._done(v, t0)
        for instr in body:
            self._instruction(st, instr, stages, results)
        image = dict(st.image)
        image["config"] = st.cfg
        self._fill_times(st)
        image["history"] = st.history + st.new_history
        image["rootfs"] = {"type": "layers", "diff_ids": [str(r.diff_id) for r in st.layers]}
        return StageResult(stage, tuple(st.layers), image, st.key)

    def _fill_times(self, st: _State) -> None:
        """Give metadata entries the time of the nearest layer step (BuildKit's rule)."""
        if self.opts.source_date_epoch is not None:
            epoch = _rfc3339(self.opts.source_date_epoch)
            for h in st.new_history:
                h["created"] = epoch
            return
        times = [h.get("created") for h in st.new_history if h.get("created")]
        fallback = times[0] if times else next(
            (h.get("created") for h in reversed(st.history) if h.get("created")), None) \
            or _rfc3339(0)
        current = fallback
        for h in st.new_history:
            if h.get("created"):
                current = h["created"]
            else:
                h["created"] = current
        # keep BuildKit's key order: created, created_by, comment, empty_layer
        for i, h in enumerate(st.new_history):
            st.new_history[i] = {k: h[k] for k in ("created", "created_by", "comment",
                                                    "empty_layer") if k in h}

    def _meta(self, st: _State, text: str) -> None:
        st.new_history.append({"created": None, "created_by": text, "comment": COMMENT,
                               "empty_layer": True})

    def _instruction(self, st: _State, instr: ins.Instruction, stages: Sequence[Stage],
                     results: Mapping[int, StageResult]) -> None:
        from lamina.images.changes import apply_instruction

        doc = self._doc
        if isinstance(instr, ins.Arg):
            st.scope.declare_all(instr)
            parts = [a.name + (f"={a.default}" if a.default is not None else "") for a in instr.args]
            self._meta(st, "ARG " + " ".join(parts))
            return
        e = ins.expand_instruction(instr, st.scope.expander(), file=doc.path,
                                   source_lines=doc.source_lines)
        if isinstance(e, ins.Run):
            self._run(st, e, stages, results)
        elif isinstance(e, (ins.Copy, ins.Add)):
            self._copy(st, e, stages, results)
        elif isinstance(e, ins.Workdir):
            self._workdir(st, e)
        else:
            try:
                st.cfg = apply_instruction(st.cfg, e, cmd_set=st.cmd_set)
            except LaminaError as exc:
                raise BuildError(f"{doc.path}:{e.line}: {exc.message}", hint=exc.hint) from exc
            st.cmd_set = st.cmd_set or isinstance(e, ins.Cmd)
            self._meta(st, self._meta_text(st, e))
            if isinstance(e, ins.Env):
                for kv in e.pairs:
                    st.scope.set_env(kv.key, kv.value)
            elif isinstance(e, ins.Maintainer):
                st.image["author"] = e.maintainer
            elif isinstance(e, ins.Onbuild):
                st.new_history.pop()  # BuildKit records no history for ONBUILD

    @staticmethod
    def _meta_text(st: _State, e: ins.Instruction) -> str:
        if isinstance(e, (ins.Env, ins.Label)):
            return f"{e.keyword} " + " ".join(f"{kv.key}={kv.value}" for kv in e.pairs)
        if isinstance(e, (ins.Cmd, ins.Entrypoint)):
            key = "Cmd" if isinstance(e, ins.Cmd) else "Entrypoint"
            return f"{e.keyword} " + go_quote_list(st.cfg.get(key) or [])
        if isinstance(e, ins.Expose):
            ports = [p for spec in e.ports for p in ins.parse_port_spec(spec).exposed_ports()]
            return expose_text(ports)
        if isinstance(e, ins.User):
            return f"USER {e.user}"
        if isinstance(e, ins.Volume):
            return "VOLUME [" + " ".join(e.paths) + "]"
        if isinstance(e, ins.Stopsignal):
            return f"STOPSIGNAL {e.signal}"
        if isinstance(e, ins.Shell):
            return "SHELL [" + " ".join(e.shell) + "]"
        if isinstance(e, ins.Maintainer):
            return f"MAINTAINER {e.maintainer}"
        if isinstance(e, ins.Healthcheck):
            return healthcheck_text(e.test, e.interval, e.timeout, e.start_period, e.retries)
        return e.node.original

    # --- layer steps ----------------------------------------------------------------------

    def _slot(self, st: _State) -> str:
        raw = f"{self._slot_base}\x00{st.stage.display_name}\x00{st.ordinal}"
        return hashlib.sha256(raw.encode()).hexdigest()

    def _step(self, st: _State, name: str, definition: dict[str, Any], inputs: dict[str, Any],
              execute: Callable[[Active, int, float], None], created_by: str, *,
              line: int) -> None:
        """Answer one layer step from the cache or run it (see the module docstring)."""
        st.ordinal += 1
        st.op += 1
        vertex, t0 = self._start(f"[{st.prefix}{st.op}/{st.total}] {name}", step=True)
        key = step_key(st.key, definition)
        self._keys.append(key)
        slot = self._slot(st)
        hit = None if self.opts.no_cache else self.cache.lookup(key)
        top = st.top
        if hit is not None and hit.layer.parent != (top.chain_id if top else None):
            hit = None  # made on another parent chain (an interrupted --no-cache build)
        if hit is not None:
            self.reporter.emit(Cached(vertex))
            self.cached_steps += 1
            layer, created = hit.layer, hit.created
        else:
            self.reporter.emit(Note(vertex, "cache miss: " + self._why(st, slot, definition, inputs)))
            active = self.worker.open(top, volatile=definition.get("op") == "run")
            try:
                execute(active, vertex, t0)
            except BaseException as exc:
                self.worker.discard(active)
                if isinstance(exc, LaminaError):
                    self.reporter.emit(Failed(vertex, exc.message))
                raise
            created = self._now()
            layer = self.worker.commit(
                active, on_commit=lambda rec: self.cache.put(key, rec, created, name))
            self.run_steps += 1
            self._done(vertex, t0)
            st.missed = True
            self._remember.append((slot, key, {"parent": st.key, "def": definition, **inputs}))
        st.layers.append(layer)
        st.key = key
        st.new_history.append({"created": created, "created_by": created_by, "comment": COMMENT})

    def _why(self, st: _State, slot: str, definition: dict[str, Any],
             inputs: dict[str, Any]) -> str:
        if self.opts.no_cache:
            return "--no-cache"
        if st.missed:
            return "the step above changed"
        last = self.cache.last_inputs(slot)
        if last is None:
            return "no earlier build of this step"
        _, old = last
        reasons: list[str] = []
        old_files: dict[str, str] = old.get("files") or {}
        new_files: dict[str, str] = inputs.get("files") or {}
        if old_files != new_files:
            changed = sorted(p for p in new_files.keys() & old_files.keys()
                             if new_files[p] != old_files[p])
            added = sorted(new_files.keys() - old_files.keys())
            removed = sorted(old_files.keys() - new_files.keys())
            names = changed + added + removed
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            kinds = [w for w, group in (("changed", changed), ("added", added), ("removed", removed))
                     if group]
            reasons.append(f"{'/'.join(kinds)} in the context: {shown}")
        for what, label in (("args", "build arg"), ("env", "ENV")):
            old_map: dict[str, str] = old.get(what) or {}
            new_map: dict[str, str] = inputs.get(what) or {}
            for k in sorted(old_map.keys() | new_map.keys()):
                if old_map.get(k) != new_map.get(k):
                    reasons.append(f"{label} {k} changed ({old_map.get(k, '<unset>')} -> "
                                   f"{new_map.get(k, '<unset>')})")
        if not reasons:
            old_def = dict(old.get("def") or {})
            new_def = json.loads(json.dumps(definition))
            for d in (old_def, new_def):
                d.pop("checksum", None)
                d.pop("env", None)
            if old_def != new_def:
                reasons.append("the instruction changed")
            elif old.get("parent") != st.key:
                reasons.append("the base image changed")
            else:
                reasons.append("not in the cache (pruned)")
        return "; ".join(reasons)

    # RUN ---------------------------------------------------------------------------------

    def _run(self, st: _State, e: ins.Run, stages: Sequence[Stage],
             results: Mapping[int, StageResult]) -> None:
        from lamina.build.dockerfile.stages import PROXY_ARGS

        shell = list(st.cfg.get("Shell") or DEFAULT_SHELL)
        script: tuple[str, str] | None = None
        if e.json:
            argv = list(e.command)
        elif e.heredocs:
            command = e.command[0] if e.command else ""
            first = e.heredocs[0]
            if len(e.heredocs) == 1 and command.strip().lstrip("0123456789").lstrip("<-").strip(
                    "'\"") == first.name:
                if first.content.startswith("#!"):
                    script = (first.name, first.content)
                    argv = [f"/dev/pipes/{first.name}"]
                else:
                    argv = [*shell, first.content]
            else:
                text = command
                for h in e.heredocs:
                    text += "\n" + h.content + h.name
                argv = [*shell, text]
        else:
            argv = [*shell, e.command[0] if e.command else ""]
        env_map = st.scope.run_env()
        if "PATH" not in env_map:
            env_map["PATH"] = DEFAULT_PATH
        env_list = [f"{k}={v}" for k, v in env_map.items()]
        network = e.network if e.network not in (None, "default") else \
            ("host" if self.opts.network in ("host", "default") else "none")
        hist_args = st.scope.args_for_history()
        mount_defs = [self._mount_def(st, m, stages, results) for m in e.mounts]
        cwd: str = st.cfg.get("WorkingDir") or "/"
        user: str = st.cfg.get("User") or ""
        definition = {
            "op": "run", "args": argv, "cwd": cwd, "user": user, "network": network,
            "env": sorted(x for x in env_list if x.split("=", 1)[0] not in PROXY_ARGS),
            "mounts": mount_defs, "script": list(script) if script else None,
        }
        inputs = {"args": dict(hist_args), "env": dict(st.scope.env)}
        line = e.line

        def execute(active: Active, vertex: int, t0: float) -> None:
            from lamina.build.worker import RunSpec

            tail: list[str] = []

            def on_line(text: str) -> None:
                tail.append(text)
                del tail[:-20]
                self.reporter.emit(Log(vertex, time.monotonic() - t0, text))

            mounts, cleanup = self._run_mounts(active, e.mounts, stages, results, script)
            try:
                spec = RunSpec(tuple(argv), tuple(env_list), cwd, user, network, mounts)
                try:
                    code = self.worker.run(active, spec, on_line)
                except LaminaError as exc:
                    raise BuildStepFailed(
                        f"{self.dockerfile_name}:{line}: RUN failed: {exc.message}",
                        stage=st.stage.display_name, line=line,
                        exit_code=getattr(exc, "exit_status", 1), log_tail="\n".join(tail),
                        hint=exc.hint) from exc
            finally:
                for fn in reversed(cleanup):
                    fn()
            if code != 0:
                shown = " ".join(argv)
                raise BuildStepFailed(
                    f"{self.dockerfile_name}:{line}: RUN {shown[:120]} failed with exit code {code}",
                    stage=st.stage.display_name, line=line, exit_code=code,
                    log_tail="\n".join(tail),
                    hint="the command's last output is shown above; fix it and build again")

        name = "RUN " + (e.node.original.split(None, 1)[1] if " " in e.node.original else "")
        self._step(st, name.strip(), definition, inputs, execute, run_text(argv, hist_args),
                   line=line)

    def _mount_def(self, st: _State, m: ins.Mount, stages: Sequence[Stage],
                   results: Mapping[int, StageResult]) -> dict[str, Any]:
        d: dict[str, Any] = {"type": m.type, "target": m.target, "source": m.source, "id": m.id,
                             "readonly": m.readonly, "mode": m.mode, "uid": m.uid, "gid": m.gid,
                             "size": m.size, "env": m.env, "sharing": m.sharing}
        if m.type == "bind":
            if m.from_:
                idx = self._stage_ref(m.from_, stages, st.stage.index)
                d["from"] = results[idx].key if idx is not None else self._image_key(m.from_)
            else:
                from lamina.build.sources import checksum

                sel = self.context.select([m.source or "."])
                d["checksum"] = checksum(sel, self.digests)
        return d

    def _image_key(self, name: str) -> str:
        try:
            return str(self._resolve(name).id)
        except ImageNotFound as exc:
            raise BuildError(f"image {name!r} (a --from source) is not in the store",
                             hint="import, load or pull it, or name a stage") from exc

    def _run_mounts(self, active: Active, mounts: Sequence[ins.Mount], stages: Sequence[Stage],
                    results: Mapping[int, StageResult], script: tuple[str, str] | None) -> tuple[
            tuple[Any, ...], list[Callable[[], None]]]:
        import shutil

        from lamina.runtime import BindMount, TmpfsMount

        out: list[Any] = []
        cleanup: list[Callable[[], None]] = []
        if script is not None:
            path = active.work / "pipes" / script[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(script[1])
            path.chmod(0o755)
            out.append(BindMount(str(path), f"/dev/pipes/{script[0]}", readonly=True))
        for i, m in enumerate(mounts):
            target = m.target or ""
            if m.type == "tmpfs":
                out.append(TmpfsMount(target, size=m.size, options=("nosuid", "nodev")))
            elif m.type == "cache":
                ident = m.id or target
                safe = hashlib.sha256(ident.encode()).hexdigest()[:32]
                d = self.store.root / "build-cache-mounts" / safe
                if not d.exists():
                    d.mkdir(parents=True)
                    d.chmod(m.mode if m.mode is not None else 0o755)
                    os.chown(d, m.uid or 0, m.gid or 0)
                out.append(BindMount(str(d), target, readonly=m.readonly))
            elif m.type == "secret":
                ident = m.id or posixpath.basename(target)
                spec = next((s for s in self.opts.secrets if s.id == ident), None)
                if spec is None:
                    if m.required:
                        raise BuildError(f"secret {ident!r} is required but was not given",
                                         hint=f"pass --secret id={ident},src=FILE")
                    continue
                dst = active.work / "secrets" / f"{i}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copyfile(spec.src, dst)
                except OSError as exc:
                    raise BuildError(f"cannot read secret {ident!r} from {spec.src}: {exc.strerror}",
                                     hint="check the --secret src= path") from exc
                os.chmod(dst, m.mode if m.mode is not None else 0o400)
                os.chown(dst, m.uid or 0, m.gid or 0)
                out.append(BindMount(str(dst), target or f"/run/secrets/{ident}", readonly=True))
            elif m.type == "bind":
                if m.from_:
                    view = self.worker.view(self._top_for(m.from_, stages, results))
                    cleanup.append(functools.partial(self.worker.close_view, view))
                    from lamina.build.fileops import scoped

                    src = scoped(str(view.rootfs), m.source or "/", follow_last=True)
                else:
                    from lamina.build.sources import clean_source

                    src = str(self.context.root / clean_source(m.source or "."))
                if not m.readonly:  # writes are thrown away: give the RUN a private copy
                    copy = active.work / "binds" / f"{i}"
                    if os.path.isdir(src):
                        shutil.copytree(src, copy, symlinks=True)
                    else:
                        copy.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(src, copy)
                    src = str(copy)
                out.append(BindMount(src, target, readonly=m.readonly))
            else:
                raise BuildError(f"RUN --mount=type={m.type} is not supported by lamina",
                                 hint="use type=bind, cache, tmpfs or secret")
        return tuple(out), cleanup

    def _top_for(self, ref: str, stages: Sequence[Stage],
                 results: Mapping[int, StageResult]) -> LayerRecord | None:
        for idx, res in results.items():
            s = stages[idx]
            if s.name == ref.lower() or (ref.isdigit() and int(ref) == idx):
                return res.layers[-1] if res.layers else None
        img = self._resolve(ref)
        return img.layers[-1] if img.layers else None

    # COPY / ADD ----------------------------------------------------------------------------

    def _dest(self, st: _State, dest: str) -> str:
        wd = st.cfg.get("WorkingDir") or "/"
        trailing = dest.endswith("/") or dest.endswith("/.") or dest in (".", "")
        full = dest if dest.startswith("/") else posixpath.join(wd, dest)
        full = posixpath.normpath(full)
        return full.rstrip("/") + "/" if trailing else full

    def _copy(self, st: _State, e: ins.Copy | ins.Add, stages: Sequence[Stage],
              results: Mapping[int, StageResult]) -> None:
        from lamina.build.sources import checksum

        is_add = isinstance(e, ins.Add)
        dest = self._dest(st, e.dest)
        from_ = e.from_ if isinstance(e, ins.Copy) else None
        urls = [s for s in e.sources if is_add and s.startswith(("http://", "https://"))]
        local = [s for s in e.sources if s not in urls]
        files: dict[str, str] = {}
        definition: dict[str, Any] = {
            "op": "add" if is_add else "copy", "sources": list(e.sources), "dest": dest,
            "chown": e.chown, "chmod": e.chmod, "link": e.link, "excludes": list(e.excludes),
            "parents": getattr(e, "parents", False),
            "contents": [[c.path, self._heredoc(st, c)] for c in e.contents],
        }
        selection = None
        if from_:
            idx = self._stage_ref(from_, stages, st.stage.index)
            definition["from"] = results[idx].key if idx is not None else self._image_key(from_)
        elif local:
            selection = self.context.select(local, e.excludes)
            definition["checksum"] = checksum(selection, self.digests, files)
        if urls:
            self._memo_ok = False  # remote content may change without the memo key seeing it
            definition["urls"] = [self._url_key(u, e) for u in urls]
        inputs = {"files": files}

        def execute(active: Active, vertex: int, t0: float) -> None:
            from lamina.build import fileops

            root = active.root
            owner = fileops.resolve_chown(root, e.chown)
            chmod = fileops.parse_chmod(e.chmod)
            parent_owner = owner or (0, 0)
            many = dest.endswith("/")

            def file_dest(name: str, parents_path: str) -> str:
                if many or os.path.isdir(fileops.scoped(root, dest, follow_last=True)):
                    return dest.rstrip("/") + "/" + (parents_path if definition["parents"] else name)
                return dest

            for c in e.contents:
                tmp = active.work / "heredoc" / c.path
                tmp.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(self._heredoc(st, c))
                os.chmod(tmp, 0o644)
                item = fileops.FileItem.from_stat(c.path, str(tmp), os.lstat(tmp))
                fileops.copy_tree_items(root, file_dest(posixpath.basename(c.path), c.path),
                                        item, [], owner=parent_owner, chmod=chmod,
                                        parent_owner=parent_owner)
            if selection is not None:
                for sel in selection:
                    if sel.is_dir:
                        base = sel.entry.path + "/" if sel.entry is not None else ""
                        items = [_ctx_item(x, base) for x in sel.subtree]
                        top = _ctx_item(sel.entry, "") if sel.entry is not None else None
                        target = dest if not definition["parents"] or sel.parents_path == "." \
                            else dest.rstrip("/") + "/" + sel.parents_path
                        fileops.copy_tree_items(root, target, top, items,
                                                owner=parent_owner, chmod=chmod,
                                                parent_owner=parent_owner)
                        continue
                    assert sel.entry is not None
                    item = _ctx_item(sel.entry, "")
                    if is_add and _is_archive(sel.entry.abspath):
                        self._extract(active, sel.entry.abspath, dest, owner, chmod)
                        continue
                    fileops.copy_tree_items(root, file_dest(sel.name, sel.parents_path), item, [],
                                            owner=parent_owner, chmod=chmod,
                                            parent_owner=parent_owner)
            if from_:
                self._copy_from(active, e, from_, dest, owner, chmod, stages, results, file_dest)
            for url in urls:
                path, mtime = self._download(url, active.work, e)
                name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "index.html"
                st_ = os.lstat(path)
                item = fileops.FileItem(name, str(path), (st_.st_mode & ~0o7777) | 0o600, 0, 0,
                                        int((mtime or st_.st_mtime) * 1e9))
                fileops.copy_tree_items(root, file_dest(name, name), item, [],
                                        owner=parent_owner, chmod=chmod, parent_owner=parent_owner)

        words = [*(f"<<{c.path}" for c in e.contents), *e.sources]
        flags = ""
        if from_:
            flags = f"--from={from_} "
        name = f"{e.keyword} {flags}{' '.join(words)} {e.dest}"
        created_by = f"{e.keyword} {flags}{' '.join(words)} {e.dest} # buildkit"
        self._step(st, name, definition, inputs, execute, created_by, line=e.line)

    def _heredoc(self, st: _State, c: ins.SourceContent) -> str:
        if not c.expand:
            return c.data
        env = st.scope.expansion_env()
        return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), c.data)

    def _copy_from(self, active: Active, e: ins.Copy | ins.Add, ref: str, dest: str,
                   owner: tuple[int, int] | None, chmod: Callable[[int, bool], int] | None,
                   stages: Sequence[Stage], results: Mapping[int, StageResult],
                   file_dest: Callable[[str, str], str]) -> None:
        from lamina.build import fileops
        from lamina.build.dockerfile.dockerignore import PatternMatcher, go_path_match
        from lamina.build.sources import has_wildcard

        view = self.worker.view(self._top_for(ref, stages, results))
        try:
            vroot = str(view.rootfs)
            ex = PatternMatcher(e.excludes) if e.excludes else None
            for src in e.sources:
                clean = posixpath.normpath("/" + src).lstrip("/")
                if has_wildcard(clean):
                    parent, _, pattern = clean.rpartition("/")
                    pdir = fileops.scoped(vroot, "/" + parent, follow_last=True)
                    names = sorted(os.listdir(pdir)) if os.path.isdir(pdir) else []
                    paths = [f"{parent}/{n}" if parent else n for n in names
                             if go_path_match(pattern, n)]
                else:
                    paths = [clean]
                for p in paths:
                    host = fileops.scoped(vroot, "/" + p, follow_last=True)
                    try:
                        st_ = os.lstat(host)
                    except FileNotFoundError:
                        raise BuildError(f"{self.dockerfile_name}:{e.line}: COPY --from={ref}: "
                                         f'"/{p}" not found', hint=f"the stage or image {ref!r} has no "
                                         f"/{p}") from None
                    item = fileops.FileItem.from_stat(posixpath.basename(p), host, st_)
                    if os.path.isdir(host) and not os.path.islink(host):
                        items = fileops.walk_items(host)
                        if ex is not None:
                            items = [i for i in items if not ex.matches(i.rel)]
                        fileops.copy_tree_items(active.root, dest, item, items, owner=owner,
                                                chmod=chmod, parent_owner=owner or (0, 0))
                    else:
                        fileops.copy_tree_items(active.root, file_dest(item.rel, p), item, [],
                                                owner=owner, chmod=chmod,
                                                parent_owner=owner or (0, 0))
        finally:
            self.worker.close_view(view)

    def _extract(self, active: Active, archive: str, dest: str, owner: tuple[int, int] | None,
                 chmod: Callable[[int, bool], int] | None) -> None:
        import shutil

        from lamina.build import fileops
        from lamina.layer import apply_layer

        tmp = active.work / f"extract-{os.urandom(4).hex()}"
        try:
            with open(archive, "rb") as f:
                apply_layer(f, tmp)
            items = fileops.walk_items(str(tmp))
            fileops.copy_tree_items(active.root, dest, None, items, owner=owner, chmod=chmod,
                                    parent_owner=owner or (0, 0))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _url_key(self, url: str, e: ins.Copy | ins.Add) -> dict[str, Any]:
        checksum = e.checksum if isinstance(e, ins.Add) else None
        if checksum:
            return {"url": url, "checksum": checksum}
        import tempfile

        with tempfile.TemporaryDirectory(dir=self.store.tmp) as d:
            path, _ = self._download(url, Path(d), e)
            return {"url": url, "sha256": _sha256_file(path)}

    def _download(self, url: str, work: Path, e: ins.Copy | ins.Add) -> tuple[Path, float | None]:
        import email.utils
        import urllib.request

        work.mkdir(parents=True, exist_ok=True)
        path = work / f"download-{hashlib.sha256(url.encode()).hexdigest()[:16]}"
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as out:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                modified = resp.headers.get("Last-Modified")
        except OSError as exc:
            raise BuildError(f"{self.dockerfile_name}:{e.line}: ADD {url}: download failed: {exc}",
                             hint="check the URL and the network") from exc
        mtime = None
        if modified:
            try:
                mtime = email.utils.parsedate_to_datetime(modified).timestamp()
            except (TypeError, ValueError):
                mtime = None
        want = e.checksum if isinstance(e, ins.Add) else None
        if want:
            algo, _, hexpart = want.partition(":")
            got = hashlib.new(algo, path.read_bytes()).hexdigest()
            if got != hexpart:
                raise BuildError(f"{self.dockerfile_name}:{e.line}: ADD {url}: checksum mismatch: "
                                 f"got {algo}:{got}, want {want}",
                                 hint="the file at the URL changed, or --checksum is wrong")
        return path, mtime

    # WORKDIR -------------------------------------------------------------------------------

    def _workdir(self, st: _State, e: ins.Workdir) -> None:
        base = st.cfg.get("WorkingDir") or "/"
        path = posixpath.normpath(posixpath.join(base, e.path))
        st.cfg["WorkingDir"] = path
        if path == "/":
            self._meta(st, f"WORKDIR {e.path}")
            return
        user = st.cfg.get("User") or ""
        definition = {"op": "mkdir", "path": path, "user": user}

        def execute(active: Active, vertex: int, t0: float) -> None:
            from lamina.build import fileops

            uid = gid = 0
            if user:
                try:
                    from lamina.runtime import resolve_user

                    u = resolve_user(active.root, user)
                    uid, gid = u.uid, u.gid
                except LaminaError:
                    uid = gid = 0
            fileops.make_dir(active.root, path, uid, gid)

        name = f"WORKDIR {e.path}"
        self._step(st, name, definition, {}, execute, name, line=e.line)

    # --- export -----------------------------------------------------------------------------

    def _export(self, final: StageResult) -> tuple[Digest, tuple[str, ...], tuple[str, ...]]:
        from lamina.oci._json import canonical_json, sorted_map

        image = dict(final.image)
        cfg = dict(image.get("config") or {})
        if self.opts.labels:
            labels = dict(cfg.get("Labels") or {})
            labels.update(self.opts.labels)
            cfg["Labels"] = labels
        for k in ("Labels", "ExposedPorts", "Volumes"):
            if cfg.get(k):
                cfg[k] = sorted_map(cfg[k])
        ordered = {k: cfg[k] for k in _CONFIG_ORDER if cfg.get(k) not in (None, [], {}, "")}
        ordered.update({k: v for k, v in cfg.items()
                        if k not in _CONFIG_ORDER and v not in (None, [], {}, "")})
        history = image.get("history") or []
        created = history[-1].get("created") if history else None
        doc: dict[str, Any] = {"architecture": image.get("architecture") or "amd64"}
        if image.get("author"):
            doc["author"] = image["author"]
        doc["config"] = ordered
        if created:
            doc["created"] = created
        doc["history"] = history
        doc["os"] = image.get("os") or "linux"
        doc["rootfs"] = image["rootfs"]
        if image.get("variant"):
            doc["variant"] = image["variant"]
        config_bytes = canonical_json(doc)
        image_id = Digest.from_bytes(config_bytes)
        v, t0 = self._start("exporting to image")
        refs = [self.store._parse(t) for t in self.opts.tags]
        names = tuple(str(r) for r in refs)
        if self.store.meta.find_image(image_id) is not None:
            with self.store.meta.transaction():
                for n in names:
                    self.store.meta.set_reference(n, image_id)
        else:
            with self.store.operation() as undo:
                self.store.register_image(config_bytes, final.layers, names=names, undo=undo)
        self.reporter.emit(Note(v, f"writing image {image_id}"))
        for n in names:
            self.reporter.emit(Note(v, f"naming to {n}"))
        self._done(v, t0)
        return image_id, names, tuple(r.familiar for r in refs)


def _ctx_item(entry: Any, base: str) -> Any:
    from lamina.build.fileops import FileItem

    rel = entry.path[len(base):] if base else entry.path
    return FileItem(rel, entry.abspath, entry.mode, 0, 0, entry.mtime_ns, entry.link_target)


def _sha256_file(path: Path) -> str:
    from lamina.cache import hash_file

    return hash_file(str(path))


_TAR_MAGIC = b"ustar"


def _is_archive(path: str) -> bool:
    """Whether a local ADD source is a tar (plain, gzip, bzip2, xz or zstd) by its content."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
            if len(head) >= 262 and head[257:262] == _TAR_MAGIC:
                return True
            from lamina.layer import Compression, detect_compression, open_decompressed

            if detect_compression(head) is Compression.NONE:
                return False
            f.seek(0)

            stream, _ = open_decompressed(f)
            try:
                block = stream.read(512)
            finally:
                stream.close()
            return len(block) >= 262 and block[257:262] == _TAR_MAGIC
    except (OSError, LaminaError):
        return False


def build(store: ImageStore, options: BuildOptions, reporter: Reporter,
          memo: MemoProbe | None = None, fetch: Fetch | None = None) -> BuildResult:
    """Build ``options`` into ``store``, reporting progress to ``reporter``.

    ``memo`` (:func:`lamina.build.memo.probe` of the same request): reuse its reads
    and walk, and remember the result under its key.  ``fetch`` pulls base images
    that are missing (and every base with ``options.pull``); see :data:`Fetch`.
    """
    return Builder(store, options, reporter, memo, fetch).build()

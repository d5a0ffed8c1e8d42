"""The thin outer layer of the linter: it reads files, gathers facts, calls the pure core.

The rules never touch the disk.  This module does, once, before linting:

* reads the Dockerfile (the CLI reads ``-`` from stdin and calls
  :func:`lint_source`);
* finds the configuration: ``.lamina-lint.yaml`` (or ``.yml``) next to the
  Dockerfile or in the context directory, else ``[tool.lamina.lint]`` in a
  ``pyproject.toml`` there (the Dockerfile's directory wins over the context);
* scans the build context when one is given (:func:`scan_context`): is there a
  ``.dockerignore``, and which risky paths (``.git``, ``.env``, private keys,
  ``node_modules``, large files) does it fail to exclude;
* asks an optional ``base_image_facts`` hook about every base image (the local
  image store will provide it: ``/etc/os-release`` ID, users and groups);
* passes an optional ``shellcheck`` callable through to the engine (the CLI builds
  one around the ``shellcheck`` binary when it is on ``PATH``; this package itself
  runs no subprocesses).

The builder calls :func:`lint_for_build` for ``lamina build --lint``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lamina.errors import InvalidArgument
from lamina.lint.model import (
    BaseFacts,
    ContextFacts,
    ContextItem,
    Finding,
    LintConfig,
    LintOptions,
    Severity,
    ShellChecker,
)

__all__ = [
    "BaseFactsHook",
    "FileReport",
    "LintSettings",
    "find_config",
    "fix_file",
    "lint_file",
    "lint_for_build",
    "lint_source",
    "scan_context",
    "write_atomically",
]

BaseFactsHook = Callable[[str], BaseFacts | None]
"""Given an image reference as the FROM line names it, what the local store knows."""

LARGE_FILE_BYTES = 50 * 1024 * 1024
_MAX_WALK = 100_000


@dataclass(frozen=True)
class LintSettings:
    """What one ``lamina lint`` invocation asks for (CLI flags, before configuration).

    ``ignore`` adds to the configured ignores; ``failure_threshold`` (when set)
    overrides the configured one.
    """

    build_args: Mapping[str, str] = field(default_factory=dict)
    context_dir: str | None = None
    ignore: frozenset[str] = frozenset()
    failure_threshold: Severity | None = None
    base_image_facts: BaseFactsHook | None = None
    shellcheck: ShellChecker | None = None
    large_file_bytes: int = LARGE_FILE_BYTES


@dataclass(frozen=True)
class FileReport:
    """The findings for one Dockerfile, with its lines (for carets) and effective config."""

    path: str
    findings: tuple[Finding, ...]
    source_lines: tuple[str, ...]
    config: LintConfig
    threshold: Severity

    @property
    def failed(self) -> bool:
        """Whether a finding reaches the failure threshold."""
        from lamina.lint.engine import failing

        return failing(self.findings, self.threshold)


# --- configuration -------------------------------------------------------------------


def find_config(dirs: Sequence[str | Path]) -> LintConfig:
    """The configuration found in the first of ``dirs`` that has one (see module doc)."""
    from lamina.lint.config import parse_pyproject, parse_yaml

    for d in dirs:
        for name in (".lamina-lint.yaml", ".lamina-lint.yml"):
            p = Path(d) / name
            if p.is_file():
                return parse_yaml(_read_text(p), str(p))
        p = Path(d) / "pyproject.toml"
        if p.is_file():
            cfg = parse_pyproject(_read_text(p), str(p))
            if cfg is not None:
                return cfg
    return LintConfig()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from exc


# --- the build context ---------------------------------------------------------------

_KEY_NAMES = frozenset({"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"})
_KEY_SUFFIXES = (".pem", ".key", ".p12", ".pfx")


def _kind(name: str, is_dir: bool) -> str | None:
    if is_dir:
        return {".git": "git", "node_modules": "node_modules"}.get(name)
    if name == ".env" or (name.startswith(".env.") and name not in (".env.example",
                                                                   ".env.sample",
                                                                   ".env.template")):
        return "env"
    if name in _KEY_NAMES or name.endswith(_KEY_SUFFIXES):
        return "key"
    return None


def scan_context(context_dir: str | Path, dockerfile: str | Path | None = None,
                 large_file_bytes: int = LARGE_FILE_BYTES) -> ContextFacts:
    """Look for a ``.dockerignore`` and for risky paths it does not exclude."""
    from lamina.build.dockerfile.context import find_ignore_file, load_ignore_patterns
    from lamina.build.dockerfile.dockerignore import PatternMatcher

    root = Path(context_dir)
    if not root.is_dir():
        raise InvalidArgument(f"build context {str(root)!r} is not a directory")
    has_ignore = find_ignore_file(root, dockerfile) is not None
    matcher = PatternMatcher(load_ignore_patterns(root, dockerfile)) if has_ignore else None
    exposed: list[ContextItem] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        keep_dirs = []
        for d in sorted(dirnames):
            rel = rel_dir + d
            if matcher is not None and matcher.matches(rel):
                continue
            kind = _kind(d, True)
            if kind is not None:
                exposed.append(ContextItem(rel, kind))
                continue
            if not os.path.islink(os.path.join(dirpath, d)):
                keep_dirs.append(d)
        dirnames[:] = keep_dirs
        for f in sorted(filenames):
            seen += 1
            rel = rel_dir + f
            if matcher is not None and matcher.matches(rel):
                continue
            kind = _kind(f, False)
            size = 0
            if kind is None:
                try:
                    st = os.lstat(os.path.join(dirpath, f))
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_size >= large_file_bytes:
                    kind, size = "large", st.st_size
            if kind is not None:
                exposed.append(ContextItem(rel, kind, size))
        if seen > _MAX_WALK:
            break
    return ContextFacts(has_ignore, tuple(exposed))


# --- linting -------------------------------------------------------------------------


def lint_source(text: str | bytes, path: str, settings: LintSettings | None = None,
                config_dirs: Sequence[str | Path] = ()) -> FileReport:
    """Lint Dockerfile ``text`` named ``path``; ``config_dirs`` are searched for configuration."""
    from lamina.build.dockerfile.parser import parse
    from lamina.errors import DockerfileSyntaxError
    from lamina.lint.analysis import base_image_refs
    from lamina.lint.engine import lint_document

    settings = settings or LintSettings()
    dirs = list(config_dirs)
    if settings.context_dir and settings.context_dir not in dirs:
        dirs.append(settings.context_dir)
    config = find_config(dirs).merged(LintConfig(ignore=settings.ignore))
    threshold = next((t for t in (settings.failure_threshold, config.failure_threshold)
                      if t is not None), Severity.INFO)
    raw = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    lines = tuple(raw.lstrip("\ufeff").splitlines())
    try:
        doc = parse(text, path=path)
    except DockerfileSyntaxError as exc:
        f = Finding("LM001", Severity.ERROR, path, max(exc.line, 1), max(exc.column, 1),
                    exc.message, exc.hint or "fix the syntax error", "docs/lint/LM001.md")
        return FileReport(path, (f,), lines, config, threshold)
    facts: dict[str, BaseFacts] = {}
    if settings.base_image_facts is not None:
        for ref in base_image_refs(doc, settings.build_args):
            got = settings.base_image_facts(ref)
            if got is not None:
                facts[ref] = got
    context = None
    if settings.context_dir is not None:
        dockerfile = path if path != "-" and os.path.exists(path) else None
        context = scan_context(settings.context_dir, dockerfile, settings.large_file_bytes)
    options = LintOptions(settings.build_args, config, facts, context)
    findings = lint_document(doc, options, shellcheck=settings.shellcheck)
    return FileReport(path, findings, doc.source_lines or lines, config, threshold)


def lint_file(path: str | Path, settings: LintSettings | None = None) -> FileReport:
    """Read and lint one Dockerfile (configuration looked up beside it and in the context)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read {p}: {exc.strerror}",
                              hint="pass the path of a Dockerfile") from exc
    return lint_source(data, str(path), settings, [p.parent])


def lint_for_build(text: str | bytes, path: str = "Dockerfile", *,
                   context_dir: str | None = None,
                   build_args: Mapping[str, str] | None = None,
                   base_image_facts: BaseFactsHook | None = None) -> tuple[Finding, ...]:
    """What ``lamina build --lint`` calls: the findings for the Dockerfile being built."""
    settings = LintSettings(build_args=dict(build_args or {}), context_dir=context_dir,
                            base_image_facts=base_image_facts)
    dirs = [str(Path(path).parent)] if path not in ("-", "") else []
    return lint_source(text, path, settings, dirs).findings


def write_atomically(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text``: write a temp file beside it, then rename over it."""
    p = Path(path)
    try:
        mode = stat.S_IMODE(p.stat().st_mode)
    except OSError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def fix_file(path: str | Path, settings: LintSettings | None = None) -> tuple[str, ...]:
    """Apply every mechanical fix to ``path`` in place; returns what was done."""
    from lamina.lint.fix import fix_text

    p = Path(path)
    original = p.read_bytes().decode("utf-8", errors="replace")
    settings = settings or LintSettings()
    # Fixes need only the document itself: no context scan, no shellcheck.
    quiet = LintSettings(build_args=settings.build_args, ignore=settings.ignore,
                         base_image_facts=settings.base_image_facts)

    def lint(text: str) -> tuple[Finding, ...]:
        return lint_source(text, str(p), quiet, [p.parent]).findings

    crlf = "\r\n" in original
    result = fix_text(original.replace("\r\n", "\n"), lint)
    if result.applied:
        new = result.text.replace("\n", "\r\n") if crlf else result.text
        write_atomically(p, new)
    return result.applied

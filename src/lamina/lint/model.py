"""The data the linter works with: severities, findings, edits, facts and options.

Everything here is a frozen dataclass or an enum, so a lint run is a pure function
from (parsed Dockerfile, facts, options) to a tuple of :class:`Finding`.  The facts
that need I/O -- what the build context holds, what a local base image contains --
are gathered by :mod:`lamina.lint.runner` and handed in as :class:`BaseFacts` and
:class:`ContextFacts`; the rules never touch the file system.

A finding carries everything a reader needs to act on it::

    Finding(code="LM307", severity=Severity.WARNING, file="Dockerfile", line=8, column=5,
            message="pip keeps its download cache in the image",
            fix="add --no-cache-dir to pip install", doc="docs/lint/LM307.md")

and, when the change is mechanical, an :class:`Autofix` (a list of :class:`Edit`)
that ``lamina lint --fix`` applies.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Autofix",
    "BaseFacts",
    "ContextFacts",
    "ContextItem",
    "Edit",
    "Finding",
    "LintConfig",
    "LintOptions",
    "Severity",
    "ShellChecker",
    "ShellComment",
    "ShellScript",
]


class Severity(enum.IntEnum):
    """How bad a finding is; larger is worse, so thresholds compare with ``>=``.

    ``NONE`` exists only as a failure threshold ("never fail").
    """

    NONE = 0
    STYLE = 1
    INFO = 2
    WARNING = 3
    ERROR = 4

    @property
    def label(self) -> str:
        """The lower-case name used in output and configuration (``"warning"``)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """``"warning"`` → ``Severity.WARNING``; raises ``ValueError`` for unknown names."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of: {names})") from None


@dataclass(frozen=True)
class Edit:
    """Replace the source text from (line, col) up to, not including, (end_line, end_col).

    Positions are 1-based.  An insertion has equal start and end.  A column one past
    the end of a line addresses its end (before the newline); ``(line + 1, 1)`` after
    a whole line addresses the start of the next one, which is how a line is deleted.
    """

    line: int
    col: int
    end_line: int
    end_col: int
    text: str


@dataclass(frozen=True)
class Autofix:
    """A mechanical rewrite for one finding: what it does and the edits that do it."""

    description: str
    edits: tuple[Edit, ...]


@dataclass(frozen=True)
class Finding:
    """One problem found in one file.

    ``fix`` is a one-line human instruction (always present); ``autofix`` the
    machine rewrite when there is one.  ``doc`` is the path of the rule's page in
    the repository (``docs/lint/LM301.md``) or, for shellcheck codes, its wiki URL.
    """

    code: str
    severity: Severity
    file: str
    line: int
    column: int
    message: str
    fix: str
    doc: str
    source: str = "lamina"  # or "shellcheck"
    autofix: Autofix | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of a finding (stable keys; ``fixable`` tells if --fix acts)."""
        return {
            "code": self.code,
            "severity": self.severity.label,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "fix": self.fix,
            "doc": self.doc,
            "source": self.source,
            "fixable": self.autofix is not None,
        }


@dataclass(frozen=True)
class BaseFacts:
    """What is known about a base image from inside it (the local store provides this).

    ``os_id`` is the ``ID=`` of ``/etc/os-release`` (``alpine``, ``debian``, ``ubuntu``…)
    and ``os_id_like`` its ``ID_LIKE=`` words; ``users`` and ``groups`` are the names
    in ``/etc/passwd`` and ``/etc/group``.
    """

    os_id: str | None = None
    os_id_like: tuple[str, ...] = ()
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ContextItem:
    """A path in the build context that should probably be in ``.dockerignore``.

    ``kind`` is one of ``git``, ``env``, ``key``, ``node_modules``, ``large``;
    ``path`` is relative to the context with ``/`` separators; ``size`` in bytes
    (for directories, 0).
    """

    path: str
    kind: str
    size: int = 0


@dataclass(frozen=True)
class ContextFacts:
    """What the runner found in the build context directory.

    ``has_dockerignore`` tells whether a ``.dockerignore`` (or
    ``<Dockerfile>.dockerignore``) exists; ``exposed`` lists the risky paths that it
    does not exclude.
    """

    has_dockerignore: bool
    exposed: tuple[ContextItem, ...] = ()


@dataclass(frozen=True)
class LintConfig:
    """User configuration (``.lamina-lint.yaml`` or ``[tool.lamina.lint]``).

    ``ignore`` holds lamina codes, hadolint DL codes or shellcheck SC codes;
    ``severity`` overrides per code; ``trusted_registries`` enables the
    trusted-registry rule when non-empty; ``failure_threshold`` is ``None`` when the
    configuration does not set one.
    """

    ignore: frozenset[str] = frozenset()
    severity: Mapping[str, Severity] = field(default_factory=dict)
    trusted_registries: tuple[str, ...] = ()
    failure_threshold: Severity | None = None

    def merged(self, other: LintConfig) -> LintConfig:
        """This configuration with ``other`` laid over it (``other`` wins on conflicts)."""
        sev = dict(self.severity)
        sev.update(other.severity)
        return LintConfig(
            ignore=self.ignore | other.ignore,
            severity=sev,
            trusted_registries=other.trusted_registries or self.trusted_registries,
            failure_threshold=(
                other.failure_threshold
                if other.failure_threshold is not None
                else self.failure_threshold
            ),
        )


@dataclass(frozen=True)
class LintOptions:
    """Everything a pure lint run needs besides the Dockerfile itself.

    ``base_facts`` maps a resolved image reference (as written after ARG expansion,
    e.g. ``python:3.12-slim``) to what the local store knows about it; ``context``
    is ``None`` when no build context was given (then the context rules stay quiet).
    """

    build_args: Mapping[str, str] = field(default_factory=dict)
    config: LintConfig = field(default_factory=LintConfig)
    base_facts: Mapping[str, BaseFacts] = field(default_factory=dict)
    context: ContextFacts | None = None


@dataclass(frozen=True)
class ShellScript:
    """One script for an external shell checker: a RUN's shell text or heredoc body.

    ``shell`` is the dialect (``sh``, ``bash``, ``dash``, ``ksh``); ``defined`` are
    variable names the Dockerfile sets before the script runs (ARG, ENV), which the
    checker must not report as unassigned.
    """

    text: str
    shell: str = "sh"
    defined: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShellComment:
    """One comment of an external shell checker (shellcheck) on one script.

    ``line`` and ``column`` are 1-based positions inside the script text given to it
    (tabs count as one column).
    """

    code: int
    level: str  # error | warning | info | style
    message: str
    line: int = 1
    column: int = 1


ShellChecker = Callable[[Sequence[ShellScript]], Sequence[Sequence[ShellComment]]]
"""Checks a batch of scripts at once (all RUNs of one Dockerfile) and returns, for each
script in order, its comments.  Batching lets the CLI's adapter start one ``shellcheck``
process per Dockerfile instead of one per RUN."""

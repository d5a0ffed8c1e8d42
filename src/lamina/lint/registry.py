"""Rules as data: the :class:`Rule` record, the :class:`Hit` a rule yields, the registry.

A rule is a frozen record -- stable code, short name, default severity, one-line
summary, the hadolint codes that mean the same thing -- plus a pure ``check``
function.  ``check`` receives the shared :class:`~lamina.lint.analysis.Analysis`
and the :class:`~lamina.lint.model.LintOptions` and yields :class:`Hit` values;
the engine turns hits into :class:`~lamina.lint.model.Finding` values, filling in
the code, the (possibly overridden) severity, the file and the doc link, and drops
the ones a pragma or the configuration ignores.

Adding a rule::

    @rule("LM999", "no-foo", Severity.WARNING, "FOO is not a good idea", hadolint=("DL9999",))
    def _no_foo(a: Analysis, opts: LintOptions) -> Iterator[Hit]:
        for node in a.doc.nodes:
            if node.cmd == "foo":
                yield Hit(node, "FOO found", fix="remove it")

then write ``docs/lint/LM999.md`` and a test that breaks and one that follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lamina.build.dockerfile.ast import Node
from lamina.lint.model import Autofix, Severity

__all__ = ["RULES", "Hit", "Rule", "rule", "rules_by_code"]


@dataclass(frozen=True)
class Hit:
    """What a rule reports: where (a node, optionally a precise line/column), what, how to fix.

    When ``line`` is ``None`` the node's first line and column are used.
    """

    node: Node | None
    message: str
    fix: str
    line: int | None = None
    column: int | None = None
    autofix: Autofix | None = None


# check(analysis, options) -> hits; typed loosely here to avoid an import cycle
CheckFn = Callable[..., Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    """One lint rule (see the module docstring)."""

    code: str
    name: str
    severity: Severity
    summary: str
    hadolint: tuple[str, ...]
    check: CheckFn

    @property
    def doc(self) -> str:
        """Path of the rule's documentation page in the repository."""
        return f"docs/lint/{self.code}.md"


RULES: list[Rule] = []


def rule(code: str, name: str, severity: Severity, summary: str,
         hadolint: tuple[str, ...] = ()) -> Callable[[CheckFn], CheckFn]:
    """Register the decorated check function as a :class:`Rule`."""

    def deco(fn: CheckFn) -> CheckFn:
        if any(r.code == code for r in RULES):
            raise ValueError(f"duplicate lint rule code {code}")
        RULES.append(Rule(code, name, severity, summary, hadolint, fn))
        return fn

    return deco


def rules_by_code() -> dict[str, Rule]:
    """All registered rules keyed by code (importing the rule modules first)."""
    import lamina.lint.rules  # noqa: F401  (registers the rules)

    return {r.code: r for r in RULES}


"""Pass/fail gates for CI, with ``dive``'s rule names and meanings.

=========================  ======================================  =============
rule (dive's name)         fails when                              dive default
=========================  ======================================  =============
lowestEfficiency           efficiency < threshold (ratio 0-1)      0.9
highestWastedBytes         wasted bytes > threshold                disabled
highestUserWastedPercent   user waste ratio > threshold (0-1)      0.1
=========================  ======================================  =============

The *figures* are lamina's: waste never includes a path's surviving copy, and the
user ratio is the waste stored in your layers over your layers' size (see
:class:`~lamina.analyze.model.Analysis`), so the same thresholds are stricter-to-fairer
than dive's on images that overwrite or chmod files.

>>> from lamina.analyze.ci import CiThresholds
>>> CiThresholds().lowest_efficiency
0.9
"""

from __future__ import annotations

from dataclasses import dataclass

from lamina.analyze.model import Analysis
from lamina.analyze.units import human_size

__all__ = ["CiResult", "CiThresholds", "evaluate_ci"]


@dataclass(frozen=True)
class CiThresholds:
    """The gates; ``None`` disables one."""

    lowest_efficiency: float | None = 0.9
    highest_wasted_bytes: int | None = None
    highest_user_wasted_percent: float | None = 0.1


@dataclass(frozen=True)
class CiResult:
    """The verdict of one rule: ``status`` is ``pass``, ``fail`` or ``skip`` (disabled)."""

    rule: str
    status: str
    actual: str
    threshold: str
    message: str

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def evaluate_ci(analysis: Analysis, thresholds: CiThresholds) -> tuple[CiResult, ...]:
    """Judge *analysis* against *thresholds*; a result per rule, in dive's order."""
    out = []

    eff = analysis.efficiency
    t = thresholds.lowest_efficiency
    if t is None:
        out.append(CiResult("lowestEfficiency", "skip", f"{eff:.4f}", "disabled", "rule disabled"))
    else:
        ok = eff >= t
        out.append(CiResult(
            "lowestEfficiency", "pass" if ok else "fail", f"{eff:.4f}", f"{t:g}",
            f"image efficiency {eff:.2%} is {'at or above' if ok else 'below'} the lowest "
            f"allowed {t:.2%}",
        ))

    wasted = analysis.wasted_bytes
    b = thresholds.highest_wasted_bytes
    if b is None:
        out.append(CiResult("highestWastedBytes", "skip", str(wasted), "disabled", "rule disabled"))
    else:
        ok = wasted <= b
        out.append(CiResult(
            "highestWastedBytes", "pass" if ok else "fail", str(wasted), str(b),
            f"{human_size(wasted)} wasted is {'within' if ok else 'over'} the highest allowed "
            f"{human_size(b)}",
        ))

    ratio = analysis.user_wasted_ratio
    r = thresholds.highest_user_wasted_percent
    if r is None:
        out.append(CiResult("highestUserWastedPercent", "skip", f"{ratio:.4f}", "disabled",
                            "rule disabled"))
    else:
        ok = ratio <= r
        out.append(CiResult(
            "highestUserWastedPercent", "pass" if ok else "fail", f"{ratio:.4f}", f"{r:g}",
            f"{ratio:.2%} of your layers' bytes are wasted, {'within' if ok else 'over'} the "
            f"highest allowed {r:.2%}",
        ))
    return tuple(out)

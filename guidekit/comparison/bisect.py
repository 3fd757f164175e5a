"""The guidance strength that reaches a target accuracy: bracketing on a ladder, then bisection.

Judge accuracy grows with the guidance strength γ (the scaler's swept parameter) until it
saturates, so γ for a target accuracy a is found without interpolating any metric: walk up a
ladder of γ values (0, 1, 2, 4, ... by default) until the accuracy reaches a, which brackets the
target between the last γ below and the first at or above it (``acc(lo) < a <= acc(hi)``); then
halve the bracket, keeping that invariant, until an evaluated γ is within ``tolerance`` of a or
``steps`` halvings are spent. The γ returned is the evaluated one whose accuracy is closest to a.
Accuracies are measured on a fixed pilot subset (the first P samples of the seed), so the same
search reruns to the same γ; the metrics are then measured at that γ on all the samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from ..errors import InvalidParameterError

#: default ladder of γ values tried, in order, to bracket a target
LADDER = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


@attrs.frozen
class Search:
    """The outcome for one target: ``value`` (None when no γ of the ladder reaches it) and every evaluation."""

    target: float
    value: float | None
    accuracy: float | None
    reached: bool
    iterations: tuple[tuple[float, float], ...]

    def as_dict(self) -> dict:
        return {"reached": self.reached, "pilot_accuracy": self.accuracy,
                "iterations": [[g, a] for g, a in self.iterations]}


def _round(x: float) -> float:
    return float(f"{x:.6g}")  # stable cache keys: γ written with 6 significant digits


def find_strength(evaluate: Callable[[float], float | None], target: float, ladder: Sequence[float] = LADDER, *,
                  steps: int = 6, tolerance: float = 0.01) -> Search:
    """The γ whose accuracy ``evaluate(γ)`` is closest to ``target`` (see the module docstring)."""
    ladder = [float(g) for g in ladder]
    if not ladder or any(b <= a for a, b in zip(ladder, ladder[1:])):
        raise InvalidParameterError(f"the bracketing ladder must be increasing γ values, got {ladder}")
    if not 0 < target <= 1:
        raise InvalidParameterError(f"a target accuracy is in (0, 1], got {target}")
    seen: list[tuple[float, float]] = []

    def ev(g: float) -> float:
        acc = evaluate(g)
        if acc is None:
            raise InvalidParameterError("the judge gives no accuracy (its classes differ from the classifiers'), "
                                        "so no γ can be searched for a target accuracy; use a judge of these classes")
        seen.append((g, float(acc)))
        return float(acc)

    lo: float | None = None
    hi: float | None = None
    bracket = []  # accuracies at lo and hi
    for g in ladder:
        acc = ev(g)
        if acc >= target:
            hi = g
            bracket.append(acc)
            break
        lo, bracket = g, [acc]
    if hi is None:
        best = max(seen, key=lambda p: p[1])
        return Search(target, None, best[1], False, tuple(seen))
    if lo is not None:
        acc_lo, acc_hi = bracket
        for _ in range(steps):
            if min(target - acc_lo, acc_hi - target) <= tolerance + 1e-9:  # accuracies are k/n: no round-off misses
                break
            mid = _round((lo + hi) / 2)
            if mid in (lo, hi):
                break
            acc = ev(mid)
            if acc >= target:
                hi, acc_hi = mid, acc
            else:
                lo, acc_lo = mid, acc
    best = min(seen, key=lambda p: (abs(p[1] - target), p[0]))
    return Search(target, best[0], best[1], True, tuple(seen))

"""``--target-accuracy``: per method and seed, the γ of each target accuracy by bisection, then the cell there.

Each (classifier, scaler with its other parameters, seed) is searched separately (:mod:`.bisect`) on
its pilot subset, the first P samples of the seed, whose accuracies are cached like cells
(``cells/pilot-*.json``); the targets of one method and seed share their evaluations. The cells at
the γ found are then computed on all the samples by :func:`guidekit.comparison.runner.run_cells`,
so a rerun finds the same γ from the cache and recomputes nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import attrs

from .bisect import LADDER, Search, find_strength
from .grid import Cell, ScalerSweep
from .runner import Context, pilot_of


@attrs.frozen
class Found:
    """The search of one (method, seed, target) and the cell measured at its γ (None: not reached)."""

    template: Cell  # the method and seed, without γ
    target: float
    search: Search

    @property
    def cell(self) -> Cell | None:
        if self.search.value is None:
            return None
        return attrs.evolve(self.template, params={**self.template.params, "gamma": self.search.value})


def ladders(sweeps: Sequence[ScalerSweep]) -> tuple[list[ScalerSweep], dict[str, list[float]]]:
    """The sweeps without γ, and each scaler's bracketing ladder: its ``--scaler NAME:V1,V2`` values if
    given (sorted), else :data:`~guidekit.comparison.bisect.LADDER`."""
    bare, out = [], {}
    for sw in sweeps:
        values = dict(sw.values)
        given = values.pop("gamma", None)
        out[sw.name] = sorted(float(g) for g in given) if given else list(LADDER)
        bare.append(ScalerSweep(sw.name, values))
    return bare, out


def search_all(ctx: Context, templates: Sequence[Cell], targets: Sequence[float], ladder: dict[str, list[float]], *,
               pilot: int, steps: int, tolerance: float, dedupe: bool = True, show_progress: bool = True) -> list[Found]:
    """The search of every template cell and target, in template order."""
    from ..progress import progress

    found = []
    bar = progress(total=len(templates) * len(targets), desc="γ searches", disable=not show_progress, unit="search",
                   force=True)
    try:
        for template in templates:
            memo: dict[float, Any] = {}

            def evaluate(g: float, template: Cell = template, memo: dict[float, Any] = memo) -> float | None:
                if g not in memo:
                    cell = attrs.evolve(template, params={**template.params, "gamma": g})
                    memo[g] = pilot_of(ctx, cell, pilot, dedupe)
                return memo[g]

            for target in targets:
                search = find_strength(evaluate, float(target), ladder[template.scaler], steps=steps,
                                       tolerance=tolerance)
                found.append(Found(template, float(target), search))
                bar.update(1)
                if show_progress:
                    what = (f"γ = {search.value:g} (pilot accuracy {search.accuracy:.3f})" if search.reached
                            else f"not reached (best pilot accuracy {search.accuracy:.3f})")
                    print(f"guidekit compare: {template.classifier or template.guidance}/{template.scaler} "
                          f"seed {template.seed}, target {target:g}: {what}, {len(search.iterations)} evaluations",
                          file=sys.stderr)
    finally:
        bar.close()
    return found

"""The sentences ``guidekit demo`` prints below its table, generated from the numbers it measured.

A claim that one strategy reached a higher accuracy than another is made only when the difference is
larger than twice its binomial standard error over the samples (√(p₁(1−p₁)/n + p₂(1−p₂)/n)); otherwise
the sentence says the two are within sampling noise. FD is reported as measured (no claim that one is
better), and the closing advice, to compare at matched accuracy with ``guidekit compare``, is always
given when there is something to compare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: the ``guidekit compare`` command the demo suggests (the bundled models, γ found per target accuracy)
COMPARE_COMMAND = ("guidekit compare --model mnist16-unet --classifier mnist16-classifier-ce "
                   "--scaler constant --scaler entropy --target-accuracy 0.8,0.9 --respacing ddim25 --out compare-run")


def clearly_different(p1: float, p2: float, n: int) -> bool:
    """Whether accuracies (or fractions) ``p1`` and ``p2`` measured on ``n`` samples each differ by more than
    twice the standard error of their difference."""
    if n < 1:
        return False
    se = math.sqrt(max(p1 * (1 - p1), 0.0) / n + max(p2 * (1 - p2), 0.0) / n)
    return abs(p1 - p2) > 2 * se and p1 != p2


def _percent(fraction: float) -> str:
    """A fraction as the table shows it (two decimals), in percent: 0.225 -> "23%"."""
    return f"{round(float(f'{float(fraction):.2f}') * 100)}%"


def _gammas(gamma: float, eds_gamma: float) -> str:
    return f"at the same γ = {gamma:g}" if gamma == eds_gamma else f"(EDS γ = {eds_gamma:g}, constant γ = {gamma:g})"


def explain(rows: Mapping[str, Mapping[str, Any]], roles: Mapping[str, str], samples: int, gamma: float,
            eds_gamma: float) -> list[str]:
    """Sentences about ``rows`` (strategy name → {"accuracy", "fd", "vanished_fraction"?}).

    ``roles`` names the rows: ``"none"`` (no guidance), ``"constant"`` (constant γ, CE classifier),
    ``"eds"`` (EDS, CE classifier); rows without a role are not discussed. ``samples``: samples per row.
    """
    out: list[str] = []
    row = {role: rows[name] for role, name in roles.items() if name in rows}
    if "constant" in row and "eds" in row:
        const, eds = row["constant"], row["eds"]
        a_c, a_e = float(const["accuracy"]), float(eds["accuracy"])
        fd = f"{float(eds['fd']):.2f} vs {float(const['fd']):.2f}"
        if clearly_different(a_e, a_c, samples) and a_e > a_c:
            sentence = (f"EDS reached a higher oracle accuracy than constant guidance {_gammas(gamma, eds_gamma)} "
                        f"({a_e:.3f} vs {a_c:.3f}): its scale γ·log K / H(p) is at least γ and grows as the "
                        "classifier becomes sure, so it guides harder once the classifier is confident")
            if float(eds["fd"]) > float(const["fd"]):
                sentence += (f"; it also measured a higher FD ({fd}): its samples lie further from the real digits' "
                             "features.")
            else:
                sentence += f", with an FD no higher ({fd})."
        elif clearly_different(a_e, a_c, samples):
            sentence = (f"EDS reached a lower oracle accuracy than constant guidance {_gammas(gamma, eds_gamma)} "
                        f"({a_e:.3f} vs {a_c:.3f}; FD {fd}).")
        else:
            sentence = (f"EDS and constant guidance reached about the same oracle accuracy {_gammas(gamma, eds_gamma)} "
                        f"({a_e:.3f} vs {a_c:.3f}, within the sampling noise of {samples} samples; FD {fd}).")
        out.append(sentence)
        v_c, v_e = const.get("vanished_fraction"), eds.get("vanished_fraction")
        if v_c is not None and v_e is not None and clearly_different(float(v_c), float(v_e), samples):
            out.append(f"Guidance faded below 10% of its peak before the end for {_percent(v_c)} of the samples "
                       f"under constant guidance and {_percent(v_e)} under EDS (traces.png shows where).")
    elif "constant" in row and "none" in row:
        a_c, a_n = float(row["constant"]["accuracy"]), float(row["none"]["accuracy"])
        if clearly_different(a_c, a_n, samples):
            word = "raised" if a_c > a_n else "lowered"
            out.append(f"Constant guidance at γ = {gamma:g} {word} the oracle accuracy from {a_n:.3f} (no guidance) "
                       f"to {a_c:.3f}.")
        else:
            out.append(f"Constant guidance at γ = {gamma:g} and no guidance reached about the same oracle accuracy "
                       f"({a_c:.3f} vs {a_n:.3f}, within the sampling noise of {samples} samples).")
    if out:
        out.append("One γ does not rank strategies, since each trades accuracy for FD differently: compare them at "
                   f"matched accuracy with `{COMPARE_COMMAND}`.")
    return out

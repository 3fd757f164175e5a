"""The comparison grid: one cell per (classifier, guidance, scaler, params, seed), and its parsing.

``--scaler entropy:0,0.5,1`` sweeps γ; ``--scaler-param entropy.max_scale=20`` fixes another
parameter of that scaler (a list value ``entropy.end=[500,700]`` sweeps it too: the grid is the
product of every swept parameter). A cell's ``key`` is a stable digest of its fields, so the
on-disk cache finds it again whatever order the command line lists things in.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ..errors import InvalidParameterError

_SCALER_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _literal(text: str) -> Any:
    """A Python literal where ``text`` parses as one (2, 0.5, True, [1, 2]), else the string itself."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def canonical(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces): the text hashed for keys and compared for manifests."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@attrs.frozen
class Cell:
    """One point of the comparison: a guidance (with its classifier, if it takes one) and a scaler with
    fixed params, on one seed. ``classifier`` is ``None`` for guidances without one (classifier-free ...).
    """

    classifier: str | None
    scaler: str
    params: dict[str, Any] = attrs.field(converter=lambda d: dict(sorted(d.items())), hash=False)
    seed: int = attrs.field(converter=int)
    guidance: str = "classifier"

    def spec(self) -> dict[str, Any]:
        return {"guidance": self.guidance, "classifier": self.classifier, "scaler": self.scaler,
                "params": self.params, "seed": self.seed}

    @property
    def key(self) -> str:
        """A file-name-safe stable id: readable prefix + digest of the spec."""
        digest = hashlib.sha256(canonical(self.spec()).encode()).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9.\-]+", "_", f"{self.classifier or self.guidance}-{self.scaler}-s{self.seed}")[:60]
        return f"{slug}-{digest}"


@attrs.frozen
class ScalerSweep:
    """A scaler and the values of each of its parameters (a list per swept parameter)."""

    name: str
    values: dict[str, list[Any]]

    def points(self) -> list[dict[str, Any]]:
        keys = sorted(self.values)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.values[k] for k in keys))]


def parse_scaler(spec: str, sweep_key: str = "gamma") -> tuple[str, list[Any]]:
    """``NAME:V1,V2,...`` → (NAME, [V1, V2, ...]); ``NAME`` alone → (NAME, [])."""
    name, sep, rest = spec.partition(":")
    name = name.strip()
    if not name or not _SCALER_NAME.match(name):
        raise InvalidParameterError(f"--scaler {spec!r}: expected NAME:V1,V2,... such as constant:0,1,2,4")
    if not sep:
        return name, []
    values = [_literal(v) for v in rest.split(",") if v.strip()]
    if not values:
        raise InvalidParameterError(f"--scaler {spec!r} lists no {sweep_key} value; e.g. {name}:0,1,2")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidParameterError(f"--scaler {spec!r}: {sweep_key} values must be numbers, got {v!r}")
    values = [float(v) for v in values]
    if len(set(values)) != len(values):
        raise InvalidParameterError(f"--scaler {spec!r} repeats a {sweep_key} value; list each value once")
    return name, values


def parse_scaler_params(pairs: Iterable[str], scalers: Sequence[str]) -> dict[str, dict[str, list[Any]]]:
    """``NAME.KEY=VALUE`` strings → {NAME: {KEY: [values]}}; a list literal value is swept."""
    out: dict[str, dict[str, list[Any]]] = {}
    for pair in pairs:
        lhs, sep, value = pair.partition("=")
        name, dot, key = lhs.strip().rpartition(".")
        if not sep or not dot or not name or not key:
            raise InvalidParameterError(
                f"--scaler-param expects NAME.KEY=VALUE (e.g. interval.end=700), got {pair!r}")
        if name not in scalers:
            raise InvalidParameterError(
                f"--scaler-param {pair!r} names scaler {name!r}, which no --scaler gives; "
                f"scalers in this run: {', '.join(scalers) or 'none'}")
        parsed = _literal(value)
        values = list(parsed) if isinstance(parsed, (list, tuple)) else [parsed]
        if not values:
            raise InvalidParameterError(f"--scaler-param {pair!r}: the value list is empty")
        if key in out.setdefault(name, {}):
            raise InvalidParameterError(f"--scaler-param sets {name}.{key} twice; give it once (a list sweeps it)")
        out[name][key] = values
    return out


def build_sweeps(scalers: Sequence[str], scaler_params: Iterable[str] = ()) -> list[ScalerSweep]:
    """The sweeps of ``--scaler`` / ``--scaler-param`` arguments, in command-line order."""
    parsed = [parse_scaler(s) for s in scalers]
    names = [n for n, _ in parsed]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidParameterError(f"--scaler {dupes[0]} is given more than once; list all its values in one "
                                    f"--scaler {dupes[0]}:V1,V2,...")
    extra = parse_scaler_params(scaler_params, names)
    sweeps = []
    for name, gammas in parsed:
        values = dict(extra.get(name, {}))
        if gammas:
            if "gamma" in values:
                raise InvalidParameterError(f"γ of {name} is given by --scaler {name}:... and --scaler-param {name}.gamma; "
                                            f"use one")
            values["gamma"] = gammas
        sweeps.append(ScalerSweep(name, values))
    return sweeps


def build_cells(classifiers: Sequence[str | None], sweeps: Sequence[ScalerSweep], seeds: Sequence[int],
                guidance: str = "classifier") -> list[Cell]:
    """Every (classifier, scaler, params, seed) cell, seeds innermost; ``classifiers=[None]`` for a
    guidance without a classifier."""
    if not classifiers:
        raise InvalidParameterError("give at least one --classifier")
    if not sweeps:
        raise InvalidParameterError("give at least one --scaler NAME:V1,V2,... (e.g. --scaler constant:0,1,2)")
    if not seeds:
        raise InvalidParameterError("give at least one seed (--seeds N)")
    return [Cell(c, s.name, p, seed, guidance) for c in classifiers for s in sweeps for p in s.points() for seed in seeds]


def gamma_of(params: dict[str, Any]) -> float | None:
    """The swept γ of a params dict (None when the scaler has none)."""
    g = params.get("gamma")
    return None if g is None else float(g)

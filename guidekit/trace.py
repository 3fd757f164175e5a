"""Guidance traces: where guidance vanishes, per step and per sample.

Pass ``GuidanceTrace()`` as the ``callback`` of :func:`guidekit.sample`; it records t, the entropy
H(p(ỹ|x_t)), p(y|x_t), ‖∇ log p‖, the scale s and ‖s·∇‖ (paper Fig. 1/3 quantities).
A guidance without a classifier (classifier-free) records the scale w only: the other fields hold
``None`` for its steps (``null`` in JSON, NaN in :meth:`GuidanceTrace.tensor`), and plots skip them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .errors import InvalidParameterError
from .io import atomic_write
from .sampling import StepInfo

FIELDS = ("entropy", "prob_of_label", "grad_norm", "scale", "guided_norm")


class GuidanceTrace:
    """A sampling callback collecting per-step, per-sample guidance statistics."""

    def __init__(self) -> None:
        self.t: list[int] = []
        self.records: dict[str, list[list[float]]] = {f: [] for f in FIELDS}

    def __call__(self, info: StepInfo) -> None:
        if not isinstance(info, StepInfo):
            raise InvalidParameterError(f"a GuidanceTrace is a sampling callback: pass it as callback= to gk.sample, "
                                        f"which calls it with a StepInfo (got {type(info).__name__})")
        g = info.guidance
        if g is None:
            return
        width = next((len(row) for row in self.records["scale"] if row is not None), None)
        if self.t and (info.step == 0 or width != len(g.scale)):
            raise InvalidParameterError(
                "this GuidanceTrace already holds the steps of another sample() call; its per-step records would "
                "mix two runs. Use a new GuidanceTrace for each call"
            )
        self.t.append(int(info.t[0]))
        s = g.state
        has_logits, has_grad = s.provides("logits"), s.provides("grad")
        self.records["entropy"].append(s.entropy.tolist() if has_logits else None)
        self.records["prob_of_label"].append(s.prob_of_label.tolist() if has_logits else None)
        self.records["grad_norm"].append(s.grad_norm.tolist() if has_grad else None)
        self.records["scale"].append(g.scale.double().tolist())
        self.records["guided_norm"].append(None if g.grad is None else g.grad.flatten(1).double().norm(dim=1).tolist())

    def has(self, field: str) -> bool:
        """Whether any step recorded ``field``."""
        return any(row is not None for row in self.records[field])

    def tensor(self, field: str) -> torch.Tensor:
        """(steps, B) float64 tensor of one field; NaN rows for steps that did not record it."""
        if field not in self.records:
            raise InvalidParameterError(f"a trace has no field {field!r}; its fields are: {', '.join(FIELDS)}")
        width = next((len(row) for row in self.records[field] if row is not None), 0)
        nan = [float("nan")] * width
        return torch.tensor([nan if row is None else row for row in self.records[field]], dtype=torch.float64)

    def summary(self) -> dict[str, Any]:
        """Per-step means of every field, and the first step where p(y|x_t) > 0.99 on average."""
        out: dict[str, Any] = {"t": self.t}
        for f in FIELDS:
            means = self.tensor(f).mean(1).tolist() if self.t else []
            out[f"mean_{f}"] = [None if m != m else m for m in means]  # NaN (not recorded) -> None
        confident = [t for t, p in zip(self.t, out["mean_prob_of_label"]) if p is not None and p > 0.99]
        out["t_confident"] = confident[0] if confident else None
        return out

    def vanishing_points(self, threshold: float = 0.1) -> torch.Tensor:
        """Per sample, the t where guidance vanishes: the first step after the peak of ‖s·∇‖ (in
        sampling order) where ‖s·∇‖ < ``threshold`` · peak. Returns a (B,) float64 tensor of original
        timesteps t; NaN for a sample whose ‖s·∇‖ never falls that low after its peak, or is 0 throughout.
        """
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
            raise InvalidParameterError(f"threshold must be in (0, 1), got {threshold!r}")
        if not self.t:
            return torch.zeros(0, dtype=torch.float64)
        norms = self.tensor("guided_norm")  # (steps, B)
        peak, peak_step = norms.max(dim=0)
        step = torch.arange(norms.shape[0]).unsqueeze(1)
        below = (norms < threshold * peak) & (step > peak_step) & (peak > 0)
        first = torch.where(below.any(dim=0), below.double().argmax(dim=0), -1)
        t = torch.tensor(self.t, dtype=torch.float64)
        return torch.where(first >= 0, t[first.clamp_min(0)], torch.tensor(float("nan"), dtype=torch.float64))

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write ``{"t": ..., field: [[...per sample] per step]}`` atomically."""
        return write_text_atomic(path, json.dumps({"t": self.t, **self.records}))

    def plot(self, path: str | os.PathLike, label: str | None = None, ax: Any = None) -> Any:
        """Plot entropy, scale and guided-gradient norm against t (needs matplotlib: guidekit[plot])."""
        if ax is not None:
            raise InvalidParameterError("trace.plot draws its own figure of several panels and cannot draw into ax=; "
                                        "drop ax and use the figure it returns, or plot trace.tensor(field) yourself")
        return plot_traces({label or "trace": self}, path)


def plot_traces(traces: dict[str, GuidanceTrace], path: str | os.PathLike | None = None) -> Any:
    """Side-by-side panels for several traces, e.g. ``{"constant": a, "entropy": b}``.

    The file format follows the suffix of ``path`` (``.png``, ``.pdf``, ``.svg`` ...).
    """
    empty = [name for name, tr in traces.items() if not tr.t]
    if not traces or empty:
        what = f"trace {empty[0]!r} recorded no guided step" if empty else "no traces were given"
        raise InvalidParameterError(f"nothing to plot: {what}; pass a GuidanceTrace as callback= to a sample() "
                                    "call that has guidance=")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("plots need matplotlib: pip install 'guidekit[plot]'") from exc
    panels = [("entropy", "entropy H(p(y|x_t)) [nats]"), ("prob_of_label", "p(y|x_t)"),
              ("grad_norm", "‖∇ log p(y|x_t)‖"), ("scale", "scale s"), ("guided_norm", "‖s·∇ log p(y|x_t)‖")]
    panels = [p for p in panels if any(tr.has(p[0]) for tr in traces.values())] or panels[3:4]
    vanishing = {name: tr for name, tr in traces.items() if tr.has("guided_norm")}
    n = len(panels) + bool(vanishing)
    cols = min(n, 3)
    fig, grid = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.2 * ((n + cols - 1) // cols)),
                             squeeze=False)
    axes = grid.flatten()
    for ax in axes[n:]:
        ax.set_visible(False)
    for (field, title), ax in zip(panels, axes):
        for name, tr in traces.items():
            if not tr.has(field):
                continue
            v = tr.tensor(field)
            ax.plot(tr.t, v.mean(1), label=name)
            ax.fill_between(tr.t, v.quantile(0.1, dim=1), v.quantile(0.9, dim=1), alpha=0.2)
        ax.set_title(title, fontsize=9)
        if field in ("scale", "grad_norm", "guided_norm"):
            ax.set_yscale("log")
        ax.set_xlabel("t (sampling runs right to left)")
        ax.invert_xaxis()
    if vanishing:
        ax = axes[len(panels)]
        for name, tr in vanishing.items():
            vp = tr.vanishing_points(0.1)
            done = vp[torch.isfinite(vp)]
            ax.hist(done.numpy(), bins=20, range=(0, max(tr.t) if tr.t else 1), alpha=0.5,
                    label=f"{name}: {len(done)}/{len(vp)} vanish")
        ax.set_title("vanishing point: t where ‖s·∇‖ < 10% of its peak", fontsize=9)
        ax.set_xlabel("t")
        ax.invert_xaxis()
        ax.legend(fontsize=7)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fmt = Path(path).suffix.lower().lstrip(".")
        supported = fig.canvas.get_supported_filetypes()
        if fmt not in supported:
            plt.close(fig)
            raise InvalidParameterError(f"cannot write a plot to {str(path)!r}: give a file name ending in one of "
                                        f"{', '.join('.' + k for k in sorted(supported))}")
        with atomic_write(path) as fh:
            fig.savefig(fh, format=fmt, dpi=110)
        plt.close(fig)
    return fig


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write text to ``path`` through a temporary file and ``os.replace`` (see :func:`guidekit.io.atomic_write`)."""
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)

"""Guidance traces: where guidance vanishes, per step and per sample.

Pass ``GuidanceTrace()`` as the ``callback`` of :func:`guidekit.sample`; it records t, the entropy
H(p(ỹ|x_t)), p(y|x_t), ‖∇ log p‖, the scale s and ‖s·∇‖ (paper Fig. 1/3 quantities).
A guidance without a classifier (classifier-free) records the scale w only: the other fields hold
``None`` for its steps (``null`` in JSON, NaN in :meth:`GuidanceTrace.tensor`), and plots skip them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .sampling import StepInfo

FIELDS = ("entropy", "prob_of_label", "grad_norm", "scale", "guided_norm")


class GuidanceTrace:
    """A sampling callback collecting per-step, per-sample guidance statistics."""

    def __init__(self) -> None:
        self.t: list[int] = []
        self.records: dict[str, list[list[float]]] = {f: [] for f in FIELDS}

    def __call__(self, info: StepInfo) -> None:
        g = info.guidance
        if g is None:
            return
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

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write ``{"t": ..., field: [[...per sample] per step]}`` atomically."""
        return write_text_atomic(path, json.dumps({"t": self.t, **self.records}))

    def plot(self, path: str | os.PathLike, label: str | None = None, ax: Any = None) -> Any:
        """Plot entropy, scale and guided-gradient norm against t (needs matplotlib: guidekit[plot])."""
        return plot_traces({label or "trace": self}, path)


def plot_traces(traces: dict[str, GuidanceTrace], path: str | os.PathLike | None = None) -> Any:
    """Side-by-side panels for several traces, e.g. ``{"constant": a, "entropy": b}``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("plots need matplotlib: pip install 'guidekit[plot]'") from exc
    panels = [("entropy", "entropy H(p(y|x_t)) [nats]"), ("prob_of_label", "p(y|x_t)"),
              ("scale", "scale s"), ("guided_norm", "‖s·∇ log p(y|x_t)‖")]
    panels = [p for p in panels if any(tr.has(p[0]) for tr in traces.values())] or panels[2:3]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    axes = axes[0]
    for (field, title), ax in zip(panels, axes):
        for name, tr in traces.items():
            if not tr.has(field):
                continue
            v = tr.tensor(field)
            ax.plot(tr.t, v.mean(1), label=name)
            ax.fill_between(tr.t, v.quantile(0.1, dim=1), v.quantile(0.9, dim=1), alpha=0.2)
        ax.set_title(title, fontsize=9)
        if field == "scale":
            ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.invert_xaxis()
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        tmp = Path(path).with_suffix(".tmp.png")
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
        plt.close(fig)
    return fig


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write text to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path

"""Hypothesis strategies for guidance math: logits, guidance states."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..guidance import GuidanceState


def logits(max_batch: int = 6, max_classes: int = 50, magnitude: float = 60.0) -> st.SearchStrategy[torch.Tensor]:
    """Finite float64 logits of shape (B, K), including one-hot-like extremes."""
    shapes = st.tuples(st.integers(1, max_batch), st.integers(2, max_classes))
    elements = st.floats(-magnitude, magnitude, allow_nan=False, allow_infinity=False, width=64)
    return shapes.flatmap(lambda s: hnp.arrays(np.float64, s, elements=elements)).map(torch.from_numpy)


@st.composite
def guidance_states(draw: st.DrawFn, num_timesteps: int = 1000, image_shape: tuple[int, ...] = (3, 4, 4)) -> GuidanceState:
    """A random but valid :class:`GuidanceState` (float32 logits and gradient)."""
    lg = draw(logits()).float()
    b, k = lg.shape
    t = torch.tensor(draw(st.lists(st.integers(0, num_timesteps - 1), min_size=b, max_size=b)))
    y = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=b, max_size=b)))
    gscale = draw(st.sampled_from([0.0, 1e-4, 0.1, 1.0, 100.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    grad = torch.randn((b, *image_shape), generator=torch.Generator().manual_seed(seed)) * gscale
    neutral = draw(st.sampled_from([0.0, 1.0]))  # classifier guidance, classifier-free guidance
    return GuidanceState(t=t, t_index=0, num_steps=1, logits=lg, grad=grad, y=y, num_timesteps=num_timesteps,
                         neutral=neutral)

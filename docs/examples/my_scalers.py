"""Tutorial "Write a scaler": two scalers registered from research code (tests/test_docs_examples.py runs them)."""

import attrs
import torch

import guidekit as gk


@gk.register_scaler("late-boost")
def late_boost(gamma: float = 1.0, after: int = 300, factor: float = 3.0):
    """γ, times `factor` once t < `after` (late in sampling)."""

    def scale(state: gk.GuidanceState) -> torch.Tensor:
        t = state.timesteps  # (B,) original timesteps
        return torch.where(t < after, factor * gamma, gamma).to(torch.float32)

    return scale


@gk.register_scaler("confidence")
@attrs.frozen
class ConfidenceScaler:
    """s = γ·(1 + p(y|x_t)): up to twice γ as the classifier agrees with the label."""

    gamma: float = 1.0
    needs_grad = False  # reads the logits only: guidance skips the backward pass when every s is 0

    def __call__(self, state: gk.GuidanceState) -> torch.Tensor:
        return self.gamma * (1 + state.prob_of_label)

"""An exactly solvable toy: class-conditional Gaussian-mixture "images".

Data: x0 ~ N(μ_k, s²I) for class k. Under the forward process the noised marginal of class k is
N(√ᾱ_t μ_k, (ᾱ_t s² + 1 − ᾱ_t) I), so the optimal ε-predictor and the Bayes-optimal noise-aware
classifier are closed forms. They stand in for trained networks in examples and tests; the
classifier's posterior becomes one-hot as t → 0, which is the vanishing guidance of ED-DPM §3.2.
"""

from __future__ import annotations

import torch
from torch import nn

from .schedules import beta_schedule


class GaussianMixtureToy(nn.Module):
    """Holds the class means; ``denoiser()`` and ``classifier()`` share them."""

    def __init__(self, num_classes: int = 10, shape: tuple[int, ...] = (1, 8, 8), std: float = 0.3,
                 separation: float = 0.6, steps: int = 1000, schedule: str = "linear", seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        means = separation * torch.randn((num_classes, *shape), generator=gen)
        self.register_buffer("means", means.clamp(-1, 1))
        acp = torch.from_numpy(beta_schedule(schedule, steps)).mul(-1).add(1).cumprod(0)
        self.register_buffer("alphas_cumprod", acp)
        self.std = std
        self.num_classes = num_classes
        self.shape = shape

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw (x0, y) from the data distribution."""
        y = torch.randint(0, self.num_classes, (n,), generator=generator)
        return self.means[y] + self.std * torch.randn((n, *self.shape), generator=generator), y

    def log_weights(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unnormalised log p(k|x_t), the component means at t, and the variance (B,)."""
        a = self.alphas_cumprod[t.long()].to(x.dtype)
        var = a * self.std**2 + (1 - a)
        centers = a.sqrt().view(-1, 1, *([1] * len(self.shape))) * self.means.unsqueeze(0)  # (B, K, ...)
        sq = (x.unsqueeze(1) - centers).flatten(2).pow(2).sum(-1)  # (B, K)
        return -sq / (2 * var.view(-1, 1)), centers, var

    def denoiser(self) -> nn.Module:
        return _ToyDenoiser(self)

    def classifier(self) -> nn.Module:
        return _ToyClassifier(self)

    def conditional_denoiser(self) -> nn.Module:
        """Optimal class-conditional ε(x_t, t, y), trained-with-label-dropout style: label K is the null label."""
        return _ToyConditionalDenoiser(self)

    def predict_class(self, x0: torch.Tensor) -> torch.Tensor:
        """Bayes-optimal class of clean samples."""
        return self.log_weights(x0, torch.zeros(len(x0), dtype=torch.long))[0].argmax(-1)


class _ToyDenoiser(nn.Module):
    """Optimal ε(x_t, t) = −√(1−ᾱ)·∇ log p_t(x_t) for the unconditional mixture."""

    num_classes = None

    def __init__(self, toy: GaussianMixtureToy) -> None:
        super().__init__()
        self.toy = toy

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logw, centers, var = self.toy.log_weights(x, t)
        r = torch.softmax(logw, dim=-1).view(*logw.shape, *([1] * len(self.toy.shape)))
        score = ((r * centers).sum(1) - x) / var.view(-1, *([1] * len(self.toy.shape)))
        a = self.toy.alphas_cumprod[t.long()].to(x.dtype).view(-1, *([1] * len(self.toy.shape)))
        return -(1 - a).sqrt() * score


class _ToyConditionalDenoiser(nn.Module):
    """ε(x_t, t, y) = −√(1−ᾱ)·(√ᾱ μ_y − x_t)/σ_t²; y = K (``card["null_label"]``) gives the mixture's ε."""

    def __init__(self, toy: GaussianMixtureToy) -> None:
        super().__init__()
        self.toy = toy
        self.unconditional = _ToyDenoiser(toy)
        self.num_classes = toy.num_classes + 1
        self.card = {"null_label": toy.num_classes}

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, centers, var = self.toy.log_weights(x, t)
        null = y == self.toy.num_classes
        picked = centers[torch.arange(len(y)), y.clamp_max(self.toy.num_classes - 1)]
        shape = (-1, *([1] * len(self.toy.shape)))
        a = self.toy.alphas_cumprod[t.long()].to(x.dtype).view(shape)
        eps = -(1 - a).sqrt() * (picked - x) / var.view(shape)
        return torch.where(null.view(shape), self.unconditional(x, t), eps)


class _ToyClassifier(nn.Module):
    """Bayes-optimal noise-aware classifier: logits = log p(k|x_t) up to a constant."""

    def __init__(self, toy: GaussianMixtureToy) -> None:
        super().__init__()
        self.toy = toy

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.toy.log_weights(x, t)[0]

"""Training noise-aware classifiers (paper Algorithm 2, CE or ECT) and diffusion models."""

from .classifier import train_classifier
from .config import TrainConfig
from .diffusion import train_diffusion
from .ema import EMA
from .loop import TrainResult, export_weights, fit

__all__ = ["EMA", "TrainConfig", "TrainResult", "export_weights", "fit", "train_classifier", "train_diffusion"]

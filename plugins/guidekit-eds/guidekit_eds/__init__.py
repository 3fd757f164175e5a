"""guidekit-eds: entropy-driven sampling (EDS) and entropy-constraint training (ECT) from ED-DPM."""

from .ect import EntropyConstraintLoss
from .entropy import EntropyScaler

__all__ = ["EntropyConstraintLoss", "EntropyScaler"]

"""guidekit-eds: entropy-driven sampling (EDS) and entropy-constraint training (ECT) from ED-DPM."""

from .ect import EntropyConstraintLoss
from .entropy import EntropyScaler

__version__ = "0.2.0"

__all__ = ["EntropyConstraintLoss", "EntropyScaler"]

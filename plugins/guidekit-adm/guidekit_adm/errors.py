"""Error types, taken from ``guidekit.errors`` when the core is importable."""

from __future__ import annotations

try:  # the core defines the hierarchy; the networks also work without it
    from guidekit.errors import CheckpointError as _CheckpointBase
    from guidekit.errors import InvalidParameterError as _InvalidBase
    from guidekit.errors import LabelError as _LabelBase
    from guidekit.errors import UnknownComponentError as _UnknownBase
except ImportError:  # pragma: no cover - exercised only without the core installed
    _CheckpointBase = _InvalidBase = _LabelBase = _UnknownBase = ValueError


class UnknownReleaseError(_UnknownBase, ValueError):
    """A release name that is not in the table; the message lists the known names."""

    def __str__(self) -> str:  # KeyError subclasses would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointMismatchError(_CheckpointBase, ValueError):
    """A checkpoint whose keys or shapes do not match the architecture it is loaded into."""


class LabelError(_LabelBase, ValueError):
    """Class labels missing for a class-conditional model, or given to an unconditional one."""


class FlagError(_InvalidBase, ValueError):
    """A reference command-line flag string that cannot be parsed."""


class ConfigError(_InvalidBase, ValueError):
    """Constructor overrides that the network class does not accept."""


class CheckpointDtypeWarning(UserWarning):
    """A checkpoint whose floating-point tensors are not all float32."""

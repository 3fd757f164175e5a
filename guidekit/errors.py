"""Error types. Every message names the problem and the fix."""

from __future__ import annotations


class GuidekitError(Exception):
    """Base class of every error guidekit raises on purpose."""


class UnknownComponentError(GuidekitError, KeyError):
    """A component name that no loaded plugin provides."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateComponentError(GuidekitError):
    """Two providers registered the same component name."""


class InvalidParameterError(GuidekitError, ValueError):
    """A parameter that a component does not accept, or a value it rejects."""


class PluginLoadError(GuidekitError):
    """A plugin distribution failed to import (fatal only in strict mode)."""


class PluginLoadWarning(UserWarning):
    """A plugin distribution failed to import; the other plugins still load."""


class CheckpointError(GuidekitError):
    """A checkpoint file does not match the architecture it is loaded into."""


class NonFiniteError(GuidekitError, FloatingPointError):
    """A NaN or inf appeared during sampling or guidance."""


class LabelError(GuidekitError, ValueError):
    """Class labels missing, of the wrong shape, or out of range."""


class MissingGuidanceFieldError(InvalidParameterError):
    """A scaler read a :class:`~guidekit.GuidanceState` field that the guidance does not provide."""


class UnstableGuidanceError(InvalidParameterError):
    """Guidance parameters outside the range where sampling stays bounded (pass ``unsafe=True`` to run anyway)."""

"""Error types. Every message names the problem and the fix."""

from __future__ import annotations


class GuidekitError(Exception):
    """Base class of every error guidekit raises on purpose."""


class UnknownComponentError(GuidekitError, KeyError):
    """A component name that no loaded plugin provides."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownNetworkError(UnknownComponentError):
    """A network spec that neither a plugin's resolver, a registered ``network`` name nor a training folder names."""


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


class OutputLockedError(GuidekitError):
    """Another run is writing into the same output (its lock file names it)."""


class IdentityError(GuidekitError, ValueError):
    """What is read back (a batch, a chunk, a checkpoint, a component's code) is not what its manifest records."""


class WriteError(GuidekitError, OSError):
    """An output could not be written (disk full, permission denied, read-only file system); names the file.

    ``errno`` and ``filename`` are those of the failed write; the message says what to do.
    """

    def __str__(self) -> str:  # OSError would print "[Errno N] None: filename"
        return str(self.args[0]) if self.args else ""


class UnstableGuidanceError(InvalidParameterError):
    """Guidance parameters outside the range where sampling stays bounded (pass ``unsafe=True`` to run anyway)."""

"""Small argument checks shared across the API: integers that are not bools, and on/off flags.

``True`` is an ``int`` to Python, so every integer argument checks ``bool`` apart; numpy integers
count as integers, numpy booleans only where a caller allows them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidParameterError


def is_integer(value: Any, minimum: int | None = None) -> bool:
    """Whether ``value`` is a Python or numpy integer (not a bool), at least ``minimum`` if given."""
    return (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            and (minimum is None or value >= minimum))


def check_positive_int(value: Any, name: str, detail: str = "") -> None:
    """A named error unless ``value`` is an integer >= 1; ``detail`` follows "positive integer" in it."""
    if not is_integer(value, 1):
        raise InvalidParameterError(f"{name} must be a positive integer{detail}, got {value!r}")


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool, refusing anything else (the string "no" would be truthy)."""
    if not isinstance(value, bool):
        raise InvalidParameterError(f"{name} must be True or False, got {value!r}")
    return value

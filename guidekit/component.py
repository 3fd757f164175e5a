"""The record every plugin hook yields: ``Component(name, factory, summary)``.

It lives on its own so that the hook specifications and the registry both import it without
importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs


@attrs.frozen
class Component:
    """One named component yielded by a plugin hook.

    ``factory(**params)`` builds it; ``provider`` is filled in by the registry with the
    distribution (or module) that supplied it.
    """

    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    factory: Callable[..., Any] = attrs.field(validator=attrs.validators.is_callable())
    summary: str = ""
    provider: str = ""

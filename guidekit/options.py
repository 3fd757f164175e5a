"""Command-line option helpers shared by the ``guidekit`` sub-commands.

The sub-command modules (``sample``, ``train-*``, ``compare``, ``evaluate``, ``demo`` ...) import these;
this module imports none of them, so the command layer has no import cycle.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from typing import Any

from .errors import InvalidParameterError


def refuse_existing(path: Any, overwrite: bool, flag: str) -> None:
    """Refuse to replace an existing output file unless ``--overwrite`` was given; check the folder is writable."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise InvalidParameterError(f"{flag} {path} is a folder; give the path of the file to write")
    if path.exists() and not overwrite:
        raise InvalidParameterError(f"{flag} {path} exists already; pass --overwrite to replace it, or choose another path")
    check_writable(path.parent, flag)


def check_writable(folder: Any, flag: str) -> None:
    """A named error now, rather than after a long run, when ``folder`` (created if missing) cannot be written."""
    from pathlib import Path

    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        inside = "" if existing == folder else f", so {folder} cannot be made inside it"
        raise InvalidParameterError(f"{flag}: {existing} is a file, not a folder{inside}; choose another path")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidParameterError(f"{flag}: cannot write to {existing} (permission denied); choose a folder you can write")


def parse_params(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings → keyword arguments; values are Python literals where they parse, else strings."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InvalidParameterError(f"{flag} expects KEY=VALUE with KEY a parameter name, got {pair!r}")
        if key in params:
            raise InvalidParameterError(f"{flag} {key}= is given twice; give each parameter once")
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            params[key] = value
    return params


def component_params(kind: str, params: dict[str, Any], **aliases: Any) -> dict[str, Any]:
    """``params`` plus alias options (``--gamma`` for ``gamma=``) that were given (not None).

    An alias and the same ``--<kind>-param`` key may not disagree; a parameter the component does not
    accept is then an error of :func:`guidekit.create` naming what it accepts.
    """
    merged = dict(params)
    for key, value in aliases.items():
        if value is None:
            continue
        if key in merged and merged[key] != value:
            raise InvalidParameterError(f"--{key.replace('_', '-')} {value} and --{kind}-param {key}={merged[key]} "
                                        "disagree; give the value once")
        merged[key] = value
    return merged


def accepts(kind: str, name: str, param: str) -> bool:
    """Whether the registered component ``name`` takes keyword ``param`` (for defaults such as a release's γ)."""
    import inspect

    from .registry import default_registry

    try:
        sig = inspect.signature(default_registry().get(kind, name).factory)
    except (TypeError, ValueError):
        return False
    return param in sig.parameters or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def check_guidance_params(name: str, params: dict[str, Any]) -> None:
    """Refuse, before anything heavy is loaded, a ``--guidance-param`` that guidance ``name`` does not take
    (the guidance gets its scaler as an object, so an unknown key would be blamed on the scaler)."""
    import difflib
    import inspect

    from .registry import default_registry

    if "scaler" in params:
        raise InvalidParameterError("give the scaler with --scaler (and --scaler-param), not --guidance-param scaler=")
    factory = default_registry().get("guidance", name).factory
    if not inspect.isclass(factory):
        return
    accepted: set[str] = set()
    for cls in factory.__mro__[:-1]:  # the keyword parameters of each __init__ up to one without **kwargs
        if "__init__" not in vars(cls):
            continue
        sig = list(inspect.signature(cls.__init__).parameters.values())[1:]
        accepted |= {p.name for p in sig if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in sig):
            break
    accepted -= {"scaler", "classifier"}
    for key in sorted(params.keys() - accepted):
        close = difflib.get_close_matches(key, accepted, n=1)
        raise InvalidParameterError(f"--guidance-param {key}=: unknown parameter {key!r} of guidance {name!r}"
                                    + (f" (did you mean {close[0]!r}?)" if close else "")
                                    + f"; it accepts: {', '.join(sorted(accepted)) or 'none'} (scaler parameters go "
                                    "in --scaler-param)")


def check_respacing(spec: str, steps: int) -> None:
    """``--respacing`` checked against a ``steps``-step process before anything heavy is loaded."""
    from .respacing import space_timesteps

    try:
        space_timesteps(steps, spec)
    except InvalidParameterError as exc:
        sections = len(spec.split(",")) if not spec.strip().startswith("ddim") else 0
        fix = (f"; the {steps}-step process gives each of its {sections} section(s) about {steps // sections} steps, "
               "so ask for fewer" if sections and str(exc).startswith("cannot divide") else "")
        raise InvalidParameterError(f"--respacing {spec!r}: {exc}{fix}") from None


def env_int(name: str, default: int, flag: str) -> int:
    """An integer environment variable (as torchrun sets them), with a named error."""
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise InvalidParameterError(f"${name} is {value!r}, not an integer; fix or unset it, or pass {flag}") from None

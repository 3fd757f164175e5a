"""Component records and the registry behind ``available``, ``create`` and ``register_*``."""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs

from .component import Component
from .errors import DuplicateComponentError, InvalidParameterError, UnknownComponentError
from .hookspecs import KIND_HOOKS
from .plugins import PluginFailure, PluginManager

F = TypeVar("F", bound=Callable[..., Any])

#: where well-known components live when they are missing
KNOWN_DISTRIBUTIONS = {
    ("scaler", "entropy"): "guidekit-eds",
    ("loss", "ect"): "guidekit-eds",
    ("network", "adm-unet"): "guidekit-adm",
    ("network", "adm-classifier"): "guidekit-adm",
    ("sampler", "dpmpp-2m"): "guidekit-diffusers",
    ("sampler", "euler"): "guidekit-diffusers",
    ("sampler", "unipc"): "guidekit-diffusers",
}


def is_diffusers_folder(spec: str) -> bool:
    """Whether ``spec`` is a local folder in diffusers' ``save_pretrained`` layout (a pipeline with
    ``model_index.json``, or a model whose ``config.json`` has ``_diffusers_version``)."""
    folder = Path(spec)
    try:
        if not folder.is_dir():
            return False
        if (folder / "model_index.json").is_file():
            return True
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "_diffusers_version" in config


def install_hint(kind: str, name: str) -> str:
    """The distribution to install for a ``kind`` named ``name`` that no loaded plugin provides ("" if unknown):
    the well-known components, and (for networks) local diffusers model folders."""
    dist = KNOWN_DISTRIBUTIONS.get((kind, name))
    what = f"{name!r} is provided by the {dist} distribution"
    if dist is None and kind == "network" and isinstance(name, str) and is_diffusers_folder(name):
        dist, what = "guidekit-diffusers", f"{name!r} is a diffusers model folder, loaded by the guidekit-diffusers distribution"
    if dist is None:
        return ""
    return f"{what}: pip install {dist} (in a guidekit checkout: pip install -e plugins/{dist})"

__all__ = ["Component", "Registry", "available", "create", "describe", "registered"]


def plural(kind: str) -> str:
    """``"scalers"`` for ``"scaler"``, ``"losses"`` for ``"loss"``."""
    return "losses" if kind == "loss" else kind + "s"


def _check_kind(kind: str) -> str:
    if kind not in KIND_HOOKS:
        raise UnknownComponentError(
            f"unknown component kind {kind!r}; kinds are: {', '.join(KIND_HOOKS)}"
        )
    return kind


class Registry:
    """Builds per-kind tables of components from a :class:`PluginManager`, lazily."""

    def __init__(self, manager: PluginManager | None = None) -> None:
        self.manager = manager or PluginManager()
        self._runtime: dict[str, dict[str, Component]] = {k: {} for k in KIND_HOOKS}
        self._tables: dict[str, dict[str, list[Component]]] = {}

    # -- building -----------------------------------------------------------------------------
    def invalidate(self) -> None:
        self._tables.clear()

    def table(self, kind: str) -> dict[str, list[Component]]:
        """name -> providers (more than one means a clash)."""
        _check_kind(kind)
        if kind not in self._tables:
            table: dict[str, list[Component]] = {}
            for dist, impl in self.manager.implementations(KIND_HOOKS[kind]):
                for comp in self._call(kind, dist, impl):
                    table.setdefault(comp.name, []).append(comp)
            for comp in self._runtime[kind].values():
                if comp.name in table and comp.provider.endswith("(replace=True)"):
                    table[comp.name] = [comp]
                else:
                    table.setdefault(comp.name, []).append(comp)
            self._tables[kind] = table
        return self._tables[kind]

    def _call(self, kind: str, dist: str, impl: Any) -> list[Component]:
        try:
            result = list(impl.function() or [])
            bad = [r for r in result if not isinstance(r, Component)]
            if bad:
                raise TypeError(f"hook returned {type(bad[0]).__name__}, expected guidekit.Component")
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a hook that calls sys.exit() is a failed plugin too
            self.manager.report_failure(PluginFailure(dist, f"{KIND_HOOKS[kind]}()", exc))
            return []
        return [attrs.evolve(c, provider=c.provider or dist) for c in result]

    # -- queries ------------------------------------------------------------------------------
    def available(self, kind: str) -> list[str]:
        return sorted(self.table(kind))

    def get(self, kind: str, name: str) -> Component:
        if not isinstance(name, str):
            raise InvalidParameterError(f"a {kind} is named by a string such as {', '.join(map(repr, self.available(kind)[:3]))}; "
                                        f"got {name!r}")
        table = self.table(kind)
        if name not in table:
            raise UnknownComponentError(self._unknown_message(kind, name, table))
        providers = table[name]
        if len(providers) > 1:
            who = " and ".join(repr(p.provider) for p in providers)
            runtime = {c.provider for c in self._runtime[kind].values() if c.name == name}
            installed = [p.provider for p in providers if p.provider not in runtime]
            fix = f"Uninstall one of {', '.join(map(repr, installed))} (pip uninstall NAME)" if len(installed) > 1 else (
                f"Uninstall {installed[0]!r} (pip uninstall {installed[0]})" if installed else "Register it once")
            if runtime:  # research code can shadow the other; a plugin's hook cannot
                fix += (f", or shadow the other where {' and '.join(map(repr, sorted(runtime)))} registers it: "
                        f"@guidekit.register_{kind}({name!r}, replace=True)")
            raise DuplicateComponentError(f"{kind} {name!r} is provided by both {who}. {fix}.")
        return providers[0]

    def _unknown_message(self, kind: str, name: str, table: dict[str, list[Component]]) -> str:
        names = sorted(table)
        msg = f"unknown {kind} {name!r}. Available {plural(kind)}: {', '.join(names) or '(none)'}."
        close = difflib.get_close_matches(name, names, n=1)
        if close:
            msg += f" Did you mean {close[0]!r}?"
        hint = install_hint(kind, name)
        if hint:
            msg += " " + hint
        if self.manager.failures:
            msg += " Plugins that failed to load: " + "; ".join(f.describe() for f in self.manager.failures)
        return msg

    def create(self, kind: str, name: str, **params: Any) -> Any:
        comp = self.get(kind, name)
        check_parameters(f"{kind} {name!r}", comp.factory, params)
        try:
            built = comp.factory(**params)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, InvalidParameterError):
                raise
            raise InvalidParameterError(f"{kind} {name!r} rejected its parameters {params}: {reason(exc)}") from exc
        if built is None:
            raise InvalidParameterError(f"the factory of {kind} {name!r} ({comp.provider}) returned None; it must "
                                        f"return the {kind} it builds (did it forget `return`?)")
        return built

    # -- research-code registration -----------------------------------------------------------
    def add(self, kind: str, component: Component, *, replace: bool = False) -> None:
        _check_kind(kind)
        if component.name in self._runtime[kind] and not replace:
            raise DuplicateComponentError(
                f"{kind} {component.name!r} is already registered by "
                f"{self._runtime[kind][component.name].provider!r}; pass replace=True to override it."
            )
        provider = component.provider or "<research code>"
        if replace:
            provider += " (replace=True)"
        self._runtime[kind][component.name] = attrs.evolve(component, provider=provider)
        self._tables.pop(kind, None)

    def remove(self, kind: str, name: str) -> None:
        self._runtime[_check_kind(kind)].pop(name, None)
        self._tables.pop(kind, None)

    @contextlib.contextmanager
    def registered(self, plugin: Any, name: str | None = None) -> Iterator[str]:
        """Register a plugin object (with ``@hookimpl`` functions) for the duration of a block."""
        self.manager.load()
        plugin_name = self.manager.register(plugin, name=name, distribution=name or f"<plugin {plugin!r}>")
        if not self.manager.pm.get_hookcallers(plugin):
            self.manager.unregister(plugin_name)
            raise InvalidParameterError(
                f"{plugin!r} implements no guidekit hook: give an object or module with @hookimpl functions such as "
                "guidekit_scalers(), or register one component with @guidekit.register_scaler(name)"
            )
        self.invalidate()
        try:
            yield plugin_name
        finally:
            self.manager.unregister(plugin_name)
            self.invalidate()


def reason(exc: BaseException) -> str:
    """The message of an exception; for an attrs validator's TypeError only its first, readable part."""
    if len(exc.args) > 1 and isinstance(exc.args[0], str) and isinstance(exc.args[1], attrs.Attribute):
        return exc.args[0]
    return str(exc)


def check_parameters(what: str, factory: Callable[..., Any], params: dict[str, Any]) -> None:
    """Reject parameter names the factory does not accept, naming the accepted ones."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    accepted = [n for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for key in params:
        if key not in accepted:
            hint = difflib.get_close_matches(key, accepted, n=1)
            raise InvalidParameterError(
                f"{what} got an unknown parameter {key!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f". It accepts: {', '.join(accepted) or 'no parameters'}."
            )


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def reset(*, strict: bool | None = None) -> Registry:
    """Forget loaded plugins (e.g. after installing one); keeps research-code registrations."""
    global _default
    old = _default
    _default = Registry(PluginManager(strict=strict))
    if old is not None:
        _default._runtime = old._runtime
    return _default


def available(kind: str) -> list[str]:
    """Names of the components of a kind: ``"sampler"``, ``"scaler"``, ``"guidance"``, ``"loss"``, ``"network"``, ``"extractor"``."""
    return default_registry().available(kind)


def create(kind: str, name: str, **params: Any) -> Any:
    """Build a component by name, e.g. ``create("scaler", "entropy", gamma=6.0)``."""
    return default_registry().create(kind, name, **params)


def describe(kind: str) -> list[Component]:
    """The component records of a kind, with their providers."""
    table = default_registry().table(kind)
    return [c for name in sorted(table) for c in table[name]]


class _Block(contextlib.AbstractContextManager):
    """The context manager :func:`registered` returns: warns if it is dropped without being entered."""

    def __init__(self, plugin: Any, name: str | None) -> None:
        self._args, self._cm = (plugin, name), None

    def __enter__(self) -> str:
        self._cm = default_registry().registered(*self._args)
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._cm.__exit__(*exc) if self._cm is not None else None

    def __del__(self) -> None:
        if self._cm is None:
            warnings.warn(f"guidekit.registered({self._args[0]!r}) was never entered, so nothing was registered: write "
                          "`with guidekit.registered(plugin): ...`, or register for good with a decorator "
                          "(@guidekit.register_scaler) or an entry point", RuntimeWarning, stacklevel=2)


def registered(plugin: Any, name: str | None = None) -> contextlib.AbstractContextManager[str]:
    """``with guidekit.registered(plugin): ...`` registers a hook-implementing object in a block."""
    return _Block(plugin, name)


def _register(kind: str) -> Callable[..., Callable[[F], F]]:
    def register(name: str, *, summary: str | None = None, replace: bool = False) -> Callable[[F], F]:
        if not isinstance(name, str) or not name:
            raise InvalidParameterError(f"register_{kind}(name) needs a non-empty string name, got {name!r}")

        def decorate(factory: F) -> F:
            if not callable(factory):
                raise InvalidParameterError(f"@register_{kind}({name!r}) decorates a factory (a function or class), "
                                            f"got {factory!r}")
            doc = summary if summary is not None else (inspect.getdoc(factory) or "").split("\n")[0]
            provider = f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)}"
            default_registry().add(kind, Component(name, factory, doc, provider), replace=replace)
            return factory

        return decorate

    register.__doc__ = (
        f"``@guidekit.register_{kind}(name)``: register the decorated {kind} factory (a function or class) under "
        "``name``, for research code that is not packaged as a plugin; the factory is returned unchanged.\n\n"
        "``summary``: the line ``guidekit list`` shows (default: the first line of the factory's docstring). "
        "``replace=True`` replaces a component this process registered under the same name (without it, that is a "
        ":class:`~guidekit.DuplicateComponentError`)."
    )
    return register


register_sampler = _register("sampler")
register_scaler = _register("scaler")
register_guidance = _register("guidance")
register_loss = _register("loss")
register_network = _register("network")
register_extractor = _register("extractor")

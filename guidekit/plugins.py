"""Plugin manager: built-ins plus distributions in the ``guidekit`` entry-point group.

Loading is lazy: nothing here runs until a registry is first asked for a component.
A plugin that fails to import is reported (distribution and exception) and skipped;
with strict mode (``GUIDEKIT_STRICT_PLUGINS=1`` or ``PluginManager(strict=True)``) it is fatal.
Local modules named in ``GUIDEKIT_PLUGINS=mod1,mod2`` (or ``guidekit --plugin MODULE``) are
imported after the installed plugins; one that cannot be imported (or that calls ``sys.exit`` while
being imported) is an error.

Sub-commands: the core's come first, then those of the distributions shipped with guidekit
(:data:`BUNDLED_DISTRIBUTIONS`), then the other plugins'. A plugin sub-command whose name is taken
never replaces the first one: it is added as ``DIST:NAME`` (run ``guidekit DIST:NAME ...`` to choose
it) and a warning names both distributions.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginLoadError, PluginLoadWarning

ENTRY_POINT_GROUP = "guidekit"
BUILTIN_DISTRIBUTION = "guidekit"
#: distributions shipped with guidekit: their sub-commands are added before third-party plugins' ones
BUNDLED_DISTRIBUTIONS = ("guidekit-adm", "guidekit-eds", "guidekit-mnist16")
BUILTIN_MODULES = (
    "guidekit.samplers",
    "guidekit.scalers",
    "guidekit.guidance",
    "guidekit.losses",
    "guidekit.extractors",
)


@attrs.frozen
class PluginFailure:
    """A plugin that could not be loaded or whose hook raised."""

    distribution: str
    entry_point: str
    error: BaseException = attrs.field(eq=False)

    def describe(self) -> str:
        return f"{self.distribution} (entry point {self.entry_point!r}: {type(self.error).__name__}: {self.error})"


def _strict_from_env() -> bool:
    return os.environ.get("GUIDEKIT_STRICT_PLUGINS", "").lower() in {"1", "true", "yes", "on"}


class PluginManager:
    """Owns the pluggy manager, the plugin → distribution map and the load failures."""

    def __init__(self, *, strict: bool | None = None, entry_points: bool = True) -> None:
        self.strict = _strict_from_env() if strict is None else strict
        self.use_entry_points = entry_points
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.distribution_of: dict[str, str] = {}
        self.failures: list[PluginFailure] = []
        self._loaded = False

    @property
    def pm(self) -> pluggy.PluginManager:
        """The pluggy manager, with the plugins loaded: ``manager.pm.hook.guidekit_resolve_network(...)`` asks them all."""
        self.load()
        return self._pm

    # -- loading ---------------------------------------------------------------------------
    def load(self) -> None:
        """Register the built-ins and every entry point of the ``guidekit`` group (once)."""
        if self._loaded:
            return
        self._loaded = True
        for module in BUILTIN_MODULES:
            self.register(importlib.import_module(module), name=module, distribution=BUILTIN_DISTRIBUTION)
        if self.use_entry_points:
            for dist_name, ep in _entry_points():
                self._load_entry_point(dist_name, ep)
            env_modules = _modules_from_env()
            if env_modules:
                self.import_modules(env_modules, "GUIDEKIT_PLUGINS")

    def _load_entry_point(self, dist_name: str, ep: importlib.metadata.EntryPoint) -> None:
        name = f"{dist_name}:{ep.name}"
        if self.pm.has_plugin(name):
            return
        try:
            plugin = ep.load()
            self.register(plugin, name=name, distribution=dist_name)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any plugin bug must not take the others down
            if isinstance(exc, SystemExit):
                exc = PluginLoadError(f"it called sys.exit({exc.code!r}) while being imported")
            self.report_failure(PluginFailure(dist_name, f"{ep.name} = {ep.value}", exc))

    def report_failure(self, failure: PluginFailure) -> None:
        """Record a failure; warn, or raise in strict mode."""
        if self.strict:
            raise PluginLoadError(
                f"plugin {failure.describe()} failed to load. Fix or uninstall "
                f"'{failure.distribution}', or unset GUIDEKIT_STRICT_PLUGINS to skip it."
            ) from failure.error
        self.failures.append(failure)
        warnings.warn(
            f"guidekit plugin {failure.describe()} failed to load and was skipped; "
            f"the other plugins are available. Fix or uninstall '{failure.distribution}'.",
            PluginLoadWarning,
            stacklevel=3,
        )

    def register(self, plugin: Any, *, name: str | None = None, distribution: str = "<runtime>") -> str:
        """Register a plugin object or module; returns the name it is registered under.

        A hook implementation whose name is no hook specification (a misspelt ``guidekit_scaler``)
        is an error naming the plugin, as pluggy's ``check_pending`` would report it.
        """
        try:
            registered = self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginLoadError(f"plugin {name or plugin!r} from {distribution} is invalid: {exc}") from exc
        except ValueError as exc:  # pluggy: the name or the object is registered already
            raise PluginLoadError(f"cannot register {plugin!r} as {name!r}: {exc}; give it another name, or "
                                  "leave the `with guidekit.registered(...)` block of the first one") from exc
        if registered is None:
            raise PluginLoadError(f"plugin {name or plugin!r} is already registered")
        unknown = sorted(
            caller.name for caller in self.pm.get_hookcallers(plugin) or []
            if caller.spec is None
            and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls())
        )
        if unknown:
            self.pm.unregister(plugin)
            raise PluginLoadError(f"plugin {registered!r} from {distribution} implements {_unknown_hooks(unknown)}")
        self.distribution_of[registered] = distribution
        return registered

    def import_modules(self, modules: Sequence[str], source: str) -> None:
        """Import local plugin modules (``--plugin``, ``$GUIDEKIT_PLUGINS``) and register their hooks.

        Importing runs their ``@guidekit.register_*`` decorators; ``@hookimpl`` functions are
        registered as for an installed plugin. The current folder is searched, as ``python -m`` does.
        """
        self.load()
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        for module_name in modules:
            module_name = module_name.strip()
            if not module_name:
                continue
            label = f"{module_name} ({source})"
            if module_name.endswith(".py") or os.sep in module_name:
                raise PluginLoadError(
                    f"{source} {module_name!r}: give a module name such as my_scalers (for my_scalers.py), "
                    "not a file path; run from its folder or put the folder on PYTHONPATH"
                )
            try:
                module = importlib.import_module(module_name)
            except SystemExit as exc:  # sys.exit(0) must not end guidekit with success, having done nothing
                sys.modules.pop(module_name, None)
                raise PluginLoadError(
                    f"{source} {module_name!r} called sys.exit({exc.code!r}) while being imported, so it was not "
                    "loaded; a plugin module must only define and register components (move the script part under "
                    "`if __name__ == '__main__':`)"
                ) from None
            except Exception as exc:  # noqa: BLE001 - reported with the module's name
                raise PluginLoadError(
                    f"{source} {module_name!r} could not be imported ({type(exc).__name__}: {exc}); it must be "
                    "importable from the current folder or PYTHONPATH"
                ) from exc
            if not self.pm.is_registered(module):
                self.register(module, name=label, distribution=label)

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.distribution_of.pop(name, None)

    # -- calling ---------------------------------------------------------------------------
    def implementations(self, hook_name: str) -> Iterator[tuple[str, Any]]:
        """Yield ``(distribution, hookimpl)`` for every implementation of a hook, built-ins first."""
        self.load()
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order: built-ins first
            yield self.distribution_of.get(impl.plugin_name, impl.plugin_name), impl


class _Commands:
    """The sub-parsers as one plugin's ``guidekit_commands`` hook sees them: a name that is taken already is
    added as ``DIST:NAME`` instead (the first owner keeps it), and the clash is remembered for a warning."""

    def __init__(self, sub: Any, dist: str, owner: dict[str, str]) -> None:
        self._sub, self._dist, self._owner = sub, dist, owner
        self.renamed: list[tuple[str, str, str]] = []  # (name, new name, owner of the name)

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        aliases = [a for a in kwargs.pop("aliases", []) if a not in self._sub.choices]
        if name in self._sub.choices:
            new = f"{self._dist}:{name}"
            self.renamed.append((name, new, self._owner.get(name, "another plugin")))
            name = new
        return self._sub.add_parser(name, aliases=aliases, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._sub, attr)


def add_plugin_commands(sub: Any, manager: PluginManager) -> None:
    """Call every ``guidekit_commands`` hook on its own (bundled distributions first): one that raises is
    rolled back and reported with its distribution; a sub-command whose name is taken is added as
    ``DIST:NAME`` with a warning naming both distributions; the others stay."""
    owner = dict.fromkeys(sub.choices, BUILTIN_DISTRIBUTION)
    impls = list(manager.implementations("guidekit_commands"))
    impls.sort(key=lambda pair: pair[0] not in BUNDLED_DISTRIBUTIONS)  # stable: registration order otherwise
    for dist, impl in impls:
        before, actions = dict(sub.choices), list(sub._choices_actions)
        commands = _Commands(sub, dist, owner)
        try:
            impl.function(*[{"subparsers": commands}[a] for a in impl.argnames])
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin's bug must not take the CLI down
            sub.choices.clear()
            sub.choices.update(before)
            sub._choices_actions[:] = actions
            if isinstance(exc, SystemExit):
                exc = PluginLoadError(f"it called sys.exit({exc.code!r})")
            manager.report_failure(PluginFailure(dist, f"{impl.plugin_name}: guidekit_commands()", exc))
            continue
        for name, new, first in commands.renamed:
            warnings.warn(f"plugin {dist} adds the sub-command {name!r}, which {first} provides already; `guidekit "
                          f"{name}` stays {first}'s, and {dist}'s runs as `guidekit {new}`", stacklevel=2)
        owner.update(dict.fromkeys(set(sub.choices) - set(before), dist))


def _entry_points() -> Iterator[tuple[str, importlib.metadata.EntryPoint]]:
    seen: set[tuple[str, str]] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "<unknown distribution>"
        if (dist, ep.name) in seen:
            continue
        seen.add((dist, ep.name))
        yield dist, ep


def _unknown_hooks(names: list[str]) -> str:
    """'guidekit_scaler', which is no guidekit hook (did you mean ...?) ..."""
    import difflib

    specs = sorted(n for n in dir(hookspecs) if n.startswith("guidekit_"))
    parts = []
    for name in names:
        close = difflib.get_close_matches(name, specs, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"{', '.join(parts)}, which {'is no guidekit hook' if len(parts) == 1 else 'are no guidekit hooks'}; "
            f"the hooks are: {', '.join(specs)}")


def _modules_from_env() -> list[str]:
    return [m for m in os.environ.get("GUIDEKIT_PLUGINS", "").split(",") if m.strip()]

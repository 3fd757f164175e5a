"""The plugin system with real installed distributions (no mocked importlib.metadata).

Fixture plugins under tests/fixtures/plugins are pip-installed into a temporary folder; each
scenario runs in a fresh interpreter with that folder on PYTHONPATH.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import guidekit as gk
from guidekit.hookspecs import hookimpl
from guidekit.plugins import PluginManager
from guidekit.registry import Registry
from guidekit.testing import run_python, site_without


@pytest.fixture(scope="session")
def plugin_site(install_plugin) -> dict[str, Path]:
    """Each fixture distribution installed by pip into its own target folder."""
    return {name: install_plugin(name) for name in ("guidekit-broken", "guidekit-clash", "guidekit-ramp")}


run = run_python


def test_import_loads_no_plugin(plugin_site):
    out = run("""
        import json, sys, guidekit, guidekit.registry as r
        print(json.dumps({"mods": [m for m in sys.modules if m.startswith(("guidekit_", "guidekit.scalers", "guidekit.samplers"))],
                          "built": r._default is not None}))
    """, plugin_site["guidekit-ramp"], plugin_site["guidekit-broken"])
    assert out == {"mods": [], "built": False}


def test_installed_plugin_is_discovered_with_provenance(plugin_site):
    out = run("""
        import json, torch, guidekit as gk
        s = gk.create("scaler", "ramp", gamma=2.0)
        st = gk.GuidanceState(t=torch.tensor([5]), t_index=5, num_steps=10, logits=torch.zeros(1, 3), grad=None, y=torch.tensor([0]))
        print(json.dumps({"names": gk.available("scaler"), "provider": {c.name: c.provider for c in gk.describe("scaler")},
                          "value": s(st).tolist()}))
    """, plugin_site["guidekit-ramp"])
    assert out["names"] == ["constant", "entropy", "gradnorm", "interval", "ramp", "timestep"]
    assert out["provider"]["ramp"] == "guidekit-ramp"
    assert out["provider"]["entropy"] == "guidekit-eds"
    assert out["provider"]["constant"] == "guidekit"
    assert out["value"] == [3.0]


def test_broken_plugin_warns_and_others_still_load(plugin_site):
    out = run("""
        import json, warnings, guidekit as gk
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            names = gk.available("scaler")
        try:
            gk.create("scaler", "nope")
        except gk.UnknownComponentError as e:
            msg = str(e)
        print(json.dumps({"names": names, "warnings": [str(x.message) for x in w], "cats": [x.category.__name__ for x in w], "msg": msg}))
    """, plugin_site["guidekit-broken"], plugin_site["guidekit-ramp"])
    assert "ramp" in out["names"] and "entropy" in out["names"]
    assert out["cats"] == ["PluginLoadWarning"]
    assert "guidekit-broken" in out["warnings"][0] and "ModuleNotFoundError" in out["warnings"][0]
    assert "guidekit_this_module_does_not_exist" in out["warnings"][0]
    assert "failed to load: guidekit-broken" in out["msg"] and "Available scalers: constant" in out["msg"]


def test_strict_mode_makes_a_broken_plugin_fatal(plugin_site):
    out = run("""
        import json, guidekit as gk
        try:
            gk.available("scaler"); err = None
        except gk.PluginLoadError as e:
            err = str(e)
        print(json.dumps({"err": err}))
    """, plugin_site["guidekit-broken"], env={"GUIDEKIT_STRICT_PLUGINS": "1"})
    assert out["err"] and "guidekit-broken" in out["err"] and "ModuleNotFoundError" in out["err"]


def test_two_providers_of_one_name_name_both_distributions(plugin_site):
    out = run("""
        import json, guidekit as gk
        try:
            gk.create("scaler", "entropy"); err = None
        except gk.DuplicateComponentError as e:
            err = str(e)
        print(json.dumps({"err": err, "constant": gk.create("scaler", "constant", gamma=2.0).gamma}))
    """, plugin_site["guidekit-clash"])
    assert "guidekit-eds" in out["err"] and "guidekit-clash" in out["err"]
    assert out["constant"] == 2.0


def test_without_the_eds_distribution_entropy_is_gone(tmp_path):
    """A real environment without guidekit-eds: site-packages mirrored minus that distribution."""
    mirror = site_without("guidekit-eds", tmp_path / "site")
    repo = Path(gk.__file__).resolve().parents[1]
    out = run("""
        import json, guidekit as gk
        try:
            gk.create("scaler", "entropy", gamma=6.0); err = None
        except gk.UnknownComponentError as e:
            err = str(e)
        print(json.dumps({"names": gk.available("scaler"), "err": err}))
    """, repo, mirror, python_args=("-S",))
    assert out["names"] == ["constant", "gradnorm", "interval", "timestep"]
    assert "pip install guidekit-eds" in out["err"]


# -- in-process registry behaviour ----------------------------------------------------------------
@pytest.fixture
def registry() -> Registry:
    return Registry(PluginManager(entry_points=False))


def test_builtins_create_with_no_parameters(registry):
    for kind in ("sampler", "scaler", "loss"):
        for name in registry.available(kind):
            assert registry.create(kind, name) is not None
    assert registry.available("scaler") == ["constant", "gradnorm", "interval", "timestep"]
    assert registry.create("scaler", "interval").end == 700
    assert registry.create("scaler", "gradnorm").threshold == 0.15


def test_unknown_kind_name_and_parameters(registry):
    with pytest.raises(gk.UnknownComponentError, match="kinds are: sampler, scaler"):
        registry.available("scalar")
    with pytest.raises(gk.UnknownComponentError, match="Did you mean 'constant'"):
        registry.create("scaler", "constnt")
    with pytest.raises(gk.UnknownComponentError, match="pip install guidekit-eds"):
        registry.create("scaler", "entropy")
    with pytest.raises(gk.InvalidParameterError, match="unknown parameter 'gama'.*did you mean 'gamma'"):
        registry.create("scaler", "constant", gama=1.0)
    with pytest.raises(gk.InvalidParameterError, match="rejected"):
        registry.create("scaler", "constant", gamma=-1.0)
    with pytest.raises(gk.InvalidParameterError, match="end"):
        registry.create("scaler", "interval", start=800, end=700)
    with pytest.raises(gk.InvalidParameterError, match="eta"):
        registry.create("sampler", "ddim", eta=-0.5)


def test_register_decorator_and_scoped_plugin():
    @gk.register_scaler("test-double")
    def double(gamma: float = 1.0):
        """Twice gamma."""
        return lambda state: torch.full((state.batch_size,), 2 * gamma)

    try:
        assert "test-double" in gk.available("scaler")
        comp = {c.name: c for c in gk.describe("scaler")}["test-double"]
        assert comp.summary == "Twice gamma." and "double" in comp.provider
        with pytest.raises(gk.DuplicateComponentError, match="already registered"):
            gk.register_scaler("test-double")(double)
        with pytest.raises(gk.DuplicateComponentError, match="'guidekit'"):
            gk.register_scaler("constant")(double)
            gk.create("scaler", "constant")
    finally:
        from guidekit.registry import default_registry

        default_registry().remove("scaler", "test-double")
        default_registry().remove("scaler", "constant")
    assert gk.create("scaler", "constant").gamma == 1.0

    class Plugin:
        @hookimpl
        def guidekit_samplers(self):
            return [gk.Component("test-sampler", lambda: "made")]

    with gk.registered(Plugin(), name="scoped"):
        assert gk.create("sampler", "test-sampler") == "made"
    assert "test-sampler" not in gk.available("sampler")


def test_replace_shadows_a_builtin():
    gk.register_scaler("constant", replace=True)(lambda gamma=1.0: "mine")
    try:
        assert gk.create("scaler", "constant") == "mine"
    finally:
        from guidekit.registry import default_registry

        default_registry().remove("scaler", "constant")


def test_a_hook_returning_garbage_is_reported(registry):
    class Bad:
        @hookimpl
        def guidekit_losses(self):
            return ["not a component"]

    registry.manager.load()
    registry.manager.register(Bad(), name="bad", distribution="guidekit-bad")
    with pytest.warns(gk.PluginLoadWarning, match="guidekit-bad.*expected guidekit.Component"):
        assert registry.available("loss") == ["ce"]

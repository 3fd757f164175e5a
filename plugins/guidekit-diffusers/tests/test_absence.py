"""Without guidekit-diffusers, asking for what only it provides says `pip install guidekit-diffusers`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import guidekit as gk
from guidekit.plugins import PluginManager
from guidekit.registry import Registry, install_hint
from guidekit.testing import run_python, site_without


def test_registry_without_the_plugin_names_it():
    bare = Registry(PluginManager(entry_points=False))  # the built-ins alone
    for name in ("dpmpp-2m", "euler", "unipc"):
        with pytest.raises(gk.UnknownComponentError, match="pip install guidekit-diffusers"):
            bare.create("sampler", name)
    assert install_hint("sampler", "ddim") == ""


def test_a_diffusers_folder_is_recognised_without_importing_the_plugin(tmp_path):
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "model_index.json").write_text("{}")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({"_diffusers_version": "0.42.1"}))
    (tmp_path / "other").mkdir()
    for name in ("pipe", "model"):
        assert "pip install guidekit-diffusers" in install_hint("network", str(tmp_path / name))
    assert install_hint("network", str(tmp_path / "other")) == ""


def test_in_an_environment_without_the_distribution(tmp_path):
    """A real environment without guidekit-diffusers: site-packages mirrored minus that distribution."""
    mirror = site_without("guidekit-diffusers", tmp_path / "site")
    folder = tmp_path / "pipe"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"unet": ["diffusers", "UNet2DModel"]}))
    code = f"""
        import json, warnings
        warnings.simplefilter("ignore")
        import guidekit as gk
        from guidekit.toy import GaussianMixtureToy
        errors = {{}}
        toy = GaussianMixtureToy(num_classes=3, shape=(1, 4, 4))
        diffusion = gk.GaussianDiffusion.create(learn_sigma=False, respacing="ddim4")
        try:
            gk.sample(toy.denoiser(), diffusion, (2, 1, 4, 4), sampler="dpmpp-2m", progress=False)
        except gk.UnknownComponentError as e:
            errors["sampler"] = str(e)
        try:
            gk.create("network", {str(folder)!r})
        except gk.UnknownComponentError as e:
            errors["folder"] = str(e)
        try:
            gk.load_network({str(folder)!r})
        except gk.UnknownNetworkError as e:
            errors["load_network"] = str(e)
        print(json.dumps({{"samplers": gk.available("sampler"), **errors}}))
    """
    out = run_python(code, Path(gk.__file__).resolve().parents[1], mirror, python_args=("-S",))
    assert out["samplers"] == ["ddim", "ddpm"]
    assert "pip install guidekit-diffusers" in out["sampler"]
    assert "diffusers model folder" in out["folder"] and "pip install guidekit-diffusers" in out["folder"]
    assert "diffusers model folder" in out["load_network"] and "pip install guidekit-diffusers" in out["load_network"]

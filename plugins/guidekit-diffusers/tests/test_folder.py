"""The resolver seam: a local diffusers folder (save_pretrained layout) named as a network, through the hook."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline
from guidekit_diffusers import from_diffusers

import guidekit as gk
from guidekit.errors import InvalidParameterError
from guidekit.registry import default_registry


def resolve(spec, path=None):
    return default_registry().manager.pm.hook.guidekit_resolve_network(spec=str(spec), path=path, device="cpu",
                                                                      params={}, fast=False)


@pytest.fixture(scope="module")
def scheduler():
    return DDIMScheduler(prediction_type="v_prediction", clip_sample=False)


def test_pipeline_folder(unet, scheduler, tmp_path):
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp_path / "pipe")
    model = resolve(tmp_path / "pipe")
    assert model.card["layout"] == "pipeline" and model.card["name"] == "pipe"
    assert model.card["diffusion"] == {"steps": 1000, "schedule": "linear", "learn_sigma": False}
    assert model.card["prediction_type"] == "v_prediction"
    reference, _ = from_diffusers(unet, scheduler)
    diffusion = gk.GaussianDiffusion.from_model(model, respacing="ddim4")
    a, b = (gk.sample(m, diffusion, (2, 1, 8, 8), seed=0, progress=False) for m in (model, reference))
    assert torch.equal(a, b)


def test_model_folder_with_its_scheduler_beside(cond_unet, scheduler, tmp_path):
    cond_unet.save_pretrained(tmp_path / "m")
    with pytest.raises(InvalidParameterError, match="scheduler.save_pretrained"):
        resolve(tmp_path / "m")
    scheduler.save_pretrained(tmp_path / "m")
    model = resolve(tmp_path / "m")
    assert model.card["layout"] == "model" and model.num_classes == cond_unet.config.num_class_embeds
    with pytest.raises(InvalidParameterError, match="drop the weights path"):
        resolve(tmp_path / "m", path="weights.pt")


def test_other_specs_are_left_to_other_resolvers(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "config.json").write_text(json.dumps({"image_size": 16}))
    from guidekit_diffusers.plugin import guidekit_resolve_network

    for spec in (tmp_path / "plain", tmp_path / "missing", "mnist16-unet", "--image_size 16"):
        assert guidekit_resolve_network(spec=str(spec), path=None, device="cpu") is None


def test_unsupported_unet_class_is_named(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                                  "unet": ["diffusers", "UNet2DConditionModel"]}))
    with pytest.raises(InvalidParameterError, match="UNet2DConditionModel"):
        resolve(tmp_path / "p")


def test_load_network_and_the_sample_command_take_the_folder(unet, scheduler, tmp_path):
    """The one way in: gk.load_network and `guidekit sample --model FOLDER` reach the plugin's resolver."""
    from guidekit.cli import main
    from guidekit.io import load_batch

    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp_path / "pipe")
    model = gk.load_network(tmp_path / "pipe")
    assert model.card["layout"] == "pipeline" and model.card["diffusion"]["schedule"] == "linear"
    assert main(["sample", "--model", str(tmp_path / "pipe"), "--num-samples", "2", "--respacing", "ddim3",
                 "--no-progress", "--out", str(tmp_path / "out")]) == 0
    images = load_batch(tmp_path / "out" / "samples.npz").images()
    assert images.shape == (2, 8, 8, 1)
    direct = gk.sample(model, gk.GaussianDiffusion.from_model(model, respacing="ddim3"), (2, 1, 8, 8), seed=0,
                       progress=False)
    assert (gk.io.to_uint8(direct).numpy() == images).all()  # the command samples what the API samples

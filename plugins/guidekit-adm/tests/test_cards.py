"""ADM networks carry a card naming their diffusion process; checkpoint paths and dtypes get named errors."""

from __future__ import annotations

import guidekit_adm as adm
import pytest
import torch

import guidekit as gk

TINY_FLAGS = (
    "--image_size 8 --num_channels 32 --num_res_blocks 1 --attention_resolutions 4 --channel_mult 1,1 "
    "--num_head_channels 8 --learn_sigma True --class_cond True --noise_schedule cosine --diffusion_steps 500"
)


@pytest.mark.parametrize(("name", "schedule"), [("64x64_diffusion", "cosine"), ("256x256_diffusion_uncond", "linear")])
def test_from_release_reads_the_release_schedule(name, schedule):
    diff = gk.GaussianDiffusion.from_release(name, respacing="ddim25")
    assert diff.config.schedule == schedule and diff.config.learn_sigma and diff.num_steps == 25
    built = adm.create_model(name, device="meta")
    assert built.card == {"release": name, "diffusion": {"steps": 1000, "schedule": schedule, "learn_sigma": True}}
    reference = gk.GaussianDiffusion.create(steps=1000, schedule=schedule, learn_sigma=True, respacing="ddim25")
    assert torch.equal(diff.betas, reference.betas) and torch.equal(diff.timestep_map, reference.timestep_map)


def test_a_loaded_checkpoint_brings_its_own_process(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(adm.create_model(TINY_FLAGS).state_dict(), path)
    model = adm.load_checkpoint(TINY_FLAGS, path)
    assert model.card == {"release": None, "diffusion": {"steps": 500, "schedule": "cosine", "learn_sigma": True}}
    diff = gk.GaussianDiffusion.from_model(model, respacing="10")
    assert (diff.config.steps, diff.config.schedule, diff.num_steps) == (500, "cosine", 10)


def test_integer_safetensors_name_the_dtype(tmp_path):
    from safetensors.torch import save_file

    state = adm.create_model(TINY_FLAGS).state_dict()
    path = tmp_path / "int32.safetensors"
    save_file({k: v.to(torch.int32).contiguous() if v.is_floating_point() else v.contiguous() for k, v in state.items()},
              str(path))
    with pytest.raises(adm.CheckpointMismatchError) as info:
        adm.load_checkpoint(TINY_FLAGS, path)
    msg = str(info.value)
    assert "integer tensors where the model has floating-point ones" in msg and "torch.int32" in msg
    assert "keys and shapes fit" in msg and len(msg.splitlines()) < 20


def test_a_folder_as_checkpoint_path_is_not_told_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        adm.load_checkpoint("64x64_classifier", tmp_path)
    msg = str(info.value)
    assert "is a folder" in msg and str(tmp_path / "64x64_classifier.pt") in msg and "download" not in msg


def test_unbuildable_flags_are_a_config_error():
    with pytest.raises(adm.ConfigError, match="divisible by 32"):
        adm.create_model(TINY_FLAGS.replace("--num_channels 32", "--num_channels 16"))

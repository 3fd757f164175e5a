"""load_checkpoint: strict loading, .pt and .safetensors, diagnostics, dtype checks."""

from __future__ import annotations

import warnings

import guidekit_adm as adm
import pytest
import torch

TINY_FLAGS = (
    "--image_size 8 --num_channels 32 --num_res_blocks 1 --attention_resolutions 4 --channel_mult 1,1 "
    "--num_head_channels 8 --learn_sigma True --class_cond True --resblock_updown True"
)


def _tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = adm.create_model(TINY_FLAGS)
    for p in model.parameters():  # undo the zero-init so that a wrong load would show
        p.data.normal_(0, 0.05)
    return model.state_dict()


def test_load_pt_strict_eval(tmp_path):
    state = _tiny_state()
    path = tmp_path / "tiny.pt"
    torch.save(state, path)
    model = adm.load_checkpoint(TINY_FLAGS, path)
    assert not model.training and isinstance(model, adm.UNetModel)
    assert model.adm_config.kind == "unet"
    for key, value in model.state_dict().items():
        assert value.device.type == "cpu" and value.dtype == torch.float32
        torch.testing.assert_close(value, state[key], atol=0, rtol=0)
    assert all(isinstance(p, torch.nn.Parameter) for p in model.parameters())
    with torch.no_grad():
        out = model(torch.randn(2, 3, 8, 8), torch.tensor([1, 999]), y=torch.tensor([0, 999]))
    assert out.shape == (2, 6, 8, 8) and torch.isfinite(out).all()


def test_load_safetensors(tmp_path):
    from safetensors.torch import save_file  # the test extra installs it: fail, never skip

    state = _tiny_state(1)
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = adm.load_checkpoint(adm.parse_flags(TINY_FLAGS), path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], atol=0, rtol=0)


def test_load_into_a_built_module(tmp_path, unet_tiny, unet_model):
    path = tmp_path / "unet_tiny.pt"
    torch.save({k: v.float() for k, v in unet_tiny["state_dict"].items()}, path)
    fresh = adm.UNetModel(**unet_tiny["config"])
    loaded = adm.load_checkpoint(fresh, path)
    assert loaded is fresh and not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(unet_tiny["x"], unet_tiny["timesteps"], unet_tiny["y"]), unet_tiny["out_legacy"],
                                   atol=1e-5, rtol=1e-4)


def test_non_float32_file_warns_and_is_cast(tmp_path, unet_tiny):
    path = tmp_path / "half.pt"
    torch.save(unet_tiny["state_dict"], path)  # stored as float16
    with pytest.warns(adm.CheckpointDtypeWarning, match="float16"):
        model = adm.load_checkpoint(adm.UNetModel(**unet_tiny["config"]), path)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_float32_file_does_not_warn(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(_tiny_state(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adm.load_checkpoint(TINY_FLAGS, path)


def test_mismatch_names_keys(tmp_path):
    state = _tiny_state()
    state.pop("label_emb.weight")  # missing
    state["extra.weight"] = torch.zeros(3)  # unexpected
    state["out.2.weight"] = torch.zeros(3, 32, 3, 3)  # learn_sigma False shape
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(adm.CheckpointMismatchError) as info:
        adm.load_checkpoint(TINY_FLAGS, path)
    msg = str(info.value)
    assert "missing keys (1)" in msg and "label_emb.weight" in msg
    assert "unexpected keys (1)" in msg and "extra.weight" in msg
    assert "shape mismatches (1)" in msg and "out.2.weight: file [3, 32, 3, 3] vs model [6, 32, 3, 3]" in msg
    assert "closest:" in msg  # no release matches a tiny model, the closest are named
    assert isinstance(info.value, ValueError)
    import guidekit.errors

    assert isinstance(info.value, guidekit.errors.CheckpointError)


def test_a_classifier_file_for_a_unet_says_so_first_and_truncates_the_key_lists(tmp_path):
    path = tmp_path / "classifier_for_unet.pt"
    classifier = adm.EncoderUNetModel(8, 3, 32, 10, 1, (2,), channel_mult=(1, 1), num_head_channels=8, pool="attention")
    torch.save(classifier.state_dict(), path)
    with pytest.raises(adm.CheckpointMismatchError) as info:
        adm.load_checkpoint(TINY_FLAGS, path)
    assert "... and" in str(info.value) and "more" in str(info.value)
    first_lines = str(info.value).splitlines()[:2]
    assert "the file holds a classifier (encoder), but UNetModel is a diffusion UNet" in first_lines[1]
    assert "--classifier-path" in first_lines[1]


def test_matching_release_logic_on_manifest_keys(manifests):
    # fed with a manifest's key list: no weights needed
    uncond = {k[0]: k[1] for k in manifests["256x256_diffusion_uncond"]["keys"]}
    assert adm.matching_releases(uncond) == [
        "256x256_diffusion_uncond", "lsun_bedroom", "lsun_cat", "lsun_horse", "lsun_horse_nodropout",
    ]
    classifier64 = {k[0]: k[1] for k in manifests["64x64_classifier"]["keys"]}
    assert adm.matching_releases(classifier64) == ["64x64_classifier"]
    depth2 = adm.create_model("64x64_classifier", device="meta", num_res_blocks=2)
    assert adm.matching_releases({k: v.shape for k, v in depth2.state_dict().items()}) == []
    closest = adm.closest_releases({k: v.shape for k, v in depth2.state_dict().items()}, limit=3)
    assert len(closest) == 3 and all(0 < s < 1 for _, s in closest)
    assert [s for _, s in closest] == sorted((s for _, s in closest), reverse=True)
    assert adm.closest_releases(classifier64, limit=1) == [("64x64_classifier", 1.0)]


def test_gd_issue_7_names_the_depth_4_release(tmp_path, manifests):
    """64x64_classifier weights loaded with the default classifier_depth 2 (guided-diffusion issue #7)."""
    from guidekit_adm.checkpoint import check_compatible

    default_depth = adm.parse_flags("--image_size 64", kind="classifier")
    model = adm.create_model(default_depth, device="meta")
    file_state = {k[0]: torch.empty(k[1], device="meta") for k in manifests["64x64_classifier"]["keys"]}
    with pytest.raises(adm.CheckpointMismatchError, match="matches the release config\\(s\\): 64x64_classifier;"):
        check_compatible(model, file_state, "64x64_classifier.pt")


def test_mismatch_message_names_the_matching_release(manifests):
    from guidekit_adm.checkpoint import check_compatible

    model = adm.create_model("256x256_diffusion", device="meta")
    file_state = {k[0]: torch.empty(k[1], device="meta") for k in manifests["256x256_diffusion_uncond"]["keys"]}
    with pytest.raises(adm.CheckpointMismatchError) as info:
        check_compatible(model, file_state, "256x256_diffusion_uncond.pt")
    msg = str(info.value)
    assert "missing keys (1)" in msg and "label_emb.weight" in msg
    assert "matches the release config(s): 256x256_diffusion_uncond, lsun_bedroom" in msg


def test_missing_file_names_path_and_download(tmp_path):
    path = tmp_path / "nowhere" / "64x64_classifier.pt"
    with pytest.raises(FileNotFoundError) as info:
        adm.load_checkpoint("64x64_classifier", path)
    assert str(path) in str(info.value)
    assert "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/64x64_classifier.pt" in str(info.value)


def test_load_fp16_policy(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(_tiny_state(), path)
    model = adm.load_checkpoint(TINY_FLAGS, path)  # use_fp16=None on CPU: float32
    assert model.dtype == torch.float32
    model = adm.load_checkpoint(TINY_FLAGS, path, use_fp16=True)
    assert model.input_blocks[0][0].weight.dtype == torch.float16
    assert model.time_embed[0].weight.dtype == torch.float32 and model.out[2].weight.dtype == torch.float32


def test_ddp_module_prefix_is_removed(tmp_path):
    """A DistributedDataParallel model saved whole has 'module.' on every key; it loads like the plain file."""
    state = _tiny_state(2)
    path = tmp_path / "ddp.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = adm.load_checkpoint(TINY_FLAGS, path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], atol=0, rtol=0)


@pytest.mark.parametrize("name", ["corrupt.pt", "corrupt.safetensors", "objects.pt"])
def test_unreadable_file_raises_checkpoint_error(tmp_path, name):
    import argparse

    import guidekit.errors

    path = tmp_path / name
    if name == "objects.pt":  # a training checkpoint that pickles more than tensors
        torch.save({"model": _tiny_state(), "args": argparse.Namespace(lr=1e-4)}, path)
    else:
        path.write_bytes(b"\x00 not a checkpoint")
    with pytest.raises(guidekit.errors.CheckpointError, match=f"cannot read .*{name}.*torch.save\\(model.state_dict"):
        adm.load_checkpoint(TINY_FLAGS, path)


def test_a_file_of_no_known_architecture_says_so():
    from guidekit_adm.matching import describe_matches

    msg = describe_matches({"foo.weight": (3, 3)})
    assert "matches no released ADM architecture" in msg and "%" not in msg

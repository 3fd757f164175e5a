"""ED-DPM's SiLU flavour: x·sigmoid(x) differs from nn.SiLU, and building from ED-DPM flags switches it."""

from __future__ import annotations

import guidekit_adm as adm
import pytest
import torch
from torch import nn

UNET_FLAGS = ("--image_size 64 --num_channels 32 --num_res_blocks 1 --channel_mult 1,1 --attention_resolutions 2 "
              "--num_head_channels 8 --learn_sigma True --class_cond True --resblock_updown True")
CLASSIFIER_FLAGS = ("--image_size 64 --classifier_width 32 --classifier_depth 1 --classifier_attention_resolutions 32 "
                    "--classifier_pool attention")


def _silus(model: nn.Module) -> tuple[int, int]:
    kinds = [type(m) for m in model.modules()]
    return kinds.count(nn.SiLU), kinds.count(adm.SigmoidSiLU)


def test_ed_dpm_silu_is_x_sigmoid_x_and_differs_from_nn_silu():
    x = torch.linspace(-30.0, 30.0, 600_001)
    ed, torch_silu = adm.SigmoidSiLU()(x), nn.SiLU()(x)
    assert torch.equal(ed, x * torch.sigmoid(x))
    diff = (ed - torch_silu).abs()
    assert diff.max().item() == pytest.approx(9.5367e-7, rel=1e-3)  # one ulp at |x| ≈ 8
    assert (diff > 0).float().mean().item() > 0.1  # not a corner case: many inputs round differently
    torch.testing.assert_close(ed, torch_silu, rtol=2e-7, atol=1e-6)


@pytest.mark.parametrize(("flags", "kind"), [(UNET_FLAGS, "unet"), (CLASSIFIER_FLAGS, "classifier")])
def test_the_flavor_picks_the_silu(flags, kind):
    gd = adm.create_model(adm.parse_flags(flags, kind=kind), device="meta")
    ed = adm.create_model(adm.parse_flags(flags, kind=kind, flavor="ed-dpm"), device="meta")
    count = _silus(gd)[0]
    assert count > 5 and _silus(gd) == (count, 0)
    assert _silus(ed) == (0, count)  # every SiLU switched, nothing else
    assert [(k, v.shape) for k, v in ed.state_dict().items()] == [(k, v.shape) for k, v in gd.state_dict().items()]
    forced = adm.create_model(adm.parse_flags(flags, kind=kind, flavor="ed-dpm"), device="meta", silu="guided-diffusion")
    assert _silus(forced) == (count, 0)


def test_switching_moves_the_output_of_a_unet(make_unet, unet_tiny):
    inputs = unet_tiny["x"], unet_tiny["timesteps"], unet_tiny["y"]
    model = make_unet()
    with torch.no_grad():
        gd = model(*inputs)
        ed = adm.set_silu(model, "ed-dpm")(*inputs)
        back = adm.set_silu(model, "guided-diffusion")(*inputs)
    assert torch.equal(back, gd)
    diff = (ed - gd).abs().max().item()
    # the reference pair (ED-DPM's UNet vs guided-diffusion's) differs by 3.3e-7 on these inputs
    assert 0 < diff < 4 * unet_tiny["ed_dpm_unet_max_abs_diff"]["legacy"]


def test_load_checkpoint_follows_the_flavor(tmp_path):
    config = adm.parse_flags(CLASSIFIER_FLAGS, kind="classifier", flavor="ed-dpm")
    path = tmp_path / "clf.pt"
    torch.save(adm.create_model(config).state_dict(), path)
    assert _silus(adm.load_checkpoint(config, path))[0] == 0
    assert _silus(adm.load_checkpoint(config, path, silu="guided-diffusion"))[1] == 0
    gd = adm.load_checkpoint(adm.parse_flags(CLASSIFIER_FLAGS, kind="classifier"), path)
    assert _silus(gd)[1] == 0
    assert _silus(adm.load_checkpoint(gd, path, silu="ed-dpm"))[0] == 0
    with pytest.raises(adm.ConfigError, match="silu must be one of"):
        adm.set_silu(gd, "swish")

"""Precision policies, input validation, upsampler adapter, other pools and options."""

from __future__ import annotations

import guidekit_adm as adm
import pytest
import torch


def test_fp16_runs_and_stays_close(unet_tiny, make_unet):
    ref = unet_tiny["out_legacy"]
    model = adm.convert_to_fp16(make_unet())
    assert model.input_blocks[1][0].in_layers[2].weight.dtype == torch.float16
    assert model.input_blocks[1][0].emb_layers[1].weight.dtype == torch.float32  # Linear stays fp32
    assert model.input_blocks[1][0].in_layers[0].weight.dtype == torch.float32  # GroupNorm stays fp32
    with torch.no_grad():
        out = model(unet_tiny["x"], unet_tiny["timesteps"], unet_tiny["y"])
    assert out.dtype == torch.float32  # cast back to x's dtype before the fp32 head
    torch.testing.assert_close(out, ref, atol=5e-2, rtol=5e-2)
    adm.convert_to_fp32(model)
    with torch.no_grad():
        out = model(unet_tiny["x"], unet_tiny["timesteps"], unet_tiny["y"])
    torch.testing.assert_close(out, ref, atol=1e-2, rtol=1e-2)  # weights were rounded to half once


def test_bf16_autocast(unet_tiny, encoder_tiny, make_unet, classifier_model):
    """bfloat16 via torch.autocast: finite and close to float32 (loose tolerance)."""
    model = make_unet()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(unet_tiny["x"], unet_tiny["timesteps"], unet_tiny["y"])
    assert torch.isfinite(out).all()
    ref = unet_tiny["out_legacy"]
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()
    x = encoder_tiny["x"].clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = classifier_model(x, encoder_tiny["timesteps"])
    (grad,) = torch.autograd.grad(torch.log_softmax(logits.float(), -1)[torch.arange(3), encoder_tiny["y"]].sum(), x)
    assert torch.isfinite(grad).all()
    assert (logits.float() - encoder_tiny["logits"]).abs().max() < 0.1 * encoder_tiny["logits"].abs().max()


def test_label_errors(unet_tiny, unet_model):
    x, t = unet_tiny["x"], unet_tiny["timesteps"]
    with pytest.raises(ValueError, match="class-conditional"):
        unet_model(x, t)
    with pytest.raises(ValueError, match="shape"):
        unet_model(x, t, y=torch.tensor([1]))
    uncond = adm.UNetModel(**{**unet_tiny["config"], "num_classes": None})
    with pytest.raises(ValueError, match="unconditional"):
        uncond(x, t, y=unet_tiny["y"])
    assert uncond.num_classes is None and unet_model.num_classes == 10
    assert unet_model.out_channels == 6 and unet_model.learn_sigma


def test_groupnorm_channels_must_divide_by_32():
    with pytest.raises(ValueError, match="divisible by 32"):
        adm.UNetModel(8, 3, 48, 3, 1, (), channel_mult=(1,))
    with pytest.raises(ValueError, match="divisible by 32"):
        adm.EncoderUNetModel(8, 3, 32, 10, 1, (), channel_mult=(1, 1.5))


def test_constructor_validation():
    with pytest.raises(ValueError, match="downsample factors"):
        adm.UNetModel(8, 3, 32, 3, 1, "32,16,8")
    with pytest.raises(ValueError, match="num_head_channels"):
        adm.EncoderUNetModel(8, 3, 32, 10, 1, (2,), channel_mult=(1, 1), pool="attention")
    with pytest.raises(ValueError, match="pool"):
        adm.EncoderUNetModel(8, 3, 32, 10, 1, (2,), channel_mult=(1, 1), pool="max")
    with pytest.raises(ValueError, match="num_head_channels 24"):
        adm.UNetModel(8, 3, 32, 3, 1, (1,), channel_mult=(1,), num_head_channels=24)


def test_scalar_timestep_broadcasts(unet_tiny, unet_model):
    with torch.no_grad():
        a = unet_model(unet_tiny["x"], 938, unet_tiny["y"])
        b = unet_model(unet_tiny["x"], torch.tensor([938, 938]), unet_tiny["y"])
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_superres_and_with_low_res():
    torch.manual_seed(0)
    model = adm.SuperResModel(16, 3, 32, 6, 1, (2,), channel_mult=(1, 1), num_classes=5, num_head_channels=8,
                              use_scale_shift_norm=True, resblock_updown=True).eval()
    assert model.in_channels == 6 and model.input_blocks[0][0].weight.shape == (32, 6, 3, 3)
    assert model.image_channels == 3 and model.learn_sigma
    x, low, t, y = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 8, 8), torch.tensor([5, 500]), torch.tensor([1, 4])
    with torch.no_grad():
        out = model(x, t, low_res=low, y=y)
        up = torch.nn.functional.interpolate(low, (16, 16), mode="bilinear", align_corners=False)
        direct = adm.UNetModel.forward(model, torch.cat([x, up], 1), t, y)
        wrapped = adm.with_low_res(model, low)
        assert wrapped.num_classes == 5 and wrapped.out_channels == 6
        via = wrapped(x, t, y=y)
    assert out.shape == (2, 6, 16, 16)
    torch.testing.assert_close(out, direct, atol=0, rtol=0)
    torch.testing.assert_close(via, out, atol=0, rtol=0)
    with pytest.raises(ValueError, match="with_low_res"):
        model(x, t, y=y)


@pytest.mark.parametrize("pool", ["adaptive", "attention", "spatial", "spatial_v2"])
def test_encoder_pools(pool):
    torch.manual_seed(0)
    model = adm.EncoderUNetModel(8, 3, 32, 7, 1, (2,), channel_mult=(1, 1), num_head_channels=8, pool=pool)
    out = model(torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2]))
    assert out.shape == (3, 7)
    keys = [k for k in model.state_dict() if k.startswith("out.")]
    expected = {
        "adaptive": ["out.0.weight", "out.0.bias", "out.3.weight", "out.3.bias"],
        "attention": ["out.0.weight", "out.0.bias", "out.2.positional_embedding", "out.2.qkv_proj.weight",
                      "out.2.qkv_proj.bias", "out.2.c_proj.weight", "out.2.c_proj.bias"],
        "spatial": ["out.0.weight", "out.0.bias", "out.2.weight", "out.2.bias"],
        "spatial_v2": ["out.0.weight", "out.0.bias", "out.1.weight", "out.1.bias", "out.3.weight", "out.3.bias"],
    }[pool]
    assert keys == expected
    if pool.startswith("spatial"):
        assert model.out[0].in_features == 32 * 4 + 32  # 4 input blocks + middle block


def test_plain_resampling_layers_and_dims():
    """resblock_updown=False uses Downsample(op)/Upsample(conv); dims=1 works too."""
    model = adm.UNetModel(16, 3, 32, 3, 1, (2,), channel_mult=(1, 2), num_head_channels=16)
    keys = model.state_dict()
    assert "input_blocks.2.0.op.weight" in keys and "output_blocks.1.2.conv.weight" in keys
    assert model(torch.randn(1, 3, 16, 16), torch.tensor([3])).shape == (1, 3, 16, 16)
    no_conv = adm.UNetModel(16, 3, 32, 3, 1, (), channel_mult=(1, 1), conv_resample=False)
    assert not any(".op." in k or ".conv." in k for k in no_conv.state_dict())
    assert no_conv(torch.randn(1, 3, 16, 16), torch.tensor([3])).shape == (1, 3, 16, 16)
    one_d = adm.UNetModel(16, 3, 32, 3, 1, (2,), channel_mult=(1, 1), dims=1, num_head_channels=8,
                          resblock_updown=True)
    assert one_d(torch.randn(2, 3, 16), torch.tensor([3, 4])).shape == (2, 3, 16)


def test_use_checkpoint_gives_the_same_gradients(unet_tiny):
    cfg = {**unet_tiny["config"], "dropout": 0.0}
    plain, ckpt = adm.UNetModel(**cfg), adm.UNetModel(**{**cfg, "use_checkpoint": True})
    plain.load_state_dict(unet_tiny["state_dict"])
    ckpt.load_state_dict(unet_tiny["state_dict"])
    grads = []
    for model in (plain, ckpt):
        x = unet_tiny["x"].clone().requires_grad_(True)
        model(x, unet_tiny["timesteps"], unet_tiny["y"]).square().sum().backward()
        grads.append((x.grad, model.input_blocks[1][0].in_layers[2].weight.grad))
    torch.testing.assert_close(grads[0], grads[1])


def test_dropout_release_is_deterministic_after_load_in_eval(tmp_path):
    model = adm.create_model("--image_size 8 --num_channels 32 --num_res_blocks 1 --channel_mult 1 "
                             "--attention_resolutions 8 --dropout 0.5")
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    loaded = adm.load_checkpoint("--image_size 8 --num_channels 32 --num_res_blocks 1 --channel_mult 1 "
                                 "--attention_resolutions 8 --dropout 0.5", path)
    x, t = torch.randn(1, 3, 8, 8), torch.tensor([10])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t), loaded(x, t), atol=0, rtol=0)


def test_classifier_num_head_channels_is_honoured_in_every_flavour():
    """It was an ED-DPM-only flag: given with the guided-diffusion flavour it was kept aside silently (64 used)."""
    flags = "--image_size 8 --classifier_width 32 --classifier_depth 1 --classifier_attention_resolutions 8 --channel_mult 1"
    for flavor in ("guided-diffusion", "ed-dpm"):
        config = adm.parse_flags(flags + " --classifier_num_head_channels 32", flavor=flavor)
        assert config.kwargs["num_head_channels"] == 32
    assert adm.parse_flags(flags).kwargs["num_head_channels"] == 64  # the reference default stays

"""Every released architecture against golden/manifests (built on the meta device)."""

from __future__ import annotations

import guidekit_adm as adm
import pytest
import torch

NAMES = [
    "64x64_diffusion", "128x128_diffusion", "256x256_diffusion", "256x256_diffusion_uncond", "512x512_diffusion",
    "64_256_upsampler", "128_512_upsampler", "lsun_bedroom", "lsun_cat", "lsun_horse", "lsun_horse_nodropout",
    "64x64_classifier", "128x128_classifier", "256x256_classifier", "512x512_classifier",
    "256x256_classifier+0.1ECT",
]
KINDS = {"UNetModel": "unet", "SuperResModel": "superres", "EncoderUNetModel": "classifier"}


def _jsonable(value):
    """Tuples → lists, recursively, so kwargs compare with the JSON manifest."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def test_release_table_is_complete(manifests):
    assert adm.release_names() == NAMES
    assert sorted(manifests) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_shapes_dtypes(name, manifests):
    m = manifests[name]
    sd = adm.create_model(name, device="meta").state_dict()
    # manifest dtype strings are "float32" (torch's str() gives "torch.float32")
    assert [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()] == [
        tuple(k[:3]) for k in m["keys"]
    ]
    assert len(sd) == m["num_tensors"]
    assert sum(v.numel() for v in sd.values()) == m["num_params"]


@pytest.mark.parametrize("name", NAMES)
def test_convert_to_fp16_matches_column_4(name, manifests):
    model = adm.convert_to_fp16(adm.create_model(name, device="meta"))
    half = {k for k, v in model.state_dict().items() if v.dtype == torch.float16}
    assert half == {k[0] for k in manifests[name]["keys"] if k[3]}
    assert model.dtype == torch.float16
    other = {v.dtype for k, v in model.state_dict().items() if k not in half}
    assert other == {torch.float32}


@pytest.mark.parametrize("name", NAMES)
def test_readme_flags_give_the_constructor_kwargs(name, manifests):
    m = manifests[name]
    flavor = "ed-dpm" if m["builder"].startswith("entropy_driven") else "guided-diffusion"
    config = adm.parse_flags(m["readme_flags"], flavor=flavor)
    assert KINDS[m["constructor"]["class"]] == config.kind
    assert m["constructor"]["args"] == []
    assert _jsonable(dict(config.kwargs)) == m["constructor"]["kwargs"]
    assert list(config.kwargs) == list(m["constructor"]["kwargs"])  # same order as the reference builder
    assert dict(config.args) == m["parsed_args"]
    assert config.extra == {}


@pytest.mark.parametrize("name", NAMES)
def test_release_record(name, manifests):
    m, r = manifests[name], adm.release(name)
    assert r.name == name and r.flags == m["readme_flags"] and r.checkpoint == m["checkpoint"]
    assert _jsonable(dict(r.kwargs)) == m["constructor"]["kwargs"]
    assert r.url.split(" ")[0] == m["url"].split(" ")[0]
    assert r.diffusion.steps == m["parsed_args"].get("diffusion_steps", 1000)
    assert r.diffusion.schedule == m["parsed_args"].get("noise_schedule", "linear")
    assert r.diffusion.learn_sigma == m["parsed_args"].get("learn_sigma", False)
    if "fp16_at_sampling" in m:
        assert r.fp16 == m["fp16_at_sampling"]
    hints = m.get("readme_sampling") or {}
    assert r.classifier == hints.get("classifier")
    assert r.classifier_scale == hints.get("classifier_scale")
    assert r.suggested_respacing == hints.get("timestep_respacing", "250")


@pytest.mark.parametrize("name", NAMES)
def test_meta_forward_block_shapes_and_attention_layout(name, manifests):
    m = manifests[name]
    if "example_input" not in m:  # the ECT manifest only lists keys (identical to 256x256_classifier)
        m = manifests["256x256_classifier"]
    model = adm.create_model(name, device="meta").eval()
    shapes: dict[str, list[int]] = {}
    for prefix in ("input_blocks", "output_blocks"):
        for i, block in enumerate(getattr(model, prefix, [])):
            block.register_forward_hook(lambda mod, inp, out, key=f"{prefix}.{i}": shapes.__setitem__(key, list(out.shape)))
    for key in ("middle_block", "out"):
        getattr(model, key).register_forward_hook(lambda mod, inp, out, key=key: shapes.__setitem__(key, list(out.shape)))
    inputs = {k: torch.empty(v, device="meta", dtype=torch.long if k in ("timesteps", "y") else torch.float32)
              for k, v in m["example_input"].items()}
    with torch.no_grad():
        out = model(**{"timesteps" if k == "timesteps" else k: v for k, v in inputs.items()})
    assert list(out.shape) == m["output_shape"]
    assert shapes == {k: v for k, v in m["block_output_shapes"]}
    modules = dict(model.named_modules())
    for layer in m["attention_layers"]:
        block = modules[layer["module"]]
        assert block.num_heads == layer["num_heads"], layer
        order = "new" if isinstance(block.attention, adm.QKVAttention) else "legacy"
        assert layer["order"].startswith(order), layer


def test_lsun_and_ect_share_key_sets():
    assert adm.release_shapes("lsun_bedroom") == adm.release_shapes("256x256_diffusion_uncond")
    assert adm.release_shapes("256x256_classifier+0.1ECT") == adm.release_shapes("256x256_classifier")


def test_unknown_release_lists_known_names():
    with pytest.raises(adm.UnknownReleaseError) as info:
        adm.create_model("256x256_diffusion_cond")
    assert "256x256_diffusion_uncond" in str(info.value) and "64x64_classifier" in str(info.value)
    with pytest.raises(ValueError):
        adm.release("nope")


def test_flag_string_builds_like_the_release():
    flags = adm.release("64x64_diffusion").flags
    model = adm.create_model(flags, device="meta")
    assert adm.release_shapes("64x64_diffusion") == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert isinstance(model, adm.UNetModel) and model.num_classes == 1000 and model.learn_sigma


def test_flag_parser_details():
    # README sampling command: model + classifier + sample flags together; kind is guessed as the model
    config = adm.parse_flags(
        adm.release("256x256_diffusion").flags
        + " --classifier_scale 1.0 --classifier_path models/256x256_classifier.pt --timestep_respacing ddim25"
        " --use_ddim True --classifier_depth 2"
    )
    assert config.kind == "unet" and config.diffusion.respacing == "ddim25"
    assert config.extra == {"classifier_scale": 1.0, "classifier_path": "models/256x256_classifier.pt",
                            "use_ddim": True, "classifier_depth": 2}
    assert adm.parse_flags("--image_size 128 --classifier_depth 4").kind == "classifier"
    assert adm.parse_flags("--large_size 64 --small_size 16 --num_channels 64").kind == "superres"
    assert adm.parse_flags(["--image_size=64", "--learn-sigma", "yes"]).kwargs["out_channels"] == 6
    defaults = adm.parse_flags("")  # model_and_diffusion_defaults
    assert defaults.kwargs["attention_resolutions"] == (4, 8) and defaults.kwargs["use_scale_shift_norm"] is True
    assert defaults.kwargs["channel_mult"] == (1, 2, 3, 4) and defaults.kwargs["num_classes"] is None
    with pytest.raises(adm.FlagError, match="unknown flag --bogus"):
        adm.parse_flags("--bogus 1")
    with pytest.raises(adm.FlagError, match="boolean"):
        adm.parse_flags("--class_cond maybe")
    with pytest.raises(adm.FlagError, match="int"):
        adm.parse_flags("--channel_mult 0.5,1")
    with pytest.raises(adm.FlagError, match="unsupported"):
        adm.parse_flags("--image_size 48")
    with pytest.raises(adm.FlagError, match="no value"):
        adm.parse_flags("--class_cond")


@pytest.mark.parametrize(("flags", "match"), [("--noise_schedule foo", "--noise_schedule must be linear or cosine"),
                                              ("--diffusion_steps 0", "--diffusion_steps must be at least 1")])
def test_bad_diffusion_flags_raise_flag_error(flags, match):
    """Diffusion flags are checked like the others: a FlagError naming the flag, not attrs' raw ValueError."""
    with pytest.raises(adm.FlagError, match=match):
        adm.parse_flags(flags)


def test_overrides_and_bad_overrides():
    model = adm.create_model("64x64_classifier", device="meta", out_channels=10)
    assert model.out.state_dict()["2.c_proj.weight"].shape == (10, 512, 1)
    with pytest.raises(adm.ConfigError, match="num_classes"):
        adm.create_model("64x64_classifier", device="meta", num_classes=10)

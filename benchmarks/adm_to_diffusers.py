"""Convert a guidekit-adm UNetModel (the bundled mnist16 UNets) into a diffusers ``UNet2DModel``, exactly.

ADM's UNet and diffusers' UNet2DModel share their structure (ResNet blocks with scale-shift time
conditioning, strided-conv downsampling, nearest-neighbour upsampling, skip concatenation, attention at
the lowest resolution and in the middle, the [cos, sin] timestep embedding); only the names differ, and
ADM's fused qkv 1x1 convolution ("legacy" head order: q, k, v per head) becomes three linear layers.
:func:`convert` checks the converted network against the original on random inputs.

    python benchmarks/adm_to_diffusers.py mnist16-unet OUT_FOLDER     # save_pretrained layout
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

import guidekit as gk


def diffusers_config(adm: Any) -> dict[str, Any]:
    """UNet2DModel keyword arguments for the bundled mnist16 UNets (channel_mult 1,2,2, attention at 4x4)."""
    state = adm.state_dict()
    ch = state["input_blocks.0.0.weight"].shape[0]
    return dict(sample_size=16, in_channels=state["input_blocks.0.0.weight"].shape[1],
                out_channels=state["out.2.weight"].shape[0], block_out_channels=(ch, 2 * ch, 2 * ch),
                layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), resnet_time_scale_shift="scale_shift",
                attention_head_dim=32, norm_num_groups=32, attn_norm_num_groups=32, norm_eps=1e-5,
                flip_sin_to_cos=True, freq_shift=0, downsample_padding=1,
                num_class_embeds=state["label_emb.weight"].shape[0] if "label_emb.weight" in state else None)


def _resnet(src: str, dst: str) -> dict[str, str]:
    names = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
             "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
    return {f"{src}.{a}.{p}": f"{dst}.{b}.{p}" for a, b in names.items() for p in ("weight", "bias")}


def _attention(state: dict[str, torch.Tensor], src: str, dst: str, head_dim: int) -> dict[str, torch.Tensor]:
    qkv_w, qkv_b = state[f"{src}.qkv.weight"][..., 0], state[f"{src}.qkv.bias"]
    c = qkv_w.shape[1]
    heads = c // head_dim
    w = qkv_w.view(heads, 3, head_dim, c)
    b = qkv_b.view(heads, 3, head_dim)
    out = {f"{dst}.group_norm.weight": state[f"{src}.norm.weight"], f"{dst}.group_norm.bias": state[f"{src}.norm.bias"],
           f"{dst}.to_out.0.weight": state[f"{src}.proj_out.weight"][..., 0],
           f"{dst}.to_out.0.bias": state[f"{src}.proj_out.bias"]}
    for i, name in enumerate(("to_q", "to_k", "to_v")):
        out[f"{dst}.{name}.weight"] = w[:, i].reshape(c, c)
        out[f"{dst}.{name}.bias"] = b[:, i].reshape(c)
    return out


def convert(adm: torch.nn.Module, atol: float = 1e-4) -> Any:
    """The diffusers UNet2DModel computing what ``adm`` computes (checked to ``atol`` on random inputs)."""
    from diffusers import UNet2DModel

    state = adm.state_dict()
    unet = UNet2DModel(**diffusers_config(adm)).eval()
    names = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
             "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out", "label_emb": "class_embedding",
             "input_blocks.2.0.op": "down_blocks.0.downsamplers.0.conv",
             "input_blocks.4.0.op": "down_blocks.1.downsamplers.0.conv",
             "output_blocks.1.2.conv": "up_blocks.0.upsamplers.0.conv",
             "output_blocks.3.1.conv": "up_blocks.1.upsamplers.0.conv"}
    mapping = {f"{a}.{p}": f"{b}.{p}" for a, b in names.items() for p in ("weight", "bias")}
    for i, src in enumerate(("input_blocks.1.0", "input_blocks.3.0", "input_blocks.5.0")):
        mapping.update(_resnet(src, f"down_blocks.{i}.resnets.0"))
    mapping.update(_resnet("middle_block.0", "mid_block.resnets.0"))
    mapping.update(_resnet("middle_block.2", "mid_block.resnets.1"))
    for j in range(6):
        mapping.update(_resnet(f"output_blocks.{j}.0", f"up_blocks.{j // 2}.resnets.{j % 2}"))
    new = {mapping[k]: v for k, v in state.items() if k in mapping}
    new.update(_attention(state, "input_blocks.5.1", "down_blocks.2.attentions.0", 32))
    new.update(_attention(state, "middle_block.1", "mid_block.attentions.0", 32))
    for j in (0, 1):
        new.update(_attention(state, f"output_blocks.{j}.1", f"up_blocks.0.attentions.{j}", 32))
    unconverted = sorted(k for k in state if k not in mapping and ".qkv." not in k and ".proj_out." not in k
                         and not k.endswith((".norm.weight", ".norm.bias")))
    missing, unexpected = unet.load_state_dict(new, strict=False)
    if unconverted or missing or unexpected:
        raise RuntimeError(f"conversion incomplete: unconverted {unconverted}, missing {missing}, unexpected {unexpected}")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, unet.config.in_channels, 16, 16, generator=gen)
    t = torch.tensor([0, 250, 600, 999])
    y = torch.arange(4) if unet.config.num_class_embeds else None
    with torch.no_grad():
        ref = adm(x, t, y=y) if y is not None else adm(x, t)
        got = unet(x, t, class_labels=y).sample
    err = float((ref - got).abs().max())
    if err > atol:
        raise RuntimeError(f"the converted UNet differs from the ADM one by {err:.3g} (> {atol})")
    unet.conversion_error = err
    return unet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("name", help="a bundled ADM network, e.g. mnist16-unet")
    p.add_argument("out", help="folder to save_pretrained the UNet2DModel and its DDPMScheduler into")
    args = p.parse_args()
    from diffusers import DDPMScheduler

    adm = gk.create("network", args.name)
    unet = convert(adm)
    unet.save_pretrained(args.out)
    learned = unet.config.out_channels == 2 * unet.config.in_channels
    DDPMScheduler(variance_type="learned_range" if learned else "fixed_large").save_pretrained(args.out)
    print(f"{args.name} -> {args.out} (max abs difference {unet.conversion_error:.2e})")


if __name__ == "__main__":
    main()

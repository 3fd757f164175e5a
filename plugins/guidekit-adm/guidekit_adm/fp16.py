"""Reference mixed precision: half-precision torso convolutions (notes §1.5 "fp16").

``convert_to_fp16`` converts only the Conv1d/2d/3d weights and biases inside ``input_blocks``,
``middle_block`` and ``output_blocks``; Linear layers, GroupNorms, the label embedding and the
``out`` head stay float32, and the model casts its input to float16 for the torso only.
Calling ``.half()`` on the whole module is *not* equivalent.

bfloat16 has no reference policy: run an fp32 model under
``torch.autocast(device_type, dtype=torch.bfloat16)`` instead (GroupNorm and the attention
softmax still compute in float32).
"""

from __future__ import annotations

import torch
from torch import nn

TORSO = ("input_blocks", "middle_block", "output_blocks")
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _cast_convs(module: nn.Module, dtype: torch.dtype) -> None:
    for layer in module.modules():
        if isinstance(layer, _CONVS):
            layer.weight.data = layer.weight.data.to(dtype)
            if layer.bias is not None:
                layer.bias.data = layer.bias.data.to(dtype)


def _set_precision(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    parts = [getattr(model, name) for name in TORSO if isinstance(getattr(model, name, None), nn.Module)]
    if not parts:
        raise TypeError(f"{type(model).__name__} has none of {TORSO}; is it an ADM network?")
    for part in parts:
        _cast_convs(part, dtype)
    model.dtype = dtype
    model.use_fp16 = dtype == torch.float16
    return model


def convert_to_fp16(model: nn.Module) -> nn.Module:
    """Convert the torso convolutions to float16 in place (as the reference); return the model."""
    return _set_precision(model, torch.float16)


def convert_to_fp32(model: nn.Module) -> nn.Module:
    """Undo :func:`convert_to_fp16` in place; return the model."""
    return _set_precision(model, torch.float32)

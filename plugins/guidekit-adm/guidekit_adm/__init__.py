"""guidekit-adm: the ADM (guided-diffusion) networks for guidekit.

Rebuilds ``UNetModel``, ``SuperResModel`` and ``EncoderUNetModel`` with the reference state-dict
layout, so the 15 guided-diffusion checkpoints and ED-DPM's ECT classifier load with
``strict=True``::

    import guidekit_adm as adm
    model = adm.load_checkpoint("256x256_diffusion_uncond", "256x256_diffusion_uncond.pt")
    classifier = adm.load_checkpoint("256x256_classifier", "256x256_classifier.pt")
    adm.release("256x256_diffusion_uncond").classifier_scale   # README suggestion: 10.0

Precision: ``convert_to_fp16(model)`` is the reference policy (torso convs in half). For bfloat16,
run the float32 model under ``torch.autocast(device_type, dtype=torch.bfloat16)``.

ED-DPM compatibility: ED-DPM's code computes SiLU as ``x * sigmoid(x)`` (:class:`SigmoidSiLU`), a
few 1e-7 away from ``nn.SiLU``. Networks built from ED-DPM flags or releases use it by default; to
rerun ED-DPM's sampling exactly, switch the guided-diffusion UNet too: ``set_silu(model, "ed-dpm")``.
"""

from __future__ import annotations

from .adapters import LowResConditioned, with_low_res
from .attention import AttentionBlock, AttentionPool2d, QKVAttention, QKVAttentionLegacy
from .blocks import Downsample, ResBlock, TimestepBlock, TimestepEmbedSequential, Upsample
from .checkpoint import load_checkpoint, read_state_dict
from .encoder import EncoderUNetModel
from .errors import (
    CheckpointDtypeWarning,
    CheckpointMismatchError,
    ConfigError,
    FlagError,
    LabelError,
    UnknownReleaseError,
)
from .factory import create_model, resolve_config
from .flags import DiffusionSettings, ModelConfig, parse_flags
from .fp16 import convert_to_fp16, convert_to_fp32
from .matching import closest_releases, matching_releases, release_shapes
from .nn import SILU_FLAVORS, GroupNorm32, SigmoidSiLU, set_silu, timestep_embedding
from .releases import RELEASES, Release, release, release_names
from .unet import SuperResModel, UNetModel

__version__ = "0.1.0"

__all__ = [
    "RELEASES", "SILU_FLAVORS", "AttentionBlock", "AttentionPool2d", "CheckpointDtypeWarning", "CheckpointMismatchError",
    "ConfigError", "DiffusionSettings", "Downsample", "EncoderUNetModel", "FlagError", "GroupNorm32",
    "LabelError", "LowResConditioned", "ModelConfig", "QKVAttention", "QKVAttentionLegacy", "Release",
    "ResBlock", "SigmoidSiLU", "SuperResModel", "TimestepBlock", "TimestepEmbedSequential", "UNetModel", "UnknownReleaseError",
    "Upsample", "closest_releases", "convert_to_fp16", "convert_to_fp32", "create_model", "load_checkpoint",
    "matching_releases", "parse_flags", "read_state_dict", "release", "release_names", "release_shapes",
    "resolve_config", "set_silu", "timestep_embedding", "with_low_res",
]

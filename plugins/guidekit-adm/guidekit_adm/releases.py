"""The 16 released checkpoints (notes §1.9): README flags, sampling hints, download addresses.

Every record is derived from its README flag string by :func:`guidekit_adm.parse_flags`, so the
constructor kwargs, diffusion settings and fp16 flag follow exactly the reference builders.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs

from .errors import UnknownReleaseError
from .flags import DiffusionSettings, ModelConfig, parse_flags

_GD_URL = "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/{name}.pt"
_ED_URL = "https://drive.google.com/drive/folders/1xldlyBYS7PSrC4tZxSPne9dpIW06QC51 (ED-DPM README)"


@attrs.frozen(kw_only=True)
class Release(ModelConfig):
    """A released checkpoint: its architecture plus the README's sampling suggestions."""

    name: str
    flags: str
    checkpoint: str
    url: str
    classifier: str | None = None  #: the classifier the README pairs it with
    classifier_scale: float | None = None  #: the README's suggested classifier_scale
    suggested_respacing: str = "250"  #: the README's --timestep_respacing (SAMPLE_FLAGS)


def _release(
    name: str,
    flags: str,
    *,
    kind: str,
    flavor: str = "guided-diffusion",
    classifier: str | None = None,
    classifier_scale: float | None = None,
    suggested_respacing: str = "250",
) -> Release:
    config = parse_flags(flags, kind=kind, flavor=flavor)
    return Release(
        **attrs.asdict(config, recurse=False),
        name=name,
        flags=flags,
        checkpoint=f"{name}.pt",
        url=_ED_URL if flavor == "ed-dpm" else _GD_URL.format(name=name),
        classifier=classifier,
        classifier_scale=classifier_scale,
        suggested_respacing=suggested_respacing,
    )


#: name → (README flags, kind, flavor, paired classifier, classifier_scale, README respacing)
_TABLE: tuple[tuple[str, str, str, str, str | None, float | None, str], ...] = (
    (
        "64x64_diffusion",
        "--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --dropout 0.1 "
        "--image_size 64 --learn_sigma True --noise_schedule cosine --num_channels 192 "
        "--num_head_channels 64 --num_res_blocks 3 --resblock_updown True --use_new_attention_order "
        "True --use_fp16 True --use_scale_shift_norm True",
        "unet", "guided-diffusion", "64x64_classifier", 1.0, "250",
    ),
    (
        "128x128_diffusion",
        "--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --image_size 128 "
        "--learn_sigma True --noise_schedule linear --num_channels 256 --num_heads 4 "
        "--num_res_blocks 2 --resblock_updown True --use_fp16 True --use_scale_shift_norm True",
        "unet", "guided-diffusion", "128x128_classifier", 0.5, "250",
    ),
    (
        "256x256_diffusion",
        "--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --image_size 256 "
        "--learn_sigma True --noise_schedule linear --num_channels 256 --num_head_channels 64 "
        "--num_res_blocks 2 --resblock_updown True --use_fp16 True --use_scale_shift_norm True",
        "unet", "guided-diffusion", "256x256_classifier", 1.0, "250",
    ),
    (
        "256x256_diffusion_uncond",
        "--attention_resolutions 32,16,8 --class_cond False --diffusion_steps 1000 --image_size 256 "
        "--learn_sigma True --noise_schedule linear --num_channels 256 --num_head_channels 64 "
        "--num_res_blocks 2 --resblock_updown True --use_fp16 True --use_scale_shift_norm True",
        "unet", "guided-diffusion", "256x256_classifier", 10.0, "250",
    ),
    (
        "512x512_diffusion",
        "--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --image_size 512 "
        "--learn_sigma True --noise_schedule linear --num_channels 256 --num_head_channels 64 "
        "--num_res_blocks 2 --resblock_updown True --use_fp16 False --use_scale_shift_norm True",
        "unet", "guided-diffusion", "512x512_classifier", 4.0, "250",
    ),
    (
        "64_256_upsampler",
        "--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --large_size 256 "
        "--small_size 64 --learn_sigma True --noise_schedule linear --num_channels 192 --num_heads "
        "4 --num_res_blocks 2 --resblock_updown True --use_fp16 True --use_scale_shift_norm True",
        "superres", "guided-diffusion", None, None, "250",
    ),
    (
        "128_512_upsampler",
        "--attention_resolutions 32,16 --class_cond True --diffusion_steps 1000 --large_size 512 "
        "--small_size 128 --learn_sigma True --noise_schedule linear --num_channels 192 "
        "--num_head_channels 64 --num_res_blocks 2 --resblock_updown True --use_fp16 True "
        "--use_scale_shift_norm True",
        "superres", "guided-diffusion", None, None, "250",
    ),
    (
        "lsun_bedroom",
        "--attention_resolutions 32,16,8 --class_cond False --diffusion_steps 1000 --dropout 0.1 "
        "--image_size 256 --learn_sigma True --noise_schedule linear --num_channels 256 "
        "--num_head_channels 64 --num_res_blocks 2 --resblock_updown True --use_fp16 True "
        "--use_scale_shift_norm True",
        "unet", "guided-diffusion", None, None, "1000",
    ),
    (
        "lsun_cat",
        "--attention_resolutions 32,16,8 --class_cond False --diffusion_steps 1000 --dropout 0.1 "
        "--image_size 256 --learn_sigma True --noise_schedule linear --num_channels 256 "
        "--num_head_channels 64 --num_res_blocks 2 --resblock_updown True --use_fp16 True "
        "--use_scale_shift_norm True",
        "unet", "guided-diffusion", None, None, "1000",
    ),
    (
        "lsun_horse",
        "--attention_resolutions 32,16,8 --class_cond False --diffusion_steps 1000 --dropout 0.1 "
        "--image_size 256 --learn_sigma True --noise_schedule linear --num_channels 256 "
        "--num_head_channels 64 --num_res_blocks 2 --resblock_updown True --use_fp16 True "
        "--use_scale_shift_norm True",
        "unet", "guided-diffusion", None, None, "1000",
    ),
    (
        "lsun_horse_nodropout",
        "--attention_resolutions 32,16,8 --class_cond False --diffusion_steps 1000 --dropout 0.0 "
        "--image_size 256 --learn_sigma True --noise_schedule linear --num_channels 256 "
        "--num_head_channels 64 --num_res_blocks 2 --resblock_updown True --use_fp16 True "
        "--use_scale_shift_norm True",
        "unet", "guided-diffusion", None, None, "1000",
    ),
    (
        "64x64_classifier",
        "--image_size 64 --classifier_depth 4 --classifier_width 128 "
        "--classifier_attention_resolutions 32,16,8 --classifier_use_scale_shift_norm True "
        "--classifier_resblock_updown True --classifier_pool attention",
        "classifier", "guided-diffusion", None, None, "250",
    ),
    (
        "128x128_classifier",
        "--image_size 128 --classifier_depth 2 --classifier_width 128 "
        "--classifier_attention_resolutions 32,16,8 --classifier_use_scale_shift_norm True "
        "--classifier_resblock_updown True --classifier_pool attention",
        "classifier", "guided-diffusion", None, None, "250",
    ),
    (
        "256x256_classifier",
        "--image_size 256 --classifier_depth 2 --classifier_width 128 "
        "--classifier_attention_resolutions 32,16,8 --classifier_use_scale_shift_norm True "
        "--classifier_resblock_updown True --classifier_pool attention",
        "classifier", "guided-diffusion", None, None, "250",
    ),
    (
        "512x512_classifier",
        "--image_size 512 --classifier_depth 2 --classifier_width 128 "
        "--classifier_attention_resolutions 32,16,8 --classifier_use_scale_shift_norm True "
        "--classifier_resblock_updown True --classifier_pool attention",
        "classifier", "guided-diffusion", None, None, "250",
    ),
    (
        "256x256_classifier+0.1ECT",
        "--image_size 256 --classifier_attention_resolutions 32,16,8 --classifier_depth 2 "
        "--classifier_width 128 --classifier_pool attention --classifier_resblock_updown True "
        "--classifier_use_scale_shift_norm True --classifier_use_fp16 True",
        "classifier", "ed-dpm", None, None, "250",
    ),
)


#: name → :class:`Release`, in the README's order
RELEASES: Mapping[str, Release] = MappingProxyType(
    {
        name: _release(name, flags, kind=kind, flavor=flavor, classifier=classifier,
                       classifier_scale=scale, suggested_respacing=respacing)
        for name, flags, kind, flavor, classifier, scale, respacing in _TABLE
    }
)


def release_names() -> list[str]:
    """Names of every released checkpoint."""
    return list(RELEASES)


def release(name: str) -> Release:
    """The :class:`Release` record of a released checkpoint name (``.pt`` suffix allowed)."""
    key = name[:-3] if name.endswith(".pt") else name
    try:
        return RELEASES[key]
    except KeyError:
        raise UnknownReleaseError(
            f"unknown ADM release {name!r}; known releases: {', '.join(RELEASES)} "
            "(or pass a reference flag string such as '--image_size 64 --num_channels 192 ...')"
        ) from None


__all__ = ["RELEASES", "DiffusionSettings", "Release", "release", "release_names"]

"""guidekit-adm's side of ``gk.load_network``: ADM release names and reference flag strings.

``params`` are overrides of the constructor arguments (``dropout=0.1``, ``model_channels=64``) plus three
loading options: ``use_fp16`` (the reference torso-conv fp16; default: the release README's setting on
CUDA, float32 on the fast path), ``class_cond`` (1000 classes or none) and ``silu`` (see :func:`set_silu`).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from guidekit.hookspecs import hookimpl

from .checkpoint import load_checkpoint
from .errors import ConfigError
from .factory import CLASSES, as_device, build, create_model, model_card, resolve_config
from .flags import ModelConfig
from .fp16 import convert_to_fp16
from .releases import RELEASES

#: ModelConfig.kind -> the role a card names
ROLES = {"unet": "diffusion", "superres": "upsampler", "classifier": "classifier"}
#: loading options among the params, with what they set
OPTIONS = ("use_fp16", "class_cond", "silu")


def owns(spec: str) -> bool:
    """Whether ``spec`` is an ADM flag string or a release name (``.pt`` suffix allowed)."""
    text = spec.strip()
    return text.startswith("--") or text.removesuffix(".pt") in RELEASES


def _plain(value: Any) -> Any:
    """Tuples as lists, so a card survives a JSON round trip unchanged."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def card_of(config: ModelConfig, spec: str, random_weights: bool) -> dict[str, Any]:
    """What ``guidekit sample`` and ``train-*`` read: role, sizes, constructor arguments, process, suggestions."""
    kwargs = config.kwargs
    card: dict[str, Any] = {
        **model_card(config), "role": ROLES[config.kind], "architecture": f"guidekit-adm {CLASSES[config.kind].__name__}",
        "constructor": {k: _plain(v) for k, v in sorted(kwargs.items())},
        "image_size": kwargs.get("image_size"), "channels": kwargs.get("in_channels", 3),
    }
    if spec.strip().startswith("--"):
        card["flags"] = spec
    if getattr(config, "suggested_respacing", None):  # a release: its README's sampling suggestions
        card["suggested"] = {"respacing": config.suggested_respacing, "classifier_scale": config.classifier_scale}
    if random_weights:
        card["random_weights"] = True
    return card


def with_params(config: ModelConfig, params: dict[str, Any]) -> ModelConfig:
    """The config with constructor overrides and ``class_cond`` applied (a wrong key names the accepted ones)."""
    kwargs = dict(config.kwargs)
    for key, value in params.items():  # a value of another type is named here, not deep inside the constructor
        old = kwargs.get(key)
        number = isinstance(old, (int, float)) and not isinstance(old, bool)
        if number and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{key}={value!r} is not a number; {key} takes a number such as {old!r}")
    if params.get("class_cond") is not None:
        kwargs["num_classes"] = 1000 if params["class_cond"] else None
    kwargs.update({k: v for k, v in params.items() if k not in OPTIONS})
    if kwargs != dict(config.kwargs):
        try:  # an unknown or unbuildable argument is reported now, naming the accepted ones
            build(config.kind, {**kwargs, "use_fp16": False}, device="meta")
        except ConfigError as exc:
            raise ConfigError(f"{exc} (and the loading options {', '.join(OPTIONS)})") from None
        config = attrs.evolve(config, kwargs=kwargs)
    return config


@hookimpl
def guidekit_resolve_network(spec: str, path: str | None, device: str, params: dict[str, Any],
                             fast: bool) -> torch.nn.Module | None:
    """ADM release names (64x64_diffusion, 256x256_classifier ...; a .pt suffix is allowed) and reference flag strings
    ('--image_size 64 --num_channels 192 ...')."""
    if not owns(spec):
        return None
    config = with_params(resolve_config(spec.strip()), params)
    use_fp16 = params.get("use_fp16", False if fast else None)
    silu = params.get("silu")
    target = as_device(device)
    if path is not None and target.type != "meta":
        net = load_checkpoint(config, path, device=target, use_fp16=use_fp16, silu=silu)
    else:
        net = create_model(config, device=target, silu=silu)  # random weights; with a path on "meta", none read
        net.adm_config = config
        if use_fp16 or (use_fp16 is None and config.fp16 and target.type == "cuda"):
            convert_to_fp16(net)
    net.card = card_of(config, spec, random_weights=path is None)
    return net.eval()

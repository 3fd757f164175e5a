"""The sampling loop: seeding, labels, steps, checks, callbacks, progress (paper Algorithm 1).

The loop calls the model itself only for unguided sampling; a guidance owns the network calls of
its steps (``guidance.guide(model, x_t, t, y, context)``, see :mod:`guidekit.guidance`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import torch

from .checks import check_flag, check_positive_int, is_integer
from .devices import as_device
from .diffusion import GaussianDiffusion, check_diffusion
from .errors import InvalidParameterError, LabelError, NonFiniteError
from .guidance import Guidance, GuidedOutput, StepContext, as_guidance, call_model, check_labels
from .guidance.base import check_classifier_fits
from .progress import progress as progress_bar
from .steps import StepInfo, start_sampler

__all__ = ["StepInfo", "sample", "sample_generator"]


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The generator of sample ``index``: independent of batch size and process count."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _is_class_conditional(model: Any) -> bool:
    return getattr(model, "num_classes", None) is not None


def _draw_labels(gens: list[torch.Generator], num_classes: int) -> torch.Tensor:
    return torch.cat([torch.randint(0, num_classes, (1,), generator=g) for g in gens])


def _randn(gens: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g) for g in gens])


def _check_finite(x: torch.Tensor, what: str, step: int, t: int, offset: int) -> None:
    bad = ~torch.isfinite(x.flatten(1)).all(dim=1)
    if bool(bad.any()):
        idx = (torch.nonzero(bad).flatten() + offset).tolist()
        raise NonFiniteError(
            f"non-finite {what} at step {step} (t={t}) for samples {idx[:16]}. Lower the guidance scale, "
            f"cap it (max_scale=...), or run the networks in float32."
        )


def _check_arguments(model: Any, diffusion: Any, shape: Any, seed: Any, offset: Any, callback: Any) -> None:
    """Named errors for arguments of :func:`sample` that would otherwise fail deep inside torch."""
    if not callable(model):
        raise InvalidParameterError(f"model must be callable as model(x_t, t), got {type(model).__name__}")
    check_diffusion(diffusion)
    dims = tuple(shape) if isinstance(shape, (tuple, list, torch.Size)) else ()
    if len(dims) < 2 or not all(is_integer(n, 1) for n in dims):
        raise InvalidParameterError(f"shape must be (B, C, ...) of positive integers, got {shape}")
    for name, value in (("seed", seed), ("sample_offset", offset)):
        if not is_integer(value, 0):
            raise InvalidParameterError(f"{name} must be a non-negative integer, got {value!r}")
    if callback is not None and not callable(callback):
        raise InvalidParameterError(f"callback must be callable with a StepInfo, got {type(callback).__name__}")
    channels = getattr(model, "image_channels", None)  # ADM networks: the channels x_t must have
    if isinstance(channels, int) and dims and dims[1] != channels:
        raise InvalidParameterError(f"shape {tuple(dims)} asks for {dims[1]}-channel images but the model denoises "
                                    f"{channels}-channel ones: use shape (B, {channels}, H, W)")


def _check_card(model: Any, diffusion: GaussianDiffusion) -> None:
    """The process contradicts no setting of the model's ``card["diffusion"]`` (steps, schedule, learn_sigma ...)."""
    card = getattr(model, "card", None)
    settings = card.get("diffusion") if isinstance(card, dict) else None
    if not isinstance(settings, dict):
        return
    ours = attrs.asdict(diffusion.config)
    differ = [f"{k}={ours[k]!r} (the card: {v!r})" for k, v in sorted(settings.items())
              if k in ours and k != "respacing" and ours[k] != v]
    if differ:
        raise InvalidParameterError(
            f"the diffusion process contradicts the model's card['diffusion'], the process it was trained with: "
            f"{', '.join(differ)}. Use gk.GaussianDiffusion.from_model(model, respacing=...) (the respacing is the only "
            "free choice); if the card itself is wrong (a network built from flags that do not match its weights), "
            "correct model.card['diffusion']")


def _check_options(num_classes: Any, flags: dict[str, Any]) -> None:
    """``num_classes`` a positive integer (or None); the on/off options real booleans ("no" is truthy)."""
    if num_classes is not None:
        check_positive_int(num_classes, "num_classes", " (the labels drawn are 0..K-1)")
    for name, value in flags.items():
        check_flag(bool(value) if isinstance(value, np.bool_) else value, name)


def sample(
    model: Callable[..., torch.Tensor],
    diffusion: GaussianDiffusion,
    shape: tuple[int, ...],
    *,
    sampler: Any = "ddim",
    guidance: Guidance | None = None,
    y: torch.Tensor | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    sample_offset: int = 0,
    clip_denoised: bool = True,
    callback: Callable[[StepInfo], None] | None = None,
    progress: bool = True,
    device: torch.device | str | None = None,
    class_cond: bool | None = None,
    check_finite: bool = True,
    return_labels: bool = False,
    fast: Any = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
    """Draw samples of ``shape`` (B, C, H, W) from ``model`` under ``diffusion``.

    ``model(x_t, t)`` (or ``model(x_t, t, y=y)`` when class-conditional) returns eps (‖ v with
    learned sigma) at *original* timesteps t. Sample i is drawn from its own generator seeded by
    (seed, sample_offset + i), so it is the same whatever the batch size or number of processes.
    Labels not given are drawn per sample before x_T, as the reference scripts do.
    ``guidance``: any guidance component (``gk.create("guidance", name, ...)``); it makes the
    network calls of each step. Without one the loop calls the model itself.
    ``fast``: ``True`` or a :class:`guidekit.fast.FastConfig` runs the fast path (autocast, channels_last,
    torch.compile on CUDA, no host synchronisation in the loop); off by default.
    """
    _check_arguments(model, diffusion, shape, seed, sample_offset, callback)
    _check_card(model, diffusion)
    _check_options(num_classes, {"clip_denoised": clip_denoised, "return_labels": return_labels,
                                 "check_finite": check_finite})
    if isinstance(sampler, str):
        from .registry import create

        sampler = create("sampler", sampler)
    if isinstance(sampler, type) or not hasattr(sampler, "step"):
        raise InvalidParameterError(f"sampler must be a sampler object with a step(...) method, or its name "
                                    f"('ddim', 'ddpm'), got {sampler!r}" + (": call it, e.g. DDIMSampler()"
                                                                             if isinstance(sampler, type) else ""))
    if device is None:
        params = getattr(model, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        device = first.device if first is not None else torch.device("cpu")
    device = as_device(device, what="device")
    batch = shape[0]
    class_cond = _is_class_conditional(model) if class_cond is None else class_cond
    gens = [sample_generator(seed, sample_offset + i) for i in range(batch)]
    if guidance is not None:
        guidance = as_guidance(guidance)
        check_classifier_fits(getattr(guidance, "classifier", None), tuple(shape))

    needs_labels = class_cond or guidance is not None
    if y is None and needs_labels:
        labels_of = getattr(guidance, "num_labels", None)  # e.g. CFG: the labels below the null label
        k = num_classes or (labels_of(model) if labels_of is not None else None) or getattr(model, "num_classes", None)
        if k is None:
            raise LabelError("guidance needs labels: pass y=... (one per sample) or num_classes=K to draw them")
        y = _draw_labels(gens, int(k))
    if y is not None:
        k = (getattr(model, "num_classes", None) or num_classes) if class_cond else num_classes
        y = check_labels(y, batch, k, "model").to(device)

    if fast:
        from .fast import as_fast_config, sample_loop

        x = sample_loop(model, diffusion, tuple(shape), config=as_fast_config(fast), sampler=sampler, guidance=guidance,
                        y=y, gens=gens, class_cond=class_cond, sample_offset=sample_offset, clip_denoised=clip_denoised,
                        callback=callback, progress=progress, device=device, check_finite=check_finite)
        return (x, y) if return_labels else x
    x = _randn(gens, tuple(shape[1:])).to(device)
    stepper = start_sampler(sampler, diffusion)
    n = diffusion.num_steps
    T = diffusion.config.steps
    steps = progress_bar(range(n - 1, -1, -1), total=n, desc=f"sampling {batch}", disable=not progress)
    for step, i in enumerate(steps):
        t_idx = torch.full((batch,), i, dtype=torch.int64, device=device)
        t = diffusion.original_timestep(t_idx)
        if guidance is None:
            with torch.no_grad():
                out = call_model(model, x, t, y, class_cond)
            grad = result = None
        else:
            context = StepContext(diffusion, step, i, n, T, class_cond)
            guided = guidance.guide(model, x, t, y, context)
            if not isinstance(guided, GuidedOutput):
                raise InvalidParameterError(f"{type(guidance).__name__}.guide(...) returned {type(guided).__name__}; "
                                            "it must return a guidekit.GuidedOutput(model_output, grad, result)")
            out, grad, result = guided.model_output, guided.grad, guided.result
            if check_finite and grad is not None:
                _check_finite(grad, "classifier gradient", step, int(t[0]), sample_offset)
        noise = _randn(gens, tuple(shape[1:])).to(device)
        # a scale of 0 for the whole batch is no guidance: step exactly as unguided sampling does (DDIM's
        # eps -> x0 round trip under guidance would otherwise change the last bits)
        if grad is not None and result is not None and not bool(result.scale.any()):
            grad = None
        with torch.no_grad():
            stepped = stepper.step(diffusion, out.float(), x, t_idx, guidance_grad=grad,
                                   noise=noise, clip_denoised=clip_denoised)
        if check_finite:
            _check_finite(stepped.sample, "sample", step, int(t[0]), sample_offset)
        if callback is not None:
            callback(StepInfo(step, i, t, x, stepped.sample, stepped.pred_xstart, y, result))
        x = stepped.sample
    return (x, y) if return_labels else x

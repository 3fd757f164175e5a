"""The fast sampling path, ``gk.sample(..., fast=True)``: the same guided step (paper Algorithm 1),
run with mixed precision, channels_last, ``torch.compile`` and no host synchronisation in the loop.

* The UNet forward and the classifier forward (with the backward AOTAutograd derives from it, which
  gives ∇ₓ log p(y|x_t)) run under autocast (bf16 by default, fp16 optional), compiled once per
  shape and reused across calls (``compile=None``: on CUDA only, so CPU runs need no compiler).
* The sampler's update runs in float32, outside autocast, with the diffusion's tables on the device.
* Nothing in the loop reads a tensor value on the host: the non-finite check is a device-side
  record of the first bad step per sample, read every ``check_every`` steps (0: once at the end).
* Sample i still draws from its own generator seeded by (seed, i), so samples do not depend on the
  batch size; its noise for ``noise_block`` steps comes from one generator call, on the device.
* The scaler reads the logits the gradient came from (no extra classifier call).

The weights are left as they are (no copy, no in-place conversion); autocast casts them per call.
Tolerance to the float32 path, tested in ``plugins/guidekit-adm/tests/test_fast.py`` on the golden tiny
networks and random-weight ADM configs (CPU autocast): network outputs and logits within 3e-2 (bf16) / 5e-3
(fp16) of the largest absolute value, ∇ₓ log p within 5e-2 / 5e-3; whole DDIM-25 trajectories within 0.1 (bf16,
about 6 uint8 levels) / 0.02 (fp16) per pixel, 1e-3 / 1e-4 on average. With ``dtype="float32"`` the fast loop
equals the default one to 1e-4 (channels_last changes the convolutions' summation order).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import attrs
import torch
import torch.nn.functional as F

from .diffusion import GaussianDiffusion
from .errors import InvalidParameterError, NonFiniteError
from .guidance import ClassifierGuidance, GuidanceResult, GuidanceState, check_labels
from .guidance.base import check_scale, negative_scale_error
from .progress import progress as progress_bar
from .steps import StepInfo, start_sampler

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": None}


@attrs.frozen
class FastConfig:
    """Options of the fast path.

    ``dtype``: autocast dtype of the network calls (``"bfloat16"``, ``"float16"``, or ``"float32"`` for
    none); ``channels_last``: NHWC activations; ``compile``: ``torch.compile`` the network calls
    (``None``: on CUDA only); ``compile_mode`` / ``compile_backend``: passed to ``torch.compile``
    (``mode="reduce-overhead"`` adds CUDA graphs); ``check_every``: read the non-finite flag every k
    steps (0: once, at the end); ``noise_block``: steps of noise drawn per generator call.
    """

    dtype: str = attrs.field(default="bfloat16", validator=attrs.validators.in_(tuple(DTYPES)))
    channels_last: bool = True
    compile: bool | None = None
    compile_mode: str | None = None
    compile_backend: Any = "inductor"
    check_every: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    noise_block: int = attrs.field(default=32, validator=attrs.validators.ge(1))

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return DTYPES[self.dtype]


def as_fast_config(fast: bool | FastConfig | dict[str, Any] | None) -> FastConfig | None:
    """``True`` → the defaults, ``False``/``None`` → off, a dict → ``FastConfig(**fast)``."""
    if fast is None or fast is False:
        return None
    if fast is True:
        return FastConfig()
    if isinstance(fast, FastConfig):
        return fast
    if isinstance(fast, dict):
        try:
            return FastConfig(**fast)
        except (TypeError, ValueError) as exc:
            from .registry import reason

            raise InvalidParameterError(f"fast={fast!r}: {reason(exc)}; see guidekit.fast.FastConfig") from None
    raise InvalidParameterError(f"fast must be True, False, a dict or a guidekit.fast.FastConfig; got {fast!r}")


# --------------------------------------------------------------------------------------------
# network calls: autocast, compiled once per (network, options) and kept while the network lives
# --------------------------------------------------------------------------------------------
_COMPILED: weakref.WeakKeyDictionary[Any, dict[tuple, Callable]] = weakref.WeakKeyDictionary()


def _autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def _maybe_compile(net: Any, kind: str, fn: Callable, config: FastConfig, device: torch.device) -> Callable:
    use = config.compile if config.compile is not None else device.type == "cuda"
    if not use:
        return fn
    key = (kind, device.type, config.dtype, config.compile_mode, config.compile_backend)
    try:
        cache = _COMPILED.setdefault(net, {})
    except TypeError:  # not weak-referenceable: compile per call
        cache = {}
    if key not in cache:
        cache[key] = torch.compile(fn, mode=config.compile_mode, backend=config.compile_backend, dynamic=False)
    return cache[key]


def unet_call(model: Any, class_cond: bool, config: FastConfig, device: torch.device) -> Callable:
    """``f(x, t, y) -> model output`` in float32, the forward under autocast (compiled when asked)."""
    dtype = config.autocast_dtype

    def forward(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        with _autocast(device, dtype):
            out = model(x, t, y=y) if class_cond else model(x, t)
        return out.float()

    return _maybe_compile(model, f"unet:{class_cond}", forward, config, device)


def classifier_call(classifier: Any, config: FastConfig, device: torch.device) -> Callable:
    """``f(x, t, y) -> (logits, ∇ₓ log p(y|x_t))``, both float32; forward and backward compiled when asked."""
    dtype = config.autocast_dtype

    def log_prob(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with _autocast(device, dtype):
            logits = classifier(x, t)
        logits = logits.float()
        return F.log_softmax(logits, dim=-1).gather(1, y.view(-1, 1)).sum(), logits

    compiled = _maybe_compile(classifier, "classifier", log_prob, config, device)

    def guide(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            selected, logits = compiled(x_in, t, y)
            if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
                raise InvalidParameterError(
                    f"classifier returned shape {tuple(logits.shape)}; it must return logits of shape (B, K)")
            if not selected.requires_grad:
                raise InvalidParameterError(
                    "the classifier's logits do not depend on x_t (no autograd graph), so there is no gradient "
                    "to guide with: do not run it under torch.no_grad() or detach its output")
            grad = torch.autograd.grad(selected, x_in)[0]
        return logits.detach(), grad.float()

    return guide


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------
class _OnDevice(GaussianDiffusion):
    """The same process with its tables moved to ``device`` once, and no per-step host-side index checks
    (the fast loop builds every index itself)."""

    def __init__(self, base: GaussianDiffusion, device: torch.device) -> None:  # noqa: D107
        self.__dict__.update({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in vars(base).items()})

    def index_tensor(self, t_index: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        return t_index if isinstance(t_index, torch.Tensor) else super().index_tensor(t_index, batch, device)


def _needs_noise(sampler: Any) -> bool:
    """False for samplers whose noise term is exactly zero (DDIM with eta = 0, a sampler with ``needs_noise = False``)."""
    if getattr(sampler, "needs_noise", True) is False:
        return False
    return getattr(sampler, "name", None) != "ddim" or getattr(sampler, "eta", 1.0) != 0.0


class _NoiseBlocks:
    """Per-sample noise for steps ``[j, j + block)`` from one generator call per sample, on the device."""

    def __init__(self, gens: list[torch.Generator], shape: tuple[int, ...], device: torch.device, block: int) -> None:
        if device.type == "cpu":
            self.gens = gens  # continue each sample's own stream (labels were drawn from it)
        else:
            self.gens = [torch.Generator(device=device).manual_seed(g.initial_seed()) for g in gens]
        self.shape, self.device, self.block = shape, device, block
        self.start, self.buf = 0, None

    def frame(self, j: int, total: int) -> torch.Tensor:
        """(B, ...) noise of frame ``j`` (frame 0 is x_T); frames come in order."""
        if self.buf is None or j >= self.start + self.buf.shape[0]:
            self.start = j
            k = min(self.block, total - j)
            self.buf = torch.stack([torch.randn((k, *self.shape), generator=g, device=self.device)
                                    for g in self.gens], dim=1)
        return self.buf[j - self.start]


def _scale_of(guidance: ClassifierGuidance, state: GuidanceState) -> torch.Tensor:
    """The scaler's output checked for type and shape; its values are checked with the other flags (no host read)."""
    return check_scale(guidance.scaler(state), guidance.scaler, state, values=False)


def _mark_bad(first_bad: torch.Tensor, x: torch.Tensor, step: int) -> torch.Tensor:
    """Record ``step`` for samples of ``x`` that are not finite and were not marked before (on the device)."""
    bad = ~torch.isfinite(x.flatten(1)).all(dim=1)
    return torch.where(bad & (first_bad < 0), step, first_bad)


def _raise_if_bad(flags: dict[str, torch.Tensor], ts: list[int], offset: int, scaler: Any = None) -> None:
    """One host read of the non-finite (and negative-scale) records; raise for the earliest bad step."""
    names = list(flags)
    steps = torch.stack([flags[n] for n in names]).cpu()
    if not bool((steps >= 0).any()):
        return
    first = int(steps[steps >= 0].min())
    what = names[int(torch.nonzero((steps == first).any(dim=1))[0])]
    idx = (torch.nonzero((steps == first).any(dim=0)).flatten() + offset).tolist()
    if what == "negative scale":
        raise negative_scale_error(f"scaler {scaler!r}", [], f"step {first} (t={ts[first]}) for samples {idx[:16]}")
    raise NonFiniteError(
        f"non-finite {what} at step {first} (t={ts[first]}) for samples {idx[:16]}. Lower the guidance scale, "
        f"cap it (max_scale=...), or run the networks in float32 (fast=False or FastConfig(dtype='float32'))."
    )


def sample_loop(
    model: Any,
    diffusion: GaussianDiffusion,
    shape: tuple[int, ...],
    *,
    config: FastConfig,
    sampler: Any,
    guidance: ClassifierGuidance | None,
    y: torch.Tensor | None,
    gens: list[torch.Generator],
    class_cond: bool,
    sample_offset: int,
    clip_denoised: bool,
    callback: Callable[[Any], None] | None,
    progress: bool,
    device: torch.device,
    check_finite: bool,
) -> torch.Tensor:
    """The reverse process from x_T (labels already drawn and checked) on the fast path."""
    if guidance is not None and not isinstance(guidance, ClassifierGuidance):
        raise InvalidParameterError(f"the fast path drives classifier guidance only, not {type(guidance).__name__}: "
                                    "sample it without fast=True (--fast)")
    batch, n, T = shape[0], diffusion.num_steps, diffusion.config.steps
    diff = _OnDevice(diffusion, device)
    t_index = torch.arange(n, device=device).view(n, 1).expand(n, batch).contiguous()
    t_orig = diff.original_timestep(t_index)
    ts = diffusion.original_timestep(torch.arange(n)).tolist()
    eps_fn = unet_call(model, class_cond, config, device)
    guide_fn = None if guidance is None else classifier_call(guidance.classifier, config, device)
    y_host = None if y is None else y.cpu()
    y_checked = False

    frames = 1 + (n if _needs_noise(sampler) else 0)
    noise = _NoiseBlocks(gens, tuple(shape[1:]), device, config.noise_block)
    x = noise.frame(0, frames)
    zeros = None if frames > 1 else torch.zeros_like(x)
    layout = torch.channels_last if config.channels_last and x.ndim == 4 else torch.contiguous_format
    flags = {"classifier gradient": torch.full((batch,), -1, dtype=torch.int64, device=device),
             "sample": torch.full((batch,), -1, dtype=torch.int64, device=device)}
    if not check_finite:
        flags = {}
    scaler = None if guidance is None else guidance.scaler
    if guidance is not None and not getattr(scaler, "allows_negative", False):
        flags["negative scale"] = torch.full((batch,), -1, dtype=torch.int64, device=device)
    stepper = start_sampler(sampler, diff)
    steps = progress_bar(range(n - 1, -1, -1), total=n, desc=f"sampling {batch} (fast)", disable=not progress)
    for step, i in enumerate(steps):
        t = t_orig[i]
        x_in = x.contiguous(memory_format=layout)
        with torch.no_grad():
            out = eps_fn(x_in, t, y)
        result = grad = None
        if guide_fn is not None:
            logits, grad = guide_fn(x_in, t, y)
            if not y_checked:  # the class count is known now; the labels are still on the host
                check_labels(y_host, batch, logits.shape[1])
                y_checked = True
            state = GuidanceState(t=t, t_index=i, num_steps=n, logits=logits, grad=grad, y=y, num_timesteps=T)
            scale = _scale_of(guidance, state).to(grad.dtype)
            if "negative scale" in flags:
                neg = flags["negative scale"]
                flags["negative scale"] = torch.where((scale < 0) & (neg < 0), step, neg)
            grad = scale.view(-1, *([1] * (grad.ndim - 1))) * grad
            result = GuidanceResult(grad=grad, scale=scale, state=state)
            if check_finite:
                flags["classifier gradient"] = _mark_bad(flags["classifier gradient"], grad, step)
        z = noise.frame(step + 1, frames) if zeros is None else zeros
        with torch.no_grad():
            stepped = stepper.step(diff, out, x, t_index[i], guidance_grad=grad, noise=z, clip_denoised=clip_denoised)
        if check_finite:
            flags["sample"] = _mark_bad(flags["sample"], stepped.sample, step)
        if flags and config.check_every and (step + 1) % config.check_every == 0:
            _raise_if_bad(flags, ts[::-1], sample_offset, scaler)
        if callback is not None:
            callback(StepInfo(step, i, t, x, stepped.sample, stepped.pred_xstart, y, result))
        x = stepped.sample
    if flags:
        _raise_if_bad(flags, ts[::-1], sample_offset, scaler)
    return x.contiguous()

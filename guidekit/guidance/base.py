"""What every guidance shares: the step context it receives, the output it returns, its scaler.

A guidance owns the network calls of a step: ``guide(model, x_t, t, y, context)`` runs the model
(and a classifier, if it has one) and returns a :class:`GuidedOutput`: the model output the sampler
uses, optionally a scaled gradient s·∇ the sampler adds, and a :class:`GuidanceResult` for traces.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import attrs
import torch
import torch.nn.functional as F

from ..errors import InvalidParameterError, MissingGuidanceFieldError, NonFiniteError
from .state import GuidanceResult, GuidanceState, Scaler, check_labels


@attrs.frozen(eq=False)
class StepContext:
    """What the sampling loop knows at one step: the process, where it is, how to call the model."""

    diffusion: Any
    step: int
    t_index: int
    num_steps: int
    num_timesteps: int = 1000
    class_cond: bool = False

    def index_tensor(self, x_t: torch.Tensor) -> torch.Tensor:
        """The respaced index as a (B,) tensor, for ``diffusion.predict_*`` calls."""
        return torch.full((x_t.shape[0],), self.t_index, dtype=torch.int64, device=x_t.device)


@attrs.frozen(eq=False)
class GuidedOutput:
    """``model_output`` for the sampler, ``grad`` (s·∇ or ``None``) for its ``guidance_grad``, ``result`` for traces."""

    model_output: torch.Tensor
    grad: torch.Tensor | None
    result: GuidanceResult | None


@runtime_checkable
class Guidance(Protocol):
    """A guidance component: owns the network calls of one sampling step."""

    def guide(self, model: Callable[..., torch.Tensor], x_t: torch.Tensor, t: torch.Tensor,
              y: torch.Tensor | None, context: StepContext) -> GuidedOutput: ...


def call_model(model: Callable[..., torch.Tensor], x_t: torch.Tensor, t: torch.Tensor,
               y: torch.Tensor | None, class_cond: bool) -> torch.Tensor:
    """``model(x_t, t, y=y)`` for a class-conditional model, else ``model(x_t, t)``; the output must be a tensor."""
    try:
        out = model(x_t, t, y=y) if class_cond else model(x_t, t)
    except TypeError as exc:
        if class_cond and "unexpected keyword argument 'y'" in str(exc):
            raise InvalidParameterError(
                f"the model is called as model(x_t, t, y=y) (class-conditional) but does not take y ({exc}): drop "
                "class_cond=True, or use a class-conditional model"
            ) from None
        raise
    if not isinstance(out, torch.Tensor):
        raise InvalidParameterError(f"the model returned {type(out).__name__}; it must return a tensor (eps, or eps ‖ v)")
    return out


def model_then_gradient(fn: Callable[..., GuidanceResult], model: Callable[..., torch.Tensor], x_t: torch.Tensor,
                        t: torch.Tensor, y: torch.Tensor | None, context: StepContext) -> GuidedOutput:
    """The model without a graph, then ``fn(x_t, t, y, t_index=, num_steps=, num_timesteps=)`` (ADM's order)."""
    with torch.no_grad():
        out = call_model(model, x_t, t, y, context.class_cond)
    result = fn(x_t, t, y, t_index=context.t_index, num_steps=context.num_steps, num_timesteps=context.num_timesteps)
    if not isinstance(result, GuidanceResult):
        raise InvalidParameterError(f"the guidance function {fn!r} returned {type(result).__name__}; it must return a "
                                    "guidekit.GuidanceResult(grad=s·∇, scale=s, state=...)")
    return GuidedOutput(out, result.grad, result)


@attrs.frozen
class CallableGuidance:
    """A plain callable ``fn(x_t, t, y, t_index=, num_steps=, num_timesteps=) -> GuidanceResult`` as a guidance."""

    fn: Callable[..., GuidanceResult]

    def guide(self, model: Callable[..., torch.Tensor], x_t: torch.Tensor, t: torch.Tensor,
              y: torch.Tensor | None, context: StepContext) -> GuidedOutput:
        return model_then_gradient(self.fn, model, x_t, t, y, context)


def as_guidance(guidance: Any) -> Guidance:
    """A guidance component as it is; a plain gradient callable wrapped in :class:`CallableGuidance`."""
    if hasattr(guidance, "guide"):
        return guidance
    if callable(guidance):
        return CallableGuidance(guidance)
    raise InvalidParameterError(
        f"guidance must be a guidance component (gk.create('guidance', ...)) with a guide(...) method, got {guidance!r}"
    )


def check_call(fn: Any, nargs: int, what: str, hint: str) -> None:
    """Raise a named error when ``fn`` cannot take ``nargs`` positional arguments (when its signature is known)."""
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*range(nargs))
    except TypeError as exc:
        raise InvalidParameterError(f"{what} cannot be called with {nargs} argument(s) ({exc}); {hint}") from None


def is_denoiser(net: Any) -> bool:
    """Whether ``net`` is a diffusion network (guidekit's convention: it declares the ``image_channels`` it denoises)."""
    return isinstance(getattr(net, "image_channels", None), int)


def refuse_denoiser(classifier: Any) -> None:
    """A named error when a diffusion network is passed where a classifier belongs (it would ask for y, or
    return an image instead of logits)."""
    if is_denoiser(classifier):
        kind = "class-conditional " if getattr(classifier, "num_classes", None) is not None else ""
        raise InvalidParameterError(
            f"the classifier {type(classifier).__name__} is a {kind}diffusion network (it denoises "
            f"{classifier.image_channels}-channel images), not a classifier returning logits (B, K): pass a classifier "
            "(e.g. an adm-classifier or a bundled *-classifier-* network)"
            + ("; to guide a class-conditional model without a classifier use gk.create('guidance', "
               "'classifier-free', ...)" if kind else ""))


def classifier_input(classifier: Any) -> tuple[int | None, int | None]:
    """(channels, image size) a classifier takes, from its attributes or card (None where it does not say)."""
    card = getattr(classifier, "card", None)
    card = card if isinstance(card, dict) else {}
    channels = next((v for v in (getattr(classifier, "in_channels", None), card.get("channels"))
                     if isinstance(v, int) and not isinstance(v, bool)), None)
    size = next((v for v in (getattr(classifier, "image_size", None), card.get("image_size"))
                 if isinstance(v, int) and not isinstance(v, bool)), None)
    return channels, size


def check_classifier_fits(classifier: Any, shape: tuple[int, ...]) -> None:
    """Before the first step: the classifier takes images of the samples' channels and size, naming both."""
    if classifier is None or len(shape) != 4:
        return
    channels, size = classifier_input(classifier)
    c, h, w = (int(n) for n in shape[1:])
    if (channels is not None and channels != c) or (size is not None and (size, size) != (h, w)):
        takes = f"{channels if channels is not None else 'C'}-channel {f'{size}×{size}' if size else 'H×W'}"
        raise InvalidParameterError(
            f"the classifier {type(classifier).__name__} takes {takes} images but the samples are {c}-channel {h}×{w} "
            f"(shape {tuple(shape)}): use a classifier trained on the model's images (its channels and size)")


def call_classifier(classifier: Callable[..., Any], x: torch.Tensor, *args: Any) -> Any:
    """``classifier(x, *args)``; a RuntimeError inside it (a conv or linear layer of other input channels or
    size) is named with the input's shape, the classifier and the fix, its first line kept."""
    try:
        return classifier(x, *args)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]
        raise InvalidParameterError(
            f"the classifier {type(classifier).__name__} failed on an input of shape {tuple(x.shape)} ({first}); give "
            "a classifier that takes the samples' channels and image size") from exc


def takes_classifier(name: str) -> bool:
    """Whether the registered guidance ``name`` is built with a ``classifier=`` parameter."""
    from ..registry import default_registry

    return "classifier" in inspect.signature(default_registry().get("guidance", name).factory).parameters


def resolve_scaler(scaler: Scaler | str, scaler_params: dict[str, Any]) -> Scaler:
    """A scaler object from a callable or a registered name built with ``scaler_params``."""
    if isinstance(scaler, str):
        from ..registry import create

        scaler = create("scaler", scaler, **scaler_params)
    elif scaler_params:
        names = ", ".join(repr(k) for k in sorted(scaler_params))
        raise InvalidParameterError(
            f"unknown parameter {names}: the scaler is given as an object, so only the guidance's own parameters may "
            "follow; build the scaler with its parameters, or give the scaler by name"
        )
    if not callable(scaler):
        raise InvalidParameterError(f"scaler must be callable (GuidanceState -> (B,) tensor), got {scaler!r}")
    return scaler


def check_scale(value: Any, scaler: Any, state: GuidanceState, *, values: bool = True) -> torch.Tensor:
    """A scaler's output as a real (B,) tensor that is finite and, unless the scaler sets
    ``allows_negative = True``, non-negative (a negative scale guides away from y).
    ``values=False`` checks only type and shape, without reading the values back to the host."""
    name = f"scaler {scaler!r}"
    if value is None:
        raise InvalidParameterError(f"{name} returned None; it must return a (B,) tensor of scales (did it forget `return`?)")
    try:
        s = torch.as_tensor(value, device=state.device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidParameterError(f"{name} returned {type(value).__name__}, not a (B,) tensor of scales ({exc})") from None
    if s.is_complex():
        raise InvalidParameterError(f"{name} returned a {s.dtype} tensor; scales must be real numbers")
    if s.ndim == 0:
        s = s.expand(state.batch_size)
    if s.shape != (state.batch_size,):
        raise InvalidParameterError(f"{name} returned shape {tuple(s.shape)}, expected ({state.batch_size},)")
    s = s if s.is_floating_point() else s.float()  # integer or boolean scales
    if not values:
        return s
    bad = ~torch.isfinite(s)
    if bool(bad.any()):
        raise NonFiniteError(
            f"{name} returned a non-finite scale for samples {torch.nonzero(bad).flatten().tolist()} at "
            f"t={state.timesteps.tolist()}; set a floor or max_scale"
        )
    if not getattr(scaler, "allows_negative", False) and bool((s < 0).any()):
        raise negative_scale_error(name, s[s < 0].tolist()[:8], f"t={state.timesteps.tolist()}")
    return s


def negative_scale_error(name: str, scales: list[float], where: str) -> InvalidParameterError:
    """The error for a scaler that returned negative scales without ``allows_negative = True``."""
    listed = f" {scales}" if scales else ""
    return InvalidParameterError(
        f"{name} returned negative scales{listed} at {where}: a negative scale pushes samples away from their "
        "label. Return scales >= 0, or give the scaler the class attribute allows_negative = True if that is intended"
    )


class ScaledGuidance:
    """Base of guidances whose strength comes from a scaler; ``name`` is the registered name."""

    name = "guidance"

    def __init__(self, scaler: Scaler | str = "constant", **scaler_params: Any) -> None:
        self.scaler = resolve_scaler(scaler, scaler_params)

    def scale(self, state: GuidanceState) -> torch.Tensor:
        """The scaler's (B,) output on ``state``'s device, checked by :func:`check_scale`."""
        try:
            value = self.scaler(state)
        except MissingGuidanceFieldError as exc:
            raise MissingGuidanceFieldError(f"scaler {self.scaler!r} cannot guide with {self.name!r}: {exc}") from None
        return check_scale(value, self.scaler, state)

    def scaled_gradient(self, x_in: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor, *,
                        t_index: Any, num_steps: int, num_timesteps: int) -> GuidanceResult:
        """s·∇ log p(y | ·) with respect to ``x_in`` (a leaf that requires grad), from ``logits`` built on it.

        Call under ``torch.enable_grad()``. A scaler with ``needs_grad = False`` runs before the
        backward pass, and if it returns 0 for the whole batch that pass is skipped.
        """
        if not isinstance(logits, torch.Tensor):
            raise InvalidParameterError(f"classifier returned {type(logits).__name__}; it must return a tensor of "
                                        "logits (B, K)")
        if logits.ndim == x_in.ndim and logits.shape[2:] == x_in.shape[2:]:
            raise InvalidParameterError(
                f"classifier returned shape {tuple(logits.shape)}, an image like x_t {tuple(x_in.shape)}: it looks like a "
                "diffusion network, not a classifier; it must return logits of shape (B, K)")
        if logits.ndim != 2 or logits.shape[0] != x_in.shape[0]:
            raise InvalidParameterError(
                f"classifier returned shape {tuple(logits.shape)}; it must return logits of shape (B, K)"
            )
        if logits.shape[1] < 2:
            raise InvalidParameterError(
                f"classifier returned {logits.shape[1]} logit per sample: log p(y|x) over one class is 0, so its gradient "
                "is zero and nothing would be guided; a classifier needs K >= 2 classes (a binary one returns 2 logits)")
        y = check_labels(y, x_in.shape[0], logits.shape[1]).to(logits.device)
        state = GuidanceState(t=t, t_index=t_index, num_steps=num_steps, logits=logits.detach(), grad=None,
                              y=y, num_timesteps=num_timesteps, guidance=self.name)
        scale = None if getattr(self.scaler, "needs_grad", True) else self.scale(state)
        if scale is not None and not bool(scale.any()):
            grad = torch.zeros_like(x_in)
        else:
            if not logits.requires_grad:
                raise InvalidParameterError(
                    "the classifier's logits do not depend on x_t (no autograd graph), so there is no gradient "
                    "to guide with: do not run it under torch.no_grad() or detach its output"
                )
            selected = F.log_softmax(logits, dim=-1)[torch.arange(len(y), device=y.device), y]
            grad = torch.autograd.grad(selected.sum(), x_in, allow_unused=True)[0]
            if grad is None:
                raise InvalidParameterError(
                    "the classifier's logits do not depend on x_t (the autograd graph does not reach it), so there is no "
                    "gradient to guide with: the classifier must compute its logits from its input")
        state = attrs.evolve(state, grad=grad)
        if scale is None:
            scale = self.scale(state)
        scale = scale.to(grad.dtype)
        return GuidanceResult(grad=scale.view(-1, *([1] * (grad.ndim - 1))) * grad, scale=scale, state=state)

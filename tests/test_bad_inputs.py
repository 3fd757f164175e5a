"""Bad inputs, one row each: the error type a user gets and a phrase of its message (issue 11).

Every row is an input that once gave a raw traceback, a silent wrong result or a misleading hint,
or one that was handled and must stay so. API rows call guidekit directly; CLI rows run
``guidekit.cli.main`` in-process and check the exit status and one line of stderr.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import guidekit as gk
import guidekit.plugins
import guidekit.registry
from guidekit.cli import main
from guidekit.data import load_dataset
from guidekit.io import load_batch, save_grid, to_uint8, write_reference_batch, write_sample_batch
from guidekit.metrics import FeatureStats, evaluate
from guidekit.toy import GaussianMixtureToy

TOY = GaussianMixtureToy(num_classes=4, shape=(1, 4, 4))
DIFF = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=False, respacing="ddim2")
Y = torch.tensor([0, 1])


def _guided(scaler: Any, **kw: Any) -> torch.Tensor:
    return gk.sample(TOY.denoiser(), DIFF, (2, 1, 4, 4), guidance=gk.ClassifierGuidance(TOY.classifier(), scaler),
                     y=Y, progress=False, **kw)


def _plain(**kw: Any) -> torch.Tensor:
    args = {"model": TOY.denoiser(), "diffusion": DIFF, "shape": (2, 1, 4, 4), "progress": False, **kw}
    return gk.sample(args.pop("model"), args.pop("diffusion"), args.pop("shape"), **args)


def _unguided_trace_plot(tmp: Path) -> Any:
    trace = gk.GuidanceTrace()
    _plain(callback=trace)
    return trace.plot(tmp / "trace.png")


def _guided_trace_plot(tmp: Path, name: str) -> Any:
    trace = gk.GuidanceTrace()
    _guided("constant", callback=trace)
    return trace.plot(tmp / name)


class Negative:
    """A scaler that asks for anti-guidance on purpose."""

    allows_negative = True

    def __call__(self, state: gk.GuidanceState) -> torch.Tensor:
        return torch.full((state.batch_size,), -1.0)


class Plugin:
    """Research code registering a plugin object with a misspelt hook name."""

    from guidekit.hookspecs import hookimpl

    @hookimpl
    def guidekit_scaler(self) -> list:
        return []


class _Net(torch.nn.Module):
    """A classifier with parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def _registered(plugin: Any) -> None:
    with gk.registered(plugin):
        pass


def _registered_twice() -> None:
    class Scalers:
        from guidekit.hookspecs import hookimpl

        @hookimpl
        def guidekit_scalers(self) -> list:
            return []

    with gk.registered(Scalers(), name="twice"), gk.registered(Scalers(), name="twice"):
        pass


def _fast(scaler: Any) -> torch.Tensor:
    return _guided(scaler, fast=True)


def _cfg(y: torch.Tensor = Y, **kw: Any) -> torch.Tensor:
    guidance = gk.create("guidance", "classifier-free", gamma=2.0, **kw)
    return gk.sample(TOY.conditional_denoiser(), DIFF, (2, 1, 4, 4), guidance=guidance, y=y, progress=False)


def _step(sampler: str = "ddim", **kw: Any) -> Any:
    x = torch.zeros(1, 1, 4, 4)
    args = {"diffusion": DIFF, "model_output": x, "x_t": x, "t_index": 1, **kw}
    return gk.create("sampler", sampler).step(args.pop("diffusion"), args.pop("model_output"), args.pop("x_t"),
                                                args.pop("t_index"), **args)


def _trace_reused(tmp: Path) -> Any:
    trace = gk.GuidanceTrace()
    _guided("constant", callback=trace)
    return _guided("constant", callback=trace)


def _train(tmp: Path, net: Any = None, diffusion: Any = DIFF, **kw: Any) -> Any:
    args = {"images": torch.zeros(4, 1, 4, 4), "labels": torch.tensor([0, 1, 2, 3]), **kw}
    config = gk.TrainConfig(steps=1, batch_size=2, log_every=1)
    return gk.train_classifier(net if net is not None else _Net(), args.pop("images"), args.pop("labels"), diffusion,
                               config, progress=False, **args)


def _resume_with(tmp: Path, net: Any = None, diffusion: Any = DIFF, **kw: Any) -> Any:
    _train(tmp, checkpoint=tmp / "c.pt")
    return _train(tmp, net=net, diffusion=diffusion, checkpoint=tmp / "c.pt", resume=True, **kw)


class _Net5(_Net):
    """A classifier of another architecture (5 classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 5)


class _Conv(torch.nn.Module):
    """An unconditional ε model with parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _image_folder(tmp: Path, name: str, data: bytes | None = None) -> Path:
    (tmp / "a").mkdir()
    if data is None:
        save_grid(np.zeros((1, 4, 4, 1), np.uint8), tmp / "a" / name, padding=0, scale=1)
    else:
        (tmp / "a" / name).write_bytes(data)
    return tmp


def _folder_of(tmp: Path, modes: dict[str, str | None]) -> Path:
    """Class sub-folders of ``tmp``: one 4x4 image of PIL ``mode`` each ("L" grey, "RGB"), or none (None)."""
    from PIL import Image

    for name, mode in modes.items():
        (tmp / name).mkdir()
        if mode is not None:
            Image.new(mode, (4, 4)).save(tmp / name / "x.png")
    return tmp


def _folder_with(tmp: Path, make: Callable[[Path], Any]) -> Path:
    """Two class folders of one 4x4 grey image each, and ``make(path)`` writing a third image into the second."""
    _folder_of(tmp, {"a": "L", "b": "L"})
    make(tmp / "b" / "y.tif")
    return tmp


def _decompression_bomb(tmp: Path) -> Any:
    """An image above Pillow's limit (lowered here to 4 pixels, so that the 4x4 files stay tiny)."""
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, 4
    try:
        return load_dataset(_folder_of(tmp, {"a": "L", "b": "L"}))
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _edited_card(tmp: Path) -> Any:
    """A training card whose diffusion process was edited after training."""
    import json

    from guidekit.networks import card_digests

    card = {"role": "diffusion", "network": {"spec": "mnist16-unet", "params": {}},
            "diffusion": {"steps": 1000, "schedule": "linear", "learn_sigma": False}}
    card["checked"] = card_digests(card)
    card["diffusion"]["schedule"] = "cosine"
    (tmp / "card.json").write_text(json.dumps(card))
    return gk.load_network(tmp, device="meta")


def _folder_named_like(tmp: Path, name: str) -> Any:
    """A training folder (a card is enough) named ``name`` in the working folder, loaded by that name."""
    import os

    (tmp / name).mkdir()
    (tmp / name / "card.json").write_text('{"network": {"spec": "mnist16-unet"}}')
    here = os.getcwd()
    os.chdir(tmp)
    try:
        return gk.load_network(name, device="meta")
    finally:
        os.chdir(here)


def _lock_is_a_folder(tmp: Path) -> Any:
    from guidekit.io import output_lock

    (tmp / ".out.lock").mkdir()
    with output_lock(tmp / "out", "a run"):
        pass


def _locked_twice(tmp: Path) -> Any:
    from guidekit.io import output_lock

    with output_lock(tmp / "out", "the first run"), output_lock(tmp / "out", "the second run"):
        pass


ADM_UNET = ("--image_size 8 --in_channels 1 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2 "
            "--attention_resolutions 2 --num_head_channels 32 --learn_sigma True")


def _adm() -> Any:
    import guidekit_adm

    return guidekit_adm


def _create_from_none_factory() -> Any:
    from guidekit.registry import default_registry

    @gk.register_scaler("bad-inputs-none", replace=True)
    def none(gamma: float = 1.0) -> None:
        return None

    try:
        return gk.create("scaler", "bad-inputs-none")
    finally:
        default_registry().remove("scaler", "bad-inputs-none")


class _Extractor:
    def extract(self, images: Any) -> dict:
        raise AssertionError("not reached")


class _Sized(torch.nn.Module):
    """A classifier that declares the images it takes (as ADM classifiers do)."""

    def __init__(self, in_channels: int, image_size: int, trainable: bool = False) -> None:
        super().__init__()
        self.in_channels, self.image_size = in_channels, image_size
        self.linear = torch.nn.Linear(in_channels * image_size * image_size, 4) if trainable else None

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :4] if self.linear is None else self.linear(x.flatten(1))


class _Constant(torch.nn.Module):
    """Logits from a parameter alone: they require grad but do not depend on x."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(4))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), 4)


def _guided_by(classifier: Any) -> torch.Tensor:
    return gk.sample(TOY.denoiser(), DIFF, (2, 1, 4, 4), guidance=gk.ClassifierGuidance(classifier), y=Y, progress=False)


def _train_with_per_sample_loss() -> Any:
    """Train with a registered loss that forgets to reduce over the batch."""
    from guidekit.registry import default_registry

    @gk.register_loss("bad-inputs-per-sample", replace=True)
    def per_sample() -> Callable[..., torch.Tensor]:
        return lambda logits, y: torch.nn.functional.cross_entropy(logits, y, reduction="none")

    try:
        return gk.train_classifier(_Net(), torch.zeros(4, 1, 4, 4), torch.tensor([0, 1, 2, 3]), DIFF,
                                   gk.TrainConfig(steps=1, batch_size=2, loss="bad-inputs-per-sample"), progress=False)
    finally:
        default_registry().remove("loss", "bad-inputs-per-sample")


def _bundle(tmp: Path, damage: Callable[[Path, Path], Any]) -> Any:
    """Load mnist16-pca from a copy of its card and weights that ``damage(card, weights)`` changed first."""
    import shutil

    from guidekit_mnist16.models import WEIGHTS

    from guidekit.bundled import Bundle

    folder = tmp / "weights"
    folder.mkdir()
    card, weights = (shutil.copy(WEIGHTS / f"mnist16-pca.{ext}", folder) for ext in ("json", "safetensors"))
    damage(Path(card), Path(weights))
    return Bundle("guidekit-mnist16", folder, ("mnist16-pca",), lambda flags: None, "mnist16-", "make {model}").load(
        "mnist16-pca")


def _without_sha256(card: Path) -> None:
    import json

    data = json.loads(card.read_text())
    del data["sha256"]
    card.write_text(json.dumps(data))


# (id, thunk(tmp_path), error type, phrase of the message)
API_CASES: list[tuple[str, Callable[[Path], Any], type[BaseException], str]] = [
    # scalers: what they return is checked before it reaches a sampler
    ("scaler returns None", lambda tmp: _guided(lambda s: None), gk.InvalidParameterError, "returned None"),
    ("scaler returns a string", lambda tmp: _guided(lambda s: "6"), gk.InvalidParameterError, "not a (B,) tensor"),
    ("scaler returns complex", lambda tmp: _guided(lambda s: torch.ones(2) * 1j), gk.InvalidParameterError,
     "real numbers"),
    ("scaler returns (B, 1)", lambda tmp: _guided(lambda s: torch.ones(2, 1)), gk.InvalidParameterError,
     "expected (2,)"),
    ("scaler returns a negative scale", lambda tmp: _guided(lambda s: torch.tensor([1.0, -2.0])),
     gk.InvalidParameterError, "allows_negative = True"),
    ("scaler returns inf", lambda tmp: _guided(lambda s: torch.full((2,), math.inf)), gk.NonFiniteError,
     "non-finite scale"),
    ("scaler is not callable", lambda tmp: gk.ClassifierGuidance(TOY.classifier(), 3.0), gk.InvalidParameterError,
     "must be callable"),
    ("scaler name misspelt", lambda tmp: gk.ClassifierGuidance(TOY.classifier(), "entropi"),
     gk.UnknownComponentError, "Did you mean 'entropy'"),
    ("constant gamma=inf", lambda tmp: gk.create("scaler", "constant", gamma=math.inf), gk.InvalidParameterError,
     "must be finite"),
    ("constant gamma=nan", lambda tmp: gk.create("scaler", "constant", gamma=math.nan), gk.InvalidParameterError,
     "must be finite"),
    ("constant gamma=-1", lambda tmp: gk.create("scaler", "constant", gamma=-1), gk.InvalidParameterError, ">= 0"),
    ("entropy gamma=inf", lambda tmp: gk.create("scaler", "entropy", gamma=math.inf), gk.InvalidParameterError,
     "must be finite"),
    ("interval start=1.5 (attrs message, not its tuple)", lambda tmp: gk.create("scaler", "interval", start=1.5),
     gk.InvalidParameterError, "'start' must be <class 'int'> (got 1.5"),
    ("ddim eta=inf", lambda tmp: gk.create("sampler", "ddim", eta=math.inf), gk.InvalidParameterError,
     "must be finite"),
    ("ect eta=inf", lambda tmp: gk.create("loss", "ect", eta=math.inf), gk.InvalidParameterError, "must be finite"),
    ("component name None", lambda tmp: gk.create("scaler", None), gk.InvalidParameterError,
     "named by a string"),
    ("component kind misspelt", lambda tmp: gk.create("scalers", "constant"), gk.UnknownComponentError,
     "kinds are: sampler, scaler"),
    ("unknown parameter", lambda tmp: gk.create("scaler", "constant", gama=2), gk.InvalidParameterError,
     "did you mean 'gamma'"),
    # sample(): arguments that failed deep inside torch
    ("batch of 0", lambda tmp: _plain(shape=(0, 1, 4, 4)), gk.InvalidParameterError, "positive integers"),
    ("float shape", lambda tmp: _plain(shape=(2.0, 1, 4, 4)), gk.InvalidParameterError, "positive integers"),
    ("seed a string", lambda tmp: _plain(seed="a"), gk.InvalidParameterError, "non-negative integer"),
    ("seed negative", lambda tmp: _plain(seed=-1), gk.InvalidParameterError, "non-negative integer"),
    ("seed 1.5 (was silently 1)", lambda tmp: _plain(seed=1.5), gk.InvalidParameterError, "non-negative integer"),
    ("device 'gpu'", lambda tmp: _plain(device="gpu"), gk.InvalidParameterError, "is not a torch device"),
    ("model returns None", lambda tmp: _plain(model=lambda x, t: None), gk.InvalidParameterError,
     "returned NoneType"),
    ("model not callable", lambda tmp: _plain(model=3), gk.InvalidParameterError, "must be callable"),
    ("diffusion given as a string", lambda tmp: _plain(diffusion="ddim25"), gk.InvalidParameterError,
     "must be a GaussianDiffusion"),
    ("callback not callable", lambda tmp: _plain(callback=3), gk.InvalidParameterError, "callback must be callable"),
    ("learn_sigma mismatch", lambda tmp: _plain(diffusion=gk.GaussianDiffusion.create(respacing="ddim2")),
     gk.InvalidParameterError, "must return 2 channels"),
    ("labels out of range", lambda tmp: gk.sample(TOY.denoiser(), DIFF, (2, 1, 4, 4), progress=False,
                                                  guidance=gk.ClassifierGuidance(TOY.classifier()), y=torch.tensor([0, 9])),
     gk.LabelError, "out of range"),
    # diffusion settings
    ("schedule misspelt", lambda tmp: gk.GaussianDiffusion.create(schedule="cos"), gk.InvalidParameterError,
     "'schedule' must be in"),
    ("respacing 'ddimx'", lambda tmp: gk.GaussianDiffusion.create(respacing="ddimx"), gk.InvalidParameterError,
     "integer N"),
    ("from_model of a network without a card", lambda tmp: gk.GaussianDiffusion.from_model(torch.nn.Linear(2, 2)),
     gk.InvalidParameterError, "carries no card['diffusion']"),
    ("from_release of an unknown name", lambda tmp: gk.GaussianDiffusion.from_release("64x64_difusion"),
     gk.UnknownComponentError, "Did you mean '64x64_diffusion'"),
    # traces and plots
    ("plot of an unguided run", _unguided_trace_plot, gk.InvalidParameterError, "recorded no guided step"),
    ("plot to an unknown format", lambda tmp: _guided_trace_plot(tmp, "trace.xyz"), gk.InvalidParameterError,
     "ending in one of"),
    ("trace field misspelt", lambda tmp: gk.GuidanceTrace().tensor("entropi"), gk.InvalidParameterError,
     "its fields are: entropy"),
    # files
    ("grid to .jpg (was PNG bytes)", lambda tmp: save_grid(np.zeros((1, 4, 4, 3), np.uint8), tmp / "g.jpg"),
     gk.InvalidParameterError, "ending in .png"),
    ("float NHWC images", lambda tmp: write_sample_batch(tmp / "a.npz", np.zeros((2, 16, 16, 3), np.float32)),
     gk.InvalidParameterError, "looks like N×H×W×C"),
    ("batch written onto a folder", lambda tmp: write_sample_batch(tmp, np.zeros((2, 4, 4, 3), np.uint8)),
     IsADirectoryError, "is a folder"),
    ("batch file is text", lambda tmp: (tmp.joinpath("x.npz").write_text("hi"), load_batch(tmp / "x.npz")),
     gk.GuidekitError, "not a valid .npz"),
    # training
    ("train with a dict for config", lambda tmp: gk.train_classifier(_Net(), torch.zeros(2, 1, 4, 4), Y, DIFF,
                                                                     {"steps": 2}, progress=False),
     gk.InvalidParameterError, "must be a guidekit.TrainConfig"),
    ("train a classifier without parameters", lambda tmp: gk.train_classifier(TOY.classifier(), torch.zeros(2, 1, 4, 4),
                                                                              Y, DIFF, progress=False),
     gk.InvalidParameterError, "trainable parameters"),
    ("train on numpy images", lambda tmp: gk.train_classifier(_Net(), np.zeros((2, 1, 4, 4), np.float32), Y, DIFF,
                                                              progress=False),
     gk.InvalidParameterError, "floating-point torch tensor"),
    # samplers driven by hand
    ("t_index 1.5 (was truncated to 1)", lambda tmp: gk.create("sampler", "ddim").step(
        DIFF, torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), 1.5), gk.InvalidParameterError, "must be an integer"),
    ("guidance_grad of another shape (was broadcast)", lambda tmp: gk.create("sampler", "ddpm").step(
        DIFF, torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), 1, guidance_grad=torch.zeros(1, 2, 4, 4)),
     gk.InvalidParameterError, "with respect to x_t"),
    ("classifier not callable", lambda tmp: gk.ClassifierGuidance(3, "constant"), gk.InvalidParameterError,
     "classifier must be callable"),
    ("respacing None", lambda tmp: gk.GaussianDiffusion.create(respacing=None), gk.InvalidParameterError,
     "respacing must be a string"),
    ("from_release of a network that needs arguments", lambda tmp: gk.GaussianDiffusion.from_release("adm-unet"),
     gk.InvalidParameterError, "cannot be built without arguments"),
    ("grid with nrow=0 (was the default)", lambda tmp: save_grid(np.zeros((2, 4, 4, 3), np.uint8), tmp / "g.png", nrow=0),
     gk.InvalidParameterError, "nrow must be >= 1"),
    # plugins registered from research code
    ("register a non-callable", lambda tmp: gk.register_scaler("not-callable")(3), gk.InvalidParameterError,
     "decorates a factory"),
    ("register under a non-string name", lambda tmp: gk.register_scaler(3), gk.InvalidParameterError,
     "non-empty string name"),
    ("plugin object with no hook", lambda tmp: _registered(object()), gk.InvalidParameterError,
     "implements no guidekit hook"),
    ("misspelt hook name", lambda tmp: _registered(Plugin()), gk.PluginLoadError,
     "did you mean 'guidekit_scalers'"),
    ("two plugins under one name", lambda tmp: _registered_twice(), gk.PluginLoadError, "give it another name"),
    # fuzz of the Python API (issue 11): sample() options
    ("num_classes=-3 (was a torch RuntimeError)", lambda tmp: _plain(guidance=gk.ClassifierGuidance(TOY.classifier()), num_classes=-3),
     gk.InvalidParameterError, "num_classes must be a positive integer"),
    ("num_classes=2.5 (was silently 2)", lambda tmp: _plain(guidance=gk.ClassifierGuidance(TOY.classifier()), num_classes=2.5),
     gk.InvalidParameterError, "num_classes must be a positive integer"),
    ("clip_denoised='no' (was truthy)", lambda tmp: _plain(clip_denoised="no"), gk.InvalidParameterError,
     "clip_denoised must be True or False"),
    ("sampler given as a class", lambda tmp: _plain(sampler=type(gk.create("sampler", "ddim"))), gk.InvalidParameterError,
     "call it, e.g. DDIMSampler()"),
    ("device='meta'", lambda tmp: _plain(device=torch.device("meta")), gk.InvalidParameterError, "holds no data"),
    ("device 0 without CUDA", lambda tmp: _plain(device=0) if not torch.cuda.is_available() else _plain(device="meta"),
     gk.InvalidParameterError, "device"),
    ("3-D shape (was a learn_sigma hint)", lambda tmp: _plain(shape=(1, 4, 4)), gk.InvalidParameterError,
     "must keep x_t's batch and image size"),
    ("class_cond=True for an unconditional model", lambda tmp: _plain(class_cond=True, y=Y), gk.InvalidParameterError,
     "does not take y"),
    ("guide() returns a tensor", lambda tmp: _plain(guidance=type("G", (), {"guide": lambda s, m, x, t, y, c: m(x, t)})(),
                                                    y=Y), gk.InvalidParameterError, "must return a guidekit.GuidedOutput"),
    ("gradient callable returns a tensor (was silently unguided)",
     lambda tmp: _plain(guidance=lambda x, t, y, **kw: torch.zeros_like(x), y=Y), gk.InvalidParameterError,
     "must return a guidekit.GuidanceResult"),
    ("classifier returns a dict", lambda tmp: _plain(guidance=gk.ClassifierGuidance(lambda x, t: {"logits": x}), y=Y),
     gk.InvalidParameterError, "classifier returned dict"),
    ("fast=True, negative scale (was accepted)", lambda tmp: _fast(lambda s: torch.tensor([1.0, -2.0])),
     gk.InvalidParameterError, "allows_negative = True"),
    ("fast=True, scaler returns None", lambda tmp: _fast(lambda s: None), gk.InvalidParameterError, "returned None"),
    ("fast config with a bad dtype (was attrs' tuple)", lambda tmp: _plain(fast={"dtype": "float8"}),
     gk.InvalidParameterError, "'dtype' must be in ('bfloat16', 'float16', 'float32') (got 'float8'); see"),
    # guidances, scalers and samplers
    ("classifier guidance with a clean classifier", lambda tmp: gk.ClassifierGuidance(lambda x: x.flatten(1)),
     gk.InvalidParameterError, "use gk.create('guidance', 'x0-classifier'"),
    ("x0-classifier with a noise-aware classifier", lambda tmp: gk.create("guidance", "x0-classifier",
                                                                          classifier=TOY.classifier()),
     gk.InvalidParameterError, "pass timestep=0"),
    ("x0-classifier not callable", lambda tmp: gk.create("guidance", "x0-classifier", classifier=3),
     gk.InvalidParameterError, "classifier must be callable"),
    ("x0-classifier timestep=-1", lambda tmp: gk.create("guidance", "x0-classifier", classifier=TOY.classifier(),
                                                        timestep=-1), gk.InvalidParameterError, "non-negative integer t"),
    ("x0-classifier clip='no'", lambda tmp: gk.create("guidance", "x0-classifier", classifier=lambda x: x, clip="no"),
     gk.InvalidParameterError, "clip must be True or False"),
    ("CFG null_label beyond the model's classes (was silent)", lambda tmp: _cfg(null_label=99), gk.InvalidParameterError,
     "is not a class of the model (0..4)"),
    ("CFG asked for the null label (was unguided)", lambda tmp: _cfg(y=torch.tensor([0, 4])), gk.LabelError,
     "include the null label 4"),
    ("CFG batched='no' (was truthy)", lambda tmp: gk.create("guidance", "classifier-free", batched="no"),
     gk.InvalidParameterError, "batched must be True or False"),
    ("apg eta=nan (was accepted)", lambda tmp: gk.create("guidance", "apg", eta=math.nan), gk.InvalidParameterError,
     "must be finite"),
    ("interval beyond the process (never guided)", lambda tmp: _guided(gk.create("scaler", "interval", start=2000,
                                                                                 end=3000)),
     gk.InvalidParameterError, "guidance would never apply"),
    ("entropy max_scale='5' (was a '>' TypeError)", lambda tmp: gk.create("scaler", "entropy", max_scale="x"),
     gk.InvalidParameterError, "could not convert string to float"),
    ("entropy min_entropy=inf (was scale 0 in ed-dpm mode)", lambda tmp: gk.create("scaler", "entropy",
                                                                                   min_entropy=math.inf),
     gk.InvalidParameterError, "must be finite"),
    ("ddim eta=1.5 (was NaN samples, 'lower the guidance scale')", lambda tmp: gk.create("sampler", "ddim", eta=1.5),
     gk.InvalidParameterError, "'eta' must be <= 1.0"),
    ("step noise of another shape (was broadcast)", lambda tmp: _step("ddpm", noise=torch.zeros(2, 1, 4, 4)),
     gk.InvalidParameterError, "noise has shape (2, 1, 4, 4)"),
    ("step guidance_scale without a gradient (was ignored)", lambda tmp: _step("ddpm", guidance_scale=torch.ones(1)),
     gk.InvalidParameterError, "no guidance_grad was given"),
    ("step x_t as numpy", lambda tmp: _step(x_t=np.zeros((1, 1, 4, 4), np.float32)), gk.InvalidParameterError,
     "x_t must be a torch tensor"),
    ("step diffusion as a string", lambda tmp: _step(diffusion="ddim2"), gk.InvalidParameterError,
     "diffusion must be a GaussianDiffusion"),
    ("GaussianDiffusion(dict)", lambda tmp: gk.GaussianDiffusion({"steps": 10}), gk.InvalidParameterError,
     "GaussianDiffusion.create(steps=..."),
    # traces
    ("trace reused for a second run (was mixed, or a ValueError)", _trace_reused, gk.InvalidParameterError,
     "Use a new GuidanceTrace for each call"),
    ("trace.plot(ax=...) (was ignored)", lambda tmp: gk.GuidanceTrace().plot(tmp / "t.png", ax=object()),
     gk.InvalidParameterError, "cannot draw into ax="),
    ("vanishing_points threshold '0.1'", lambda tmp: gk.GuidanceTrace().vanishing_points("0.1"),
     gk.InvalidParameterError, "threshold must be in (0, 1)"),
    ("trace called with a non-StepInfo", lambda tmp: gk.GuidanceTrace()(3), gk.InvalidParameterError,
     "pass it as callback="),
    # files and metrics
    ("NaN images written (was silent)", lambda tmp: write_sample_batch(tmp / "a.npz", torch.full((2, 1, 4, 4), math.nan)),
     gk.InvalidParameterError, "contain NaN or inf"),
    ("to_uint8 of N×H×W×C floats (was transposed)", lambda tmp: to_uint8(torch.zeros(2, 8, 8, 3)),
     gk.InvalidParameterError, "looks like N×H×W×C"),
    ("load_batch of a folder (was 'does not exist')", lambda tmp: load_batch(tmp), gk.GuidekitError, "is a folder"),
    ("load_batch(None)", lambda tmp: load_batch(None), gk.InvalidParameterError, "from an .npz path"),
    ("grid nrow=2.5", lambda tmp: save_grid(np.zeros((2, 4, 4, 1), np.uint8), tmp / "g.png", nrow=2.5),
     gk.InvalidParameterError, "(integers)"),
    ("grid pad_value=300", lambda tmp: save_grid(np.zeros((2, 4, 4, 1), np.uint8), tmp / "g.png", pad_value=300),
     gk.InvalidParameterError, "0..255"),
    ("FeatureStats of a string", lambda tmp: FeatureStats().update("abc"), gk.InvalidParameterError,
     "numeric (B, D) array"),
    ("evaluate device='gpu' (was raised after the features)", lambda tmp: evaluate(tmp / "r.npz", tmp / "s.npz",
                                                                                   device="gpu"),
     gk.InvalidParameterError, "'gpu' is not a torch device"),
    ("evaluate an array instead of a file", lambda tmp: evaluate(np.zeros((4, 8, 8, 1), np.uint8), tmp / "s.npz",
                                                                 extractor=_Extractor()),
     gk.InvalidParameterError, "from an .npz path"),
    # training
    ("TrainConfig steps='10' (was a TypeError)", lambda tmp: gk.TrainConfig(steps="10"), gk.InvalidParameterError,
     "TrainConfig steps must be an integer >= 1"),
    ("TrainConfig batch_size=1.5 (was accepted)", lambda tmp: gk.TrainConfig(batch_size=1.5), gk.InvalidParameterError,
     "batch_size must be an integer"),
    ("TrainConfig lr=inf (was NaN loss, 'lower the learning rate')", lambda tmp: gk.TrainConfig(lr=math.inf),
     gk.InvalidParameterError, "lr must be a finite number > 0"),
    ("TrainConfig seed='a'", lambda tmp: gk.TrainConfig(seed="a"), gk.InvalidParameterError, "seed must be an integer"),
    ("TrainConfig loss_params='eta=0.2'", lambda tmp: gk.TrainConfig(loss_params="eta=0.2"), gk.InvalidParameterError,
     "loss_params must be a dict"),
    ("train a classifier without labels", lambda tmp: _train(tmp, labels=None), gk.InvalidParameterError,
     "trained on labels"),
    ("train on 0..255 float pixels (was silent)", lambda tmp: _train(tmp, images=torch.full((4, 1, 4, 4), 200.0)),
     gk.InvalidParameterError, "looks like pixel values"),
    ("train on NaN images (was 'lower the learning rate')", lambda tmp: _train(tmp, images=torch.full((4, 1, 4, 4),
                                                                                                      math.nan)),
     gk.InvalidParameterError, "contain NaN or inf"),
    ("train with diffusion as a string", lambda tmp: _train(tmp, diffusion="ddim25"), gk.InvalidParameterError,
     "diffusion must be a GaussianDiffusion"),
    ("checkpoint is a folder (was 'already holds a run')", lambda tmp: _train(tmp, checkpoint=tmp),
     gk.InvalidParameterError, "is a folder; give a file path"),
    ("checkpoint under a file (was FileExistsError after training)",
     lambda tmp: (tmp.joinpath("f").write_text("x"), _train(tmp, checkpoint=tmp / "f" / "c.pt")),
     gk.InvalidParameterError, "which is a file, not a folder"),
    ("resume=True with overwrite=True (was resume)", lambda tmp: _train(tmp, checkpoint=tmp / "c.pt", resume=True,
                                                                        overwrite=True),
     gk.InvalidParameterError, "give one"),
    ("resume into another architecture (was RuntimeError)", lambda tmp: _resume_with(tmp, net=_Net5()),
     gk.CheckpointError, "weights of another architecture"),
    ("resume with another diffusion process (was silent)",
     lambda tmp: _resume_with(tmp, diffusion=gk.GaussianDiffusion.create(steps=500, learn_sigma=False)),
     gk.InvalidParameterError, "Use the same diffusion process"),
    ("resume with other labels (was silent)", lambda tmp: _resume_with(tmp, labels=torch.tensor([3, 2, 1, 0])),
     gk.InvalidParameterError, "another training data (images and labels)"),
    ("GaussianDiffusion(steps=...) (was Python's signature error)",
     lambda tmp: gk.GaussianDiffusion(steps=1000, schedule="linear"), gk.InvalidParameterError,
     "use GaussianDiffusion.create(schedule=..., steps=...)"),
    ("resume with other images (was silent)", lambda tmp: _resume_with(tmp, images=torch.ones(4, 1, 4, 4) * 0.5),
     gk.InvalidParameterError, "Use the same training data"),
    ("damaged checkpoint (hint was weights_only=False)", lambda tmp: (tmp.joinpath("c.pt").write_text("x"),
                                                                      _train(tmp, checkpoint=tmp / "c.pt", resume=True)),
     gk.CheckpointError, "damaged or not a guidekit training checkpoint"),
    ("stop_after=-1 (was 0 steps)", lambda tmp: _train(tmp, stop_after=-1), gk.InvalidParameterError,
     "stop_after must be None or an integer >= 0"),
    ("training callback not callable (was raised at the first log)", lambda tmp: _train(tmp, callback=3),
     gk.InvalidParameterError, "callback must be callable"),
    ("labels for an unconditional diffusion model (were ignored)",
     lambda tmp: gk.train_diffusion(_Conv(), torch.zeros(4, 1, 4, 4), torch.tensor([0, 1, 2, 3]), DIFF.__class__.create(
         steps=100, learn_sigma=False), gk.TrainConfig(steps=1, batch_size=2), progress=False),
     gk.InvalidParameterError, "trained unconditionally"),
    # data sets
    ("load_dataset(None)", lambda tmp: load_dataset(None), gk.GuidekitError, "named by a string"),
    ("a corrupt image in a folder (was PIL's error)", lambda tmp: load_dataset(_image_folder(tmp, "x.png", b"no")),
     gk.GuidekitError, "cannot read image"),
    ("image_size=0", lambda tmp: load_dataset(_image_folder(tmp, "x.png"), image_size=0), gk.GuidekitError,
     "image_size must be a positive integer"),
    ("one image given as a data set (was 'not a valid .npz')", lambda tmp: load_dataset(_image_folder(tmp, "x.png") / "a"
                                                                                         / "x.png"),
     gk.GuidekitError, "is a single image"),
    ("split holdout=1.5", lambda tmp: load_dataset("digits").split(1.5), gk.GuidekitError, "must be an integer"),
    # registries, bundled and ADM networks, compare
    ("factory returns None", lambda tmp: _create_from_none_factory(), gk.InvalidParameterError, "returned None"),
    ("bundled model path is a folder (was 'not found')", lambda tmp: gk.create("network", "mnist16-oracle", path=tmp),
     gk.CheckpointError, "is a folder"),
    ("bundled model from a .pt file (was SafetensorError)",
     lambda tmp: (torch.save({}, tmp / "x.pt"), gk.create("network", "mnist16-oracle", path=tmp / "x.pt")),
     gk.CheckpointError, "as .safetensors"),
    ("bundled model device='gpu'", lambda tmp: gk.create("network", "mnist16-oracle", device="gpu"),
     gk.InvalidParameterError, "is not a torch device"),
    ("ADM create_model device='gpu'", lambda tmp: _adm().create_model(ADM_UNET, device="gpu"), gk.InvalidParameterError,
     "'gpu' is not a torch device"),
    ("ADM load_checkpoint path=None", lambda tmp: _adm().load_checkpoint(ADM_UNET, None), gk.InvalidParameterError,
     "path must be the checkpoint file"),
    ("ADM network built with path=", lambda tmp: gk.create("network", "64x64_diffusion", path="w.pt", device="meta"),
     gk.InvalidParameterError, "guidekit_adm.load_checkpoint(name, path)"),
    ("mnist16 model with 3-channel shape (was a conv error)",
     lambda tmp: gk.sample(gk.create("network", "mnist16-unet"), gk.GaussianDiffusion.from_release(
         "mnist16-unet", respacing="ddim2"), (1, 3, 16, 16), progress=False),
     gk.InvalidParameterError, "the model denoises 1-channel ones"),
    ("compare classifiers as one string (was split into letters)",
     lambda tmp: gk.compare("mnist16-unet", "mnist16-classifier-ce", "constant:0", out=tmp / "o", seeds=0),
     gk.InvalidParameterError, "--seeds must be >= 1"),
    ("compare accuracy_levels=[1.5] (was accepted)",
     lambda tmp: gk.compare("mnist16-unet", ["mnist16-classifier-ce"], ["constant:0"], out=tmp / "o",
                            accuracy_levels=[1.5], num_samples=1),
     gk.InvalidParameterError, "accuracies in (0, 1]"),
    # one way in for every network (issue 16)
    ("load_network of an unknown spec", lambda tmp: gk.load_network("no-such-network"), gk.UnknownNetworkError,
     "A network is named by: a registered network name"),
    ("load_network params='dropout=0'", lambda tmp: gk.load_network("mnist16-unet", params="dropout=0"),
     gk.InvalidParameterError, "params must be a dict of constructor arguments"),
    ("load_network of an unfinished training folder",
     lambda tmp: (tmp.joinpath("card.json").write_text('{"flags": "--image_size 8"}'),
                  tmp.joinpath("checkpoint.pt").write_bytes(b""), gk.load_network(tmp)),
     gk.CheckpointError, "its training has not finished"),
    ("load_network with a constructor argument the ADM class lacks", lambda tmp: gk.load_network(
        ADM_UNET, params={"widht": 3}, device="meta"), gk.InvalidParameterError, "and the loading options"),
    ("load_network with a weights file as the spec", lambda tmp: (torch.save({}, tmp / "w.pt"),
                                                                  gk.load_network(tmp / "w.pt")),
     gk.UnknownNetworkError, "give the file as its weights (path=, --model-path)"),
    ("a folder mixing grey and colour images (was read as RGB)", lambda tmp: load_dataset(_folder_of(
        tmp, {"a": "L", "b": "RGB"})), gk.GuidekitError, "need one number of channels"),
    ("an empty class folder (was a class without images)", lambda tmp: load_dataset(_folder_of(
        tmp, {"a": "L", "b": None})), gk.GuidekitError, "holds no images"),
    ("channels=2", lambda tmp: load_dataset(_folder_of(tmp, {"a": "L"}), channels=2), gk.GuidekitError,
     "channels must be 1 (grey) or 3 (RGB)"),
    ("two writers of one output (were both allowed)", _locked_twice, gk.OutputLockedError,
     "is being written by the first run (pid"),
    ("resume with another architecture of the same shapes (was silent)",
     lambda tmp: (_train(tmp, checkpoint=tmp / "c.pt", settings={"architecture": {"dropout": 0.0}}),
                  _train(tmp, checkpoint=tmp / "c.pt", resume=True, settings={"architecture": {"dropout": 0.1}})),
     gk.InvalidParameterError, "another architecture (dropout: was 0.0, now 0.1)"),
    # second audit (issue 18): guard rails of the Python API
    ("cosine process for a linear-trained model (was silent)", lambda tmp: gk.sample(
        gk.create("network", "mnist16-unet"), gk.GaussianDiffusion.create(schedule="cosine", respacing="ddim2"),
        (1, 1, 16, 16), progress=False), gk.InvalidParameterError, "schedule='cosine' (the card: 'linear')"),
    ("4000-step process for a 1000-step model (was silent)", lambda tmp: gk.sample(
        gk.create("network", "mnist16-unet"), gk.GaussianDiffusion.create(steps=4000, respacing="ddim2"),
        (1, 1, 16, 16), progress=False), gk.InvalidParameterError, "GaussianDiffusion.from_model(model"),
    ("3-channel classifier on 1-channel samples (was a raw conv error)",
     lambda tmp: _guided_by(_Sized(3, 4)),
     gk.InvalidParameterError, "takes 3-channel 4×4 images but the samples are 1-channel 4×4"),
    ("16px classifier on 4px samples (was checked on the CLI only)", lambda tmp: gk.sample(
        TOY.denoiser(), DIFF, (2, 1, 4, 4), guidance=gk.ClassifierGuidance(gk.create("network", "mnist16-classifier-ce")),
        y=Y, progress=False), gk.InvalidParameterError, "takes 1-channel 16×16 images but the samples are 1-channel 4×4"),
    ("conditional UNet as a classifier (was 'pass y')", lambda tmp: gk.ClassifierGuidance(
        gk.create("network", "mnist16-unet-cond")), gk.InvalidParameterError,
     "is a class-conditional diffusion network"),
    ("UNet as the x0-classifier", lambda tmp: gk.create("guidance", "x0-classifier",
                                                       classifier=gk.create("network", "mnist16-unet")),
     gk.InvalidParameterError, "is a diffusion network (it denoises 1-channel images), not a classifier"),
    ("CFG null_label contradicting the card (was used silently)", lambda tmp: _cfg(null_label=2),
     gk.InvalidParameterError, "null_label=2 contradicts the model's card, which says it was trained with 4"),
    ("K=1 classifier (zero gradient silently)", lambda tmp: _guided_by(lambda x, t: x.flatten(1).sum(1, keepdim=True)),
     gk.InvalidParameterError, "K >= 2 classes"),
    ("logits independent of x (was torch's 'not used in the graph')", lambda tmp: _guided_by(_Constant()),
     gk.InvalidParameterError, "do not depend on x_t"),
    ("train with loss_params reduction='none' (was a raw backward error)", lambda tmp: gk.train_classifier(
        _Net(), torch.zeros(4, 1, 4, 4), torch.tensor([0, 1, 2, 3]), DIFF,
        gk.TrainConfig(steps=1, batch_size=2, loss_params={"reduction": "none"}), progress=False),
     gk.InvalidParameterError, "training needs one number per step"),
    ("train a loss that returns one value per image", lambda tmp: _train_with_per_sample_loss(),
     gk.InvalidParameterError, "the training loss must be one number per step"),
    ("train on channels-last float images (was a raw shape error)", lambda tmp: gk.train_classifier(
        _Net(), torch.zeros(4, 8, 8, 3), torch.tensor([0, 1, 2, 3]), DIFF, progress=False),
     gk.InvalidParameterError, "look channels-last (B, H, W, C)"),
    ("classifier that fails on the samples' shape (was a raw torch error)",
     lambda tmp: _guided_by(lambda x, t: torch.nn.functional.linear(x.flatten(1), torch.zeros(4, 48))),
     gk.InvalidParameterError, "failed on an input of shape (2, 1, 4, 4)"),
    ("train on (B, H, W) images without a channel axis", lambda tmp: gk.train_classifier(
        _Net(), torch.zeros(4, 4, 4), torch.tensor([0, 1, 2, 3]), DIFF, progress=False),
     gk.InvalidParameterError, "add the channel axis"),
    ("train a 1-channel network on 3-channel images", lambda tmp: gk.train_classifier(
        _Sized(1, 4, trainable=True), torch.zeros(4, 3, 4, 4), torch.tensor([0, 1, 2, 3]), DIFF, progress=False),
     gk.InvalidParameterError, "takes 1-channel images but the images have 3 channels"),
    # second pass on the merged tree (issue 18; integrity.md, second pass)
    ("a float TIFF in a folder (was read as black)", lambda tmp: load_dataset(_folder_with(
        tmp, lambda f: __import__("PIL.Image").Image.fromarray(np.full((4, 4), 0.5, np.float32), "F").save(f))),
     gk.GuidekitError, "holds floating-point pixels (PIL mode F), whose range guidekit cannot tell"),
    ("a 32-bit integer TIFF in a folder (was clipped to white)", lambda tmp: load_dataset(_folder_with(
        tmp, lambda f: __import__("PIL.Image").Image.fromarray(np.full((4, 4), 1000, np.int32)).save(f))),
     gk.GuidekitError, "holds 32-bit integer pixels (PIL mode I)"),
    ("an image above Pillow's decompression-bomb limit (was a raw DecompressionBombError)", _decompression_bomb,
     gk.GuidekitError, "is too large for Pillow to open safely"),
    ("load_network of a training card edited by hand (was sampled with the edited process)", _edited_card,
     gk.GuidekitError, "card.json was edited after training: its 'diffusion' differs"),
    ("load_network of a training folder named like a registered network (the folder was ignored)",
     lambda tmp: _folder_named_like(tmp, "mnist16-unet"), gk.InvalidParameterError,
     "names both a registered network (guidekit list network) and the training folder"),
    ("load_network of a training folder's card.json (hint: give the weights as --model-path)",
     lambda tmp: (tmp.joinpath("card.json").write_text("{}"), gk.load_network(tmp / "card.json")),
     gk.UnknownNetworkError, "is a file of the training folder"),
    ("load_network of a folder with a checkpoint but no card (was 'no training output folder')",
     lambda tmp: (tmp.joinpath("checkpoint.pt").write_bytes(b""), gk.load_network(tmp)),
     gk.UnknownNetworkError, "run the same guidekit train-* command with --resume"),
    ("a lock path that is a folder (was a raw IsADirectoryError after 'taking over')", _lock_is_a_folder,
     gk.OutputLockedError, "is a folder, but guidekit keeps the lock of"),
    ("load_network with a string for a number parameter (was a raw comparison error)", lambda tmp: gk.load_network(
        ADM_UNET, params={"model_channels": "abc"}, device="meta"), gk.GuidekitError,
     "model_channels='abc' is not a number"),
    ("grid path given as a number (was a pathlib TypeError)",
     lambda tmp: save_grid(np.zeros((1, 4, 4, 1), np.uint8), 3), gk.InvalidParameterError, "path must be a str"),
    ("grid given two paths", lambda tmp: save_grid(tmp / "a.png", tmp / "b.png"), gk.InvalidParameterError,
     "x must be images"),
    ("grid scale=0", lambda tmp: save_grid(np.zeros((1, 4, 4, 1), np.uint8), tmp / "g.png", scale=0),
     gk.InvalidParameterError, "scale must be a positive integer"),
    # issue 17: diffusers schedules, explicit respacing, the new guidances' parameters
    ("beta_start without beta_end", lambda tmp: gk.GaussianDiffusion.create(beta_start=0.0001),
     gk.InvalidParameterError, "give both beta_start and beta_end"),
    ("scaled_linear without its betas", lambda tmp: gk.GaussianDiffusion.create(schedule="scaled_linear"),
     gk.InvalidParameterError, "needs beta_start and beta_end"),
    ("beta_end >= 1", lambda tmp: gk.GaussianDiffusion.create(beta_start=0.1, beta_end=1.0),
     gk.InvalidParameterError, "0 < beta_start <= beta_end < 1"),
    ("cosine with betas", lambda tmp: gk.GaussianDiffusion.create(schedule="cosine", beta_start=0.1, beta_end=0.2),
     gk.InvalidParameterError, "has no beta_start/beta_end"),
    ("respacing timesteps beyond T", lambda tmp: DIFF.respace("timesteps:999,1000"), gk.InvalidParameterError,
     "lists timesteps [1000] outside 0..999"),
    ("respacing timesteps twice", lambda tmp: DIFF.respace("timesteps:5,5"), gk.InvalidParameterError,
     "more than once"),
    ("respacing timesteps not integers", lambda tmp: DIFF.respace("timesteps:1.5"), gk.InvalidParameterError,
     "comma-separated integer timesteps"),
    ("respace(None)", lambda tmp: DIFF.respace(None), gk.InvalidParameterError, "respacing must be a string"),
    ("cfg-rescale space='eps'", lambda tmp: gk.create("guidance", "cfg-rescale", space="eps"), gk.InvalidParameterError,
     "space must be 'x0'"),
    ("cfg-zero-star zero_init_steps=-1", lambda tmp: gk.create("guidance", "cfg-zero-star", zero_init_steps=-1),
     gk.InvalidParameterError, "zero_init_steps must be a non-negative integer"),
    ("apg momentum=-0.99 (measured to saturate)", lambda tmp: gk.create("guidance", "apg", momentum=-0.99),
     gk.UnstableGuidanceError, "outside [-0.9, 0.5]"),
    ("apg momentum=1.5 (diverges)", lambda tmp: gk.create("guidance", "apg", momentum=1.5), gk.UnstableGuidanceError,
     "Pass unsafe=True"),
    ("apg unsafe='yes'", lambda tmp: gk.create("guidance", "apg", momentum=1.5, unsafe="yes"), gk.InvalidParameterError,
     "unsafe must be True or False"),
    ("sampler dpmpp-2m without guidekit-diffusers", lambda tmp: gk.registry.Registry(
        gk.plugins.PluginManager(entry_points=False)).create("sampler", "dpmpp-2m"), gk.UnknownComponentError,
     "pip install guidekit-diffusers"),
    # third pass (issue 18): compare and the bundled networks (integrity.md, third pass)
    ("compare(num_samples=3, k=3) (precision/recall were written as null)", lambda tmp: gk.compare(
        "mnist16-unet", ["mnist16-classifier-ce"], ["constant:1"], out=tmp / "c", num_samples=3, k=3),
     gk.InvalidParameterError, "needs at least 4 samples per cell"),
    ("compare(features={'a/b': ...}) (files were written outside cells/)", lambda tmp: gk.compare(
        "mnist16-unet", ["mnist16-classifier-ce"], ["constant:1"], out=tmp / "c", features={"a/b": "mnist16-pca"},
        device="cpu"), gk.InvalidParameterError, "must be 1-40 letters, digits, '_' or '-'"),
    ("compare(tolerance='0.1') (was a raw TypeError)", lambda tmp: gk.compare(
        "mnist16-unet", ["mnist16-classifier-ce"], ["constant:1"], out=tmp / "c", targets=[0.8], tolerance="0.1"),
     gk.InvalidParameterError, "tolerance must be a number, got '0.1'"),
    ("compare(targets='0.8,x') (was a raw ValueError on '.')", lambda tmp: gk.compare(
        "mnist16-unet", ["mnist16-classifier-ce"], ["constant:1"], out=tmp / "c", targets="0.8,x"),
     gk.InvalidParameterError, "takes accuracies such as 0.8,0.9,0.95"),
    ("compare(seeds=True) (was one seed)", lambda tmp: gk.compare(
        "mnist16-unet", ["mnist16-classifier-ce"], ["constant:1"], out=tmp / "c", seeds=True),
     gk.InvalidParameterError, "--seeds takes a count (3) or a list of integer seeds"),
    ("compare(reference_batch=3) (was a raw TypeError)", lambda tmp: gk.compare(
        "mnist16-unet", ["mnist16-classifier-ce"], ["constant:1"], out=tmp / "c", reference_batch=3),
     gk.InvalidParameterError, "reference_batch must be the path of an .npz batch"),
    ("compare(allow_reference_overlap='no') (was truthy: overlap allowed)", lambda tmp: gk.compare(
        "mnist16-unet", ["mnist16-classifier-ce"], ["constant:1"], out=tmp / "c", allow_reference_overlap="no"),
     gk.InvalidParameterError, "allow_reference_overlap must be True or False"),
    ("bundled card truncated (was a raw JSONDecodeError)", lambda tmp: _bundle(
        tmp, lambda card, w: card.write_text(card.read_text()[:50])), gk.CheckpointError, "cannot read the card"),
    ("bundled card that is no JSON object (was a raw AttributeError)", lambda tmp: _bundle(
        tmp, lambda card, w: card.write_text("[]")), gk.CheckpointError, "is damaged (no JSON object)"),
    ("bundled card without the weights' sha256 (was a raw KeyError)", lambda tmp: _bundle(
        tmp, lambda card, w: _without_sha256(card)), gk.CheckpointError, "records no sha256 of its weights"),
    ("bundled card missing", lambda tmp: _bundle(tmp, lambda card, w: card.unlink()), gk.CheckpointError,
     "the card of mnist16-pca is missing"),
    ("bundled PixelPCA weights with a flipped byte", lambda tmp: _bundle(
        tmp, lambda card, w: w.write_bytes(w.read_bytes()[:-1] + b"x")), gk.CheckpointError,
     "does not match the sha256 in its card: the file is damaged"),
]


@pytest.mark.parametrize(("thunk", "error", "phrase"), [row[1:] for row in API_CASES], ids=[row[0] for row in API_CASES])
def test_bad_api_input(tmp_path, thunk, error, phrase):
    with pytest.raises(error) as info:
        thunk(tmp_path)
    assert phrase in str(info.value)


def test_registered_without_with_warns_instead_of_doing_nothing_silently():
    with pytest.warns(RuntimeWarning, match="was never entered, so nothing was registered"):
        gk.registered(Plugin())
    assert "guidekit_scaler" not in str(gk.available("scaler"))


def test_a_scaler_may_declare_negative_scales():
    assert torch.isfinite(_guided(Negative())).all()


def test_integer_and_boolean_scales_are_accepted_as_floats():
    assert torch.equal(_guided(lambda s: torch.tensor([1, 1])), _guided(lambda s: torch.tensor([True, True])))


# -- CLI rows -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Small batches of different sizes and channels, an existing file, a folder."""
    root = tmp_path_factory.mktemp("bad-cli")
    rng = np.random.default_rng(0)

    def images(n: int, hw: int, c: int) -> np.ndarray:
        return rng.integers(0, 255, (n, hw, hw, c), dtype=np.uint8)

    (root / "exists.json").write_text("{}")
    for folder, name in (("olddemo", "demo.json"), ("merged", "results.json"), ("oldcompare", "manifest.json")):
        (root / folder).mkdir()
        (root / folder / name).write_text("{}")
    np.savez(root / "labf.npz", arr_0=images(4, 16, 1), arr_1=np.array([0.0, 0.5, 1.0, 1.5]))
    np.savez(root / "lab8.npz", arr_0=images(4, 8, 1), arr_1=np.array([0, 1, 2, 3]))
    (root / "run").mkdir()  # a training folder (its card and weights file are enough here)
    (root / "run" / "card.json").write_text('{"network": {"spec": "mnist16-unet"}}')
    (root / "run" / "model.safetensors").write_bytes(b"")
    np.savez(root / "stats5.npz", mu=np.zeros(5), sigma=np.eye(5))  # a reference of statistics, no images
    record = {"classifier": "c", "scaler": "constant", "params": {"gamma": 1.0}, "seed": 0, "guidance": "classifier"}
    for folder, extra, complete in (("grid", {}, True), ("tgt", {"target_accuracy": 0.5}, True),
                                    ("partial", {}, False)):  # compare --out folders: finished, or killed
        (root / folder).mkdir()
        (root / folder / "manifest.json").write_text("{}")
        (root / folder / "results.json").write_text(json.dumps({"records": [{**record, **extra}], "complete": complete}))
    return {
        "root": root,
        "ref8": write_reference_batch(root / "ref8.npz", images(12, 8, 1)),
        "s8": write_sample_batch(root / "s8.npz", images(12, 8, 1)),
        "s16": write_sample_batch(root / "s16.npz", images(12, 16, 1)),
        "s8rgb": write_sample_batch(root / "s8rgb.npz", images(12, 8, 3)),
        "exists": root / "exists.json",
        "labf": root / "labf.npz",
        "lab8": root / "lab8.npz",
        "run": root / "run",
        "train16": write_sample_batch(root / "train16.npz", to_uint8(load_dataset("mnist16").images[:20])),
        "ref16few": write_reference_batch(root / "ref16few.npz", images(3, 16, 1)),
        "stats5": root / "stats5.npz",
    }


CLF8 = ("--image_size 8 --in_channels 1 --num_classes 10 --classifier_width 32 --classifier_depth 1 --channel_mult 1,2 "
        "--classifier_attention_resolutions 2 --classifier_num_head_channels 32")
UNET8 = ("--image_size 8 --in_channels 1 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2 --attention_resolutions 2 "
         "--num_head_channels 32 --learn_sigma False")
TRAIN = ["--steps", "1", "--batch-size", "2", "--device", "cpu", "--no-progress", "--out", "{root}/t"]
UNCOND = ["sample", "--model", "256x256_diffusion_uncond", "--model-path", "x.pt", "--out", "{root}/o"]
UNET16C = ("--image_size 16 --in_channels 1 --num_channels 32 --num_res_blocks 1 --channel_mult 1 "
           "--attention_resolutions -1 --num_head_channels 32 --learn_sigma False --class_cond True --num_classes 10")
COMPARE = ["compare", "--model", "mnist16-unet", "--classifier", "mnist16-classifier-ce", "--scaler", "constant:1",
           "--device", "cpu", "--no-progress", "--out", "{root}/c"]


CLI_CASES: list[tuple[str, list[str], int, str]] = [
    ("evaluate 16px samples against an 8px reference", ["evaluate", "--ref", "{ref8}", "--samples", "{s16}",
     "--extractor", "small-cnn", "--extractor-path", "{root}/none.pt"], 2, "16×16 grey images but the reference"),
    ("evaluate RGB samples against a grey reference", ["evaluate", "--ref", "{ref8}", "--samples", "{s8rgb}",
     "--extractor", "small-cnn", "--extractor-path", "{root}/none.pt"], 2, "8×8 RGB images but the reference"),
    ("evaluate --out onto an existing result", ["evaluate", "--ref", "{ref8}", "--samples", "{s8}",
     "--out", "{exists}"], 2, "exists already; pass --overwrite"),
    ("evaluate --out under a file", ["evaluate", "--ref", "{ref8}", "--samples", "{s8}", "--out",
     "{exists}/r.json"], 2, "is a file, not a folder"),
    ("evaluate --ref is a folder", ["evaluate", "--ref", "{root}", "--samples", "{s8}"], 2, "is a folder"),
    ("evaluate --extractor-path is a folder (was 'does not exist')", ["evaluate", "--ref", "{ref8}", "--samples",
     "{s8}", "--extractor", "small-cnn", "--extractor-path", "{root}"], 2, "is a folder; give the weights file"),
    ("evaluate --extractor-param not KEY=VALUE", ["evaluate", "--ref", "{ref8}", "--samples", "{s8}",
     "--extractor", "small-cnn", "--extractor-param", "width"], 2, "KEY=VALUE"),
    ("merge-batches onto an existing file", ["merge-batches", "{exists}", "{s8}"], 1, "exists already"),
    ("merge-batches onto one of its inputs", ["merge-batches", "{s8}", "{s8}", "--overwrite"], 1,
     "is also an input"),
    ("demo --samples 0", ["demo", "--samples", "0"], 1, "--samples must be at least 10"),
    ("demo with an unknown sampler", ["demo", "--sampler", "heun"], 1, "unknown sampler 'heun'"),
    ("demo --out under a file", ["demo", "--out", "{exists}/d"], 1, "is a file, not a folder"),
    ("toy demo --out under a file", ["demo", "--toy", "--out", "{exists}/d"], 1, "is a file, not a folder"),
    ("--plugin of a missing module", ["--plugin", "guidekit_no_such_module", "list"], 1,
     "'guidekit_no_such_module' could not be imported"),
    ("--plugin given a file path", ["--plugin", "my_scalers.py", "list"], 1, "give a module name"),
    ("--plugin without a module", ["list", "--plugin"], 1, "--plugin needs a MODULE"),
    ("sample --scaler-param gamma=3 with --gamma 4", ["sample", "--model", "64x64_diffusion", "--model-path", "x.pt",
     "--classifier", "64x64_classifier", "--classifier-path", "c.pt", "--gamma", "4", "--scaler-param", "gamma=3",
     "--out", "{root}/o"], 1, "disagree; give the value once"),
    ("sample --scaler-param twice", ["sample", "--model", "64x64_diffusion", "--model-path", "x.pt", "--classifier",
     "64x64_classifier", "--classifier-path", "c.pt", "--scaler-param", "gamma=3", "--scaler-param", "gamma=2",
     "--out", "{root}/o"], 1, "given twice"),
    ("sample with an unknown sampler", ["sample", "--model", "64x64_diffusion", "--model-path", "x.pt",
     "--sampler", "heun", "--out", "{root}/o"], 1, "unknown sampler 'heun'"),
    ("sample --eta for ddpm (was ignored)", ["sample", "--model", "64x64_diffusion", "--model-path", "x.pt",
     "--sampler", "ddpm", "--eta", "0.5", "--out", "{root}/o"], 1, "unknown parameter 'eta'"),
    ("sample --gamma without a classifier", ["sample", "--model", "64x64_diffusion", "--model-path", "x.pt",
     "--gamma", "3", "--out", "{root}/o"], 1, "need guidance: give --classifier"),
    ("sample --gamma inf", ["sample", "--model", "64x64_diffusion", "--model-path", "x.pt", "--classifier",
     "64x64_classifier", "--classifier-path", "c.pt", "--gamma", "inf", "--out", "{root}/o"], 1, "must be finite"),
    ("sample --model-path is a folder (was 'download it')", ["sample", "--model", "64x64_diffusion", "--model-path",
     "{root}", "--out", "{root}/o", "--device", "cpu"], 1, "is a folder; give the weights file inside it"),
    ("sample --out under a file", ["sample", "--model", "64x64_diffusion", "--model-path", "x.pt", "--out",
     "{exists}/o"], 1, "is a file, not a folder"),
    # found by fuzzing the command line (benchmarks/results/bad_inputs/cli.md, by number)
    ("#6 --plugin= empty (was ignored)", ["list", "--plugin="], 1, "empty MODULE name"),
    ("#19 respacing ddim300 (no fix named)", ["demo", "--toy", "--respacing", "ddim300", "--out", "{root}/d"], 1,
     "the nearest ddimN that work: ddim250, ddim334"),
    ("#20 respacing 2000 of 1000 steps", ["demo", "--toy", "--respacing", "2000", "--out", "{root}/d"], 1,
     "each of its 1 section(s) about 1000 steps, so ask for fewer"),
    ("#22 demo --cfg-w -1 (was ignored)", ["demo", "--cfg-w", "-1", "--out", "{root}/d"], 1, "--cfg-w must be >= 0"),
    ("#23 demo onto an earlier demo (was overwritten)", ["demo", "--toy", "--out", "{root}/olddemo"], 1,
     "holds an earlier demo (demo.json); pass --overwrite"),
    ("#40 sample --classes with nothing to condition (was ignored)", [*UNCOND, "--classes", "3"], 1,
     "--classes has no effect here"),
    ("#41 sample classifier-free on an unconditional model (hint was 'pass y=')",
     [*UNCOND, "--guidance", "classifier-free", "--guidance-param", "null_label=5"], 1,
     "needs a class-conditional model"),
    ("#46 sample --guidance-param unknown to classifier guidance (hint was about scaler objects)",
     ["sample", "--model", "64x64_diffusion", "--model-path", "x.pt", "--classifier", "64x64_classifier",
      "--classifier-path", "c.pt", "--guidance-param", "batched=False", "--out", "{root}/o"], 1,
     "unknown parameter 'batched' of guidance 'classifier'"),
    ("#62 sample --model flag misspelt (no suggestion)", ["sample", "--model=--image_size 16 --num_chanels 32",
     "--model-path", "x.pt", "--out", "{root}/o"], 1, "did you mean --num_channels?"),
    ("#123 train --loss misspelt ('losss')", ["train-classifier", "--data", "mnist16", "--flags", CLF8, *TRAIN,
     "--loss", "foo"], 1, "Available losses: ce, ect"),
    ("#125 train float labels (were truncated)", ["train-classifier", "--data", "{labf}", "--flags", CLF8, *TRAIN], 1,
     "non-integer labels"),
    ("#126 train 8px data with 16px flags (was 'a bug in guidekit')", ["train-classifier", "--data", "{lab8}",
     "--flags", CLF8.replace("image_size 8", "image_size 16"), *TRAIN], 1, "use --image_size 8 in --flags"),
    ("#129 train --steps 0 (was 'a bug in guidekit')", ["train-classifier", "--data", "mnist16", "--flags", CLF8,
     *TRAIN, "--steps", "0"], 1, "--steps must be an integer >= 1, got 0"),
    ("#130 train --ema-decay 2 (was 'a bug in guidekit')", ["train-diffusion", "--data", "mnist16", "--flags", UNET8,
     *TRAIN, "--ema-decay", "2"], 1, "--ema-decay must be in [0, 1), got 2.0"),
    ("#131 train --class-dropout on an unconditional model (hint named no flag)", ["train-diffusion", "--data", "{lab8}",
     "--flags", UNET8, *TRAIN, "--class-dropout", "0.2"], 1, "add --class_cond True to --flags"),
    ("#132 train --null-label among the data's labels", ["train-diffusion", "--data", "{lab8}", "--flags",
     UNET8 + " --class_cond True", *TRAIN, "--class-dropout", "0.2", "--null-label", "2"], 1,
     "--null-label 2 is a label of the data (0..3)"),
    ("#134 train --threads 0 (was ignored)", ["train-diffusion", "--data", "mnist16", "--flags", UNET8, *TRAIN,
     "--threads", "0"], 1, "--threads must be >= 1"),
    ("#135 train --image-size with mnist16 (was ignored)", ["train-diffusion", "--data", "mnist16", "--flags", UNET8,
     *TRAIN, "--image-size", "8"], 1, "which is not a folder"),
    ("#107 compare --scaler constant:1,1 (computed twice)", [*COMPARE[:6], "constant:1,1", *COMPARE[7:]], 1,
     "repeats a gamma value"),
    ("#99 compare --reference of another size (was accepted)", [*COMPARE, "--reference", "{s8}"], 1,
     "Give a reference of the model's image size"),
    ("#102 compare --model-path unreadable for a bundled network (was 'a bug in guidekit')",
     [*COMPARE, "--model-path", "{exists}"], 1, "as .safetensors"),
    ("#114 compare-plot onto earlier results (were overwritten)", ["compare-plot", "{root}/a", "{root}/b", "--out",
     "{root}/merged"], 1, "holds results already; pass --overwrite"),
    ("#116 compare-plot --out is a file (was 'File exists')", ["compare-plot", "{root}/a", "{root}/b", "--out",
     "{exists}"], 1, "is a file; give a folder"),
    ("#117 compare-plot the same run twice (records doubled)", ["compare-plot", "{root}/a", "{root}/a", "--out",
     "{root}/m"], 1, "is given twice"),
    ("#77 evaluate --out '' (nothing was written)", ["evaluate", "--ref", "{ref8}", "--samples", "{s8}", "--out", ""],
     2, "is a folder; give the path of the file"),
    ("#83 merge-batches the same batch twice (samples doubled)", ["merge-batches", "{root}/m.npz", "{s8}",
     "{root}/../{root.name}/s8.npz"], 1, "is given twice"),
    ("#84 merge-batches a folder (was 'does not exist')", ["merge-batches", "{root}/m.npz", "{root}"], 1,
     "is a folder; give the .npz files inside it"),
    ("#109 compare --guidance-param unknown (hint was about scaler objects)", [*COMPARE, "--guidance-param", "foo=1"],
     1, "unknown parameter 'foo' of guidance 'classifier'"),
    ("#95 compare rerun with other options names the flags (was 'differing: diffusion')",
     [*COMPARE[:-1], "{root}/oldcompare"], 1, "diffusion (--respacing)"),
    ("#78 evaluate --out onto its own samples with --overwrite (batch replaced by JSON)", ["evaluate", "--ref",
     "{ref8}", "--samples", "{s8}", "--out", "{s8}", "--overwrite"], 2, "is an input batch"),
    ("sample --model a classifier (was 'unknown ADM release'; bundled diffusion models are sampled now)",
     ["sample", "--model", "mnist16-classifier-ce", "--out", "{root}/o"], 1,
     "is a classifier network, but --model takes diffusion models"),
    ("sample --classifier mnist16-classifier-ce for a 256px model (was 'unknown ADM release')", [*UNCOND,
     "--classifier", "mnist16-classifier-ce", "--classifier-path", "c.pt", "--device", "cpu"], 1,
     "the classifier is 16px but the model is 256px"),
    ("sample without --model-path", ["sample", "--model", "64x64_diffusion", "--out", "{root}/o"], 1,
     "--model-path is required"),
    ("sample --fast with classifier-free guidance (failed after loading)", [*UNCOND, "--guidance", "classifier-free",
     "--fast"], 1, "--fast drives classifier guidance only"),
    ("compare --scaler constant:-1,1 (failed after the reference was computed and --out written)",
     [*COMPARE[:6], "constant:-1,1", *COMPARE[7:-1], "{root}/negative"], 1, "'gamma' must be >= 0.0"),
    # one way in for every network (issue 16)
    ("sample --model of no kind guidekit knows", ["sample", "--model", "nope", "--out", "{root}/o"], 1,
     "no network 'nope'. A network is named by"),
    ("sample --classifier-path without --classifier (was 'go together')", ["sample", "--model", "mnist16-unet",
     "--classifier-path", "c.pt", "--out", "{root}/o"], 1, "--classifier-path needs --classifier"),
    ("sample --model-param the bundled model does not take", ["sample", "--model", "mnist16-unet", "--model-param",
     "width=3", "--out", "{root}/o"], 1, "got an unknown parameter 'width'"),
    ("sample --use-fp16 for a bundled model (an ADM loading option)", ["sample", "--model", "mnist16-unet",
     "--use-fp16", "--out", "{root}/o"], 1, "got an unknown parameter 'use_fp16'"),
    ("sample --model a folder that is no training folder", ["sample", "--model", "{root}/olddemo", "--out", "{root}/o"], 1,
     "is a folder without card.json"),
    ("train --channels for .npz data (was ignored)", ["train-classifier", "--data", "{lab8}", "--channels", "3",
     *TRAIN], 1, "--channels converts the images of a folder"),
    ("train-diffusion --model a classifier", ["train-diffusion", "--data", "{lab8}", "--model",
     "mnist16-classifier-ce", *TRAIN], 1, "train-diffusion needs a diffusion architecture"),
    ("train --model-param the ADM class lacks", ["train-diffusion", "--data", "{lab8}", "--flags", UNET8,
     "--model-param", "widht=3", *TRAIN], 1, "does not accept ['widht']"),
    # second pass on the merged tree (issue 18)
    ("train --model-param dropout=abc (was a raw comparison error)", ["train-diffusion", "--data", "{lab8}", "--flags",
     UNET8, "--model-param", "dropout=abc", *TRAIN], 1, "dropout='abc' is not a number"),
    ("sample --model RUN/model.safetensors (hint: give the weights as --model-path)", ["sample", "--model",
     "{run}/model.safetensors", "--out", "{root}/o"], 1, "name the folder itself"),
    ("compare --target-accuracy 1.5", [*COMPARE, "--target-accuracy", "0.8,1.5"], 1,
     "--target-accuracy takes distinct accuracies in (0, 1]"),
    ("compare --target-accuracy with --accuracy-levels", [*COMPARE, "--target-accuracy", "0.8",
     "--accuracy-levels", "0.5"], 1, "give one of the two"),
    ("compare --pilot-samples above --num-samples", [*COMPARE, "--target-accuracy", "0.8", "--num-samples", "100",
     "--pilot-samples", "200"], 1, "--pilot-samples (200) must not exceed --num-samples (100)"),
    ("compare --baseline that is no method of the run", [*COMPARE, "--target-accuracy", "0.8", "--baseline",
     "mnist16-classifier-ect/constant"], 1, "is not a method of this run"),
    ("compare --features without a label", [*COMPARE, "--features", "mnist16-pca"], 1,
     "--features takes LABEL=EXTRACTOR"),
    ("compare --features oracle=... (the judge's own space)", [*COMPARE, "--features", "oracle=mnist16-pca"], 1,
     "is the judge's own"),
    ("compare --reference holding training images (FD would reward memorisation)",
     [*COMPARE, "--reference", "{train16}"], 1, "20 of its 20 images are in the training data of the model mnist16-unet"),
    # third pass (issue 18): compare's new options, compare-plot (integrity.md, third pass)
    ("compare --num-samples 3 --k 3 (precision/recall were written as null)", [*COMPARE, "--num-samples", "3", "--k",
     "3"], 1, "needs at least 4 samples per cell (each is its own 0-th neighbour)"),
    ("compare --k 3 with a 3-image reference (precision/recall were null)", [*COMPARE, "--reference", "{ref16few}"], 1,
     "needs at least 4 reference images, but the reference"),
    ("compare --pr-limit 2 (precision/recall were null)", [*COMPARE, "--pr-limit", "2"], 1, "and --pr-limit keeps 2"),
    ("compare --pilot-samples without --target-accuracy (was ignored)", [*COMPARE, "--pilot-samples", "5"], 1,
     "--pilot-samples tunes the γ search of --target-accuracy, which is not given"),
    ("compare --baseline without --target-accuracy (was ignored)", [*COMPARE, "--baseline", "x/constant"], 1,
     "which need --target-accuracy"),
    ("compare --features ../x=... (a bootstrap file was written outside its name)", [*COMPARE, "--features",
     "../x=mnist16-pca"], 1, "must be 1-40 letters, digits, '_' or '-'"),
    ("compare --features inc=inception-v3 (hint named --inception-weights, which compare lacks)", [*COMPARE,
     "--features", "inc=inception-v3"], 1, "--judge inception-v3 --judge-weights PATH"),
    ("compare --reference a folder (was 'does not exist')", [*COMPARE, "--reference", "{root}"], 1,
     "is a folder; give the ADM-layout .npz batch file"),
    ("compare --reference of mu/sigma of another dimension (failed after sampling, naming no file)",
     [*COMPARE, "--reference", "{stats5}"], 1, "holds precomputed mu/sigma of dimension 5 and no images"),
    ("compare classifier-free with a null label that is not the last class (hint was 'pass y=...')",
     ["compare", "--model", UNET16C, "--guidance", "classifier-free", "--guidance-param", "null_label=3", "--scaler",
      "constant:1", "--reference", "{train16}", "--respacing", "ddim2", "--device", "cpu", "--no-progress", "--out",
      "{root}/c"], 1, "is not the model's last class (9), so the real labels are unknown"),
    ("compare --target-accuracy with a negative ladder value (refused after --out was written)",
     [*COMPARE[:6], "constant:-1,2", *COMPARE[7:], "--target-accuracy", "0.5"], 1, "'gamma' must be >= 0.0"),
    ("compare-plot a γ-grid run with a target-accuracy run (the grid's methods were left out)",
     ["compare-plot", "{root}/grid", "{root}/tgt", "--out", "{root}/m2"], 1, "one table cannot hold both"),
    ("compare-plot an unfinished run (a killed run's partial records were merged)",
     ["compare-plot", "{root}/grid", "{root}/partial", "--out", "{root}/m3"], 1,
     "holds an unfinished guidekit compare run"),
    ("compare-plot a file (was 'Not a directory')", ["compare-plot", "{root}/grid", "{exists}", "--out",
     "{root}/m4"], 1, "is a file; give guidekit compare --out folders"),
]


@pytest.mark.parametrize(("argv", "code", "phrase"), [row[1:] for row in CLI_CASES], ids=[row[0] for row in CLI_CASES])
def test_bad_cli_input(files, capsys, monkeypatch, argv, code, phrase):
    monkeypatch.delenv("GUIDEKIT_INCEPTION_WEIGHTS", raising=False)
    assert main([arg.format(**files) for arg in argv]) == code
    captured = capsys.readouterr()
    assert phrase in captured.err and "Traceback" not in captured.err
    assert len([line for line in captured.err.splitlines() if "error" in line]) == 1


def test_compare_checks_every_grid_point_before_it_writes(files, capsys):
    out = files["root"] / "negative-first"
    assert main([*COMPARE[:6], "constant:-1,1", *COMPARE[7:-1], str(out)]) == 1
    assert "'gamma' must be >= 0.0" in capsys.readouterr().err and not out.exists()


def test_compare_checks_every_ladder_value_before_it_writes(files, capsys):
    out = files["root"] / "negative-ladder"
    assert main([*COMPARE[:6], "constant:-1,2", *COMPARE[7:-1], str(out), "--target-accuracy", "0.5"]) == 1
    assert "'gamma' must be >= 0.0" in capsys.readouterr().err and not out.exists()

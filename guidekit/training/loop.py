"""The training loop shared by classifiers and diffusion models.

AdamW, an EMA with warm-up, per-step draws from one seeded generator (the same global batch on
every torchrun process, each taking its slice), atomic checkpoints holding model, EMA, optimizer,
step and RNG states, and an exact resume: on the CPU an interrupted-and-resumed run logs the same
losses as an uninterrupted one.

Identity: a checkpoint holds the sha256 of its own content (every tensor and value, ``"identity"``), checked
when it is read back (``torch.load`` checks no CRC, so a flipped byte would otherwise load silently), and
the identity of its inputs (the full sha256 of the training data, the diffusion process, and the
provenance of the network's and the loss's code); a resume with other inputs is refused, naming them.
A failed save (disk full, read-only) is a :class:`~guidekit.errors.WriteError` naming the file, and the
previous checkpoint is kept.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from ..errors import CheckpointError, IdentityError, InvalidParameterError, NonFiniteError, WriteError
from ..identity import state_sha256
from ..io import atomic_write, noted, probe_writable
from ..progress import progress as progress_bar
from .config import RESUMABLE_FIELDS, TrainConfig
from .distributed import init_world, local_slice, mean_over_world
from .ema import EMA

#: the global batch of one step: tensors with the batch along dim 0
Batch = dict[str, torch.Tensor]
Draw = Callable[[torch.Generator], Batch]
StepLoss = Callable[[nn.Module, Batch], tuple[torch.Tensor, dict[str, float]]]


@attrs.frozen(eq=False)
class TrainResult:
    """What a training run leaves: the logged records, the EMA weights and where it stopped."""

    records: list[dict[str, float]]
    ema: dict[str, torch.Tensor]
    step: int
    checkpoint: Path | None = None
    #: the identity of the run's inputs (data sha256, diffusion process, code of the network and loss), for cards
    inputs: dict[str, Any] = attrs.field(factory=dict)

    def ema_model(self, model: nn.Module) -> nn.Module:
        """Load the EMA weights into ``model`` (in place) and put it in eval mode."""
        model.load_state_dict(self.ema)
        return model.eval()


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`guidekit.io.atomic_write` (a kill leaves the old file; a failed write is a
    :class:`~guidekit.errors.WriteError` naming ``path``, torch's "enforce fail at inline_container.cc" included)."""
    with atomic_write(path) as fh:
        torch.save(obj, fh)


def with_identity(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` plus ``"identity": {"content_sha256": ...}``, the digest of everything else it holds."""
    return {**payload, "identity": {"content_sha256": state_sha256(payload)}}


def check_identity(saved: dict[str, Any], path: Path) -> None:
    """A checkpoint's content still has the sha256 it was saved with (checkpoints of guidekit < 0.3 have none)."""
    identity = saved.get("identity")
    if not isinstance(identity, dict):
        return
    actual = state_sha256({k: v for k, v in saved.items() if k != "identity"})
    if actual != identity.get("content_sha256"):
        raise IdentityError(f"training checkpoint {path} is damaged: its content has sha256 {actual[:12]}… but it was "
                            f"saved with {str(identity.get('content_sha256'))[:12]}… (a disk or copy error, or an edit). "
                            "Restore it from a copy, or delete it (or pass --overwrite) to start over")


def config_record(config: TrainConfig) -> dict[str, Any]:
    return attrs.asdict(config)


def check_resume(saved: dict[str, Any], config: TrainConfig, kind: str, path: Path) -> None:
    """Refuse a resume whose settings differ (naming the option), or of another kind of run."""
    if saved.get("kind") != kind:
        raise CheckpointError(f"{path} is a {saved.get('kind')} training checkpoint, not a {kind} one")
    now = config_record(config)
    for key, value in saved["config"].items():
        if key not in RESUMABLE_FIELDS and now.get(key) != value:
            raise InvalidParameterError(
                f"cannot resume {path}: it was trained with {key}={value!r}, now {key}={now.get(key)!r}. "
                f"Use the same {key}, or start a new run in another folder"
            )


def check_run(checkpoint: Any, resume: Any, overwrite: Any, callback: Any, stop_after: Any) -> Path | None:
    """The checkpoint path (not a folder, not under a file) and the run options, checked before any step."""
    if resume is True and overwrite is True:
        raise InvalidParameterError("resume=True continues the checkpoint and overwrite=True replaces it: give one")
    if callback is not None and not callable(callback):
        raise InvalidParameterError(f"callback must be callable with a record dict, got {type(callback).__name__}")
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, int) or stop_after < 0):
        raise InvalidParameterError(f"stop_after must be None or an integer >= 0, got {stop_after!r}")
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    if path.is_dir():
        raise InvalidParameterError(f"checkpoint {str(path)!r} is a folder; give a file path such as {str(path / 'checkpoint.pt')!r}")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise InvalidParameterError(f"checkpoint {str(path)!r} lies under {str(above)!r}, which is a file, not a folder")
    return path


SETTING_NAMES = {"data": "training data (images and labels)", "diffusion": "diffusion process",
                 "architecture": "architecture",
                 "code": "code (the network's or the loss's source or distribution)"}


def differences(saved: Any, now: Any, prefix: str = "") -> list[str]:
    """``"key: was A, now B"`` for every leaf where two (nested) records differ."""
    if isinstance(saved, dict) and isinstance(now, dict):
        return [d for key in sorted(set(saved) | set(now), key=str)
                for d in differences(saved.get(key), now.get(key), f"{prefix}{key}.")]
    return [] if saved == now else [f"{prefix.rstrip('.')}: was {saved!r}, now {now!r}"]


def check_settings(saved: dict[str, Any], now: dict[str, Any], path: Path) -> None:
    """Refuse a resume whose architecture, data, diffusion process or code differ from the checkpoint's (keys both
    record; within a dict, the entries both record, so checkpoints of older versions still resume)."""
    for key in sorted(set(saved) & set(now)):
        a, b = saved[key], now[key]
        if isinstance(a, dict) and isinstance(b, dict):
            a, b = ({k: d[k] for k in set(a) & set(b)} for d in (a, b))
        if a != b:
            what = SETTING_NAMES.get(key, key)
            found = differences(a, b) if isinstance(a, dict) else []
            detail = "; ".join(found[:4]) + (f"; and {len(found) - 4} more" if len(found) > 4 else "") if found else \
                f"{a}, now {b}"
            raise InvalidParameterError(
                f"cannot resume {path}: it was trained with another {what} ({detail}). Use the same {what}, or start "
                "a new run at another path"
            )


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """A training checkpoint, read with ``weights_only=True`` and checked against its recorded sha256."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        # torch's own text for a refused unpickle suggests weights_only=False, which guidekit never does
        why = ("it is damaged or not a guidekit training checkpoint" if isinstance(exc, pickle.UnpicklingError)
               else str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__)
        raise CheckpointError(f"cannot read training checkpoint {path} ({why}). Delete it to start over, or pass "
                              "another checkpoint path") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path} holds a {type(saved).__name__}, not a guidekit training checkpoint; pass another "
                              "checkpoint path")
    check_identity(saved, path)
    return saved


def fit(
    model: nn.Module,
    config: TrainConfig,
    draw: Draw,
    step_loss: StepLoss,
    *,
    kind: str,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callback: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    settings: dict[str, Any] | None = None,
) -> TrainResult:
    """Run ``config.steps`` optimisation steps of ``step_loss`` on batches from ``draw``.

    ``checkpoint`` is written every ``config.save_every`` steps and at the end. An existing
    checkpoint is continued with ``resume=True`` and replaced with ``overwrite=True``; otherwise it is
    an error, so no run is lost. ``stop_after`` ends the run early after that many steps (as a kill
    would, after the last checkpoint), for tests and staged runs. ``settings`` (e.g. the diffusion process)
    are stored with the checkpoint, and a resume with other settings is refused.
    """
    path = check_run(checkpoint, resume, overwrite, callback, stop_after)
    if path is not None:
        probe_writable(path.parent, "the checkpoint's folder")  # now, not at the first save
    device = next(iter(model.parameters())).device
    world = init_world(device)
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ema = EMA(model, config.ema_decay, config.ema_warmup)
    records: list[dict[str, float]] = []
    sums: dict[str, float] = {}
    count, start = 0, 0
    if path is not None and path.exists():
        if resume:
            saved = load_checkpoint_file(path)
            check_resume(saved, config, kind, path)
            if int(saved["step"]) > config.steps:
                raise InvalidParameterError(f"cannot resume {path}: it has trained {int(saved['step'])} steps already, "
                                            f"more than steps={config.steps}; give at least that many steps (--steps)")
            check_settings(saved.get("settings") or {}, settings or {}, path)
            try:
                model.load_state_dict(saved["model"])
            except RuntimeError as exc:
                lines = str(exc).strip().splitlines()
                raise CheckpointError(f"cannot resume {path}: it holds the weights of another architecture "
                                      f"({lines[1 if len(lines) > 1 else 0].strip()}); resume with the model it was "
                                      "trained with, or start a new run at another path") from None
            ema.load_state_dict(saved["ema"])
            opt.load_state_dict(saved["optimizer"])
            gen.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])
            records, sums, count, start = list(saved["records"]), dict(saved["sums"]), int(saved["count"]), int(saved["step"])
            if world.is_main:
                print(f"resuming from step {start} of {config.steps} ({path})", flush=True)
        elif not overwrite:
            raise InvalidParameterError(
                f"{path} already holds a training run: pass resume=True (--resume) to continue it, "
                "overwrite=True (--overwrite) to start over, or choose another path"
            )
    elif resume and path is not None and world.is_main:
        print(f"no checkpoint at {path} yet: starting a new run", flush=True)
    train_model: nn.Module = model
    if world.size > 1:
        ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    part = local_slice(config.batch_size, world)

    saved_at = [start if path is not None and path.exists() else None]

    def save(step: int) -> None:
        if path is not None and world.is_main:
            payload = with_identity({
                "kind": kind, "config": config_record(config), "step": step, "model": model.state_dict(),
                "ema": ema.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(), "records": records, "sums": sums, "count": count,
                **({"settings": settings} if settings is not None else {}),
            })
            try:
                save_atomic(payload, path)
            except WriteError as exc:
                kept = (f"the checkpoint of step {saved_at[0]} is kept: free space, then rerun with --resume "
                        "(resume=True)") if saved_at[0] is not None else "no checkpoint was written yet"
                raise noted(exc, f"training stopped at step {step}, {kept}") from None
            saved_at[0] = step

    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    model.train()
    bar = progress_bar(total=config.steps, desc=f"training {kind} ({config.loss if kind == 'classifier' else 'diffusion'})",
                       disable=not progress or not world.is_main)
    bar.n = start
    try:
        for step in range(start, end):
            if config.anneal_lr:
                for group in opt.param_groups:
                    group["lr"] = config.lr * (1 - step / config.steps)
            batch = {k: v[part].to(device) for k, v in draw(gen).items()}
            loss, metrics = step_loss(train_model, batch)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise InvalidParameterError(f"the training loss must be one number per step (a mean over the batch), "
                                            f"got {shape}; drop reduction='none' from loss_params (--loss-param), or "
                                            "make the loss reduce over the batch")
            if not torch.isfinite(loss):
                raise NonFiniteError(f"the training loss became {loss.item()} at step {step}: lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            ema.update(model)
            metrics = mean_over_world({"loss": loss.item(), **metrics}, world, device)
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                record = {"step": step + 1, **{k: v / count for k, v in sums.items()}}
                records.append(record)
                bar.postfix = " ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "step")
                if callback is not None:
                    callback(record)
                sums, count = {}, 0
            if (step + 1) % config.save_every == 0 or step + 1 == end:
                save(step + 1)
            bar.update(1)
    finally:
        bar.close()
    model.eval()
    return TrainResult(records, {k: v.clone() for k, v in ema.shadow.items()}, end, path, dict(settings or {}))


def export_weights(state: dict[str, torch.Tensor], path: str | os.PathLike[str], metadata: dict[str, str] | None = None) -> Path:
    """Write a state dict as ``.safetensors`` (or ``.pt``) atomically."""
    out = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    if out.suffix == ".safetensors":
        from safetensors.torch import save

        with atomic_write(out) as fh:
            fh.write(save(state, metadata=metadata))
    else:
        save_atomic(state, out)
    return out

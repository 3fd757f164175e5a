"""Helpers for testing guidekit and plugins: golden data, contract test bases, Hypothesis strategies.

Importing this package needs pytest (contracts) and Hypothesis (strategies) only when those
sub-modules are imported.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import torch


def golden_dir() -> Path:
    """``$GUIDEKIT_GOLDEN`` or ``../shared/golden`` beside the repository; raises if missing."""
    here = Path(__file__).resolve().parents[2]
    path = Path(os.environ.get("GUIDEKIT_GOLDEN", here.parent / "shared" / "golden"))
    if not path.is_dir():
        raise FileNotFoundError(f"golden fixtures not found at {path}; set GUIDEKIT_GOLDEN to the golden/ folder")
    return path


def load_golden(name: str) -> dict:
    """A golden ``.pt`` file, loaded with ``weights_only=True``."""
    return torch.load(golden_dir() / name, weights_only=True)


def unzero(net: torch.nn.Module, std: float = 0.05) -> torch.nn.Module:
    """Give the all-zero parameters of ``net`` small random weights, in place (ADM zero-initialises its output
    layers, so an untrained network ignores its label and gives no classifier gradient)."""
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.normal_(0.0, std)
    return net


def random_inception(seed: int = 0) -> torch.nn.Module:
    """The FID Inception-v3 with seeded random weights that give O(1) activations (for tests and GPU checks).

    He-initialised convolutions and non-trivial batch-norm statistics; in eval mode.
    """
    from guidekit.extractors.inception import InceptionV3

    torch.manual_seed(seed)
    model = InceptionV3()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def site_without(distribution: str, folder: Path) -> Path:
    """``folder`` filled with links to this environment's site-packages minus ``distribution`` (and minus
    every ``.pth`` file): on ``PYTHONPATH`` of an interpreter started with ``-S`` it is an environment
    where that distribution was never installed (its editable installs included)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {distribution.lower(), distribution.lower().replace("-", "_")}
    for sp in site.getsitepackages():
        for entry in Path(sp).iterdir():
            low = entry.name.lower()
            if any(n in low for n in names) or low.endswith(".pth") or (folder / entry.name).exists():
                continue
            (folder / entry.name).symlink_to(entry)
    return folder


def run_python(code: str, *paths: Path, env: dict[str, str] | None = None, python_args: tuple[str, ...] = (),
               cwd: Path | None = None) -> dict:
    """Run ``code`` in a fresh interpreter with ``paths`` as its ``PYTHONPATH``; it prints one JSON object as its
    last line, which is returned (a failing run raises with its stderr)."""
    e = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GUIDEKIT_STRICT_PLUGINS")}
    e["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    e.update(env or {})
    proc = subprocess.run([sys.executable, *python_args, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=e, cwd=cwd)
    if proc.returncode != 0:
        raise AssertionError(f"the subprocess failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])

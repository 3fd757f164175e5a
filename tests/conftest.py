"""Shared fixtures: the golden data from ../shared/golden (never skipped: missing data fails)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from guidekit import testing

REPO = Path(__file__).resolve().parents[1]


def golden_dir() -> Path:
    try:
        return testing.golden_dir()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def golden() -> Path:
    return golden_dir()


def _load(name: str) -> dict:
    return torch.load(golden_dir() / name, weights_only=True)


@pytest.fixture(scope="session")
def schedules() -> dict:
    return _load("schedules.pt")


@pytest.fixture(scope="session")
def sampler_step() -> dict:
    return _load("sampler_step.pt")


@pytest.fixture(scope="session")
def eds_ect() -> dict:
    return _load("eds_ect.pt")


@pytest.fixture(scope="session")
def respacing_table() -> dict:
    return json.loads((golden_dir() / "respacing_table.json").read_text())


@pytest.fixture(scope="session")
def install_plugin(tmp_path_factory):
    """``install_plugin("guidekit-ramp")``: a fixture distribution of tests/fixtures/plugins pip-installed into a
    folder of its own (once per session), for a PYTHONPATH or sys.path that then discovers its entry points."""
    installed: dict[str, Path] = {}

    def install(name: str) -> Path:
        if name not in installed:
            target = tmp_path_factory.mktemp(name)
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                            "--no-index", "--target", str(target), str(REPO / "tests" / "fixtures" / "plugins" / name)],
                           check=True)
            installed[name] = target
        return installed[name]

    return install

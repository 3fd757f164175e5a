"""Golden fixtures for the guidekit-adm tests (a missing golden folder fails, never skips)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import guidekit_adm as adm
import pytest
import torch

#: the repository root is three levels above this folder; the golden data sits beside it
DEFAULT_GOLDEN = Path(__file__).resolve().parents[3].parent / "shared" / "golden"


def golden_dir() -> Path:
    path = Path(os.environ.get("GUIDEKIT_GOLDEN", DEFAULT_GOLDEN))
    if not path.is_dir():
        pytest.fail(f"golden fixtures not found at {path}; set GUIDEKIT_GOLDEN to the golden/ folder")
    return path


@pytest.fixture(scope="session")
def manifests() -> dict[str, dict]:
    """Every release manifest, by release name."""
    folder = golden_dir() / "manifests"
    found = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if not p.stem.startswith("_")}
    assert len(found) == 16, f"expected 16 manifests in {folder}, found {sorted(found)}"
    return found


@pytest.fixture(scope="session")
def golden() -> Path:
    return golden_dir()


@pytest.fixture(scope="session")
def unet_tiny() -> dict:
    return torch.load(golden_dir() / "unet_tiny.pt", weights_only=True)


@pytest.fixture(scope="session")
def encoder_tiny() -> dict:
    return torch.load(golden_dir() / "encoder_tiny.pt", weights_only=True)


@pytest.fixture(scope="session")
def nn_blocks() -> dict:
    return torch.load(golden_dir() / "nn_blocks.pt", weights_only=True)


@pytest.fixture(scope="session")
def guided_step_tiny() -> dict:
    return torch.load(golden_dir() / "guided_step_tiny.pt", weights_only=True)


def tiny_unet(fixture: dict, variant: str = "legacy") -> adm.UNetModel:
    """The unet_tiny.pt model of one variant, loaded and in eval mode."""
    model = adm.UNetModel(**fixture["variants"][variant])
    model.load_state_dict(fixture["state_dict"], strict=True)
    return model.eval()


def tiny_classifier(encoder: dict, unet: dict) -> adm.EncoderUNetModel:
    """The encoder_tiny.pt classifier (its trunk weights come from unet_tiny.pt)."""
    state = {k: unet["state_dict"][k] for k in encoder["state_dict_shared_keys"]} | encoder["state_dict_own"]
    model = adm.EncoderUNetModel(**encoder["config"])
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture()
def make_unet(unet_tiny):
    return lambda variant="legacy": tiny_unet(unet_tiny, variant)


@pytest.fixture()
def unet_model(unet_tiny):
    return tiny_unet(unet_tiny)


@pytest.fixture()
def classifier_model(encoder_tiny, unet_tiny):
    return tiny_classifier(encoder_tiny, unet_tiny)

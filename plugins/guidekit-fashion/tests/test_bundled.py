"""The bundled fashion32 models: they load as components, their cards record the training split, the
reference is held out, and the oracle and the pixel PCA judge real test images."""

from __future__ import annotations

import hashlib
import shutil

import attrs
import guidekit_fashion as gf
import numpy as np
import pytest
import torch
from guidekit_fashion.models import REFERENCE, WEIGHTS

import guidekit as gk
from guidekit.io import load_batch
from guidekit.testing.bundled import check_bundled_network


@pytest.fixture(scope="module")
def reference():
    batch = load_batch(REFERENCE)
    return torch.from_numpy(np.array(batch.images())), torch.from_numpy(batch.labels())


@pytest.mark.parametrize("name", gf.NAMES)
def test_component_loads_with_a_complete_card(name):
    card = check_bundled_network(name, WEIGHTS, REFERENCE).card
    assert card["data"].startswith("fashion-mnist") and len(card["class_names"]) == 10
    assert card["split"] == gk.create("extractor", "fashion32-pca").card["split"]
    if name.startswith("fashion32-unet"):
        diff = gk.GaussianDiffusion.from_model(gk.create("network", name), respacing="ddim10")
        assert diff.num_steps == 10 and card["flags"].startswith("--image_size 32 --in_channels 1")
    if name.startswith("fashion32-classifier"):
        acc = card["metrics"]["test_accuracy_by_t"]
        assert set(acc) == {"0", "100", "250", "500", "750", "999"} and acc["0"] > 0.8


def test_the_reference_is_held_out(reference):
    """The split check: 2,000 test images, none of them byte-identical to any of the 60,000 training images
    whose fingerprints the cards record (with their sha256)."""
    from guidekit.comparison.split import fingerprints

    images, labels = reference
    assert images.shape == (2000, 32, 32, 1) and images.dtype == torch.uint8
    assert sorted(labels.unique().tolist()) == list(range(10))
    split = gk.create("network", "fashion32-unet").card["split"]
    train = np.load(split["train"]["path"])
    assert split["train"]["count"] == len(train) == 60000 and len(np.unique(train)) == 60000
    assert split["train"]["sha256"] == hashlib.sha256(WEIGHTS.joinpath(split["train"]["file"]).read_bytes()).hexdigest()
    assert split["heldout"]["sha256"] == hashlib.sha256(REFERENCE.read_bytes()).hexdigest()
    assert not np.isin(fingerprints(images.numpy()), train).any()
    assert images[:, :2].max() == 0 and images[:, :, :2].max() == 0  # the 2 px zero padding of 28x28 -> 32x32


def test_oracle_and_pca_judge_real_images(reference):
    images, labels = reference
    oracle = gk.create("extractor", "fashion32-oracle")
    assert oracle.card["features"] == {"pca": "fashion32-pca"}
    feats = oracle.extract(images)
    assert feats["logits"].shape == (2000, 10)
    accuracy = (feats["logits"].argmax(1) == labels).double().mean()
    # 0.81 on the other 8,000 test images after 4 epochs (its card); a failing judge would be near 0.1
    assert accuracy > 0.75 and abs(accuracy - oracle.card["metrics"]["test_accuracy_8000"]) < 0.03
    pca = gk.create("extractor", "fashion32-pca").extract(images)["pool"]
    assert pca.shape == (2000, 32) and pca.var(0)[0] > pca.var(0)[-1]


def test_cond_model_has_a_null_label_and_ce_ect_share_architecture_and_seed():
    card = gk.create("network", "fashion32-unet-cond").card
    assert card["null_label"] == 10 and card["training"]["class_dropout"] == 0.1
    ce, ect = (gf.card(f"fashion32-classifier-{k}") for k in ("ce", "ect"))
    assert ce["flags"] == ect["flags"] and ce["seed"] == ect["seed"]
    assert ce["training"]["loss"] == "ce" and ect["training"]["loss"] == "ect"
    assert ect["training"]["loss_params"] == {"eta": 0.2}


def test_a_damaged_weights_file_is_refused(tmp_path):
    fake = tmp_path / "weights"
    shutil.copytree(WEIGHTS, fake)
    blob = bytearray((fake / "fashion32-oracle.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (fake / "fashion32-oracle.safetensors").write_bytes(bytes(blob))
    with pytest.raises(gk.CheckpointError, match="sha256"):
        attrs.evolve(gf.models.BUNDLE, weights=fake).load("fashion32-oracle")
    with pytest.raises(gk.UnknownComponentError, match="fashion32-unet"):
        gf.load("fashion32-vae")

"""The bundled mnist16 models: they load as components, their cards are complete and their weights match."""

from __future__ import annotations

import hashlib
import json
import shutil

import attrs
import guidekit_mnist16 as m16
import numpy as np
import pytest
import torch
from guidekit_mnist16.models import REFERENCE, WEIGHTS

import guidekit as gk
from guidekit.io import load_batch
from guidekit.testing.bundled import check_bundled_network


@pytest.fixture(scope="module")
def reference():
    batch = load_batch(REFERENCE)
    return torch.from_numpy(np.array(batch.images())), torch.from_numpy(batch.labels())


@pytest.mark.parametrize("name", m16.NAMES)
def test_component_loads_with_a_complete_card(name):
    model = check_bundled_network(name, WEIGHTS, REFERENCE)
    card = model.card
    assert card["data"] == "mnist16"
    if name.startswith("mnist16-unet"):
        diff = gk.GaussianDiffusion.create(**card["diffusion"], respacing="ddim10")
        assert diff.num_steps == 10 and card["flags"].startswith("--image_size 16")
    if name.startswith("mnist16-classifier"):
        acc = card["metrics"]["heldout_accuracy_by_t"]
        assert set(acc) == {"0", "100", "250", "500", "750", "999"} and acc["0"] > 0.9


@pytest.mark.parametrize("name", [n for n in m16.NAMES if n != "mnist16-oracle"])
def test_diffusion_from_the_bundled_card(name):
    """GaussianDiffusion.from_model/from_release read card["diffusion"] of the bundled networks."""
    model = gk.create("network", name)
    diff = gk.GaussianDiffusion.from_model(model, respacing="ddim10")
    expected = gk.GaussianDiffusion.create(**model.card["diffusion"], respacing="ddim10")
    assert diff.config == expected.config and diff.num_steps == 10
    assert torch.equal(diff.betas, expected.betas) and torch.equal(diff.timestep_map, expected.timestep_map)
    assert gk.GaussianDiffusion.from_release(name).config == gk.GaussianDiffusion.create(**model.card["diffusion"]).config


def test_the_oracle_names_no_diffusion_process():
    with pytest.raises(gk.InvalidParameterError, match=r"card\['diffusion'\]"):
        gk.GaussianDiffusion.from_model(gk.create("extractor", "mnist16-oracle"))


def test_cond_model_has_a_null_label():
    card = gk.create("network", "mnist16-unet-cond").card
    assert card["null_label"] == 10 and card["training"]["class_dropout"] == 0.1


def test_ce_and_ect_share_architecture_and_seed():
    ce, ect = (gk.create("network", f"mnist16-classifier-{k}").card for k in ("ce", "ect"))
    assert ce["flags"] == ect["flags"] and ce["seed"] == ect["seed"]
    assert ce["training"]["loss"] == "ce" and ect["training"]["loss"] == "ect"
    assert ect["training"]["loss_params"] == {"eta": 0.2}


def test_oracle_is_an_extractor_and_judges_real_digits(reference):
    images, labels = reference
    oracle = gk.create("extractor", "mnist16-oracle")
    feats = oracle.extract(images[::10])
    assert set(feats) >= {"pool", "logits"} and feats["logits"].shape == (50, 10)
    assert (oracle.extract(images)["logits"].argmax(1) == labels).double().mean() > 0.9  # 0.96 measured (uint8)
    assert oracle.card["metrics"]["heldout_accuracy"] > 0.9
    assert "ADM" not in oracle.card["architecture"] or "not an ADM" in oracle.card["architecture"]


def test_reference_batch_is_the_held_out_split(reference):
    """The split check: the cards' fingerprints are exactly those of Dataset.split(500, seed=0)'s training
    part, the shipped reference is its held-out part, and the two share no image."""
    from guidekit.comparison.split import fingerprints
    from guidekit.data import load_dataset
    from guidekit.io import to_uint8

    images, labels = reference
    assert images.shape == (500, 16, 16, 1) and images.dtype == torch.uint8
    train, held = load_dataset("mnist16").split(500, seed=0)
    assert torch.equal(images, to_uint8(held.images)) and torch.equal(labels, held.labels)
    split = gk.create("network", "mnist16-unet").card["split"]
    shipped = np.load(split["train"]["path"])
    assert split["train"]["count"] == 4500 and np.array_equal(shipped, fingerprints(to_uint8(train.images).numpy()))
    assert not np.isin(fingerprints(images.numpy()), shipped).any()
    assert split["heldout"]["sha256"] == hashlib.sha256(REFERENCE.read_bytes()).hexdigest()
    assert split["train"]["sha256"] == hashlib.sha256(WEIGHTS.joinpath(split["train"]["file"]).read_bytes()).hexdigest()


@pytest.mark.parametrize("name", [*m16.NAMES, "mnist16-pca"])
def test_every_card_records_the_same_split(name):
    card = (gk.create("extractor", name) if name == "mnist16-pca" else gk.create("network", name)).card
    assert card["split"]["train"]["file"] == "mnist16-train-fingerprints.npy"
    assert card["reference_batch"] == str(REFERENCE) == card["split"]["heldout"]["path"]
    assert card["split"] == gk.create("network", "mnist16-oracle").card["split"]


def test_pca_feature_space_is_named_by_the_oracle_and_reads_pixels(reference):
    images, _ = reference
    assert gk.create("extractor", "mnist16-oracle").card["features"] == {"pca": "mnist16-pca"}
    pca = gk.create("extractor", "mnist16-pca")
    feats = pca.extract(images)["pool"]
    assert feats.shape == (500, 32)
    # centred on the training mean: the held-out projections average near 0 next to their spread
    assert (feats.mean(0).abs() < 0.35 * feats.std(0)).all()
    assert feats.var(0)[0] > feats.var(0)[-1]  # ordered by explained variance


def test_a_damaged_weights_file_is_refused(tmp_path):
    fake = tmp_path / "weights"
    shutil.copytree(WEIGHTS, fake)
    blob = bytearray((fake / "mnist16-oracle.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (fake / "mnist16-oracle.safetensors").write_bytes(bytes(blob))
    with pytest.raises(gk.CheckpointError, match="sha256"):
        attrs.evolve(m16.models.BUNDLE, weights=fake).load("mnist16-oracle")


def test_unknown_bundled_name():
    with pytest.raises(gk.UnknownComponentError, match="mnist16-unet"):
        m16.load("mnist16-vae")


def test_unguided_samples_look_like_digits_to_the_oracle(reference):
    """FD on oracle features: unguided samples are far closer to real digits than noise is."""
    from guidekit.demo import Reference
    from guidekit.io import to_uint8

    unet, oracle = gk.create("network", "mnist16-unet"), gk.create("extractor", "mnist16-oracle")
    ref = Reference.of(oracle, unet.card)
    diff = gk.GaussianDiffusion.create(**unet.card["diffusion"], respacing="ddim10")
    y = torch.arange(60) % 10
    x = gk.sample(unet, diff, (60, 1, 16, 16), seed=0, progress=False)
    noise = torch.rand(60, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fd_samples = ref.judge(oracle, to_uint8(x), y)["fd"]
    fd_noise = ref.judge(oracle, to_uint8(noise), y)["fd"]
    assert fd_samples < 0.2 * fd_noise, (fd_samples, fd_noise)
    assert json.dumps(unet.card)  # cards are JSON


def test_docs_table_is_generated_from_the_cards():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[3] / "docs" / "bundled_cards.rst"
    assert docs.read_text() == m16.cards_table(), "regenerate: python -c 'import guidekit_mnist16 as m; print(m.cards_table(), end=\"\")' > docs/bundled_cards.rst"


def test_ect_classifier_is_less_confident_than_ce_on_the_same_noisy_inputs(reference):
    """ECT (paper Eq. 12) keeps p(ỹ|x_t) away from one-hot: higher entropy on identical x_t (measured at
    t = 100: 0.10 nats for CE, 0.32 for ECT)."""
    images, labels = reference
    x0 = images[::2].permute(0, 3, 1, 2).float() / 127.5 - 1
    ce, ect = (gk.create("network", f"mnist16-classifier-{k}") for k in ("ce", "ect"))
    diff = gk.GaussianDiffusion.create(steps=1000)
    for t in (100, 300):
        tt = torch.full((len(x0),), t)
        x_t = diff.q_sample(x0, tt, torch.randn(x0.shape, generator=torch.Generator().manual_seed(t)))
        with torch.no_grad():
            h_ce, h_ect = (gk.GuidanceState(t=tt, t_index=0, num_steps=1, logits=m(x_t, tt), grad=None,
                                            y=labels[::2]).entropy.mean() for m in (ce, ect))
        assert h_ect > 1.3 * h_ce, (t, h_ce, h_ect)


def test_weights_of_another_network_or_format_are_named_in_one_line(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(gk.CheckpointError) as info:
        m16.load("mnist16-oracle", path=tmp_path / "other.safetensors")
    message = str(info.value)  # torch's listing of every key used to follow, over many lines
    assert "does not fit the mnist16-oracle architecture (Missing key(s)" in message and "\n" not in message
    (tmp_path / "model.pt").write_bytes(b"not safetensors")
    with pytest.raises(gk.CheckpointError, match="cannot read .* as .safetensors"):
        m16.load("mnist16-oracle", path=tmp_path / "model.pt")

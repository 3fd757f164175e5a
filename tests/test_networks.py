"""``gk.load_network``: the one way in for every network. A third-party model family (the installed
guidekit-toynet fixture) through the resolver hook and as architectures, training folders, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import guidekit as gk
from guidekit.hookspecs import hookimpl

UNET8 = ("--image_size 8 --in_channels 1 --num_channels 32 --num_res_blocks 1 --channel_mult 1,2 "
         "--attention_resolutions 2 --num_head_channels 32 --learn_sigma True")


@pytest.fixture(scope="module")
def toynet_site(install_plugin) -> Path:
    """guidekit-toynet (a resolver for toynet:WIDTH specs, two architectures), pip-installed into a folder."""
    return install_plugin("guidekit-toynet")


@pytest.fixture()
def toynet(toynet_site, monkeypatch):
    """The installed fixture visible to this interpreter's entry-point discovery (the registry rebuilt around it)."""
    from guidekit import registry

    monkeypatch.syspath_prepend(str(toynet_site))
    registry.reset()
    yield toynet_site
    sys.path.remove(str(toynet_site))
    registry.reset()


def _env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GUIDEKIT_STRICT_PLUGINS", "WORLD_SIZE",
                                                             "RANK", "LOCAL_RANK")}
    return env | {"PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}


def _python(site: Path, code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=_env(site))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cli(capsys, *argv: str) -> tuple[int, str]:
    """``guidekit ARGV`` in this interpreter: (exit status, stderr)."""
    from guidekit.cli import main

    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


def _grey_folder(root: Path, classes: tuple[str, ...] = ("a", "b"), per_class: int = 3, size: int = 8) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), "L").save(root / name / f"{i}.png")
    return root


def test_a_third_party_resolver_is_asked_through_the_hook(toynet_site):
    out = _python(toynet_site, """
        import json, guidekit as gk
        net = gk.load_network("toynet:4")
        wide = gk.load_network("toynet:6", params={"in_channels": 3})
        arch = gk.load_network("toynet-unet", params={"width": 5})
        errors = {}
        for spec in ("toynet:x", "no-such-net"):
            try:
                gk.load_network(spec)
            except gk.GuidekitError as exc:
                errors[spec] = [type(exc).__name__, str(exc)]
        print(json.dumps({"type": type(net).__name__, "card": net.card, "training": net.training,
                          "wide": [wide.in_channels, wide.inp.out_channels], "arch": arch.card["constructor"],
                          "errors": errors}))
    """)
    assert out["type"] == "ToyUNet" and out["card"]["resolved_by"] == "guidekit-toynet"
    assert out["card"]["random_weights"] is True and out["training"] is False  # eval mode, no weights given
    assert out["wide"] == [3, 6] and out["arch"] == {"width": 5, "image_size": 8, "in_channels": 1}
    assert out["errors"]["toynet:x"] == ["InvalidParameterError", "'toynet:x': a toynet spec is toynet:WIDTH with an "
                                         "integer width"]
    kind, message = out["errors"]["no-such-net"]
    assert kind == "UnknownNetworkError"
    assert "toynet specs such as toynet:8 (the width) (guidekit-toynet)" in message  # the resolver says what it takes
    assert "ADM release names" in message and "a training output folder" in message and "toynet-unet" in message


def test_train_and_sample_a_plugin_architecture_by_name(toynet, tmp_path, capsys):
    """train-* on a plugin's own architectures with --model-param; sample the folders; resume refuses another width."""
    data = _grey_folder(tmp_path / "data")
    common = ["--data", str(data), "--steps", "2", "--batch-size", "2", "--save-every", "1", "--device", "cpu",
              "--no-progress"]
    code, err = _cli(capsys, "train-diffusion", *common, "--model", "toynet-unet", "--model-param", "width=4",
                     "--out", str(tmp_path / "unet"))
    assert code == 0, err
    assert "classes: 0=a, 1=b" in err
    code, err = _cli(capsys, "train-classifier", *common, "--model", "toynet-classifier", "--model-param",
                     "num_classes=2", "--out", str(tmp_path / "clf"))
    assert code == 0, err
    card = json.loads((tmp_path / "unet" / "card.json").read_text())
    assert card["network"] == {"spec": "toynet-unet", "params": {"width": 4}}
    assert card["constructor"] == {"width": 4, "image_size": 8, "in_channels": 1}
    assert card["architecture"] == "toynet ToyUNet" and card["role"] == "diffusion"

    code, err = _cli(capsys, "sample", "--model", str(tmp_path / "unet"), "--classifier", str(tmp_path / "clf"),
                     "--gamma", "1", "--num-samples", "3", "--respacing", "ddim2", "--device", "cpu", "--no-progress",
                     "--out", str(tmp_path / "s"))
    assert code == 0, err
    with np.load(tmp_path / "s" / "samples.npz") as batch:
        assert batch["arr_0"].shape == (3, 8, 8, 1) and batch["arr_0"].dtype == np.uint8
        assert set(batch["arr_1"].tolist()) <= {0, 1}
    assert json.loads((tmp_path / "s" / "run.json").read_text())["class_names"] == ["a", "b"]

    code, err = _cli(capsys, "train-diffusion", *common, "--model", "toynet-unet", "--model-param", "width=6",
                     "--out", str(tmp_path / "unet"), "--resume", "--steps", "3")
    assert code == 1
    assert "another architecture (constructor.width: was 4, now 6; params.width: was 4, now 6)" in err


def test_sample_a_resolved_spec_with_weights(toynet, tmp_path, capsys):
    weights = tmp_path / "w.pt"
    torch.manual_seed(0)
    torch.save(gk.load_network("toynet:4").state_dict(), weights)
    base = ["sample", "--model", "toynet:4", "--num-samples", "2", "--respacing", "ddim2", "--device", "cpu",
            "--no-progress"]
    code, err = _cli(capsys, *base, "--out", str(tmp_path / "o"))
    assert code == 1 and "--model-path is required: --model 'toynet:4' is an architecture without weights" in err
    code, err = _cli(capsys, *base, "--model-path", str(weights), "--out", str(tmp_path / "o"))
    assert code == 0, err
    options = json.loads((tmp_path / "o" / "run.json").read_text())["options"]
    assert options["model"] == "toynet:4" and len(options["model_sha256"]) == 64


class _Resolver:
    """A research-code resolver (registered with gk.registered): ``mine`` specs, no params argument."""

    @hookimpl
    def guidekit_resolve_network(self, spec, path, device):
        """mine (a test resolver)."""
        if spec == "broken":
            raise RuntimeError("resolver bug")
        if spec != "mine":
            return None
        net = torch.nn.Linear(2, 2)
        net.card = {"role": "classifier"}
        return net


def test_a_resolver_without_params_is_refused_them_and_its_bugs_are_named():
    with gk.registered(_Resolver(), "research-resolver"):
        assert gk.load_network("mine").card == {"role": "classifier"}
        with pytest.raises(gk.InvalidParameterError, match="resolved by research-resolver, which takes no constructor "
                                                           "parameters; drop width="):
            gk.load_network("mine", params={"width": 2})
        with pytest.raises(gk.GuidekitError, match=r"the network resolver of research-resolver failed on 'broken' "
                                                   r"\(RuntimeError: resolver bug\)"):
            gk.load_network("broken")


def test_plugins_come_before_registered_names():
    class Shadow:
        @hookimpl
        def guidekit_resolve_network(self, spec):
            if spec == "mnist16-unet":
                net = torch.nn.Identity()
                net.card = {"shadowed": True}
                return net
            return None

    with gk.registered(Shadow(), "shadow"):
        assert gk.load_network("mnist16-unet").card == {"shadowed": True}
    assert gk.load_network("mnist16-unet", device="meta").card["name"] == "mnist16-unet"


def _training_folder(folder: Path, card: dict, state: dict | None) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps(card))
    if state is not None:
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder


def test_training_folders_are_rebuilt_from_their_card_and_loaded_strictly(tmp_path):
    torch.manual_seed(0)
    trained = gk.load_network(UNET8).state_dict()
    card = {"network": {"spec": UNET8, "params": {}}, "diffusion": {"steps": 100, "schedule": "cosine",
                                                                     "learn_sigma": True}, "class_names": ["x"]}
    folder = _training_folder(tmp_path / "run", card, trained)
    net = gk.load_network(folder)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in trained.items())
    assert net.card["class_names"] == ["x"] and net.card["folder"] == str(folder) and len(net.card["sha256"]) == 64
    assert "random_weights" not in net.card
    assert gk.GaussianDiffusion.from_model(net).config.schedule == "cosine"  # the card's process, not the flags'
    # an older card naming only its ADM flags still loads
    old = _training_folder(tmp_path / "old", {"flags": UNET8, "diffusion": card["diffusion"]}, trained)
    assert torch.equal(gk.load_network(str(old)).out[2].weight, net.out[2].weight)
    # weights of another architecture: refused, naming the keys
    other = gk.load_network(UNET8.replace("--num_channels 32", "--num_channels 64")).state_dict()
    wrong = _training_folder(tmp_path / "wrong", card, other)
    with pytest.raises(gk.CheckpointError, match="shape mismatches"):
        gk.load_network(wrong)
    with pytest.raises(gk.InvalidParameterError, match="was trained with class_cond=False"):
        _training_folder(tmp_path / "p", {**card, "network": {"spec": UNET8, "params": {"class_cond": False}}},
                         trained)
        gk.load_network(tmp_path / "p", params={"class_cond": True})


def test_an_unfinished_or_foreign_folder_is_named(tmp_path):
    unfinished = _training_folder(tmp_path / "run", {"network": {"spec": UNET8, "params": {}}}, None)
    (unfinished / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(gk.CheckpointError, match="has not finished; continue it with the same guidekit train-\\* "
                                                 "command and --resume"):
        gk.load_network(unfinished)
    assert gk.load_network(unfinished, device="meta").card["network"]["spec"] == UNET8  # meta reads no weights
    foreign = _training_folder(tmp_path / "foreign", {"name": "x"}, None)
    with pytest.raises(gk.CheckpointError, match="names no architecture"):
        gk.load_network(foreign)
    with pytest.raises(gk.UnknownNetworkError, match="is a folder without card.json"):
        gk.load_network(tmp_path)


def test_meta_looks_at_an_architecture_without_reading_weights(tmp_path):
    net = gk.load_network("64x64_diffusion", path=tmp_path / "missing.pt", device="meta")
    assert net.card["role"] == "diffusion" and net.card["suggested"] == {"respacing": "250", "classifier_scale": 1.0}
    assert "random_weights" not in net.card and next(net.parameters()).device.type == "meta"
    assert gk.load_network("64x64_diffusion", device="meta").card["random_weights"] is True
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        gk.load_network("64x64_diffusion", path=tmp_path / "missing.pt")


@pytest.mark.parametrize(("spec", "error", "phrase"), [
    ("", gk.InvalidParameterError, "non-empty string"),
    ("mnist16-unte", gk.UnknownNetworkError, "Did you mean 'mnist16-unet'?"),
    (__file__, gk.UnknownNetworkError, "is a file; name the network's architecture instead"),
])
def test_bad_specs_are_named(spec, error, phrase):
    with pytest.raises(error, match=phrase.replace("?", r"\?")):
        gk.load_network(spec)

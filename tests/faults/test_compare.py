"""Faults of ``guidekit compare`` (issue 18, third pass): damaged or replaced cache files, SIGKILL and Ctrl-C in
the middle of a ``--target-accuracy`` bisection or of its cells, a run interrupted between its outputs,
``--save-samples`` on a rerun, and the held-out reference a card names.

The runs are tiny: the 8×8 grey ``tiny_unet`` (one training step, 50 diffusion steps, DDIM with 5 steps),
a nearest-pattern classifier of 4 classes and the same rule as the judge (``fault_compare``, a module the
subprocesses import with ``--plugin``), 20 samples per cell, pilot subsets of 10; a run takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import guidekit as gk
from guidekit.cli import main
from guidekit.comparison import runner
from guidekit.errors import CheckpointError, IdentityError
from guidekit.io import write_reference_batch

from .conftest import flip_byte, plugin_module, start_cli, wait_for

FAULT_COMPARE = '''"""Tiny components for the compare fault tests: a classifier and a judge of 8x8 grey images (4 classes)."""
import numpy as np
import torch

import guidekit as gk


class Proto(torch.nn.Module):
    """Nearest of 4 fixed +-0.5 patterns (t ignored): guidance pulls a sample towards its label's pattern."""

    def __init__(self, device="cpu"):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("protos", (torch.rand(4, 1, 8, 8, generator=g) > 0.5).float() - 0.5)
        self.card = {"name": "fault-proto"}
        self.eval()

    def forward(self, x, t=None):
        return -((x[:, None] - self.protos) ** 2).mean((2, 3, 4)) * 4


gk.register_network("fault-proto", summary="nearest-pattern classifier (tests)")(Proto)


@gk.register_extractor("fault-judge", summary="the same rule as a judge (tests)")
class Judge(Proto):
    name = "fault-judge"

    @torch.no_grad()
    def extract(self, images):
        images = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1 if images.dtype == torch.uint8 else images
        logits = self(x)
        return {"pool": torch.cat([logits, x.mean((2, 3))], 1), "spatial": logits, "logits": logits}
'''

#: 2 methods x 2 targets on one seed: about a dozen pilot evaluations, then 3-4 cells of 20 samples
SEARCH = ["--scaler", "constant", "--scaler", "entropy", "--target-accuracy", "0.5,0.8", "--pilot-samples", "10",
          "--bisect-steps", "3"]


@pytest.fixture(scope="module")
def fault_components(tmp_path_factory):
    """``fault_compare.py`` written and imported (its components registered here too); yields its folder."""
    folder = tmp_path_factory.mktemp("fault-components")
    write_reference_batch(folder / "ref8.npz", np.random.default_rng(1).integers(0, 256, (30, 8, 8, 1), np.uint8))
    with plugin_module(folder, "fault_compare", FAULT_COMPARE, [("network", "fault-proto"),
                                                                ("extractor", "fault-judge")]):
        yield folder


def argv(model: Path, components: Path, out: Path, *extra: str) -> list[str]:
    return ["compare", "--model", str(model), "--classifier", "fault-proto", "--judge", "fault-judge",
            "--features", "mean=fault-judge", "--reference", str(components / "ref8.npz"), "--seeds", "1",
            "--num-samples", "20", "--respacing", "ddim5", "--batch-size", "10", "--bootstrap", "50",
            "--device", "cpu", "--no-plots", "--no-progress", "--out", str(out), *extra]


def _records(out: Path) -> list[dict]:
    """results.json's records without the seconds a cell took (the one thing a rerun may change)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((out / "results.json").read_text())["records"]]


def _counting(monkeypatch, name: str) -> list:
    calls: list = []
    real = getattr(runner, name)
    monkeypatch.setattr(runner, name, lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    return calls


def test_damaged_or_replaced_cache_files_are_computed_again_alone(fault_components, tiny_unet, tmp_path, monkeypatch,
                                                                   capsys):
    out = tmp_path / "o"
    args = argv(tiny_unet, fault_components, out, *SEARCH)
    assert main(args) == 0
    records, paired = _records(out), (out / "paired.json").read_text()
    results = json.loads((out / "results.json").read_text())
    assert json.loads(paired)["rows"] and results["complete"] is True
    # a training folder's card records no split: the overlap of the reference with its training data is not
    # checked, and results.json says so
    assert f"model {tiny_unet}" in results["reference"]["unchecked"]
    cells = out / "cells"
    features = sorted(p for p in cells.glob("*.npz") if ".b-" not in p.name)
    assert len(features) >= 3
    flip_byte(features[0], len(features[0].read_bytes()) // 2)  # a disk error inside the features
    features[1].write_bytes(features[2].read_bytes())  # replaced by another valid cell's features
    pilot = sorted(cells.glob("pilot-*.json"))[-1]
    pilot.write_text(pilot.read_text().replace('"accuracy": ', '"accuracy": 0.0'))  # still valid JSON
    metrics = next(cells.glob(f"{features[2].stem}.m-*.json"))
    metrics.write_text(metrics.read_text().replace('"fd": {"oracle": ', '"fd": {"oracle": 1'))
    reference = sorted((out / "reference").glob("*.npz"))[0]
    flip_byte(reference, 200)
    boot = next(cells.glob(f"{features[2].stem}.b-*.npz"))
    flip_byte(boot, len(boot.read_bytes()) // 2)
    capsys.readouterr()
    computed, piloted = _counting(monkeypatch, "compute"), _counting(monkeypatch, "pilot_accuracy")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert len(computed) == 2 and len(piloted) == 1  # the two damaged cells and the edited pilot, nothing else
    for path in (features[0], features[1], pilot, metrics, reference, boot):
        assert f"{path} is damaged or was replaced" in err, path.name
    assert _records(out) == records and (out / "paired.json").read_text() == paired
    # valid files of other cells copied over a cell's: its .json, its metrics, its bootstrap, a pilot
    a, b, c = (f.stem for f in features[:3])
    for pattern, target in (("{}.json", b), ("{}.m-*.json", c), ("{}.b-*-oracle-*.npz", c)):
        next(cells.glob(pattern.format(target))).write_bytes(next(cells.glob(pattern.format(a))).read_bytes())
    pilots = sorted(cells.glob("pilot-*.json"))
    pilots[1].write_bytes(pilots[0].read_bytes())
    computed.clear()
    piloted.clear()
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert len(computed) == 1 and len(piloted) == 1 and err.count("is damaged or was replaced") == 4
    assert _records(out) == records and (out / "paired.json").read_text() == paired


def test_save_samples_on_a_rerun_samples_the_cached_cells_again(fault_components, tiny_unet, tmp_path, monkeypatch,
                                                                 capsys):
    out = tmp_path / "o"
    assert main(argv(tiny_unet, fault_components, out, "--scaler", "constant:0,1")) == 0
    assert not (out / "samples").exists()
    capsys.readouterr()
    computed = _counting(monkeypatch, "compute")
    assert main(argv(tiny_unet, fault_components, out, "--scaler", "constant:0,1,2", "--save-samples")) == 0
    err = capsys.readouterr().err
    assert "--save-samples: sampling 2 cached computation(s) again for their images" in err
    assert len(computed) == 3  # γ = 2 computed, γ = 0 and 1 sampled again for their images
    fresh = tmp_path / "fresh"
    assert main(argv(tiny_unet, fault_components, fresh, "--scaler", "constant:0,1,2", "--save-samples")) == 0
    names = sorted(p.name for p in (out / "samples").glob("*.npz"))
    assert len(names) == 3 and names == sorted(p.name for p in (fresh / "samples").glob("*.npz"))
    for name in names:
        with np.load(out / "samples" / name) as a, np.load(fresh / "samples" / name) as b:
            assert np.array_equal(a["arr_0"], b["arr_0"]) and np.array_equal(a["arr_1"], b["arr_1"])
    assert _records(out) == _records(fresh)
    computed.clear()
    assert main(argv(tiny_unet, fault_components, out, "--scaler", "constant:0,1,2", "--save-samples")) == 0
    assert not computed  # every image is kept now


@pytest.mark.parametrize(("sig", "where"), [(signal.SIGKILL, "search"), (signal.SIGINT, "search"),
                                            (signal.SIGKILL, "cells")])
def test_sigkill_or_ctrl_c_during_a_target_accuracy_run_then_resume(fault_components, tiny_unet, waiting_sampler,
                                                                     tmp_path, monkeypatch, capsys, sig, where):
    """Killed while bisecting (after 3 pilot evaluations) or while measuring the cells (after the first): the same
    command resumes without evaluating again what was finished, and gives what an uninterrupted run gives."""
    sampler = ["--sampler", "waiting-ddim"]
    fresh = tmp_path / "fresh"
    assert main(argv(tiny_unet, fault_components, fresh, *SEARCH, *sampler)) == 0
    pilots = len(list((fresh / "cells").glob("pilot-*.json")))
    cells = len([p for p in (fresh / "cells").glob("*.npz") if ".b-" not in p.name])
    steps = 5  # ddim5: sampler updates per batch of 10
    hold_after = 3 * steps if where == "search" else pilots * steps + 2 * steps  # 3 pilots, or all + 1 cell (2 batches)
    out = tmp_path / "o"
    hold = tmp_path / "hold"
    hold.write_text("")
    proc = start_cli(["--plugin", "waiting_ddim", "--plugin", "fault_compare",
                      *argv(tiny_unet, fault_components, out, *SEARCH, *sampler)], tmp_path,
                     env={"HOLD_FILE": str(hold), "HOLD_AFTER": str(hold_after),
                          "PYTHONPATH": os.pathsep.join([str(tmp_path), str(fault_components)])})
    done = (lambda: len(list(out.glob("cells/pilot-*.json"))) >= 3) if where == "search" else (
        lambda: len(list(out.glob("cells/*.m-*.json"))) >= 1)
    wait_for(done, proc, "the work before the hold")
    time.sleep(0.3)  # the run holds in its next sampler step
    finished = {p.name for p in out.glob("cells/*.json")}
    os.killpg(proc.pid, sig)
    # let a run that did not stop at once go on (on a loaded machine the signal can land before the hold):
    # a Ctrl-C it ignored would then end in exit status 0 and fail below, instead of hanging here
    hold.unlink()
    _, err = proc.communicate(timeout=300)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted (Ctrl-C)" in err and "Traceback" not in err
        assert not (tmp_path / ".o.lock").exists()
    else:
        assert proc.returncode == -signal.SIGKILL and (tmp_path / ".o.lock").exists()
    piloted, computed = _counting(monkeypatch, "pilot_accuracy"), _counting(monkeypatch, "compute")
    capsys.readouterr()
    assert main(argv(tiny_unet, fault_components, out, *SEARCH, *sampler)) == 0
    assert {p.name for p in out.glob("cells/*.json")} >= finished
    if where == "search":
        assert len(piloted) == pilots - 3 and len(computed) == cells
    else:
        assert not piloted and len(computed) == cells - 1
    assert _records(out) == _records(fresh)
    assert (out / "paired.json").read_text() == (fresh / "paired.json").read_text()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")] and not (tmp_path / ".o.lock").exists()


def test_a_run_interrupted_between_its_outputs_is_refused_by_compare_plot(fault_components, tiny_unet, tmp_path,
                                                                          monkeypatch, capsys):
    """paired.json and the other outputs are written atomically, results.json last; while a run rewrites them its
    results.json says it is incomplete, so compare-plot never merges a run killed half-way."""
    from guidekit.comparison import report

    a, b = tmp_path / "a", tmp_path / "b"
    assert main(argv(tiny_unet, fault_components, a, *SEARCH)) == 0
    assert main(argv(tiny_unet, fault_components, b, "--scaler", "timestep", "--target-accuracy", "0.5,0.8",
                     "--pilot-samples", "10", "--bisect-steps", "3")) == 0
    paired = (a / "paired.json").read_text()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "paired_markdown", killed)  # after results.csv, before paired.json
    assert main(argv(tiny_unet, fault_components, a, *SEARCH, "--baseline", "fault-proto/entropy")) == 130
    assert json.loads((a / "results.json").read_text())["complete"] is False
    assert (a / "paired.json").read_text() == paired  # the earlier file, whole
    capsys.readouterr()
    assert main(["compare-plot", str(a), str(b), "--no-plots", "--out", str(tmp_path / "m")]) == 1
    assert "holds an unfinished guidekit compare run" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(argv(tiny_unet, fault_components, a, *SEARCH, "--baseline", "fault-proto/entropy")) == 0
    assert json.loads((a / "paired.json").read_text())["baseline"] == "fault-proto/entropy"
    assert main(["compare-plot", str(a), str(b), "--no-plots", "--out", str(tmp_path / "m")]) == 0


def _carded(tiny_unet: Path, reference: Path, sha256: str):
    """A network component: ``tiny_unet`` with a card naming ``reference`` as its held-out batch and its sha256."""

    def factory():
        net = gk.load_network(tiny_unet)
        net.card = {**net.card, "reference_batch": str(reference), "split": {"heldout": {"sha256": sha256}}}
        return net

    class Plugin:
        @gk.hookspecs.hookimpl
        def guidekit_networks(self):
            return [gk.Component("fault-carded-unet", factory, "tiny UNet naming its held-out batch")]

    return Plugin()


def test_the_held_out_reference_a_card_names_is_checked(fault_components, tiny_unet, tmp_path):
    from guidekit.identity import file_sha256

    held = tmp_path / "held.npz"
    images = np.random.default_rng(3).integers(0, 256, (30, 8, 8, 1), np.uint8)
    write_reference_batch(held, images)
    kw = dict(judge="fault-judge", seeds=1, num_samples=8, respacing="ddim5", device="cpu", plots=False,
              show_progress=False)
    with gk.registered(_carded(tiny_unet, held, file_sha256(held)), "fault-carded"):
        ok = gk.compare("fault-carded-unet", ["fault-proto"], ["constant:1"], out=tmp_path / "a", **kw)
        assert ok.records[0]["reference_sha256"] == file_sha256(held)
        write_reference_batch(held, 255 - images)  # other images, the same size: no longer the held-out batch
        with pytest.raises(IdentityError, match="was damaged or replaced.*reinstall what ships fault-carded-unet"):
            gk.compare("fault-carded-unet", ["fault-proto"], ["constant:1"], out=tmp_path / "a", **kw)
        held.unlink()
        with pytest.raises(IdentityError, match="that the card of fault-carded-unet names is missing"):
            gk.compare("fault-carded-unet", ["fault-proto"], ["constant:1"], out=tmp_path / "a", **kw)


def test_the_recorded_mnist16_split_is_what_its_training_script_makes():
    """The overlap check compares a reference with the training fingerprints a card records; they must be those
    of the split scripts/train_mnist16.py makes (Dataset.split(500, seed=0)), and the held-out batch its rest."""
    pytest.importorskip("guidekit_mnist16")
    from guidekit.comparison.split import fingerprints, train_fingerprints
    from guidekit.data import load_dataset
    from guidekit.io import load_batch, to_uint8

    card = gk.create("network", "mnist16-unet").card
    train, held = load_dataset("mnist16").split(500, seed=0)
    recorded = train_fingerprints(card)
    assert np.array_equal(recorded, fingerprints(to_uint8(train.images).numpy()))
    heldout = fingerprints(np.asarray(load_batch(card["reference_batch"]).images()))
    assert np.array_equal(heldout, fingerprints(to_uint8(held.images).numpy()))
    assert not np.isin(heldout, recorded).any()


def test_a_bundled_card_edited_in_an_installed_distribution_is_refused(tmp_path, monkeypatch):
    """An installed (not editable) distribution's RECORD holds the sha256 of each card: an edited card is named."""
    import base64
    import hashlib
    import shutil

    import guidekit.bundled as bundled

    pytest.importorskip("guidekit_mnist16")
    from guidekit_mnist16.models import WEIGHTS

    site = tmp_path / "site"
    weights = site / "gkfaultbundle" / "weights"
    weights.mkdir(parents=True)
    for name in ("mnist16-pca.json", "mnist16-pca.safetensors"):
        shutil.copy(WEIGHTS / name, weights / name)
    info = site / "gkfaultbundle-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gkfaultbundle\nVersion: 0.1\n")
    lines = []
    for path in sorted(weights.iterdir()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
        lines.append(f"{path.relative_to(site).as_posix()},sha256={digest},{path.stat().st_size}")
    (info / "RECORD").write_text("\n".join([*lines, "gkfaultbundle-0.1.dist-info/RECORD,,"]) + "\n")
    monkeypatch.syspath_prepend(str(site))
    bundled.recorded_hashes.cache_clear()
    bundle = bundled.Bundle("gkfaultbundle", weights, ("mnist16-pca",), lambda flags: None, "mnist16-", "make {model}")
    assert bundle.load("mnist16-pca").card["pca"]["components"] == 32  # as installed: loads
    card = weights / "mnist16-pca.json"
    card.write_text(card.read_text().replace('"components": 32', '"components": 32 '))  # one byte more
    with pytest.raises(CheckpointError, match="is not the card gkfaultbundle installed.*pip install "
                                                 "--force-reinstall gkfaultbundle"):
        bundle.load("mnist16-pca")
    bundled.recorded_hashes.cache_clear()

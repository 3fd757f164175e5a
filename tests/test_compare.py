"""guidekit compare on a tiny setting: random tiny ADM UNet + classifier loaded from checkpoints, a
random SmallCNN judge, a random 8×8 reference batch. Checks paired seeds, resume, interpolation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import guidekit as gk
from guidekit.comparison import compare, runner
from guidekit.comparison.grid import Cell, build_cells, build_sweeps
from guidekit.comparison.matched import interpolate_at, matched_table, to_markdown
from guidekit.errors import InvalidParameterError
from guidekit.io import load_batch, write_reference_batch
from guidekit.testing import unzero

pytest.importorskip("guidekit_adm")

#: a tiny ADM UNet as a reference flag string (the path ADM releases take), and a tiny ADM classifier
#: registered as a network component (the path bundled networks take); both loaded from checkpoints
UNET = ("--image_size 8 --num_channels 32 --num_res_blocks 1 --attention_resolutions 4 --channel_mult 1,1 "
        "--learn_sigma True --diffusion_steps 40 --noise_schedule linear")
CLF = "tiny-adm-classifier"
CLF_KWARGS = dict(image_size=8, in_channels=3, model_channels=32, out_channels=10, num_res_blocks=1,
                  attention_resolutions=(), channel_mult=(1, 1), pool="adaptive")
PLUGIN = f"""
import functools
from guidekit import Component
from guidekit.hookspecs import hookimpl
from guidekit_adm.encoder import EncoderUNetModel
class TinyNets:
    @hookimpl
    def guidekit_networks(self):
        return [Component({CLF!r}, functools.partial(EncoderUNetModel, **{CLF_KWARGS!r}), "tiny test classifier")]
"""


def _plugin():
    scope: dict = {}
    exec(PLUGIN, scope)
    return scope["TinyNets"]()


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    from guidekit_adm.factory import create_model

    from guidekit.extractors.small import SmallCNN

    d = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    unet = unzero(create_model(UNET))
    torch.save(unet.state_dict(), d / "unet.pt")
    judge = SmallCNN(in_channels=3, input_size=8, num_classes=10, width=8, spatial_channels=4)
    judge.save(d / "judge.pt")
    images = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)
    write_reference_batch(d / "ref.npz", images)
    with gk.registered(_plugin(), "tiny-nets"):
        for name in ("ce", "ect"):
            torch.save(unzero(gk.create("network", CLF)).state_dict(), d / f"clf_{name}.pt")
        yield d


def run(setting, out, scalers=("constant:0,2", "entropy:0,1"), **kw):
    d = setting
    args = dict(scaler_params=(), seeds=2, num_samples=12, respacing="ddim5", model_path=d / "unet.pt",
                classifier_paths=[d / "clf_ce.pt", d / "clf_ect.pt"], judge="small-cnn",
                judge_weights=d / "judge.pt", reference_batch=d / "ref.npz",
                batch_size=5, device="cpu", plots=False, show_progress=False)
    args.update(kw)
    return gk.compare(UNET, [CLF, CLF], list(scalers), out=out, **args)


def test_outputs_and_rerun_recomputes_nothing(setting, tmp_path, monkeypatch):
    first = run(setting, tmp_path / "a", plots=True)
    # 2 classifiers x (2 + 2 params) x 2 seeds
    assert len(first.records) == 16
    rec = first.records[0]
    for key in ("classifier", "scaler", "params", "seed", "accuracy", "fd", "precision", "recall", "seconds", "vanishing"):
        assert key in rec
    assert 0.0 <= rec["accuracy"] <= 1.0 and rec["fd"]["oracle"] >= 0.0 and set(rec["fd"]) == {"oracle"}
    assert rec["features"] == {"oracle": "small-cnn"} and len(rec["reference_sha256"]) == 64
    for name in ("results.json", "results.csv", "matched_accuracy.md", "frontier.png", "vanishing.png", "manifest.json",
                 "paired.json"):
        assert (tmp_path / "a" / name).is_file(), name
    saved = json.loads((tmp_path / "a" / "results.json").read_text())
    assert saved["records"] == json.loads(json.dumps(first.records))
    # γ = 0 cells share one unguided computation per seed
    zero = [r for r in first.records if r["params"]["gamma"] == 0]
    assert zero and all(r.get("shared") == "unguided" for r in zero)
    guided = [r for r in first.records if r["params"]["gamma"] > 0]
    assert all(r["vanishing"]["fraction"] >= 0 for r in guided)

    def boom(*a, **k):
        raise AssertionError("a cached cell was recomputed")

    monkeypatch.setattr(runner, "compute", boom)
    again = run(setting, tmp_path / "a")
    assert json.loads((tmp_path / "a" / "results.json").read_text())["records"] == saved["records"]
    assert again.records == first.records


def test_gamma_zero_is_byte_identical_to_unguided(setting, tmp_path):
    res = run(setting, tmp_path / "b", scalers=("constant:0", "entropy:0", "timestep:0", "gradnorm:0"),
              seeds=[3], save_samples=True, dedupe=False)
    files = sorted((tmp_path / "b" / "samples").glob("*.npz"))
    assert len(files) == 8
    # unguided sampling with the same seed and labels, outside the runner
    from guidekit_adm import load_checkpoint

    model = load_checkpoint(UNET, setting / "unet.pt")
    diff = gk.GaussianDiffusion.create(steps=40, schedule="linear", learn_sigma=True, respacing="ddim5")
    x = gk.sample(model, diff, (12, 3, 8, 8), sampler="ddim", y=torch.arange(12) % 10, seed=3, progress=False)
    from guidekit.io import to_uint8

    expected = to_uint8(x).numpy()
    for f in files:
        assert np.array_equal(load_batch(f).images(), expected), f.name
        assert np.array_equal(load_batch(f).labels(), np.arange(12) % 10)
    # and the deduplicated run gives the same records (metrics) as sampling every γ = 0 cell
    shared = run(setting, tmp_path / "c", scalers=("constant:0", "entropy:0", "timestep:0", "gradnorm:0"), seeds=[3])
    strip = lambda rs: [{k: r[k] for k in ("accuracy", "fd", "precision", "recall")} for r in rs]  # noqa: E731
    assert strip(shared.records) == strip(res.records)
    # guidance does change the samples: the paired comparison is not vacuous
    run(setting, tmp_path / "d", scalers=("constant:50",), seeds=[3], save_samples=True)
    guided = sorted((tmp_path / "d" / "samples").glob("*.npz"))[0]
    assert not np.array_equal(load_batch(guided).images(), expected)


def test_changed_options_are_refused(setting, tmp_path):
    run(setting, tmp_path / "e", scalers=("constant:1",), seeds=1)
    with pytest.raises(InvalidParameterError, match="num_samples"):
        run(setting, tmp_path / "e", scalers=("constant:1",), seeds=1, num_samples=10)
    # adding cells to the same run is fine and reuses the old ones
    res = run(setting, tmp_path / "e", scalers=("constant:1,2",), seeds=1)
    assert len(res.records) == 4


def test_sigkill_then_resume(setting, tmp_path):
    out = tmp_path / "k"
    d = setting
    argv = ["compare", "--model", UNET, "--model-path", str(d / "unet.pt"), "--classifier", CLF,
            "--classifier-path", str(d / "clf_ce.pt"), "--scaler", "constant:0,1,2", "--scaler", "entropy:1",
            "--seeds", "2", "--num-samples", "12", "--respacing", "ddim5", "--judge", "small-cnn",
            "--judge-weights", str(d / "judge.pt"), "--reference", str(d / "ref.npz"), "--batch-size", "6",
            "--device", "cpu", "--no-plots", "--no-progress", "--out", str(out)]
    slow = (PLUGIN + "import sys, time\nimport guidekit as gk\nimport guidekit.comparison.runner as r\n"
            "orig = r.compute\ndef slow(*a):\n    time.sleep(0.4)\n    return orig(*a)\nr.compute = slow\n"
            "from guidekit.cli import main\nwith gk.registered(TinyNets(), 'tiny-nets'):\n"
            "    sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", slow, *argv], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    cells = out / "cells"
    computed = lambda: [p for p in cells.glob("*.json") if ".m-" not in p.name]  # noqa: E731 - not the metrics files
    while time.monotonic() < deadline and not (cells.is_dir() and computed()):
        if proc.poll() is not None:
            pytest.fail(f"compare exited early: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(computed())
    total = 2 * 3  # seeds x (unguided, constant 1, constant 2); entropy:1 adds 2 more
    total += 2
    assert 1 <= done < total
    calls = []
    orig = runner.compute

    def counting(*a):
        calls.append(a[1])
        return orig(*a)

    from guidekit.cli import main

    runner.compute = counting
    try:
        assert main(argv) == 0
    finally:
        runner.compute = orig
    assert len(calls) == total - done
    resumed = json.loads((out / "results.json").read_text())["records"]
    assert len(resumed) == 8
    assert main([*argv[:-1], str(tmp_path / "fresh")]) == 0
    fresh = json.loads((tmp_path / "fresh" / "results.json").read_text())["records"]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(resumed) == strip(fresh)


def test_matched_interpolation_by_hand():
    # γ = 0, 1, 2 with accuracy 0.2, 0.6, 0.8 and FD 10, 20, 40 (seed 0); seed 1 has FD + 2
    recs = []
    for seed, shift in ((0, 0.0), (1, 2.0)):
        for g, a, f in ((0.0, 0.2, 10.0), (1.0, 0.6, 20.0), (2.0, 0.8, 40.0)):
            recs.append({"classifier": "ce", "scaler": "constant", "params": {"gamma": g}, "seed": seed,
                         "accuracy": a, "fd": f + shift})
    assert interpolate_at([0, 1, 2], [0.2, 0.6, 0.8], [10, 20, 40], 0.7) == pytest.approx(30.0)
    assert interpolate_at([2, 0, 1], [0.8, 0.2, 0.6], [40, 10, 20], 0.4) == pytest.approx(15.0)
    assert interpolate_at([0, 1, 2], [0.2, 0.6, 0.8], [10, 20, 40], 0.9) is None  # never extrapolated
    (row,) = matched_table(recs, [0.4, 0.7])
    assert row.at_level[0.7].mean == pytest.approx(31.0) and row.at_level[0.7].n == 2
    assert row.at_level[0.7].std == pytest.approx(np.std([30.0, 32.0], ddof=1))
    assert row.at_level[0.4].mean == pytest.approx(16.0)
    assert row.best_fd.mean == pytest.approx(11.0) and row.best_params == {"gamma": 0.0}
    md = to_markdown([row], [0.4, 0.7])
    assert "31.00 ± 1.41" in md and "16.00 ± 1.41" in md


def test_vanishing_points():
    tr = gk.GuidanceTrace()
    tr.t = [30, 20, 10, 0]
    # sample 0: peak 4 at step 1, below 0.1*4 at step 3 (t=0); sample 1: never vanishes; sample 2: all zero
    tr.records["guided_norm"] = [[1.0, 1.0, 0.0], [4.0, 2.0, 0.0], [0.5, 2.0, 0.0], [0.3, 1.5, 0.0]]
    v = tr.vanishing_points(0.1)
    assert v[0].item() == 0 and torch.isnan(v[1]) and torch.isnan(v[2])
    assert tr.vanishing_points(0.2)[0].item() == 10  # 0.5 < 0.2 * 4 already at t = 10
    with pytest.raises(InvalidParameterError):
        tr.vanishing_points(1.5)


def test_grid_parsing_errors():
    sweeps = build_sweeps(["constant:0,1", "interval:2"], ["interval.end=[500,700]"])
    cells = build_cells(["ce"], sweeps, [0])
    assert [c.params for c in cells] == [{"gamma": 0.0}, {"gamma": 1.0}, {"end": 500, "gamma": 2.0},
                                         {"end": 700, "gamma": 2.0}]
    assert Cell("ce", "constant", {"gamma": 1.0}, 0).key == Cell("ce", "constant", {"gamma": 1.0}, 0).key
    assert Cell("ce", "constant", {"gamma": 1.0}, 0).key != Cell("ce", "constant", {"gamma": 1.0}, 1).key
    for bad, params in ((["constant:a"], []), (["constant:1", "constant:2"], []), (["constant:1"], ["entropy.x=1"]),
                        (["constant:1"], ["constant.gamma=2"]), ([":1"], [])):
        with pytest.raises(InvalidParameterError):
            build_sweeps(bad, params)


@pytest.mark.parametrize("sampler,respacing", [("ddim", "ddim5"), ("ddpm", "8")])
@pytest.mark.parametrize("scaler", ["constant", "entropy", "timestep", "gradnorm", "interval"])
def test_zero_scale_sampling_equals_unguided_float(setting, sampler, respacing, scaler):
    from guidekit_adm import load_checkpoint

    model = load_checkpoint(UNET, setting / "unet.pt")
    clf = gk.create("network", CLF)
    clf.load_state_dict(torch.load(setting / "clf_ce.pt", weights_only=True))
    diff = gk.GaussianDiffusion.create(steps=40, schedule="linear", learn_sigma=True, respacing=respacing)
    y = torch.arange(6) % 10
    kw = dict(sampler=sampler, y=y, seed=1, sample_offset=4, progress=False)
    plain = gk.sample(model, diff, (6, 3, 8, 8), **kw)
    zero = gk.sample(model, diff, (6, 3, 8, 8), guidance=gk.ClassifierGuidance(clf.eval(), scaler, gamma=0.0), **kw)
    assert torch.equal(plain, zero)
    guided = gk.sample(model, diff, (6, 3, 8, 8), guidance=gk.ClassifierGuidance(clf.eval(), scaler, gamma=5.0), **kw)
    assert not torch.equal(plain, guided)


def test_bundled_style_model_uses_its_card(setting, tmp_path, monkeypatch):
    """A network component with a card: diffusion from card['diffusion'], reference from card['data']."""
    from guidekit_adm.factory import create_model

    given = []

    def carded_unet(path=None):  # like the bundled models: loads its own weights, or the file given
        given.append(path)
        net = create_model(UNET)
        net.load_state_dict(torch.load(path or setting / "unet.pt", weights_only=True))
        net.card = {"diffusion": {"steps": 40, "schedule": "linear", "learn_sigma": True, "respacing": "ddim4"},
                    "data": "tinyset", "sha256": "0" * 64}
        return net.eval()

    class Carded:
        @gk.hookspecs.hookimpl
        def guidekit_networks(self):
            return [gk.Component("tiny-carded-unet", carded_unet, "tiny UNet with a card")]

    import guidekit.data

    rng = np.random.default_rng(1)
    tiny = guidekit.data.Dataset("tinyset", torch.from_numpy(rng.uniform(-1, 1, (30, 3, 8, 8)).astype(np.float32)),
                                 torch.zeros(30, dtype=torch.int64), 10)
    monkeypatch.setattr(guidekit.data, "load_dataset", lambda name: tiny if name == "tinyset" else None)
    with gk.registered(Carded(), "carded"):
        res = compare("tiny-carded-unet", [CLF], ["constant:0,1"], out=tmp_path / "f", seeds=1, num_samples=8,
                      classifier_paths=[setting / "clf_ce.pt"], judge="small-cnn", judge_weights=setting / "judge.pt",
                      device="cpu", plots=False, show_progress=False)
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert json.loads((tmp_path / "f" / "results.json").read_text())["reference"]["dataset"] == "tinyset"
    assert manifest["diffusion"]["respacing"] == "ddim4" and manifest["sampler"]["name"] == "ddim"
    assert manifest["model"] == {"name": "tiny-carded-unet", "sha256": "0" * 64}
    assert len(res.records) == 2 and all(r["fd"]["oracle"] > 0 for r in res.records)
    assert given == [None]
    with gk.registered(Carded(), "carded"):  # --model-path goes to the factory's path=
        compare("tiny-carded-unet", [CLF], ["constant:1"], out=tmp_path / "h", seeds=1, num_samples=8,
                model_path=setting / "unet.pt", classifier_paths=[setting / "clf_ce.pt"], judge="small-cnn",
                judge_weights=setting / "judge.pt", device="cpu", plots=False, show_progress=False)
    assert given == [None, str(setting / "unet.pt")]


@pytest.mark.parametrize("extra,message", [
    (["--scaler", "constant:x"], "must be numbers"),
    (["--scaler", "nope:1"], "nope"),
    (["--scaler", "constant:-1"], "gamma"),
    (["--scaler", "constant:1", "--scaler-param", "entropy.max_scale=3"], "no --scaler gives"),
    (["--scaler", "constant:1", "--classifier-path", "a.pt"], "--classifier-path"),
    (["--scaler", "constant:1", "--reference", "missing.npz"], "missing.npz"),
])
def test_cli_errors_are_named(setting, tmp_path, capsys, extra, message):
    from guidekit.cli import main

    d = setting
    argv = ["compare", "--model", UNET, "--model-path", str(d / "unet.pt"), "--classifier", CLF,
            "--classifier-path", str(d / "clf_ce.pt"), "--judge", "small-cnn", "--judge-weights", str(d / "judge.pt"),
            "--num-samples", "4", "--respacing", "ddim2", "--device", "cpu", "--no-plots", "--out", str(tmp_path / "g")]
    if "--reference" not in extra:
        argv += ["--reference", str(d / "ref.npz")]
    assert main(argv + extra) == 1
    err = capsys.readouterr().err
    assert "error" in err and message in err and "Traceback" not in err


def test_api_arguments_are_read_as_on_the_command_line():
    """A string seeds/targets is what the command line means by it ("12" was seeds 1 and 2), one number is a list."""
    from guidekit.comparison import _numbers, _seeds

    assert _seeds("12") == list(range(12)) and _seeds("0,5") == [0, 5] and _seeds(range(2)) == [0, 1]
    assert _numbers("0.8,0.9", "targets") == [0.8, 0.9] and _numbers(0.8, "targets") == [0.8]
    assert _numbers(None, "targets") is None
    with pytest.raises(InvalidParameterError, match="--seeds takes a count"):
        _seeds([0, 1.5])

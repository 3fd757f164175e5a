"""guidekit compare with guidance kinds other than classifier guidance, on a tiny random class-conditional
ADM UNet with a null label (11 classes, null label 10): CFG cells at w = 1 are conditional sampling,
neutral cells share one computation, reruns compute nothing, a changed guidance is refused, and
several runs merge onto one frontier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import guidekit as gk
from guidekit.comparison import compare, runner
from guidekit.comparison.grid import Cell
from guidekit.comparison.matched import method_of
from guidekit.errors import InvalidParameterError, MissingGuidanceFieldError
from guidekit.io import load_batch, to_uint8, write_reference_batch
from guidekit.testing import unzero

pytest.importorskip("guidekit_adm")

COND = ("--image_size 8 --num_channels 32 --num_res_blocks 1 --attention_resolutions 4 --channel_mult 1,1 "
        "--learn_sigma True --class_cond True --num_classes 11 --diffusion_steps 40 --noise_schedule linear")
UNCOND = COND.replace("--class_cond True --num_classes 11 ", "")


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    from guidekit_adm.factory import create_model

    from guidekit.extractors.small import SmallCNN

    d = tmp_path_factory.mktemp("tinycond")
    torch.manual_seed(0)
    torch.save(unzero(create_model(COND)).state_dict(), d / "cond.pt")
    torch.save(unzero(create_model(UNCOND)).state_dict(), d / "uncond.pt")
    SmallCNN(in_channels=3, input_size=8, num_classes=10, width=8, spatial_channels=4).save(d / "judge.pt")
    images = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)
    write_reference_batch(d / "ref.npz", images)
    return d


def run(setting, out, scalers=("constant:1,3", "interval:1,3"), guidance="classifier-free", **kw):
    d = setting
    model = kw.pop("model", COND)
    args = dict(guidance=guidance, guidance_params={"null_label": 10}, seeds=[2], num_samples=12,
                respacing="ddim5", model_path=d / "cond.pt", judge="small-cnn", judge_weights=d / "judge.pt",
                reference_batch=d / "ref.npz", batch_size=5, device="cpu", plots=False, show_progress=False)
    args.update(kw)
    return compare(model, None, list(scalers), out=out, **args)


def test_cfg_at_w1_is_conditional_sampling_and_neutral_cells_share(setting, tmp_path, monkeypatch):
    scalers = ("constant:1,3", "interval:1", "timestep:1")
    params = ["timestep.schedule=['linear','cosine']"]
    res = run(setting, tmp_path / "a", scalers, scaler_params=params, save_samples=True, dedupe=False)
    assert [(r["scaler"], r["params"]) for r in res.records] == [
        ("constant", {"gamma": 1.0}), ("constant", {"gamma": 3.0}), ("interval", {"gamma": 1.0}),
        ("timestep", {"gamma": 1.0, "schedule": "linear"}), ("timestep", {"gamma": 1.0, "schedule": "cosine"})]
    for r in res.records:
        assert r["classifier"] is None and r["guidance"] == "classifier-free"
        assert r["guidance_params"] == {"null_label": 10} and r["vanishing"] is None and "shared" not in r
    # plain conditional sampling with the same seed and labels y_i = i mod 10 (the null label 10 excluded)
    from guidekit_adm import load_checkpoint

    model = load_checkpoint(COND, setting / "cond.pt")
    diff = gk.GaussianDiffusion.create(steps=40, schedule="linear", learn_sigma=True, respacing="ddim5")
    x = gk.sample(model, diff, (12, 3, 8, 8), sampler="ddim", y=torch.arange(12) % 10, seed=2, progress=False)
    expected = to_uint8(x).numpy()
    samples = {f.name: load_batch(f) for f in (tmp_path / "a" / "samples").glob("*.npz")}
    neutral = sorted(name for name, b in samples.items() if np.array_equal(b.images(), expected))
    assert len(samples) == 5 and len(neutral) == 4 and f"{Cell(None, 'constant', {'gamma': 3.0}, 2, 'classifier-free').key}.npz" not in neutral
    assert all(np.array_equal(b.labels(), np.arange(12) % 10) for b in samples.values())
    # the same grid with dedupe: w = 1 cells share the constant w = 1 computation, with the same metrics
    calls = []
    orig = runner.compute
    monkeypatch.setattr(runner, "compute", lambda ctx, cell, seed: calls.append(cell) or orig(ctx, cell, seed))
    shared = run(setting, tmp_path / "b", scalers, scaler_params=params)
    assert sorted((c.scaler, c.params["gamma"]) for c in calls) == [("constant", 1.0), ("constant", 3.0)]
    assert [r.get("shared") for r in shared.records] == [None, None, "neutral", "neutral", "neutral"]
    strip = lambda rs: [{k: r[k] for k in ("accuracy", "fd", "precision", "recall")} for r in rs]  # noqa: E731
    assert strip(shared.records) == strip(res.records)
    # the schedules are separate curves of the frontier
    assert {method_of(r) for r in shared.records} == {
        ("classifier-free(null_label=10)", s) for s in
        ("constant", "interval", "timestep(schedule=cosine)", "timestep(schedule=linear)")}


def test_rerun_recomputes_nothing_and_another_guidance_is_refused(setting, tmp_path, monkeypatch):
    first = run(setting, tmp_path / "c", plots=True)
    assert (tmp_path / "c" / "frontier.png").is_file() and not (tmp_path / "c" / "vanishing.png").exists()
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["guidance"] == {"name": "classifier-free", "params": {"null_label": 10}}
    assert manifest["num_classes"] == 10
    saved = (tmp_path / "c" / "results.json").read_text()

    def boom(*a, **k):
        raise AssertionError("a cached cell was recomputed")

    monkeypatch.setattr(runner, "compute", boom)
    again = run(setting, tmp_path / "c", plots=True)
    assert again.records == first.records and (tmp_path / "c" / "results.json").read_text() == saved
    with pytest.raises(InvalidParameterError, match="differing: guidance"):
        run(setting, tmp_path / "c", guidance="apg")
    with pytest.raises(InvalidParameterError, match="differing: guidance"):
        run(setting, tmp_path / "c", guidance_params={"null_label": 10, "batched": False})


def test_apg_cells_differ_from_cfg_under_guidance(setting, tmp_path):
    plain = run(setting, tmp_path / "d", ("constant:4",), save_samples=True)
    apg = run(setting, tmp_path / "e", ("constant:4",), guidance="apg",
              guidance_params={"null_label": 10, "momentum": -0.5, "norm_threshold": 1.0}, save_samples=True)
    assert apg.records[0]["guidance"] == "apg"
    assert apg.records[0]["guidance_params"] == {"momentum": -0.5, "norm_threshold": 1.0, "null_label": 10}
    (a,), (b,) = ((load_batch(f).images() for f in (tmp_path / d / "samples").glob("*.npz")) for d in "de")
    assert not np.array_equal(a, b) and apg.records[0]["fd"] != plain.records[0]["fd"]


@pytest.mark.parametrize("kw,error,message", [
    (dict(guidance="classifier"), InvalidParameterError, "needs a classifier"),
    (dict(guidance_params={"null_label": 10, "bogus": 1}), InvalidParameterError, "bogus"),
    (dict(guidance_params={"null_label": 10, "scaler": "constant"}), InvalidParameterError, "--scaler"),
    (dict(model=UNCOND, model_path=None), InvalidParameterError, "class-conditional"),
    (dict(scalers=("entropy:1",)), MissingGuidanceFieldError, "classifier-free"),
])
def test_bad_guidance_settings_are_named(setting, tmp_path, kw, error, message):
    if kw.get("model") == UNCOND:
        kw["model_path"] = setting / "uncond.pt"
    with pytest.raises(error, match=message):
        run(setting, tmp_path / "f", **kw)


def test_cli_guidance_and_compare_plot(setting, tmp_path, capsys):
    from guidekit.cli import main

    d = setting
    base = ["compare", "--model", COND, "--model-path", str(d / "cond.pt"), "--guidance-param", "null_label=10",
            "--seeds", "2", "--num-samples", "8", "--respacing", "ddim4", "--judge", "small-cnn",
            "--judge-weights", str(d / "judge.pt"), "--reference", str(d / "ref.npz"), "--device", "cpu",
            "--no-progress", "--no-plots"]
    assert main([*base, "--guidance", "classifier-free", "--scaler", "constant:1,2", "--out", str(tmp_path / "g")]) == 0
    assert main([*base, "--guidance", "cfg-rescale", "--guidance-param", "phi=0.7", "--scaler", "constant:1,2",
                 "--out", str(tmp_path / "h")]) == 0
    # a classifier with a guidance that takes none is a named error, not a traceback
    assert main([*base, "--guidance", "classifier-free", "--classifier", "x", "--scaler", "constant:1",
                 "--out", str(tmp_path / "i")]) == 1
    assert "uses no classifier" in capsys.readouterr().err
    # both runs on one frontier; the same method in two runs is told apart by the run's folder
    assert main(["compare-plot", str(tmp_path / "g"), str(tmp_path / "h"), "--out", str(tmp_path / "m")]) == 0
    merged = json.loads((tmp_path / "m" / "results.json").read_text())["records"]
    assert len(merged) == 8 and (tmp_path / "m" / "frontier.png").is_file()
    assert {method_of(r)[0] for r in merged} == {"classifier-free(null_label=10)", "cfg-rescale(null_label=10, phi=0.7)"}
    table = capsys.readouterr().out
    assert "cfg-rescale(null_label=10, phi=0.7)" in table and "classifier-free(null_label=10)" in table
    assert main([*base, "--guidance", "classifier-free", "--seeds", "5,6", "--scaler", "constant:1,2",
                 "--out", str(tmp_path / "l")]) == 0
    assert main(["compare-plot", str(tmp_path / "g"), str(tmp_path / "l"), "--out", str(tmp_path / "n")]) == 0
    twice = json.loads((tmp_path / "n" / "results.json").read_text())["records"]
    assert {method_of(r)[0] for r in twice} == {"g: classifier-free(null_label=10)", "l: classifier-free(null_label=10)"}
    # runs judged differently are refused
    assert main([*base[:10], "4", *base[11:], "--guidance", "classifier-free", "--scaler", "constant:1",
                 "--out", str(tmp_path / "j")]) == 0
    assert main(["compare-plot", str(tmp_path / "g"), str(tmp_path / "j"), "--out", str(tmp_path / "k")]) == 1
    assert "num_samples" in capsys.readouterr().err


def test_method_labels_and_neutral_sharing_rules():
    rec = {"classifier": "ce", "scaler": "entropy", "params": {"gamma": 1.0}, "seed": 0}
    assert method_of(rec) == ("ce", "entropy")  # classifier guidance records keep their labels
    assert method_of({**rec, "guidance": "x0-classifier"}) == ("x0-classifier:ce", "entropy")
    assert method_of({**rec, "classifier": None, "guidance": "apg", "guidance_params": {"eta": 0.0}, "run": "r1",
                      "params": {"gamma": 2.0, "end": 500}}) == ("r1: apg(eta=0)", "entropy(end=500)")
    cfg = lambda scaler, **p: Cell(None, scaler, p, 0, "classifier-free")  # noqa: E731
    canon = Cell(None, "constant", {"gamma": 1.0}, 0, "classifier-free")
    assert runner.neutral_cell(cfg("interval", gamma=1.0, end=500), 1.0) == canon
    assert runner.neutral_cell(cfg("timestep", gamma=1.0, schedule="cosine"), 1.0) == canon
    assert runner.neutral_cell(cfg("interval", gamma=1.0, outside=0.0), 1.0) is None  # w = 0 outside: not neutral
    assert runner.neutral_cell(cfg("constant", gamma=0.0), 1.0) is None  # w = 0 is unconditional, not neutral
    assert runner.neutral_cell(cfg("constant", gamma=1.0), None) is None  # a guidance that is not scale-only
    assert runner.neutral_cell(cfg("gradnorm", gamma=1.0), 1.0) is None
    assert runner.neutral_cell(Cell("ce", "constant", {"gamma": 0.0}, 0), 0.0) is None  # classifier: "unguided"

"""The comparison protocol of issue 15: bisection to a target accuracy, paired statistics with a bootstrap CI,
the reference identified by its content, the refusal of a reference overlapping a recorded training split,
and the Interface keys of results.json and paired.json (a tiny compare run through the CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import guidekit as gk
from guidekit.comparison import ReferenceOverlapError, runner
from guidekit.comparison.bisect import LADDER, find_strength
from guidekit.comparison.paired import bootstrap_fd, draws, paired_row, paired_rows, resolved
from guidekit.comparison.split import fingerprints
from guidekit.errors import InvalidParameterError
from guidekit.io import to_uint8, write_reference_batch
from guidekit.metrics import FeatureStats, frechet_distance
from guidekit.metrics.kid import kernel_distance
from guidekit.testing import unzero

pytest.importorskip("guidekit_adm")

UNET = ("--image_size 8 --num_channels 32 --num_res_blocks 1 --attention_resolutions 4 --channel_mult 1,1 "
        "--learn_sigma True --diffusion_steps 40 --noise_schedule linear")


# -- bisection ---------------------------------------------------------------------------------------------

def test_bisection_brackets_then_halves_on_a_monotone_accuracy():
    acc = lambda g: min(1.0, 0.1 + 0.25 * g)  # noqa: E731 - 0.85 at γ = 3, 0.8 at γ = 2.8
    calls = []
    s = find_strength(lambda g: calls.append(g) or acc(g), 0.85, steps=8, tolerance=0.0)
    assert s.reached and [g for g, _ in s.iterations] == calls
    # the ladder until the target is bracketed by [2, 4], then one halving lands on it
    assert calls == [0.0, 1.0, 2.0, 4.0, 3.0] and s.value == 3.0 and s.accuracy == pytest.approx(0.85)
    fine = find_strength(acc, 0.8, steps=8, tolerance=0.0)
    assert len(fine.iterations) == 4 + 8 and fine.value == pytest.approx(2.8, abs=2 / 2 ** 8)
    mids = [g for g, _ in fine.iterations[4:]]
    assert mids[:4] == [3.0, 2.5, 2.75, 2.875]  # acc(lo) < 0.8 <= acc(hi) after every halving
    assert all(2.0 < g < 4.0 for g in mids)
    # a tolerance stops early; the γ returned is the evaluated one closest to the target
    early = find_strength(acc, 0.8, steps=8, tolerance=0.06)
    assert [g for g, _ in early.iterations] == [0.0, 1.0, 2.0, 4.0, 3.0] and early.value == 3.0
    # an accuracy exactly at the tolerance stops too (0.8 - 0.79 is 0.010000000000000009 in floats)
    steps = {0.0: 0.11, 1.0: 0.615, 2.0: 0.84, 1.5: 0.745, 1.75: 0.79, 1.875: 0.83}
    assert [g for g, _ in find_strength(steps.__getitem__, 0.8, tolerance=0.01).iterations] == [0, 1, 2, 1.5, 1.75]


def test_bisection_ends_and_corner_cases():
    assert find_strength(lambda g: 0.95, 0.9).iterations == ((0.0, 0.95),)  # reached without guidance: γ = 0
    never = find_strength(lambda g: 0.5 + g / 1000, 0.9)
    assert not never.reached and never.value is None and len(never.iterations) == len(LADDER)
    assert never.accuracy == pytest.approx(0.5 + 64 / 1000)
    noisy = [0.1, 0.6, 0.55, 0.95, 0.7, 0.93]  # not monotone: the bracket invariant still holds
    it = iter(noisy)
    s = find_strength(lambda g: next(it), 0.9, steps=2, tolerance=0.0)
    assert s.reached and [a for _, a in s.iterations] == noisy[:6]
    assert s.value == 3.5 and s.accuracy == 0.93  # the halvings were γ = 3 (0.7 < 0.9) then 3.5
    with pytest.raises(InvalidParameterError, match="increasing"):
        find_strength(lambda g: 1.0, 0.9, ladder=[0, 2, 1])
    with pytest.raises(InvalidParameterError, match="no accuracy"):
        find_strength(lambda g: None, 0.9)


# -- paired statistics -------------------------------------------------------------------------------------

def test_bootstrap_fd_at_the_identity_draw_is_the_fd():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    mu, sigma = np.zeros(3), np.eye(3)
    stats = FeatureStats().update(x)
    same = bootstrap_fd(x, mu, sigma, np.arange(50)[None])
    assert same[0] == pytest.approx(frechet_distance(stats.mean, stats.cov, mu, sigma), rel=1e-9)
    idx = draws(50, 7, seed=3)
    assert idx.shape == (7, 50) and np.array_equal(idx, draws(50, 7, seed=3)) and not np.array_equal(idx, draws(50, 7, 4))


def _boot(feats, seed, ref=(np.zeros(2), np.eye(2))):
    return bootstrap_fd(feats, *ref, draws(len(feats), 400, seed))


def test_paired_ci_excludes_zero_for_a_real_difference_and_not_for_none():
    rng = np.random.default_rng(1)
    base = [rng.normal(size=(300, 2)) for _ in range(3)]
    shifted = [b + 0.6 for b in base]  # the same samples moved away from the reference: FD grows by 0.72
    noise = [rng.normal(size=(300, 2)) for _ in range(3)]  # other draws of the baseline's distribution
    fd = lambda x: bootstrap_fd(x, np.zeros(2), np.eye(2), np.arange(len(x))[None])[0]  # noqa: E731
    real = paired_row([fd(x) for x in shifted], [fd(x) for x in base], [_boot(x, s) for s, x in enumerate(shifted)],
                      [_boot(x, s) for s, x in enumerate(base)])
    assert real["seeds"] == 3 and real["wins"] == 0 and real["diff_mean"] == pytest.approx(0.72, abs=0.2)
    assert resolved(real) and real["ci95"][0] > 0
    none = paired_row([fd(x) for x in noise], [fd(x) for x in base], [_boot(x, s) for s, x in enumerate(noise)],
                      [_boot(x, s) for s, x in enumerate(base)])
    assert not resolved(none) and none["ci95"][0] < 0 < none["ci95"][1]
    assert none["diff_std"] > 0 and 0 <= none["wins"] <= 3


def test_paired_rows_pair_seeds_and_skip_unreached_targets():
    def rec(method, seed, fd, target=0.9):
        clf, scaler = method.split("/")
        return {"classifier": clf, "scaler": scaler, "params": {"gamma": 1.0}, "seed": seed, "target_accuracy": target,
                "fd": {"oracle": fd}}
    records = [rec("ce/constant", 0, 2.0), rec("ce/constant", 1, 3.0), rec("ce/entropy", 0, 1.0),
               rec("ce/entropy", 1, 2.5), rec("ce/entropy", 2, 0.1),  # seed 2 has no baseline: left out
               {**rec("ce/entropy", 0, None, 0.95), "fd": {"oracle": None}}]
    from guidekit.comparison.matched import method_name

    rows = paired_rows(records, "ce/constant", method_name, lambda r, f: np.full(10, r["fd"][f]))
    assert rows == [{"method": "ce/entropy", "target_accuracy": 0.9, "feature": "oracle", "diff_mean": -0.75,
                     "diff_std": pytest.approx(np.std([-1.0, -0.5], ddof=1)), "ci95": [-0.75, -0.75], "wins": 2,
                     "seeds": 2}]


def test_kid_is_unbiased_and_grows_with_a_shift():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
    same = [kernel_distance(rng.normal(size=(100, 4)), rng.normal(size=(100, 4))) for _ in range(20)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(20) + 1e-3  # expectation 0 for equal distributions
    assert kernel_distance(a, b + 0.5) > kernel_distance(a, b + 0.2) > abs(kernel_distance(a, b))
    with pytest.raises(InvalidParameterError, match="dimension"):
        kernel_distance(a, b[:, :3])


# -- tiny compare runs -------------------------------------------------------------------------------------

class ProtoClassifier(torch.nn.Module):
    """Nearest of 10 fixed ±0.5 patterns (t ignored): guidance pulls a sample towards its label's pattern, so
    the judge's accuracy (the same rule on the clean sample) climbs from 0 to 1 as γ goes from 0 to ~4."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("protos", (torch.rand(10, 3, 8, 8, generator=g) > 0.5).float() - 0.5)
        self.card = {"name": "tiny-proto"}
        self.eval()

    def forward(self, x, t=None):
        return -((x[:, None] - self.protos) ** 2).mean((2, 3, 4)) * 4


class ProtoJudge(ProtoClassifier):
    name = "tiny-proto-judge"

    def __init__(self, device="cpu"):
        super().__init__()

    @torch.no_grad()
    def extract(self, images):
        images = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1 if images.dtype == torch.uint8 else images
        logits = self(x)
        return {"pool": torch.cat([logits, x.mean((2, 3))], 1), "spatial": logits, "logits": logits}


def _pca(path):
    from guidekit.extractors.pca import PixelPCA
    from guidekit.io import load_batch

    return PixelPCA.fit(np.asarray(load_batch(path).images()), 4)


class TinyPlugin:
    def __init__(self, root):
        self.root = root

    @gk.hookspecs.hookimpl
    def guidekit_networks(self):
        return [gk.Component("tiny-protocol-classifier", ProtoClassifier, "tiny nearest-pattern classifier")]

    @gk.hookspecs.hookimpl
    def guidekit_extractors(self):
        return [gk.Component("tiny-clf-judge", ProtoJudge, "the same rule as a judge"),
                gk.Component("tiny-pca", lambda device="cpu": _pca(self.root / "ref.npz"), "pixel PCA")]


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    from guidekit_adm.factory import create_model

    d = tmp_path_factory.mktemp("protocol")
    torch.manual_seed(0)
    torch.save(unzero(create_model(UNET)).state_dict(), d / "unet.pt")
    plugin = TinyPlugin(d)
    with gk.registered(plugin, "tiny-protocol"):
        images = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)
        write_reference_batch(d / "ref.npz", images)
        yield d  # registered for every test of the module


def argv(d, out, *extra):
    return ["compare", "--model", UNET, "--model-path", str(d / "unet.pt"), "--classifier", "tiny-protocol-classifier",
            "--judge", "tiny-clf-judge", "--features", "pca=tiny-pca",
            "--reference", str(d / "ref.npz"), "--seeds", "2", "--num-samples", "20", "--respacing", "ddim4",
            "--batch-size", "10", "--device", "cpu", "--no-plots", "--no-progress", "--bootstrap", "200",
            "--out", str(out), *extra]


def test_target_accuracy_run_has_the_interface_keys_and_reruns_for_free(setting, tmp_path, monkeypatch, capsys):
    from guidekit.cli import main

    out = tmp_path / "t"
    args = argv(setting, out, "--scaler", "constant", "--scaler", "entropy:0,2,8,32", "--scaler", "timestep:0,0.5",
                "--target-accuracy", "0.5,0.8",
                "--pilot-samples", "10", "--bisect-steps", "3")
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    records = results["records"]
    assert len(records) == 3 * 2 * 2  # methods x targets x seeds
    for r in records:
        assert {"target_accuracy", "params", "reference_sha256", "features", "fd", "kid", "search"} <= set(r)
        assert r["features"] == {"oracle": "tiny-clf-judge", "pca": "tiny-pca"}
        assert r["reference_sha256"] == results["reference"]["sha256"]
        assert r["search"]["pilot_samples"] == 10 and r["search"]["iterations"]
        if r["search"]["reached"]:
            assert set(r["fd"]) == set(r["kid"]) == {"oracle", "pca"} and r["fd"]["pca"] > 0
            assert r["params"]["gamma"] in [g for g, _ in r["search"]["iterations"]]
        else:
            assert r["params"]["gamma"] is None and r["fd"] is None
    entropy = [r for r in records if r["scaler"] == "entropy"]
    assert all([g for g, _ in r["search"]["iterations"][:2]] == [0.0, 2.0] for r in entropy)  # the ladder given
    assert all(r["search"]["reached"] and r["params"]["gamma"] > 0 for r in records if r["scaler"] != "timestep")
    assert not any(r["search"]["reached"] for r in records if r["scaler"] == "timestep")  # γ <= 0.5 is too weak
    for r in records:
        if r["search"]["reached"]:  # the γ found gives about the target on all the samples
            assert abs(r["accuracy"] - r["target_accuracy"]) <= 0.3
    paired = json.loads((out / "paired.json").read_text())
    assert set(paired) == {"baseline", "rows"} and paired["baseline"] == "tiny-protocol-classifier/constant"
    assert paired["rows"], "no pair: both methods reached no common target"
    for row in paired["rows"]:
        assert list(row) == ["method", "target_accuracy", "feature", "diff_mean", "diff_std", "ci95", "wins", "seeds"]
        assert row["method"] == "tiny-protocol-classifier/entropy" and row["feature"] in ("oracle", "pca")
        assert row["ci95"][0] < row["ci95"][1] and 0 <= row["wins"] <= row["seeds"] == 2
    assert len(paired["rows"]) == 2 * 2  # entropy at both targets in both spaces; timestep reached none
    table = (out / "matched_accuracy.md").read_text()
    assert "FD @ target 0.50" in table and "## FD, pca features (tiny-pca)" in table and "resolved" in table
    saved = (out / "results.json").read_text(), (out / "paired.json").read_text()
    capsys.readouterr()

    def boom(*a, **k):
        raise AssertionError("a cached computation was redone")

    monkeypatch.setattr(runner, "compute", boom)
    monkeypatch.setattr(runner, "pilot_accuracy", boom)
    monkeypatch.setattr("guidekit.comparison.bootstrap_fd", boom)
    assert main(args) == 0
    assert ((out / "results.json").read_text(), (out / "paired.json").read_text()) == saved
    # a baseline that is no method of the run is a named error
    assert main([*args, "--baseline", "nope/constant"]) == 1
    assert "--baseline 'nope/constant' is not a method" in capsys.readouterr().err


def test_a_replaced_reference_of_the_same_size_is_another_reference(setting, tmp_path, monkeypatch):
    from guidekit.comparison import compare

    d = tmp_path / "ref"
    d.mkdir()
    ref = d / "ref.npz"
    images = np.random.default_rng(5).integers(0, 256, size=(30, 8, 8, 3), dtype=np.uint8)
    write_reference_batch(ref, images)
    kw = dict(seeds=1, num_samples=12, respacing="ddim4", model_path=setting / "unet.pt",
              judge="tiny-clf-judge", reference_batch=ref, batch_size=6,
              device="cpu", plots=False, show_progress=False)
    first = compare(UNET, ["tiny-protocol-classifier"], ["constant:0,2"], out=tmp_path / "o", **kw)
    size = ref.stat().st_size
    write_reference_batch(ref, 255 - images)  # other content, the same size and path
    assert ref.stat().st_size == size
    calls = []
    orig = runner.measure
    monkeypatch.setattr(runner, "compute", lambda *a: pytest.fail("the samples were recomputed"))
    monkeypatch.setattr(runner, "measure", lambda *a: calls.append(1) or orig(*a))
    second = compare(UNET, ["tiny-protocol-classifier"], ["constant:0,2"], out=tmp_path / "o", **kw)
    assert len(calls) == 2  # the metrics of both cells, from their stored features
    for a, b in zip(first.records, second.records):
        assert a["reference_sha256"] != b["reference_sha256"] and a["fd"]["oracle"] != b["fd"]["oracle"]
        assert a["accuracy"] == b["accuracy"]


def _carded(setting, train_images):
    """A tiny UNet component whose card records ``train_images`` as its training split."""
    from guidekit_adm.factory import create_model

    fp = setting / f"train-{len(train_images)}.npy"
    np.save(fp, fingerprints(train_images))

    def factory(path=None):
        net = create_model(UNET)
        net.load_state_dict(torch.load(setting / "unet.pt", weights_only=True))
        net.card = {"name": "tiny-split-unet", "split": {"train": {"path": str(fp), "count": len(train_images)}},
                    "diffusion": {"steps": 40, "schedule": "linear", "learn_sigma": True}}
        return net.eval()

    class Plugin:
        @gk.hookspecs.hookimpl
        def guidekit_networks(self):
            return [gk.Component("tiny-split-unet", factory, "tiny UNet with a recorded split")]

    return Plugin()


def test_a_reference_holding_training_images_is_refused(setting, tmp_path, capsys):
    from guidekit.cli import main
    from guidekit.comparison import compare

    rng = np.random.default_rng(7)
    train = rng.integers(0, 256, size=(50, 8, 8, 3), dtype=np.uint8)
    held = rng.integers(0, 256, size=(20, 8, 8, 3), dtype=np.uint8)
    write_reference_batch(tmp_path / "held.npz", held)
    write_reference_batch(tmp_path / "leaky.npz", np.concatenate([held, train[:3]]))
    kw = dict(seeds=1, num_samples=8, respacing="ddim2", judge="tiny-clf-judge", device="cpu", plots=False,
              show_progress=False)
    with gk.registered(_carded(setting, train), "tiny-split"):
        with pytest.raises(ReferenceOverlapError, match="3 of its 23 images are in the training data of the model "
                                                        "tiny-split-unet.*--allow-reference-overlap"):
            compare("tiny-split-unet", ["tiny-protocol-classifier"], ["constant:1"], out=tmp_path / "a",
                    reference_batch=tmp_path / "leaky.npz", **kw)
        assert not (tmp_path / "a").exists()  # refused before anything was written
        ok = compare("tiny-split-unet", ["tiny-protocol-classifier"], ["constant:1"], out=tmp_path / "b",
                     reference_batch=tmp_path / "held.npz", **kw)
        # the check is recorded: the images of the reference found in each recorded training split
        assert json.loads((tmp_path / "b" / "results.json").read_text())["reference"]["overlap"] == {
            "model tiny-split-unet": 0}
        forced = compare("tiny-split-unet", ["tiny-protocol-classifier"], ["constant:1"], out=tmp_path / "b",
                         reference_batch=tmp_path / "leaky.npz", allow_reference_overlap=True, **kw)
        assert json.loads((tmp_path / "b" / "results.json").read_text())["reference"]["overlap"] == {
            "model tiny-split-unet": 3}
        assert forced.records[0]["fd"] != ok.records[0]["fd"]
        code = main(["compare", "--model", "tiny-split-unet", "--classifier", "tiny-protocol-classifier",
                     "--judge", "tiny-clf-judge", "--scaler", "constant:1",
                     "--reference", str(tmp_path / "leaky.npz"), "--num-samples", "4", "--respacing", "ddim2",
                     "--device", "cpu", "--no-plots", "--out", str(tmp_path / "c")])
    assert code == 1
    err = capsys.readouterr().err
    assert "overlaps training data" in err and "--allow-reference-overlap" in err and "Traceback" not in err


def test_bundled_mnist16_compare_uses_the_held_out_reference_and_refuses_the_full_set(tmp_path):
    pytest.importorskip("guidekit_mnist16")
    from guidekit.comparison import compare
    from guidekit.data import load_dataset
    from guidekit.io import write_sample_batch

    kw = dict(seeds=1, num_samples=10, respacing="ddim2", batch_size=10, device="cpu", plots=False,
              show_progress=False)
    res = compare("mnist16-unet", ["mnist16-classifier-ce"], ["constant:1"], out=tmp_path / "a", **kw)
    card = gk.create("network", "mnist16-unet").card
    assert res.records[0]["reference_sha256"] == card["split"]["heldout"]["sha256"]
    assert res.records[0]["features"] == {"oracle": "mnist16-oracle", "pca": "mnist16-pca"}
    full = write_sample_batch(tmp_path / "all.npz", to_uint8(load_dataset("mnist16").images[:200]).numpy())
    with pytest.raises(ReferenceOverlapError, match="training data of the model mnist16-unet.*judge mnist16-oracle"):
        compare("mnist16-unet", ["mnist16-classifier-ce"], ["constant:1"], out=tmp_path / "b", reference_batch=full,
                **kw)


def test_compare_plot_pairs_target_runs_like_one_run(setting, tmp_path):
    """Two target-accuracy runs merged by compare-plot give the paired rows of one run holding both methods
    (the same cached computations, the same bootstrap indices per seed)."""
    from guidekit.cli import main

    targets = ["--target-accuracy", "0.6", "--pilot-samples", "10", "--bisect-steps", "2"]
    assert main(argv(setting, tmp_path / "both", "--scaler", "constant", "--scaler", "entropy", *targets)) == 0
    assert main(argv(setting, tmp_path / "c", "--scaler", "constant", *targets)) == 0
    assert main(argv(setting, tmp_path / "e", "--scaler", "entropy", *targets)) == 0
    assert main(["compare-plot", str(tmp_path / "c"), str(tmp_path / "e"), "--bootstrap", "200", "--no-plots",
                 "--out", str(tmp_path / "m")]) == 0
    both = json.loads((tmp_path / "both" / "paired.json").read_text())
    merged = json.loads((tmp_path / "m" / "paired.json").read_text())
    assert merged == both and len(both["rows"]) == 2  # entropy vs constant at 0.6, in oracle and pca features
    assert main(["compare-plot", str(tmp_path / "c"), str(tmp_path / "e"), "--baseline", "x/constant", "--no-plots",
                 "--out", str(tmp_path / "n")]) == 1


def test_pixel_pca_and_fingerprints_refuse_what_they_cannot_read():
    from guidekit.extractors.pca import PixelPCA

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(40, 8, 8, 1), dtype=np.uint8)
    pca = PixelPCA.fit(images, 5)
    assert pca.extract(images)["pool"].shape == (40, 5) and 0 < pca.explained_variance < 1
    assert torch.allclose(pca.basis @ pca.basis.T, torch.eye(5), atol=1e-5)  # orthonormal directions
    with pytest.raises(InvalidParameterError, match="fitted on 8×8 images"):
        pca.extract(rng.integers(0, 256, size=(2, 16, 16, 1), dtype=np.uint8))
    with pytest.raises(InvalidParameterError, match="more than 5 images"):
        PixelPCA.fit(images[:5], 5)
    with pytest.raises(ValueError, match="uint8"):
        fingerprints(images.astype(np.float32))
    same = fingerprints(images)
    assert same.dtype == np.uint64 and len(np.unique(same)) == 40 and np.array_equal(same, fingerprints(images.copy()))

"""End to end: ADM-layout batches of digits, a digits extractor trained here, ``guidekit evaluate``."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from guidekit.errors import InvalidParameterError
from guidekit.io import load_batch, write_reference_batch, write_sample_batch
from guidekit.metrics import METRIC_NAMES, evaluate, extract_features, frechet_distance
from guidekit.metrics.cli import main
from guidekit.progress import progress

REPO = Path(__file__).resolve().parents[2]

# ReLU features of a tiny CNN have dead units, so digit covariances are singular and the reference's
# eps fallback (with its warning) is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:fid calculation produces singular product:RuntimeWarning")


@pytest.fixture(scope="module")
def batches(tmp_path_factory, digits) -> dict[str, Path]:
    images, labels = digits
    root = tmp_path_factory.mktemp("batches")
    rng = np.random.default_rng(0)
    noisy = np.clip(images.astype(np.int64) + rng.integers(-160, 161, size=images.shape), 0, 255).astype(np.uint8)
    return {
        "ref": write_reference_batch(root / "ref.npz", images),  # all 1,797 real digits
        "real": write_sample_batch(root / "real.npz", images[:900], labels[:900]),
        "heldout": write_sample_batch(root / "heldout.npz", images[1000:], labels[1000:]),
        "noisy": write_sample_batch(root / "noisy.npz", noisy[:900], labels[:900]),
        "small_ref": write_reference_batch(root / "small_ref.npz", images[:300]),
        "small": write_sample_batch(root / "small.npz", images[300:500], labels[300:500]),
        "root": root,
    }


def run_cli(batches, extractor_path, samples: str, *extra: str) -> dict:
    out = batches["root"] / f"{samples}.json"
    argv = ["evaluate", "--ref", str(batches["ref"]), "--samples", str(batches[samples]),
            "--extractor", "small-cnn", "--extractor-path", str(extractor_path), "--out", str(out),
            "--batch-size", "128", *extra]
    assert main(argv) == 0
    return json.loads(out.read_text())


def test_evaluate_cli_real_versus_noise(batches, digits_extractor_path, capsys):
    real = run_cli(batches, digits_extractor_path, "real")
    table = capsys.readouterr().out
    assert all(name in table for name in METRIC_NAMES)
    heldout = run_cli(batches, digits_extractor_path, "heldout")
    noisy = run_cli(batches, digits_extractor_path, "noisy", "--splits", "5", "--k", "5")
    for result in (real, heldout, noisy):
        assert all(isinstance(result[m], float) and math.isfinite(result[m]) for m in METRIC_NAMES)
    assert real["fid"] * 10 < noisy["fid"] and heldout["fid"] * 10 < noisy["fid"]
    assert real["sfid"] < noisy["sfid"]
    assert real["precision"] > 0.99  # every real sample lies in the reference set
    assert heldout["precision"] > 0.6 and noisy["precision"] < heldout["precision"]
    assert real["inception_score"] > noisy["inception_score"] > 1.0
    assert noisy["splits"] == 5 and noisy["k"] == 5 and noisy["extractor"] == "small-cnn"
    assert [p.name for p in batches["root"].iterdir() if p.name.startswith(".")] == []  # atomic JSON


def test_precomputed_reference_statistics_are_used(batches, digits_extractor_path, tmp_path):
    from guidekit.extractors.small import SmallCNN

    model = SmallCNN.load(digits_extractor_path)
    ref_images = load_batch(batches["ref"]).images()
    feats = extract_features(ref_images, model, batch_size=500, show_progress=False)
    shifted = feats.pool_stats.mean + 0.5
    ref = write_reference_batch(tmp_path / "ref_stats.npz", ref_images, mu=shifted, sigma=feats.pool_stats.cov,
                                mu_s=feats.spatial_stats.mean, sigma_s=feats.spatial_stats.cov)
    result = evaluate(ref, batches["real"], model, show_progress=False)
    sample = extract_features(load_batch(batches["real"]), model, show_progress=False)
    assert result["fid"] == pytest.approx(
        frechet_distance(sample.pool_stats.mean, sample.pool_stats.cov, shifted, feats.pool_stats.cov), rel=1e-9)
    plain = evaluate(batches["ref"], batches["real"], model, show_progress=False)
    assert result["sfid"] == pytest.approx(plain["sfid"], rel=1e-6)
    assert result["precision"] == plain["precision"] and result["fid"] > plain["fid"]

    stats_only = write_reference_batch(tmp_path / "stats_only.npz", mu=shifted, sigma=feats.pool_stats.cov,
                                       mu_s=feats.spatial_stats.mean, sigma_s=feats.spatial_stats.cov)
    with pytest.warns(RuntimeWarning, match="precision and recall are not computed"):
        partial = evaluate(stats_only, batches["real"], model, show_progress=False)
    assert partial["precision"] is None and partial["fid"] == pytest.approx(result["fid"])


def test_cli_errors_are_reported_with_exit_status_2(batches, digits_extractor_path, tmp_path, capsys):
    ref = write_reference_batch(tmp_path / "inception_ref.npz", mu=np.zeros(2048), sigma=np.eye(2048),
                                mu_s=np.zeros(4), sigma_s=np.eye(4))
    argv = ["--ref", str(ref), "--samples", str(batches["real"]), "--extractor", "small-cnn",
            "--extractor-path", str(digits_extractor_path), "--no-progress"]
    assert main(argv) == 2
    assert "dimension 2048" in capsys.readouterr().err
    assert main(["--ref", str(tmp_path / "absent.npz"), "--samples", str(batches["real"]), "--extractor",
                 "small-cnn", "--extractor-path", str(digits_extractor_path)]) == 2
    assert "absent.npz" in capsys.readouterr().err
    assert main(["--ref", str(ref), "--samples", str(batches["real"]), "--extractor", "nope"]) == 2
    assert "unknown extractor 'nope'" in capsys.readouterr().err
    assert main(["--ref", str(ref), "--samples", str(batches["real"]), "--inception-weights", "/x.pth"]) == 2
    assert "/x.pth" in capsys.readouterr().err


def test_module_entry_point_and_main_cli(batches, digits_extractor_path, tmp_path):
    out = tmp_path / "m.json"
    proc = subprocess.run(
        [sys.executable, "-m", "guidekit.metrics.cli", "--ref", str(batches["small_ref"]), "--samples",
         str(batches["small"]), "--extractor", "small-cnn", "--extractor-path", str(digits_extractor_path),
         "--out", str(out), "--progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fid" in proc.stdout and "features (samples):" in proc.stderr
    assert set(METRIC_NAMES) <= set(json.loads(out.read_text()))
    from guidekit.cli import main as guidekit_main

    out2 = tmp_path / "g.json"
    assert guidekit_main(["evaluate", "--ref", str(batches["small_ref"]), "--samples", str(batches["small"]),
                          "--extractor", "small-cnn", "--extractor-path", str(digits_extractor_path),
                          "--out", str(out2), "--no-progress"]) == 0
    assert json.loads(out2.read_text())["fid"] == pytest.approx(json.loads(out.read_text())["fid"], rel=1e-6)


def test_progress_helper():
    stream = io.StringIO()  # not a terminal: silent unless forced
    assert list(progress(range(3), desc="x", file=stream)) == [0, 1, 2]
    assert stream.getvalue() == ""
    stream = io.StringIO()
    assert list(progress(range(3), desc="feat", file=stream, force=True, min_interval=0)) == [0, 1, 2]
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and "feat: 3/3 [" in text and "it/s" in text
    stream = io.StringIO()
    assert list(progress(iter([1, 2]), desc="d", file=stream, force=True, disable=True)) == [1, 2]
    assert stream.getvalue() == ""
    stream = io.StringIO()
    with progress(total=4, desc="manual", file=stream, force=True, min_interval=0) as bar:
        bar.update(2)
        bar.update(2)
    assert "manual: 4/4" in stream.getvalue() and stream.getvalue().count("\n") == 1


def test_reference_with_only_mu_sigma_gives_fid(batches, digits_extractor_path, tmp_path):
    """mu/sigma alone is a valid reference batch: FID is computed; sFID, precision and recall are None."""
    from guidekit.extractors.small import SmallCNN

    model = SmallCNN.load(digits_extractor_path)
    feats = extract_features(load_batch(batches["ref"]), model, show_progress=False)
    ref = write_reference_batch(tmp_path / "mu_only.npz", mu=feats.pool_stats.mean, sigma=feats.pool_stats.cov)
    with pytest.warns(RuntimeWarning) as record:
        result = evaluate(ref, batches["real"], model, show_progress=False)
    messages = " | ".join(str(w.message) for w in record)
    assert "sfid is not computed" in messages and "precision and recall are not computed" in messages
    full = evaluate(batches["ref"], batches["real"], model, show_progress=False)
    assert result["fid"] == pytest.approx(full["fid"], rel=1e-6)
    assert result["sfid"] is None and result["precision"] is None and result["recall"] is None
    assert result["inception_score"] == pytest.approx(full["inception_score"])


@pytest.mark.parametrize(("ref_count", "sample_count", "match"), [
    (0, 100, "reference batch .* has 0 image"),
    (1, 100, "reference batch .* has 1 image"),
    (3, 100, "k=3 needs at least 4 images in each batch, but the reference batch"),
    (100, 3, "k=3 needs at least 4 images in each batch, but the sample batch"),
])
def test_too_small_batches_are_named(digits, tmp_path, ref_count, sample_count, match):
    """Too few images fail before any feature extraction, naming the batch (not FeatureStats internals)."""
    images, labels = digits
    ref = write_reference_batch(tmp_path / "ref.npz", images[:ref_count])
    samples = write_sample_batch(tmp_path / "s.npz", images[:sample_count], labels[:sample_count])

    class NeverCalled:
        name = "never-called"

        def extract(self, images):
            raise AssertionError("the batch sizes are checked before extracting features")

    with pytest.raises(InvalidParameterError, match=match):
        evaluate(ref, samples, NeverCalled(), show_progress=False)


def test_bad_batch_size_device_and_out_are_reported(batches, digits_extractor_path, tmp_path, capsys):
    with pytest.raises(InvalidParameterError, match="batch_size must be a positive integer"):
        extract_features(np.zeros((2, 8, 8, 1), np.uint8), object(), batch_size=0)
    argv = ["--ref", str(batches["small_ref"]), "--samples", str(batches["small"]), "--extractor", "small-cnn",
            "--extractor-path", str(digits_extractor_path), "--no-progress"]
    assert main([*argv, "--device", "tpu"]) == 2
    assert "--device 'tpu' is not a torch device" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path)]) == 2  # checked before the evaluation, not after it
    assert "is a folder" in capsys.readouterr().err

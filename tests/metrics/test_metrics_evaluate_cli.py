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

"""benchmarks/study_report.py: verdicts from paired rows, and the committed README claims match the records."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("study_report", ROOT / "benchmarks" / "study_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(clf: str, scaler: str, seed: int, target: float, fd: float) -> dict:
    return {"classifier": clf, "scaler": scaler, "params": {"gamma": 2.0}, "seed": seed, "accuracy": target,
            "fd": {"oracle": fd}, "kid": {"oracle": fd / 10}, "target_accuracy": target,
            "search": {"pilot_samples": 10}, "vanishing": {"fraction": 0.5}}


def _row(method: str, target: float, lo: float, hi: float, wins: int) -> dict:
    return {"method": method, "target_accuracy": target, "feature": "oracle", "diff_mean": (lo + hi) / 2,
            "diff_std": 0.1, "ci95": [lo, hi], "wins": wins, "seeds": 3}


def test_verdicts_follow_the_ci_and_the_readme_block_is_rewritten(tmp_path, report):
    run = tmp_path / "study" / "toy" / "table2-ddim25"
    run.mkdir(parents=True)
    ce, ect = "toy-classifier-ce", "toy-classifier-ect"
    records = [_record(c, s, seed, 0.9, 5.0) for c in (ce, ect) for s in ("constant", "entropy") for seed in (0, 1)]
    (run / "results.json").write_text(json.dumps({"records": records}))
    (run / "manifest.json").write_text(json.dumps({"num_samples": 20, "diffusion": {"respacing": "ddim25"},
                                                   "sampler": {"name": "ddim"}}))
    rows = [_row(f"{ce}/entropy", 0.9, -2.0, -0.5, 3), _row(f"{ce}/entropy", 0.8, -2.0, -0.5, 2),
            _row(f"{ect}/constant", 0.9, 0.2, 1.0, 0), _row(f"{ect}/entropy", 0.9, -1.0, 1.0, 1)]
    (run / "paired.json").write_text(json.dumps({"baseline": f"{ce}/constant", "rows": rows}))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nold claim\n{report.END}\noutro\n")
    assert report.main([str(tmp_path / "study"), "--readme", str(readme), "--check"]) == 1  # not written yet
    assert report.main([str(tmp_path / "study"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old claim" not in text
    assert "EDS beats constant guidance (CE classifier, DDIM-25): **holds wherever resolved**" in text
    assert "oracle @ 0.9: -1.25 [-2, -0.5] better (3/3 seeds lower)" in text
    assert "oracle @ 0.8: -1.25 [-2, -0.5] seeds split (2/3 seeds lower)" in text  # CI excludes 0, seeds do not agree
    assert "ECT/constant beats CE/constant (DDIM-25): **contradicted wherever resolved**" in text
    assert "ECT + EDS beats CE + EDS (DDIM-25): **not measured**" in text  # no vs-eds run here
    table = (tmp_path / "study" / "README.md").read_text()
    assert "| toy-classifier-ect/entropy | 0.9 | oracle |" in table and "not resolved" in table
    assert "resolved: method lower (better), but seeds split 2/3" in table
    assert report.main([str(tmp_path / "study"), "--readme", str(readme), "--check"]) == 0


def test_a_claim_of_higher_fd_holds_where_the_method_is_resolved_worse(report):
    assert report.overall({"worse", "unresolved"}, "higher") == "holds wherever resolved"
    assert report.overall({"better"}, "higher") == "contradicted wherever resolved"
    assert report.overall({"unresolved", "seeds split"}, "not higher") == "holds (never resolved worse)"
    assert report.overall({"better", "worse"}, "lower") == "mixed"


def test_committed_readme_claims_are_the_committed_study(report):
    """README.md's study claims are regenerated from benchmarks/results/study by the committed command."""
    assert report.main(["--check"]) == 0

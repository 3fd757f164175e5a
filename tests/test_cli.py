"""The ``guidekit`` command: list, demo, errors."""

from __future__ import annotations

import json
import re

from guidekit.cli import main


def test_list_names_providers(capsys):
    assert main(["list", "scaler"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scalers:") and "[guidekit-eds]" in out and "constant" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_toy_demo_writes_numbers_plot_and_grid(tmp_path, capsys):
    assert main(["demo", "--toy", "--samples", "40", "--respacing", "ddim10", "--no-progress", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "demo.json").read_text())
    names = [k for k in summary if k != "traces"]
    assert names == ["unguided", "constant γ=1", "entropy γ=1"]
    assert summary["constant γ=1"]["accuracy"] > summary["unguided"]["accuracy"]
    assert summary["entropy γ=1"]["accuracy"] >= summary["constant γ=1"]["accuracy"]
    assert (tmp_path / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "traces.png").stat().st_size > 10_000
    assert "class accuracy" in capsys.readouterr().out


def test_a_rerun_of_the_demo_keeps_the_earlier_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--toy", "--samples", "10", "--respacing", "ddim2", "--no-progress"]
    assert main(args) == 0 and main(args) == 0
    first, second = tmp_path / "guidekit-demo", tmp_path / "guidekit-demo-2"
    assert (first / "demo.json").exists() and (second / "demo.json").exists()
    assert "writing this one to guidekit-demo-2/" in capsys.readouterr().out
    before = (first / "demo.json").stat().st_mtime_ns
    assert main([*args, "--overwrite"]) == 0  # replaces the default folder's demo, makes no third folder
    assert (first / "demo.json").stat().st_mtime_ns != before and not (tmp_path / "guidekit-demo-3").exists()


def test_demo_on_the_bundled_models(tmp_path, capsys):
    assert main(["demo", "--samples", "30", "--respacing", "ddim10", "--no-progress", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "demo.json").read_text())
    rows = summary["results"]
    assert list(rows) == ["no guidance", "constant γ=4 (CE)", "EDS γ=4 (CE)", "EDS γ=4 (ECT)", "CFG w=2 (cond. UNet)"]
    for r in rows.values():
        assert {"accuracy", "fd", "precision", "recall", "seconds"} <= set(r)
    assert rows["constant γ=4 (CE)"]["accuracy"] > rows["no guidance"]["accuracy"] + 0.3
    assert set(summary["traces"]) == set(list(rows)[1:4])  # classifier gradients only
    captured = capsys.readouterr()
    out = captured.out
    assert "oracle acc" in out and "EDS γ=4 (ECT)" in out
    assert re.findall(r"^strategy (\d/\d): (.+)$", captured.err, flags=re.M) == [
        (f"{i}/5", name) for i, name in enumerate(rows, 1)]  # which strategy is being sampled
    assert "compare them at matched accuracy with" in out  # the explanation below the table
    assert (tmp_path / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "traces.png").stat().st_size > 10_000


def test_demo_without_bundled_models_says_what_to_install(tmp_path, capsys, monkeypatch):
    import guidekit.demo

    monkeypatch.setattr(guidekit.demo, "available", lambda kind: [])
    assert main(["demo", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "guidekit-mnist16" in err and "--toy" in err


def test_errors_exit_non_zero_with_a_message(tmp_path, capsys):
    code = main(["evaluate", "--ref", str(tmp_path / "missing.npz"), "--samples", str(tmp_path / "missing.npz")])
    assert code != 0
    assert "missing.npz" in capsys.readouterr().err

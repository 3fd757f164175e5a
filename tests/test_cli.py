"""The ``guidekit`` command: list, demo, errors."""

from __future__ import annotations

import json

from guidekit.cli import main


def test_list_names_providers(capsys):
    assert main(["list", "scaler"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scalers:") and "[guidekit-eds]" in out and "constant" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_demo_writes_numbers_plot_and_grid(tmp_path, capsys):
    assert main(["demo", "--samples", "40", "--respacing", "ddim10", "--no-progress", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "demo.json").read_text())
    names = [k for k in summary if k != "traces"]
    assert names == ["unguided", "constant γ=1", "entropy γ=1"]
    assert summary["constant γ=1"]["accuracy"] > summary["unguided"]["accuracy"]
    assert summary["entropy γ=1"]["accuracy"] >= summary["constant γ=1"]["accuracy"]
    assert (tmp_path / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "traces.png").stat().st_size > 10_000
    assert "class accuracy" in capsys.readouterr().out


def test_errors_exit_non_zero_with_a_message(tmp_path, capsys):
    code = main(["evaluate", "--ref", str(tmp_path / "missing.npz"), "--samples", str(tmp_path / "missing.npz")])
    assert code != 0
    assert "missing.npz" in capsys.readouterr().err

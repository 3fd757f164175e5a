"""``guidekit sample`` (in the core) on ADM networks named by flag strings and releases (resolved by
guidekit-adm through ``guidekit_resolve_network``): outputs, shards, bad arguments."""

from __future__ import annotations

import json

import guidekit_adm as adm
import numpy as np
import pytest
import torch

from guidekit.cli import build_parser, main

UNET_FLAGS = (
    "--image_size 64 --num_channels 32 --num_res_blocks 1 --channel_mult 1,1,1 --attention_resolutions 8 "
    "--num_head_channels 32 --learn_sigma True --class_cond True --resblock_updown True"
)
CLASSIFIER_FLAGS = "--image_size 64 --classifier_width 32 --classifier_depth 1 --classifier_attention_resolutions 8"


def test_sample_command_is_registered():
    parser = build_parser()
    args = parser.parse_args(["sample", "--model", "64x64_diffusion", "--model-path", "m.pt", "--out", "o"])
    from guidekit.sample_cli import run_sample

    assert args.func is run_sample


def _save(model: torch.nn.Module, path) -> None:
    for p in model.parameters():
        p.data.normal_(0, 0.02)
    torch.save(model.state_dict(), path)


def _tiny_sample_args(tmp_path) -> list[str]:
    """``guidekit sample`` arguments for a tiny guided UNet (random weights saved under tmp_path), 2 samples."""
    torch.manual_seed(0)
    _save(adm.create_model(UNET_FLAGS), tmp_path / "unet.pt")
    _save(adm.create_model(CLASSIFIER_FLAGS), tmp_path / "classifier.pt")
    return [
        "sample", f"--model={UNET_FLAGS}", "--model-path", str(tmp_path / "unet.pt"),
        f"--classifier={CLASSIFIER_FLAGS}", "--classifier-path", str(tmp_path / "classifier.pt"),
        "--scaler", "interval", "--gamma", "2", "--scaler-param", "start=0", "--scaler-param=end=700", "--respacing", "ddim2", "--sampler", "ddim",
        "--num-samples", "2", "--seed", "7", "--device", "cpu", "--no-progress",
    ]


def test_guidekit_sample_cli_end_to_end(tmp_path, capsys):
    common = _tiny_sample_args(tmp_path)
    assert main([*common, "--batch-size", "1", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--batch-size", "2", "--out", str(tmp_path / "b")]) == 0
    a = np.load(tmp_path / "a" / "samples.npz")
    b = np.load(tmp_path / "b" / "samples.npz")
    assert a["arr_0"].dtype == np.uint8 and a["arr_0"].shape == (2, 64, 64, 3)
    assert a["arr_1"].dtype == np.int64 and a["arr_1"].shape == (2,) and (a["arr_1"] < 1000).all()
    # per-sample seeds: the same samples whatever the batch size
    assert (a["arr_1"] == b["arr_1"]).all()
    assert np.abs(a["arr_0"].astype(int) - b["arr_0"].astype(int)).max() <= 1
    assert (tmp_path / "a" / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    assert meta["sampler"] == "ddim" and meta["gamma"] == 2.0 and meta["respacing"] == "ddim2"
    assert meta["scaler"] == "interval" and meta["scaler_params"] == {"start": 0, "end": 700}


def test_guidekit_sample_shards_merge_to_a_single_run(tmp_path, monkeypatch, capsys):
    """Sample i depends only on (seed, i): shards joined by `guidekit merge-batches` equal one run, byte for byte."""
    common = [*_tiny_sample_args(tmp_path), "--num-samples", "3"]
    assert main([*common, "--batch-size", "2", "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--batch-size", "1", "--out", str(tmp_path / "bs1")]) == 0
    assert main([*common, "--batch-size", "2", "--num-shards", "2", "--shard-index", "0", "--out", str(tmp_path / "s")]) == 0
    with monkeypatch.context() as env:  # shard 1 of 2 from the variables torchrun sets
        env.setenv("WORLD_SIZE", "2")
        env.setenv("RANK", "1")
        assert main([*common, "--batch-size", "2", "--out", str(tmp_path / "s")]) == 0
    shards = [tmp_path / "s" / f"samples_3x64x64x3_shard{i}of2.npz" for i in (1, 0)]  # any order: merged by index
    assert main(["merge-batches", str(tmp_path / "merged.npz"), *map(str, shards)]) == 0

    one, merged, bs1 = (np.load(p) for p in (tmp_path / "one" / "samples.npz", tmp_path / "merged.npz",
                                             tmp_path / "bs1" / "samples.npz"))
    assert merged["arr_0"].tobytes() == one["arr_0"].tobytes() and merged["arr_1"].tobytes() == one["arr_1"].tobytes()
    assert merged["arr_0"].shape == (3, 64, 64, 3) and merged["arr_1"].dtype == np.int64
    # batch size changes only how samples are grouped (batched convolutions may round differently)
    assert (bs1["arr_1"] == one["arr_1"]).all()
    assert np.abs(bs1["arr_0"].astype(int) - one["arr_0"].astype(int)).max() <= 1
    assert np.load(shards[0])["arr_0"].shape == (1, 64, 64, 3)
    meta = json.loads((tmp_path / "s" / "run_shard1of2.json").read_text())
    assert meta["sample_range"] == [2, 3] and meta["num_shards"] == 2 and meta["shard_index"] == 1
    assert (tmp_path / "s" / "grid_shard0of2.png").is_file() and not (tmp_path / "s" / "grid.png").exists()

    # --classes cycle over global indices: shard 1 starts at sample 2
    assert main([*common, "--classes", "5,9,1", "--num-shards", "2", "--shard-index", "1", "--out", str(tmp_path / "c")]) == 0
    assert np.load(tmp_path / "c" / "samples_3x64x64x3_shard1of2.npz")["arr_1"].tolist() == [1]
    assert main([*common, "--num-shards", "2", "--shard-index", "2", "--out", str(tmp_path / "x")]) == 1
    assert "--shard-index must be in [0, --num-shards)" in capsys.readouterr().err


def test_guidekit_sample_cli_rejects_bad_input(tmp_path, capsys):
    path = tmp_path / "unet.pt"
    torch.save(adm.create_model(UNET_FLAGS).state_dict(), path)
    base = ["sample", f"--model={UNET_FLAGS}", "--model-path", str(path), "--out", str(tmp_path / "o"), "--device", "cpu"]
    assert main([*base, "--classifier", "64x64_classifier"]) == 1  # no --classifier-path
    assert main([*base, "--classifier", "64x64_classifier", "--classifier-path", str(path),
                 "--scaler-param", "nonsense"]) == 1
    assert main(["sample", "--model", "64_256_upsampler", "--model-path", str(path), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "--classifier-path" in err and "KEY=VALUE" in err and "upsampler" in err


def test_guidekit_sample_cli_missing_checkpoint(tmp_path, capsys):
    code = main(["sample", "--model", "64x64_diffusion", "--model-path", str(tmp_path / "missing.pt"),
                 "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert code == 1
    err = capsys.readouterr().err
    assert "missing.pt" in err and "64x64_diffusion.pt" in err



_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.mark.parametrize(("model_flags", "extra", "message"), [
    ("", ["--classes", "cat,dog"], "--classes must be comma-separated integer labels"),
    ("", ["--classes", ","], "names no label"),
    ("", ["--device", "tpu"], "is not a torch device"),
    pytest.param("", ["--device", "cuda"], "CUDA is not available", marks=_NO_CUDA),
    (" --noise_schedule quadratic", [], "--noise_schedule must be linear or cosine"),
    ("", ["--out", "MODEL_FILE"], "is a file; give a folder"),
])
def test_guidekit_sample_cli_reports_bad_arguments(tmp_path, capsys, model_flags, extra, message):
    """Bad --classes, --device, --out and diffusion flags exit with status 1 and a message, not a traceback."""
    path = tmp_path / "unet.pt"
    torch.save(adm.create_model(UNET_FLAGS).state_dict(), path)
    argv = ["sample", f"--model={UNET_FLAGS}{model_flags}", "--model-path", str(path), "--out", str(tmp_path / "o"),
            "--num-samples", "1", "--respacing", "ddim2", "--no-progress", "--device", "cpu",
            *(str(path) if arg == "MODEL_FILE" else arg for arg in extra)]  # argparse: the last --device/--out wins
    assert main(argv) == 1
    assert message in capsys.readouterr().err

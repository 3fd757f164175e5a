"""A CLI that no plugin can break (issue 11): isolated plugin commands, --plugin, --version, clash
marks, Ctrl-C, file permissions, progress off a terminal."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import guidekit_adm as adm
import numpy as np
import pytest
import torch

import guidekit as gk
from guidekit.cli import main
from guidekit.io import SampleBatchWriter, save_grid, write_sample_batch
from guidekit.plugins import PluginManager
from guidekit.progress import progress
from guidekit.registry import Registry, default_registry
from guidekit.toy import GaussianMixtureToy

UNET_FLAGS = ("--image_size 64 --num_channels 32 --num_res_blocks 1 --channel_mult 1,1,1 --attention_resolutions 8 "
              "--num_head_channels 32 --learn_sigma True --class_cond False")
CLASSIFIER_FLAGS = "--image_size 64 --classifier_width 32 --classifier_depth 1 --classifier_attention_resolutions 8"


@pytest.fixture(scope="module")
def badcli_site(install_plugin) -> Path:
    """guidekit-badcli (a raising and a clashing commands hook, a misspelt hook, one good command), pip-installed."""
    return install_plugin("guidekit-badcli")


def _cli(site: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GUIDEKIT_STRICT_PLUGINS")}
    env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, "-m", "guidekit.cli", *argv], capture_output=True, text=True, env=env)


def test_broken_and_clashing_plugin_commands_leave_the_cli_working(badcli_site):
    listed = _cli(badcli_site, "list", "scaler")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert "constant" in listed.stdout and "[guidekit-eds]" in listed.stdout
    err = listed.stderr
    assert "guidekit-badcli" in err and "RuntimeError: badcli exploded" in err
    assert "adds the sub-command 'list', which guidekit provides already" in err
    assert "`guidekit list` stays guidekit's, and guidekit-badcli's runs as `guidekit guidekit-badcli:list`" in err
    assert "'guidekit_scaler' (did you mean 'guidekit_scalers'?)" in err  # the misspelt hook names its plugin
    assert "typo-scaler" not in listed.stdout
    hello = _cli(badcli_site, "hello", "world")  # the well-formed plugin command still runs
    assert hello.returncode == 0 and hello.stdout.strip() == "hello world"
    kept = _cli(badcli_site, "hello-too", "--help")  # the clashing hook's other sub-command stays
    assert kept.returncode == 0, kept.stderr
    builtin = _cli(badcli_site, "list", "sampler")  # the built-in keeps its name; the plugin's is under DIST:NAME
    assert builtin.returncode == 0 and "ddim" in builtin.stdout
    chosen = _cli(badcli_site, "guidekit-badcli:list", "--help")
    assert chosen.returncode == 0 and "usage: guidekit guidekit-badcli:list" in chosen.stdout


LOCAL_PLUGIN = '''
import torch
import guidekit as gk
from guidekit.samplers import DDIMSampler

CALLS = []


@gk.register_scaler("local-boost")
def local_boost(k: float = 2.0):
    """A scaler without gamma."""
    def scale(state):
        CALLS.append(k)
        return torch.full((state.batch_size,), float(k))
    return scale


@gk.register_sampler("local-ddim")
def local_ddim(eta: float = 0.0):
    """DDIM under another name."""
    return DDIMSampler(eta=eta)
'''


@pytest.fixture
def local_module(tmp_path, monkeypatch):
    """A local module registering a scaler and a sampler with decorators, importable from the current folder."""
    name = f"guidekit_local_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(LOCAL_PLUGIN))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    registry = default_registry()
    registry.remove("scaler", "local-boost")
    registry.remove("sampler", "local-ddim")
    label = f"{name} (--plugin)"
    if registry.manager.pm.has_plugin(label):
        registry.manager.unregister(label)
    sys.modules.pop(name, None)


def test_plugin_module_components_reach_sample(local_module, tmp_path, capsys):
    """--plugin imports a local module; its scaler (no gamma) and sampler take --scaler-param/--sampler-param."""
    torch.manual_seed(0)
    torch.save(adm.create_model(UNET_FLAGS).state_dict(), tmp_path / "unet.pt")
    torch.save(adm.create_model(CLASSIFIER_FLAGS).state_dict(), tmp_path / "clf.pt")
    assert main(["--plugin", local_module, "list", "scaler"]) == 0
    assert "local-boost" in capsys.readouterr().out
    argv = ["sample", f"--model={UNET_FLAGS}", "--model-path", str(tmp_path / "unet.pt"),
            f"--classifier={CLASSIFIER_FLAGS}", "--classifier-path", str(tmp_path / "clf.pt"),
            "--scaler", "local-boost", "--scaler-param", "k=3", "--sampler", "local-ddim", "--sampler-param", "eta=0.5",
            "--respacing", "ddim2", "--num-samples", "2", "--batch-size", "2", "--device", "cpu", "--no-progress",
            "--out", str(tmp_path / "o"), "--plugin", local_module]
    assert main(argv) == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "o" / "run.json").read_text())
    assert meta["scaler"] == "local-boost" and meta["scaler_params"] == {"k": 3} and meta["gamma"] is None
    assert meta["sampler"] == "local-ddim" and meta["sampler_params"] == {"eta": 0.5}
    assert sys.modules[local_module].CALLS == [3, 3]  # one call per step


def test_guidekit_plugins_variable_registers_hook_modules(tmp_path, monkeypatch):
    (tmp_path / "guidekit_env_plugin.py").write_text(textwrap.dedent('''
        from guidekit import Component
        from guidekit.hookspecs import hookimpl
        from guidekit.scalers import ConstantScaler

        @hookimpl
        def guidekit_scalers():
            return [Component("env-constant", ConstantScaler, "from GUIDEKIT_PLUGINS")]
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GUIDEKIT_PLUGINS", "guidekit_env_plugin, ")
    try:
        registry = Registry(PluginManager())
        assert "env-constant" in registry.available("scaler")
        assert [c.provider for c in registry.table("scaler")["env-constant"]] == ["guidekit_env_plugin (GUIDEKIT_PLUGINS)"]
        monkeypatch.setenv("GUIDEKIT_PLUGINS", "guidekit_env_plugin_missing")
        with pytest.raises(gk.PluginLoadError, match="GUIDEKIT_PLUGINS 'guidekit_env_plugin_missing' could not"):
            Registry(PluginManager()).available("scaler")
    finally:
        sys.modules.pop("guidekit_env_plugin", None)


def test_version_names_every_distribution(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"guidekit {gk.__version__}") and "guidekit-eds" in out and "guidekit-adm" in out


def test_list_marks_clashes(capsys):
    gk.register_scaler("constant", summary="a second constant")(lambda gamma=1.0: None)
    try:
        assert main(["list", "scaler"]) == 0
    finally:
        default_registry().remove("scaler", "constant")
    out = capsys.readouterr().out
    clashing = [line for line in out.splitlines() if line.lstrip().startswith("constant")]
    assert len(clashing) == 2 and all(line.endswith("CLASH") for line in clashing)
    assert "CLASH: more than one plugin provides scaler 'constant'" in out


def test_ctrl_c_prints_one_line_and_exits_130(monkeypatch, capsys):
    import guidekit.demo

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(guidekit.demo, "run_demo", interrupted)
    assert main(["demo"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err


def test_an_interrupted_batch_leaves_no_file(tmp_path):
    path = tmp_path / "samples.npz"
    with pytest.raises(KeyboardInterrupt), SampleBatchWriter(path, 4, (4, 4, 3)) as writer:
        writer.add(np.zeros((2, 4, 4, 3), np.uint8))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []  # neither the batch nor its temporary file


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        written = [write_sample_batch(tmp_path / "s.npz", np.zeros((1, 4, 4, 3), np.uint8)),
                   save_grid(np.zeros((1, 4, 4, 3), np.uint8), tmp_path / "g.png"),
                   gk.GuidanceTrace().to_json(tmp_path / "t.json")]
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o666 & ~umask)}


def test_trace_plot_writes_the_format_its_suffix_names(tmp_path):
    toy = GaussianMixtureToy(num_classes=3, shape=(1, 4, 4))
    trace = gk.GuidanceTrace()
    diff = gk.GaussianDiffusion.create(learn_sigma=False, respacing="ddim2")
    gk.sample(toy.denoiser(), diff, (2, 1, 4, 4), guidance=gk.ClassifierGuidance(toy.classifier()),
              y=torch.tensor([0, 1]), callback=trace, progress=False)
    trace.plot(tmp_path / "t.pdf")
    trace.plot(tmp_path / "t.svg")
    assert (tmp_path / "t.pdf").read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in (tmp_path / "t.svg").read_bytes()[:400]


def test_progress_off_a_terminal_prints_lines_at_an_interval(monkeypatch):
    stream = io.StringIO()
    list(progress(range(3), desc="slow", file=stream, log_interval=0))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and lines[-1].startswith("slow: 3/3 [") and len(lines) == 4
    stream = io.StringIO()
    list(progress(range(3), desc="quick", file=stream))  # the default interval (30 s) is not reached
    assert stream.getvalue() == ""
    monkeypatch.setenv("GUIDEKIT_PROGRESS", "0")
    stream = io.StringIO()
    list(progress(range(3), desc="off", file=stream, log_interval=0))
    assert stream.getvalue() == ""


# -- found by fuzzing the command line (benchmarks/results/bad_inputs/cli.md) ------------------------
UNET16 = ("--image_size 16 --num_channels 32 --num_res_blocks 1 --channel_mult 1,1 --attention_resolutions 8 "
          "--num_head_channels 32 --learn_sigma True --class_cond False")
CLF8 = ("--image_size 8 --in_channels 1 --num_classes 10 --classifier_width 32 --classifier_depth 1 --channel_mult 1,2 "
        "--classifier_attention_resolutions 2 --classifier_num_head_channels 32")


def test_version_prints_one_line_per_distribution(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    lines = capsys.readouterr().out.splitlines()  # argparse used to fill them into one line
    assert lines[0] == f"guidekit {gk.__version__}" and any(line.startswith("  guidekit-adm ") for line in lines[1:])


def test_plugin_module_that_registers_nothing_is_warned_about(tmp_path, monkeypatch, capsys):
    (tmp_path / "guidekit_fuzz_empty.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["--plugin", "guidekit_fuzz_empty", "--plugin", "guidekit_fuzz_empty", "list", "loss"]) == 0
    finally:
        sys.modules.pop("guidekit_fuzz_empty", None)
    err = capsys.readouterr().err
    assert err.count("--plugin guidekit_fuzz_empty registered no component and no hook") == 1


def test_accuracy_levels_outside_0_1_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare-plot", "a", "b", "--out", "c", "--accuracy-levels", "0.5,2"])
    assert exit_info.value.code == 2 and "accuracies between 0 and 1" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["sample", "--model", "64x64_diffusion", "--model-path", "x.pt", "--out", "o"],
    ["train-classifier", "--data", "mnist16", "--flags", CLF8, "--out", "t", "--device", "cpu"],
])
def test_world_size_that_is_no_integer_is_named(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "abc")
    assert main(argv) == 1
    assert "$WORLD_SIZE is 'abc', not an integer" in capsys.readouterr().err


def test_bad_progress_settings_are_warned_about_once(monkeypatch):
    import guidekit.progress

    monkeypatch.setattr(guidekit.progress, "_WARNED", set())
    monkeypatch.setenv("GUIDEKIT_PROGRESS", "banana")
    monkeypatch.setenv("GUIDEKIT_PROGRESS_INTERVAL", "soon")
    with pytest.warns(UserWarning) as record:
        for _ in range(2):
            list(progress(range(2), file=io.StringIO()))
    assert sorted(str(w.message).split("=")[0] for w in record) == ["GUIDEKIT_PROGRESS", "GUIDEKIT_PROGRESS_INTERVAL"]


def test_resume_into_another_finished_run_keeps_its_record(tmp_path, capsys):
    """--resume with another --num-samples used to start a new run over the finished run's run.json and grid."""
    torch.manual_seed(0)
    torch.save(adm.create_model(UNET16).state_dict(), tmp_path / "unet.pt")
    argv = ["sample", f"--model={UNET16}", "--model-path", str(tmp_path / "unet.pt"), "--respacing", "ddim2",
            "--batch-size", "2", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "o")]
    assert main([*argv, "--num-samples", "2"]) == 0
    record = (tmp_path / "o" / "run.json").read_bytes()
    capsys.readouterr()
    assert main([*argv, "--num-samples", "3", "--resume"]) == 1
    assert "with different options (--num-samples: was 2, now 3)" in capsys.readouterr().err
    assert (tmp_path / "o" / "run.json").read_bytes() == record
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["grid.png", "run.json", "samples.npz"]


def test_train_resume_with_fewer_steps_and_stale_temporaries(tmp_path, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, arr_0=np.random.default_rng(0).integers(0, 255, (4, 8, 8, 1), dtype=np.uint8), arr_1=np.arange(4))
    argv = ["train-classifier", "--data", str(data), "--flags", CLF8, "--batch-size", "2", "--device", "cpu",
            "--no-progress", "--out", str(tmp_path / "t")]
    assert main([*argv, "--steps", "2"]) == 0
    stale = tmp_path / "t" / ".checkpoint.pt.x1y2z3.tmp"  # what a SIGKILL during a save leaves
    stale.write_bytes(b"partial")
    capsys.readouterr()
    assert main([*argv, "--steps", "1", "--resume"]) == 1  # silently exported the 2-step model before
    assert "trained 2 steps already, more than steps=1" in capsys.readouterr().err
    assert not stale.exists()


def test_merge_batches_removes_what_a_killed_merge_left(tmp_path):
    parts = [write_sample_batch(tmp_path / f"s{i}.npz", np.zeros((2, 4, 4, 3), np.uint8)) for i in range(2)]
    stale = tmp_path / ".m.npz.k1ll3d.tmp"  # a SIGKILL during the merge leaves this (as large as the merge)
    stale.write_bytes(b"partial")
    assert main(["merge-batches", str(tmp_path / "m.npz"), *map(str, parts)]) == 0
    assert not stale.exists() and (tmp_path / "m.npz").is_file()

"""``guidekit sample`` itself (integrity.md rows 11 and 12, which the first pass proved on ChunkedSampleBatch only):
a finished run is checked against the sha256 its run record holds, and a run whose component code changed (a
``--plugin`` that shadows a built-in name, an edited plugin) is not resumed into the same output."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

import guidekit as gk
from guidekit.cli import main
from guidekit.identity import file_sha256
from guidekit.registry import default_registry

from .conftest import flip_byte


def _argv(model, *extra):
    return ["sample", "--model", str(model), "--respacing", "ddim2", "--num-samples", "6", "--batch-size", "2",
            "--seed", "5", "--device", "cpu", "--no-progress", *extra]


def test_a_finished_run_damaged_or_replaced_is_refused_by_the_command(tiny_unet, tmp_path, capsys):
    out = tmp_path / "o"
    assert main([*_argv(tiny_unet), "--out", str(out)]) == 0
    npz, record = out / "samples.npz", out / "run.json"
    good = npz.read_bytes()
    assert json.loads(record.read_text())["content"]["samples.npz"]["sha256"] == file_sha256(npz)
    capsys.readouterr()
    assert main([*_argv(tiny_unet), "--out", str(out), "--resume"]) == 0  # intact: kept as it is
    assert "is already complete; nothing to do" in capsys.readouterr().err
    flip_byte(npz, len(good) // 2)
    assert main([*_argv(tiny_unet), "--out", str(out), "--resume"]) == 1
    err = capsys.readouterr().err
    assert "samples.npz' has sha256" in err and "was damaged or replaced after it was written" in err
    assert f"pass --overwrite to sample it again (its record is {str(record)!r})" in err
    # replaced by another valid batch of the same size: a run of another seed
    assert main([*_argv(tiny_unet, "--seed", "6"), "--out", str(tmp_path / "other")]) == 0
    shutil.copy(tmp_path / "other" / "samples.npz", npz)
    assert main([*_argv(tiny_unet), "--out", str(out), "--resume"]) == 1
    assert "was damaged or replaced after it was written" in capsys.readouterr().err
    assert main(["merge-batches", str(tmp_path / "m.npz"), str(npz)]) == 1  # and no other reader takes it
    assert "was damaged or replaced after it was written" in capsys.readouterr().err
    assert main([*_argv(tiny_unet), "--out", str(out), "--overwrite"]) == 0  # the way out, and the same samples
    assert npz.read_bytes() == good


SHADOW = '''"""Shadows the built-in ddim sampler (the same steps; only the code's provenance differs)."""
import guidekit as gk
from guidekit.samplers import DDIMSampler


@gk.register_sampler("ddim", replace=True)
def ddim(eta: float = 0.0):
    return DDIMSampler(eta=eta)
'''

MINE = '''"""A sampler of a local plugin (DDIM)."""
import guidekit as gk
from guidekit.samplers import DDIMSampler


@gk.register_sampler("mine")
def mine(eta: float = 0.0):
    return DDIMSampler(eta=eta)
'''


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    """A folder on sys.path for --plugin modules; their registrations and imports are undone afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    registry = default_registry()
    for kind, name, module in (("sampler", "ddim", "shadow_ddim"), ("sampler", "mine", "mine")):
        registry.remove(kind, name)
        sys.modules.pop(module, None)
        if registry.manager.pm.get_plugin(f"{module} (--plugin)") is not None:
            registry.manager.unregister(f"{module} (--plugin)")


def _interrupted(monkeypatch, argv):
    """Run ``argv`` and stop it (as Ctrl-C does) after its first chunk; the chunk is committed."""
    real, calls = gk.sample, []

    def stop_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(gk, "sample", stop_after_one)
        assert main(argv) == 130


def test_resume_after_a_plugin_shadows_a_component_is_refused_by_the_command(tiny_unet, plugin_folder, capsys,
                                                                              monkeypatch):
    out, ref = plugin_folder / "o", plugin_folder / "ref"
    (plugin_folder / "shadow_ddim.py").write_text(SHADOW)
    _interrupted(monkeypatch, [*_argv(tiny_unet), "--out", str(out)])
    assert "interrupted with 2/6 samples kept" in capsys.readouterr().err
    assert main(["--plugin", "shadow_ddim", *_argv(tiny_unet), "--out", str(out), "--resume"]) == 1
    err = capsys.readouterr().err
    assert "component sampler 'ddim': was guidekit (guidekit.samplers.ddim" in err
    assert "now shadow_ddim.ddim (replace=True) (shadow_ddim, no distribution, source" in err and "one output would mix two implementations" in err
    assert len(json.loads((out / "samples.parts" / "manifest.json").read_text())["chunks"]) == 1  # kept
    default_registry().remove("sampler", "ddim")  # the plugin dropped again: the run continues, the same as one run
    assert main([*_argv(tiny_unet), "--out", str(out), "--resume"]) == 0
    assert "resuming: 2/6 samples already done" in capsys.readouterr().err
    assert main([*_argv(tiny_unet), "--out", str(ref)]) == 0
    assert (out / "samples.npz").read_bytes() == (ref / "samples.npz").read_bytes()


def test_resume_after_a_plugin_was_edited_is_refused_by_the_command(tiny_unet, plugin_folder, capsys, monkeypatch):
    out = plugin_folder / "o"
    (plugin_folder / "mine.py").write_text(MINE)
    argv = ["--plugin", "mine", *_argv(tiny_unet, "--sampler", "mine"), "--out", str(out)]
    _interrupted(monkeypatch, argv)
    # its code changed on disk (the provenance is the sha256 of the module's file, as a new process imports it)
    (plugin_folder / "mine.py").write_text(MINE.replace("(DDIM)", "(DDIM, edited)"))
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 1
    err = capsys.readouterr().err
    assert "component sampler 'mine': was mine.mine (mine, no distribution, source" in err
    assert "one output would mix two implementations" in err

"""Plugins that exit or raise while loading, and a clone named guidekit in the current folder (issue 18)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guidekit.cli import main
from guidekit.errors import PluginLoadWarning
from guidekit.plugins import PluginManager

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("code", ["import sys\nsys.exit(0)\n", "raise SystemExit('bye')\n"])
def test_a_plugin_module_that_exits_on_import_fails_the_command(tmp_path, monkeypatch, capsys, code):
    (tmp_path / "fz_exits.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["--plugin", "fz_exits", "list", "sampler"]) == 1  # was 0, having listed nothing
    err = capsys.readouterr().err
    assert "--plugin 'fz_exits' called sys.exit(" in err and "if __name__ == '__main__'" in err
    assert "fz_exits" not in sys.modules


def test_an_installed_plugin_that_exits_on_import_is_a_reported_failure(tmp_path, monkeypatch):
    (tmp_path / "fz_exits_ep.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager(strict=False, entry_points=False)
    ep = importlib.metadata.EntryPoint("fz", "fz_exits_ep", "guidekit")
    with pytest.warns(PluginLoadWarning, match=r"fz-dist .*called sys.exit\(3\) while being imported"):
        manager._load_entry_point("fz-dist", ep)
    assert [f.distribution for f in manager.failures] == ["fz-dist"]


def test_import_guidekit_from_the_folder_holding_a_clone_named_guidekit(tmp_path):
    """The clone is a folder named guidekit without __init__.py: it must not shadow the installed package."""
    (tmp_path / "guidekit").symlink_to(ROOT, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", "import guidekit; print(guidekit.create.__module__)"], cwd=tmp_path,
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "guidekit.registry", done.stderr


def test_a_plugin_sub_command_named_sample_does_not_take_over(tmp_path):
    """Installed first on the path (so its hook runs before the bundled guidekit-adm's), it used to take
    `sample` while the warning blamed guidekit-adm, whose commands were all skipped."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(ROOT / "tests" / "fixtures" / "plugins" / "guidekit-takeover")], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("GUIDEKIT_STRICT_PLUGINS",)}
    env["PYTHONPATH"] = str(site)

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "guidekit.cli", *argv], capture_output=True, text=True, env=env)

    listing = cli("--help")
    assert listing.returncode == 0, listing.stderr
    assert "a third-party sample" not in listing.stdout.split("guidekit-takeover:sample")[0]  # `sample` is guidekit's
    assert "takeover-own" in listing.stdout and "train-classifier" in listing.stdout  # nothing else was skipped
    assert "adds the sub-command 'sample', which guidekit" in listing.stderr
    assert "and guidekit-takeover's runs as `guidekit guidekit-takeover:sample`" in listing.stderr
    assert "replace=True" not in listing.stderr and "failed to load" not in listing.stderr
    chosen = cli("guidekit-takeover:sample")
    assert chosen.returncode == 0 and chosen.stdout.strip() == "guidekit-takeover's sample ran"

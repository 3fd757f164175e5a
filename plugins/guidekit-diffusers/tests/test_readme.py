"""The README's "With diffusers" example runs as written (in a fresh interpreter, offline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import guidekit as gk

README = Path(gk.__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs(tmp_path):
    text = README.read_text(encoding="utf-8")
    assert text.count("<!-- diffusers-example -->") == 1
    code = text.split("<!-- diffusers-example -->")[1].split("```python\n")[1].split("```")[0]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "tiny-unet" / "config.json").is_file() and (tmp_path / "tiny-unet" / "scheduler_config.json").is_file()

"""The docs build without a warning (``sphinx-build -W``), and the reference covers every public name.

The build runs once per test session into a temporary folder (about 10-60 s, no link checking).
When a public name is missing, the failure lists exactly the missing names, to add to docs/api.rst
(``guidekit.*``) or docs/api_plugins.rst (the plugins).
"""

from __future__ import annotations

import argparse
import html
import importlib
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    return proc, out


def documented_objects(out: Path) -> set[str]:
    """Every object name in the build's inventory (objects.inv: 4 header lines, then zlib-compressed lines)."""
    raw = (out / "objects.inv").read_bytes()
    body = zlib.decompress(raw.split(b"\n", 4)[4]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line.strip()}


def text_of(markup: str) -> str:
    """HTML without its tags, whitespace runs as one space."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def page_text(out: Path) -> str:
    return text_of("\n".join(p.read_text(encoding="utf-8") for p in sorted(out.rglob("*.html"))
                             if "_modules" not in p.parts))


def plugin_packages() -> list[str]:
    """The import names of the plugin distributions in this repository (plugins/*/guidekit_*/)."""
    return sorted({p.parent.name for p in ROOT.glob("plugins/*/guidekit_*/__init__.py")})


def public_names() -> list[str]:
    names = []
    for package in ["guidekit", *plugin_packages()]:
        try:
            module = importlib.import_module(package)
        except ImportError as exc:
            pytest.fail(f"{package} is not installed ({exc}); pip install -e plugins/<its folder>")
        if not getattr(module, "__all__", None):  # without __all__ nothing of the package would be checked
            pytest.fail(f"{package} has no __all__: list its public names there, so the reference check covers them")
        names += [f"{package}.{name}" for name in module.__all__]
    return names


def test_the_reference_check_covers_every_plugin_of_the_repository():
    assert {"guidekit_eds", "guidekit_adm", "guidekit_mnist16", "guidekit_diffusers", "guidekit_fashion"} <= set(
        plugin_packages())
    names = public_names()
    for package in plugin_packages():
        assert any(name.startswith(package + ".") for name in names), f"no public name of {package} is checked"


def test_docs_build_without_warnings(built):
    proc, out = built
    assert proc.returncode == 0, f"sphinx-build -W failed:\n{proc.stderr[-6000:]}"
    assert (out / "index.html").is_file()


def test_the_pages_teach_the_interface(built):
    _, out = built
    text = page_text(out)
    for phrase in ("Getting started", "register_scaler", "train_diffusion", "from_model", "guidekit compare",
                   "save_grid", "has not yet been run on a GPU"):
        assert phrase in text, f"no page mentions {phrase!r}"


def test_every_public_name_is_in_the_api_reference(built):
    _, out = built
    missing = [name for name in public_names() if name not in documented_objects(out)]
    assert not missing, ("missing from the API reference (add them to docs/api.rst or docs/api_plugins.rst): "
                         + ", ".join(missing))


def test_the_cli_reference_has_every_sub_command(built):
    from guidekit.cli import build_parser

    _, out = built
    cli = text_of((out / "cli.html").read_text(encoding="utf-8"))
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    missing = [name for name in commands if f"guidekit {name}" not in cli]
    assert not missing, f"sub-commands missing from docs/cli.rst's generated reference: {', '.join(missing)}"
    assert "--num-samples NUM_SAMPLES" in cli and "Default: " in cli  # options, with their defaults
    absent = [f"guidekit {name} {option}" for name, sub in commands.items() for action in sub._actions
              if action.help != argparse.SUPPRESS for option in action.option_strings
              if option.startswith("--") and option != "--help" and option not in cli]
    assert not absent, f"options missing from the generated CLI reference: {', '.join(absent)}"
    for flag in ("--target-accuracy", "--pilot-samples", "--bisect-steps", "--tolerance", "--baseline",
                 "--features", "--allow-reference-overlap"):  # the comparison protocol's flags
        assert flag in cli, f"guidekit compare {flag} is not in the CLI reference"


def test_the_committed_study_plots_in_the_docs_are_current():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import docs_images
    finally:
        sys.path.pop(0)
    stale = docs_images.check_study_plots()
    assert not stale, f"out of date in docs/images: {', '.join(stale)}; run python scripts/docs_images.py --copy-only"
    for name in ("demo_samples.png", "demo_traces.png", "demo_output.txt", "guided_grid.png", "guided_trace.png",
                 "save_grid.png"):
        assert (DOCS / "images" / name).is_file(), f"docs/images/{name} is missing: run python scripts/docs_images.py"

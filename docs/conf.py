"""Sphinx configuration for guidekit."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "guidekit"
author = "guidekit developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "guidekit_docs",  # docs/_ext: the CLI reference, committed Markdown results, the ADM release table
]
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_mock_imports = ["matplotlib", "safetensors"]
nitpicky = False
smartquotes = False  # keep "--flag" as typed (no en dashes) in generated option lists
html_theme = "alabaster"
html_theme_options = {"page_width": "1180px", "sidebar_width": "230px"}
exclude_patterns = ["_build", "_ext", "images/demo_output.txt"]
suppress_warnings = ["ref.python"]

from guidekit import __version__ as release  # noqa: E402  (one version: guidekit/__init__.py)

version = ".".join(release.split(".")[:2])

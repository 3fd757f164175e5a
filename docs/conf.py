"""Sphinx configuration for guidekit."""

project = "guidekit"
author = "guidekit developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_mock_imports = ["matplotlib", "safetensors"]
nitpicky = False
html_theme = "alabaster"
exclude_patterns = ["_build"]
suppress_warnings = ["ref.python"]

from guidekit import __version__ as release  # noqa: E402  (one version: guidekit/__init__.py)

version = ".".join(release.split(".")[:2])

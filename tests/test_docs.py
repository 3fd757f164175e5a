"""Every hook specification is documented in docs/plugins.rst with its exact signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from guidekit import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _hookspecs():
    return {name: fn for name, fn in vars(hookspecs).items()
            if callable(fn) and hasattr(fn, "guidekit_spec")}


def test_every_hookspec_is_documented_with_its_signature():
    text = (DOCS / "plugins.rst").read_text()
    documented = dict(re.findall(r"^\.\. function:: (\w+)(\(.*\).*)$", text, flags=re.M))
    specs = _hookspecs()
    assert set(specs) == set(hookspecs.KIND_HOOKS.values()) | {"guidekit_commands", "guidekit_resolve_network"}
    for name, fn in specs.items():
        assert name in documented, f"{name} is not documented in docs/plugins.rst"
        sig = str(inspect.signature(fn)).replace("'", "")
        assert documented[name] == sig, f"{name}: docs say {documented[name]}, code says {sig}"


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    root = DOCS.parent
    readme = (root / "README.md").read_text()
    assert readme.count("<!-- demo-command -->") == 1 and readme.count("<!-- test-command -->") == 1
    def command(marker: str) -> str:
        return readme.split(f"<!-- {marker} -->")[1].split("```bash\n")[1].split("\n")[0]

    assert "torch==2.13.0" in command("test-command") and "pytest" in command("test-command")
    assert "torch==2.13.0" in command("demo-command") and "guidekit demo" in command("demo-command")
    assert "test-command" in (root / ".ci" / "run").read_text()
    assert "torch==2.13.0" in (root / "tox.ini").read_text()

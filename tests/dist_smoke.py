"""Smoke test of installed guidekit distributions (wheels, not a checkout).

Run it with the interpreter of the environment under test, from outside the checkout::

    python tests/dist_smoke.py

It checks every installed ``guidekit*`` distribution: versions agree with the modules, requirements
are satisfied, modules come from the installed files, every entry-point plugin loads (strict mode) and
provides components, package data is readable through ``importlib.resources`` with the hashes the
wheel recorded, the ``guidekit`` console script runs, and one guided sample (tiny ADM UNet and
classifier, the ``entropy`` scaler) is finite and reproducible. The last line printed is a JSON summary.
Needs ``packaging`` besides the distributions' own requirements.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata as md
import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ["GUIDEKIT_STRICT_PLUGINS"] = "1"  # a plugin that fails to load is an error here, not a warning

from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import canonicalize_name  # noqa: E402


def check(cond: bool, message: str) -> None:
    if not cond:
        raise SystemExit(f"dist smoke test failed: {message}")


def guidekit_distributions() -> dict[str, md.Distribution]:
    dists = {}
    for d in md.distributions():
        name = canonicalize_name(d.metadata["Name"])
        if name == "guidekit" or name.startswith("guidekit-"):
            check(name not in dists, f"{name} is installed twice (from {dists.get(name) and dists[name].locate_file('')} and {d.locate_file('')})")
            dists[name] = d
    check("guidekit" in dists, "the guidekit distribution is not installed")
    return dists


def top_level_packages(dist: md.Distribution) -> list[str]:
    tops = {Path(str(f)).parts[0] for f in dist.files or () if len(Path(str(f)).parts) > 1}
    return sorted(t for t in tops if not t.endswith((".dist-info", ".data")) and t != "..")


def check_requirements(name: str, dist: md.Distribution) -> None:
    for line in dist.requires or ():
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra, or another platform
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            raise SystemExit(f"dist smoke test failed: {name} requires {req}, which is not installed") from None
        check(req.specifier.contains(have, prereleases=True), f"{name} requires {req}, installed {req.name} {have}")


def check_files(name: str, dist: md.Distribution) -> tuple[list[str], list[str]]:
    """Modules import from the installed files; data files read back with the recorded hashes."""
    site = Path(dist.locate_file("")).resolve()
    data = []
    packages = top_level_packages(dist)
    for pkg in packages:
        mod = importlib.import_module(pkg)
        where = Path(mod.__file__).resolve()
        check(where.is_relative_to(site), f"{pkg} imports from {where}, not from the installed {name} in {site}")
        version = getattr(mod, "__version__", None)
        if version is not None:
            check(version == dist.version, f"{pkg}.__version__ is {version}, {name}'s metadata says {dist.version}")
    for f in dist.files or ():
        parts = Path(str(f)).parts
        if parts[0] not in packages or f.suffix in (".py", ".pyc") or "__pycache__" in parts:
            continue
        check(f.hash is not None and f.hash.mode == "sha256", f"{name}: RECORD has no sha256 for {f}")
        blob = importlib.resources.files(parts[0]).joinpath(*parts[1:]).read_bytes()
        digest = base64.urlsafe_b64encode(hashlib.sha256(blob).digest()).rstrip(b"=").decode()
        check(digest == f.hash.value, f"{name}: package data {f} does not match the wheel's RECORD")
        data.append(str(f))
    return packages, data


def check_discovery(dists: dict[str, md.Distribution]) -> dict[str, dict[str, str]]:
    import guidekit as gk
    from guidekit.hookspecs import KIND_HOOKS
    from guidekit.registry import KNOWN_DISTRIBUTIONS

    provided = {kind: {c.name: c.provider for c in gk.describe(kind)} for kind in KIND_HOOKS}
    providers = {p for table in provided.values() for p in table.values()}
    for name, dist in dists.items():
        if any(ep.group == "guidekit" for ep in dist.entry_points):
            check(dist.metadata["Name"] in providers, f"{name} has a guidekit entry point but provides no component")
    for (kind, comp), dist_name in KNOWN_DISTRIBUTIONS.items():
        if dist_name in dists:
            check(provided[kind].get(comp) == dist_name, f"{kind} {comp!r} not provided by {dist_name}: {provided[kind]}")
    return provided


def guided_sample(seed: int):
    """A 4-step DDIM run of a tiny ADM UNet guided by a tiny ADM classifier through the entropy scaler."""
    import torch

    import guidekit as gk

    torch.manual_seed(0)
    tiny = dict(image_size=8, in_channels=3, model_channels=32, num_res_blocks=1, attention_resolutions=(2,),
                channel_mult=(1, 2), num_head_channels=16)
    unet = gk.create("network", "adm-unet", out_channels=6, **tiny).eval()
    clf = gk.create("network", "adm-classifier", out_channels=10, pool="attention", **tiny).eval()
    diffusion = gk.GaussianDiffusion.create(steps=1000, schedule="linear", learn_sigma=True, respacing="ddim4")
    guidance = gk.ClassifierGuidance(clf, "entropy", gamma=4.0)
    y = torch.arange(3) % 10
    return gk.sample(unet, diffusion, (3, 3, 8, 8), sampler="ddim", guidance=guidance, y=y, seed=seed, progress=False)


def main() -> None:
    check(not (Path.cwd() / "guidekit" / "__init__.py").exists(), "run this from outside the checkout")
    dists = guidekit_distributions()
    summary: dict = {"distributions": {}, "python": sys.version.split()[0]}
    for name, dist in sorted(dists.items()):
        check_requirements(name, dist)
        packages, data = check_files(name, dist)
        summary["distributions"][name] = {"version": dist.version, "packages": packages, "data": data}
    summary["components"] = check_discovery(dists)

    script = Path(sys.executable).parent / "guidekit"
    proc = subprocess.run([str(script), "list"], capture_output=True, text=True)
    check(proc.returncode == 0, f"`guidekit list` failed:\n{proc.stderr[-2000:]}")
    for dist in dists.values():
        check(dist.metadata["Name"] in proc.stdout or not dist.entry_points.select(group="guidekit"),
              f"`guidekit list` does not show {dist.metadata['Name']}:\n{proc.stdout}")

    import torch

    x0 = guided_sample(seed=1)
    check(x0.shape == (3, 3, 8, 8) and bool(torch.isfinite(x0).all()), f"guided sample: shape {tuple(x0.shape)}")
    check(torch.equal(x0, guided_sample(seed=1)), "guided sample is not reproducible from its seed")
    check(not torch.equal(x0, guided_sample(seed=2)), "guided sample ignores its seed")
    summary["sample"] = {"shape": list(x0.shape), "mean": float(x0.mean()), "std": float(x0.std())}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

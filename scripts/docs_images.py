"""Make the pictures the docs show, into docs/images/ (committed; the docs never hold a hand-made picture).

    python scripts/docs_images.py               # everything: runs `guidekit demo` (a few minutes on a CPU)
    python scripts/docs_images.py --skip-demo   # all but the demo
    python scripts/docs_images.py --copy-only   # only the study plots and the save_grid example (seconds)
    python scripts/docs_images.py --check       # exit 1 when a copied study plot differs from its source

What it writes:

* ``demo_samples.png``, ``demo_traces.png``, ``demo_output.txt``: ``guidekit demo --seed 0`` with the
  bundled mnist16 models (the sample grid, the Fig. 1/3-style traces, and the printed table with its
  explanation);
* ``guided_grid.png``, ``guided_trace.png``: what ``docs/examples/guided_grid.py`` (shown in Getting
  started) writes when it is run;
* ``save_grid.png``: ``guidekit.io.save_grid`` of 16 real mnist16 digits, classes 0-9 then 0-5 (default ``scale``);
* ``<study>_frontier.png`` / ``<study>_vanishing.png``: copies of the plots committed with each study
  under ``benchmarks/results/compare/*/``, ``benchmarks/results/study/*/*/`` and ``benchmarks/results/guidance_study/all/``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
RESULTS = ROOT / "benchmarks" / "results"


def study_plots() -> dict[Path, Path]:
    """docs/images target → committed source, for every frontier/vanishing plot of the studies."""
    pairs: dict[Path, Path] = {}
    for folder in sorted((RESULTS / "compare").iterdir()):
        for kind in ("frontier", "vanishing"):
            if (folder / f"{kind}.png").is_file():
                pairs[IMAGES / f"compare_{folder.name}_{kind}.png"] = folder / f"{kind}.png"
    study = RESULTS / "study"
    for folder in sorted(study.glob("*/*/")) if study.is_dir() else []:
        for kind in ("frontier", "vanishing"):
            if (folder / f"{kind}.png").is_file():
                pairs[IMAGES / f"study_{folder.parent.name}_{folder.name}_{kind}.png"] = folder / f"{kind}.png"
    together = RESULTS / "guidance_study" / "all" / "frontier.png"
    if together.is_file():
        pairs[IMAGES / "guidance_study_frontier.png"] = together
    return pairs


def copy_study_plots() -> None:
    for target, source in study_plots().items():
        shutil.copyfile(source, target)
        print(f"{target.relative_to(ROOT)} <- {source.relative_to(ROOT)}")


def check_study_plots() -> list[str]:
    """The copies that are missing or differ from their source (empty when the docs are up to date)."""
    return [str(t.relative_to(ROOT)) for t, s in study_plots().items()
            if not t.is_file() or t.read_bytes() != s.read_bytes()]


def save_grid_example() -> None:
    import numpy as np

    import guidekit as gk
    from guidekit.io import load_batch, save_grid

    batch = load_batch(gk.create("network", "mnist16-unet").card["reference_batch"])
    labels = batch.labels()
    first = [int(np.flatnonzero(labels == k)[i // 10]) for i, k in enumerate(list(range(10)) + list(range(6)))]
    path = save_grid(np.asarray(batch.images())[first], IMAGES / "save_grid.png")
    print(f"{path.relative_to(ROOT)} (16 real mnist16 digits of 16x16, classes 0-9 then 0-5, default scale)")


def run_example() -> None:
    import runpy

    example = ROOT / "docs" / "examples" / "guided_grid.py"
    with tempfile.TemporaryDirectory() as tmp:
        here = os.getcwd()
        os.chdir(tmp)  # the example writes grid.png and trace.png where it runs
        try:
            runpy.run_path(str(example), run_name="__main__")
        finally:
            os.chdir(here)
        shutil.copyfile(Path(tmp) / "grid.png", IMAGES / "guided_grid.png")
        shutil.copyfile(Path(tmp) / "trace.png", IMAGES / "guided_trace.png")
    print("docs/images/guided_grid.png, guided_trace.png (docs/examples/guided_grid.py)")


def run_demo() -> None:
    from guidekit.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(["demo", "--seed", "0", "--out", tmp])
        if code != 0:
            sys.exit(f"guidekit demo failed (exit {code}):\n{printed.getvalue()}")
        shutil.copyfile(Path(tmp) / "samples.png", IMAGES / "demo_samples.png")
        shutil.copyfile(Path(tmp) / "traces.png", IMAGES / "demo_traces.png")
        lines = [line.replace(tmp, "guidekit-demo") for line in printed.getvalue().splitlines()]
        (IMAGES / "demo_output.txt").write_text("$ guidekit demo --seed 0\n" + "\n".join(lines).strip() + "\n")
    print("docs/images/demo_samples.png, demo_traces.png, demo_output.txt (guidekit demo --seed 0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copy-only", action="store_true", help="skip the example and the demo")
    parser.add_argument("--skip-demo", action="store_true", help="skip the demo run")
    parser.add_argument("--check", action="store_true", help="only check that the copied plots are up to date")
    args = parser.parse_args()
    if args.check:
        stale = check_study_plots()
        if stale:
            print("out of date: " + ", ".join(stale) + "; run python scripts/docs_images.py --copy-only")
            return 1
        return 0
    IMAGES.mkdir(parents=True, exist_ok=True)
    copy_study_plots()
    save_grid_example()
    if not args.copy_only:
        run_example()
    if not args.copy_only and not args.skip_demo:
        run_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())

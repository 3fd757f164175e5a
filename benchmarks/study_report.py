"""Render the issue-15 study (``benchmarks/study.sh``) from its committed records.

    python benchmarks/study_report.py                 # benchmarks/results/study -> its README.md + README.md's claims

Reads every run folder under OUT/DATASET/ (``results.json``, ``paired.json``, ``manifest.json``, written by
``guidekit compare`` / ``compare-plot``) and writes OUT/README.md: the scale actually run, the γ each method
needed per target accuracy, FD in every feature space (mean ± std over seeds), the paired differences with
their bootstrap CIs, and one verdict per claim. The same verdicts replace the block between the
``study-claims`` markers of the repository's README.md. Nothing here computes a metric: it only reads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from guidekit.comparison.matched import method_name as method

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- study-claims:start -->", "<!-- study-claims:end -->"

#: (claim as the earlier README stated it, merged folder, method, baseline, what the claim expects of the
#: method's FD: "lower", "higher" or "not higher"): each is judged on the paired rows
CLAIMS = (
    ("EDS beats constant guidance (CE classifier, DDIM-25)", "table2-ddim25", "{D}-classifier-ce/entropy",
     "{D}-classifier-ce/constant", "lower"),
    ("ECT/constant beats CE/constant (DDIM-25)", "table2-ddim25", "{D}-classifier-ect/constant",
     "{D}-classifier-ce/constant", "lower"),
    ("ECT + EDS beats CE + EDS (DDIM-25)", "vs-eds-ddim25", "{D}-classifier-ect/entropy", "{D}-classifier-ce/entropy",
     "lower"),
    ("timestep-aware scaling γ(T−t)/T is at least as good as EDS (DDIM-25)", "vs-eds-ddim25",
     "{D}-classifier-ce/timestep", "{D}-classifier-ce/entropy", "not higher"),
    ("interval guidance (t ≤ 700) beats constant guidance (DDIM-25)", "ce-ddim25", "{D}-classifier-ce/interval",
     "{D}-classifier-ce/constant", "lower"),
    ("gradient-norm scaling is worse than constant guidance (DDIM-25)", "ce-ddim25", "{D}-classifier-ce/gradnorm",
     "{D}-classifier-ce/constant", "higher"),
    ("EDS beats constant guidance (CE classifier, DDPM-100)", "ce-ddpm100", "{D}-classifier-ce/entropy",
     "{D}-classifier-ce/constant", "lower"),
    ("classifier-free guidance beats classifier guidance at high accuracy (DDIM-25)", "all-ddim25",
     "classifier-free/constant", "{D}-classifier-ce/constant", "lower"),
)


def overall(words: set[str], expect: str) -> str:
    """The claim's verdict from the levels' readings ("better": resolved lower FD, "worse": resolved higher)."""
    good, bad = ("worse", "better") if expect == "higher" else ("better", "worse")
    has_good, has_bad = good in words, bad in words
    if has_good and has_bad:
        return "mixed"
    if has_bad:
        return "contradicted wherever resolved"
    if has_good:
        return "holds wherever resolved"
    return "holds (never resolved worse)" if expect == "not higher" else "not resolved at any level"


def load(folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any]]:
    results = json.loads((folder / "results.json").read_text())
    paired_file = folder / "paired.json"
    paired = json.loads(paired_file.read_text()) if paired_file.is_file() else None
    manifest_file = folder / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    return results["records"], paired, manifest


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3g} ± {sd:.2g}"


def verdict(row: dict[str, Any]) -> str:
    """"resolved" as paired.json defines it (the CI over samples excludes 0), flagged when the seeds split."""
    lo, hi = row["ci95"]
    split = "" if row["wins"] in (0, row["seeds"]) else f", but seeds split {row['wins']}/{row['seeds']}"
    if hi < 0:
        return f"resolved: method lower (better){split}"
    if lo > 0:
        return f"resolved: method higher (worse){split}"
    return "not resolved"


def word(row: dict[str, Any]) -> str:
    """The claim-level reading: better/worse only when the CI excludes 0 and every seed agrees."""
    lo, hi = row["ci95"]
    if hi < 0 and row["wins"] == row["seeds"]:
        return "better"
    if lo > 0 and row["wins"] == 0:
        return "worse"
    return "unresolved" if lo <= 0 <= hi else "seeds split"


def scale_of(records: list[dict[str, Any]], manifest: dict[str, Any]) -> str:
    seeds = sorted({r["seed"] for r in records})
    pilot = next((r["search"]["pilot_samples"] for r in records if r.get("search")), None)
    diffusion = manifest.get("diffusion") or {}
    sampler = (manifest.get("sampler") or {}).get("name", "?")
    return (f"{manifest.get('num_samples', '?')} samples per cell, seeds {seeds}, pilot {pilot}, "
            f"{sampler} respacing {diffusion.get('respacing', '?')}")


def run_tables(name: str, records: list[dict[str, Any]], paired: dict[str, Any] | None) -> list[str]:
    lines = [f"### {name}", ""]
    targets = sorted({r["target_accuracy"] for r in records if r.get("target_accuracy") is not None})
    methods = list(dict.fromkeys(method(r) for r in records))
    features = list(dict.fromkeys(f for r in records for f in (r.get("fd") or {})))
    head = "| method | " + " | ".join(f"@ {t:g}" for t in targets) + " |"
    rule = "|---|" + "---|" * len(targets)

    def cell(m: str, t: float, get: Any) -> str:
        vals = [get(r) for r in records if method(r) == m and r.get("target_accuracy") == t]
        vals = [v for v in vals if v is not None]
        n = len([r for r in records if method(r) == m and r.get("target_accuracy") == t])
        return mean_std(vals) + (f" ({len(vals)}/{n})" if len(vals) < n else "")

    def gamma(r: dict[str, Any]) -> float | None:
        return (r.get("params") or {}).get("gamma")

    blocks = [("γ found by bisection (mean ± std over seeds; (k/n): seeds that reached the target)", gamma),
              ("judge accuracy on all samples at that γ", lambda r: r.get("accuracy") if gamma(r) is not None else None),
              ("fraction of samples whose guidance vanishes (‖s·∇‖ < 10% of its peak)",
               lambda r: (r.get("vanishing") or {}).get("fraction") if gamma(r) is not None else None)]
    blocks += [(f"FD, {f} features", lambda r, f=f: (r.get("fd") or {}).get(f)) for f in features]
    blocks += [(f"KID, {f} features", lambda r, f=f: (r.get("kid") or {}).get(f)) for f in features]
    for title, get in blocks:
        lines += [f"{title}:", "", head, rule]
        lines += [f"| {m} | " + " | ".join(cell(m, t, get) for t in targets) + " |" for m in methods]
        lines.append("")
    if paired and paired.get("rows"):
        lines += [f"Paired FD differences against **{paired['baseline']}** (method − baseline; mean ± std over seeds; "
                  "95% CI: paired bootstrap over samples; wins: seeds where the method is lower):", "",
                  "| method | target | features | difference | 95% CI | wins | verdict |", "|---|---|---|---|---|---|---|"]
        for row in paired["rows"]:
            lo, hi = row["ci95"]
            lines.append(f"| {row['method']} | {row['target_accuracy']:g} | {row['feature']} | "
                         f"{row['diff_mean']:+.3g} ± {row['diff_std']:.2g} | [{lo:+.3g}, {hi:+.3g}] | "
                         f"{row['wins']}/{row['seeds']} | {verdict(row)} |")
        lines.append("")
    return lines


def judge_claims(dataset: str, folder: Path) -> list[str]:
    out = []
    for text, run, m, base, expect in CLAIMS:
        m, base = m.format(D=dataset), base.format(D=dataset)
        paired_file = folder / run / "paired.json"
        if not paired_file.is_file():
            out.append(f"* {dataset}: {text}: **not measured** (no {run} run in this study).")
            continue
        paired = json.loads(paired_file.read_text())
        rows = [r for r in paired["rows"] if r["method"].endswith(m) and paired["baseline"].endswith(base)]
        if not rows:
            out.append(f"* {dataset}: {text}: **not measured** ({run} has no pairs of {m} against {base}).")
            continue
        parts = []
        for row in rows:
            lo, hi = row["ci95"]
            parts.append(f"{row['feature']} @ {row['target_accuracy']:g}: {row['diff_mean']:+.3g} "
                         f"[{lo:+.3g}, {hi:+.3g}] {word(row)} ({row['wins']}/{row['seeds']} seeds lower)")
        words = {word(row) for row in rows}
        out.append(f"* {dataset}: {text}: **{overall(words, expect)}**. FD difference {m} − {base}, 95% CI: " + "; ".join(parts) + ".")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", default=str(ROOT / "benchmarks" / "results" / "study"))
    p.add_argument("--readme", default=str(ROOT / "README.md"), help="README whose study-claims block is replaced")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when OUT/README.md or the README's claims differ from the records")
    args = p.parse_args(argv)
    out = Path(args.out)
    datasets = sorted(d for d in out.iterdir() if d.is_dir()) if out.is_dir() else []
    if not datasets:
        print(f"study_report: no study under {out}; run benchmarks/study.sh {out} first", file=sys.stderr)
        return 1
    body, claims = [], []
    for d in datasets:
        body += [f"## {d.name}", ""]
        for run in sorted(r for r in d.iterdir() if (r / "results.json").is_file()):
            records, paired, manifest = load(run)
            if manifest:
                body += [f"`{run.name}`: {scale_of(records, manifest)}.", ""]
            body += run_tables(run.name, records, paired)
        claims += judge_claims(d.name, d)
    text = "\n".join([
        "# The issue-15 study: ED-DPM's claims under the comparison protocol",
        "",
        "Written by `python benchmarks/study_report.py` from the records in this folder (made by",
        "`benchmarks/study.sh`; see `commands.md` for the exact commands, scale and machine). Per method and",
        "seed the guidance strength γ reaching each target judge accuracy was found by bisection on the first",
        "pilot samples, and FD/KID were measured there on all samples, against held-out images, in the oracle's",
        "features and in a pixel PCA that learnt no classes. paired.json calls a difference resolved where its",
        "95% bootstrap CI over samples excludes 0; that CI does not cover the variation between seeds, so a",
        "claim below reads \"better\"/\"worse\" only where the CI excludes 0 *and* every seed agrees",
        "(\"seeds split\" otherwise).",
        "",
        "## Claims",
        "",
        *claims,
        "",
        *body,
    ])
    where = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    block = "\n".join([START, *claims, "", f"Tables, CIs and commands: `{where}/README.md`.", END])
    wanted = {out / "README.md": text.rstrip() + "\n"}
    readme = Path(args.readme)
    if readme.is_file() and START in readme.read_text() and END in readme.read_text():
        head, rest = readme.read_text().split(START, 1)
        wanted[readme] = head + block + rest.split(END, 1)[1]
    if args.check:
        stale = [str(f) for f, content in wanted.items() if not f.is_file() or f.read_text() != content]
        if stale:
            print(f"study_report: out of date with the records: {', '.join(stale)}; run python "
                  "benchmarks/study_report.py", file=sys.stderr)
            return 1
        print("study_report: README.md and the study's README match the records")
        return 0
    for f, content in wanted.items():
        f.write_text(content)
    print(f"wrote {out / 'README.md'} ({len(claims)} claims)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``guidekit`` command: ``list``, ``merge-batches``, ``demo``, ``evaluate`` and plugin-provided sub-commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import GuidekitError
from .hookspecs import KIND_HOOKS


def _cmd_list(args: argparse.Namespace) -> int:
    from .registry import default_registry, describe

    kinds = [args.kind] if args.kind else list(KIND_HOOKS)
    for kind in kinds:
        print(f"{'losses' if kind == 'loss' else kind + 's'}:")
        for comp in describe(kind):
            print(f"  {comp.name:<28} {comp.summary}  [{comp.provider}]")
    for failure in default_registry().manager.failures:
        print(f"failed plugin: {failure.describe()}", file=sys.stderr)
    return 0


def _cmd_merge_batches(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .io import BatchFileError, load_batch, merge_sample_batches

    target = Path(args.out)
    if any(target.resolve() == Path(p).resolve() for p in args.inputs):
        raise BatchFileError(f"OUT {args.out!r} is also an input; write the merged batch to another file")
    if target.exists() and not args.overwrite:
        raise BatchFileError(f"{args.out!r} already exists; pass --overwrite to replace it, or choose another OUT")
    out = merge_sample_batches(args.out, args.inputs)
    print(f"wrote {out} ({load_batch(out).num_images} images)", file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    from .registry import default_registry

    parser = argparse.ArgumentParser(prog="guidekit", description="Guidance strategies for diffusion models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("list", help="list available components and where they come from")
    p.add_argument("kind", nargs="?", choices=list(KIND_HOOKS))
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("merge-batches", help="concatenate sample batches (e.g. the shards of `guidekit sample`)",
                       description="Concatenate sample .npz batches into OUT, streaming; shard files go in shard order.")
    p.add_argument("out", metavar="OUT.npz")
    p.add_argument("inputs", nargs="+", metavar="SHARD.npz")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_cmd_merge_batches)

    from .demo import add_arguments as add_demo

    p = sub.add_parser("demo", help="EDS against plain classifier guidance on a small bundled model")
    add_demo(p)
    p.set_defaults(func=_cmd_demo)

    from .metrics import cli as metrics_cli

    metrics_cli.add_parser(sub)
    if "evaluate" in sub.choices and not sub.choices["evaluate"].get_default("func"):
        sub.choices["evaluate"].set_defaults(func=metrics_cli.run)

    from .comparison import cli as compare_cli
    from .comparison import merge as merge_cli

    compare_cli.add_parser(sub)
    merge_cli.add_parser(sub)

    manager = default_registry().manager
    manager.load()
    manager.pm.hook.guidekit_commands(subparsers=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except GuidekitError as exc:
        print(f"guidekit: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The ``guidekit`` command: ``list``, ``sample``, ``train-*``, ``compare``, ``evaluate``, ``demo``, ``merge-batches``
and plugin-provided sub-commands.

``guidekit --plugin MODULE ...`` (repeatable, anywhere on the line; or ``GUIDEKIT_PLUGINS=mod1,mod2``)
imports local modules first, so components registered there with ``@guidekit.register_scaler`` (or
``@hookimpl`` functions) can be named on the command line, as pytest's ``-p`` does. A plugin whose
``guidekit_commands`` hook raises is reported and skipped; one that adds a sub-command that exists
already keeps the first one and gets its own as ``DIST:NAME`` (see :func:`guidekit.plugins.add_plugin_commands`);
the other sub-commands work. Errors print one line and exit 1 (2 for usage errors); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .errors import GuidekitError, InvalidParameterError
from .hookspecs import KIND_HOOKS
from .options import refuse_existing

#: exit status after Ctrl-C (128 + SIGINT), as shells report it
INTERRUPTED = 130


def _cmd_list(args: argparse.Namespace) -> int:
    from .registry import default_registry, plural

    registry = default_registry()
    clashes = []
    kinds = [args.kind] if args.kind else list(KIND_HOOKS)
    for kind in kinds:
        print(f"{plural(kind)}:")
        table = registry.table(kind)
        for name in sorted(table):
            providers = table[name]
            mark = "  CLASH" if len(providers) > 1 else ""
            for comp in providers:
                print(f"  {comp.name:<28} {comp.summary}  [{comp.provider}]{mark}")
            if mark:
                clashes.append(f"{kind} {name!r} ({' and '.join(c.provider for c in providers)})")
    if clashes:
        print("CLASH: more than one plugin provides " + "; ".join(clashes) + ". Creating such a component fails "
              "until one provider is uninstalled (a --plugin module or research code may shadow the other with "
              "@guidekit.register_<kind>(name, replace=True); an installed plugin cannot).")
    for failure in registry.manager.failures:
        print(f"failed plugin: {failure.describe()}")
    return 0


def _cmd_merge_batches(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .identity import manifest_path
    from .io import load_batch, merge_sample_batches, output_lock, remove_stale_temporaries

    out = Path(args.out)
    seen: set[Path] = set()
    for path in map(Path, args.inputs):
        if path.is_dir():
            raise InvalidParameterError(f"SHARD {path} is a folder; give the .npz files inside it, e.g. "
                                        f"{path}/samples_*_shard*.npz")
        if path.resolve() in seen:
            raise InvalidParameterError(f"{path} is given twice; its samples would be merged twice. Give each batch once")
        seen.add(path.resolve())
    if any(out.resolve() == Path(p).resolve() for p in args.inputs):
        raise InvalidParameterError(f"OUT {args.out} is also an input; write the merged batch to another file")
    refuse_existing(out, args.overwrite, "OUT")
    with output_lock(out, "guidekit merge-batches"):  # one writer per OUT (and its manifest)
        refuse_existing(out, args.overwrite, "OUT")  # again, held: a merge that finished while we looked
        remove_stale_temporaries(out, manifest_path(out))
        out = merge_sample_batches(out, args.inputs)
    print(f"wrote {out} ({load_batch(out).num_images} images)", file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def _versions() -> str:
    """``guidekit X.Y.Z`` plus every distribution in the ``guidekit`` entry-point group (nothing is imported)."""
    from . import __version__
    from .plugins import _entry_points

    dists = sorted({dist for dist, _ in _entry_points()})
    lines = [f"guidekit {__version__}"]
    for dist in dists:
        try:
            lines.append(f"  {dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            lines.append(f"  {dist} (version unknown)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from .registry import default_registry

    parser = argparse.ArgumentParser(prog="guidekit", description="Guidance strategies for diffusion models.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # --version: one line each
    parser.add_argument("--version", action="version", version=_versions())
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import a local module with guidekit components first (repeatable; also "
                        "GUIDEKIT_PLUGINS=mod1,mod2)")
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

    from .sample_cli import add_sample_parser
    from .training.cli import add_train_parsers

    add_sample_parser(sub)
    add_train_parsers(sub)

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

    from .plugins import add_plugin_commands

    add_plugin_commands(sub, default_registry().manager)
    return parser


def _split_plugins(argv: list[str]) -> tuple[list[str], list[str]]:
    """Take ``--plugin MODULE`` / ``--plugin=MODULE`` out of argv wherever they are (they act before parsing)."""
    modules, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg == "--plugin":
            if i + 1 >= len(argv):
                raise InvalidParameterError("--plugin needs a MODULE name, e.g. --plugin my_scalers")
            modules.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--plugin="):
            modules.append(arg.partition("=")[2])
        else:
            rest.append(arg)
        i += 1
    if any(not m.strip() for m in modules):
        raise InvalidParameterError("--plugin got an empty MODULE name; give e.g. --plugin my_scalers")
    return modules, rest


def _import_plugins(modules: list[str]) -> None:
    """Import ``--plugin`` modules; warn about one that registers no component and no hook (a wrong module?)."""
    from .registry import default_registry

    registry = default_registry()

    def components() -> set[tuple[str, str, str]]:
        registry.invalidate()
        return {(kind, name, c.provider) for kind in KIND_HOOKS for name, comps in registry.table(kind).items()
                for c in comps}

    for module in dict.fromkeys(m.strip() for m in modules):
        before = components()
        registry.manager.import_modules([module], "--plugin")
        plugin = registry.manager.pm.get_plugin(f"{module} (--plugin)")
        hooks = plugin is not None and registry.manager.pm.get_hookcallers(plugin)
        if components() == before and not hooks:
            warnings.warn(f"--plugin {module} registered no component and no hook; is it the module that "
                          "calls @guidekit.register_...?", stacklevel=1)


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    print(f"guidekit: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``guidekit`` command; returns the exit status."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            modules, rest = _split_plugins(list(sys.argv[1:] if argv is None else argv))
            if modules:
                _import_plugins(modules)
            parser = build_parser()
            args = parser.parse_args(rest)
            if not getattr(args, "func", None):
                parser.print_help()
                return 2
            return int(args.func(args) or 0)
        except GuidekitError as exc:
            print(f"guidekit: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("guidekit: interrupted (Ctrl-C); unfinished files were discarded, finished ones are kept",
                  file=sys.stderr)
            return INTERRUPTED
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            print(f"guidekit: error: cannot access{where}: {exc.strerror or exc}; check the path and its permissions",
                  file=sys.stderr)
            return 1
        except Exception as exc:  # noqa: BLE001 - one line, not a traceback; GUIDEKIT_TRACEBACK=1 shows it
            if os.environ.get("GUIDEKIT_TRACEBACK", "").lower() in {"1", "true", "yes", "on"}:
                raise
            print(f"guidekit: error: unexpected {type(exc).__name__}: {exc}. This is a bug in guidekit or a plugin; "
                  "rerun with GUIDEKIT_TRACEBACK=1 for the traceback and report it", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())

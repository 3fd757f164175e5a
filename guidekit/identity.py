"""Content identity: the sha256 of files, arrays, tensors and state dicts, and where a component's code comes from.

Whatever guidekit reads back (a sample batch, a resume chunk, a shard, a training checkpoint) is identified
by the sha256 of its content and of every input that determined it, never by its name or options alone:

* :func:`file_sha256`, :func:`array_sha256`, :func:`tensor_sha256` and :func:`state_sha256` (nested dicts
  and lists of tensors and plain values, as a checkpoint holds them) give the digests;
* :func:`component_provenance` records where a registered component's code comes from: its provider, the
  sha256 of its factory's source file and the distribution (name and version) that ships it, plugins
  included, so that a plugin shadowing a built-in name, or an edited plugin, is seen;
* :func:`content_record` / :func:`verify_content` write and check ``{"sha256", "bytes"}`` of a file, and
  :func:`write_manifest` / :func:`verify_manifest` keep them in a ``NAME.manifest.json`` beside outputs
  that have no run record of their own (a merged batch);
* :func:`changed_inputs` names the inputs whose identity differs between a manifest and now.

A mismatch is an :class:`~guidekit.errors.IdentityError` saying which input changed and what to do.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import IdentityError

MANIFEST_FORMAT = "guidekit-manifest/1"
MANIFEST_SUFFIX = ".manifest.json"

__all__ = [
    "IdentityError", "array_sha256", "changed_inputs", "component_provenance", "components_identity", "content_record", "file_sha256",
    "find_record", "manifest_path", "module_provenance", "object_provenance", "read_manifest", "state_sha256",
    "tensor_sha256", "verify_content", "verify_manifest", "verify_recorded", "write_manifest",
]


# -- digests ---------------------------------------------------------------------------------------
def file_sha256(path: str | os.PathLike[str], block: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in blocks of ``block`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _update_array(digest: Any, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr)
    digest.update(f"{arr.dtype.str}{arr.shape}".encode())
    digest.update(arr.reshape(-1).view(np.uint8).data if arr.size else b"")


def array_sha256(arr: Any) -> str:
    """Hex sha256 of an array's dtype, shape and bytes (C order), so equal arrays of another dtype differ."""
    digest = hashlib.sha256()
    _update_array(digest, np.asarray(arr))
    return digest.hexdigest()


def _update_tensor(digest: Any, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)


def tensor_sha256(t: torch.Tensor) -> str:
    """Hex sha256 of a tensor's dtype, shape and bytes (on the CPU; bfloat16 included)."""
    digest = hashlib.sha256()
    _update_tensor(digest, t)
    return digest.hexdigest()


def _update_state(digest: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        _update_tensor(digest, obj)
    elif isinstance(obj, np.ndarray):
        _update_array(digest, obj)
    elif isinstance(obj, Mapping):
        digest.update(b"{")
        for key in sorted(obj, key=repr):
            digest.update(repr(key).encode() + b":")
            _update_state(digest, obj[key])
        digest.update(b"}")
    elif isinstance(obj, (list, tuple)):
        digest.update(b"[")
        for item in obj:
            _update_state(digest, item)
            digest.update(b",")
        digest.update(b"]")
    else:
        digest.update(repr(obj).encode())


def state_sha256(obj: Any) -> str:
    """Hex sha256 of nested dicts, lists and tuples of tensors, arrays and plain values (a state dict, a checkpoint).

    Dict keys are taken in sorted order, so the digest does not depend on insertion order; tensors count
    with their dtype and shape.
    """
    digest = hashlib.sha256()
    _update_state(digest, obj)
    return digest.hexdigest()


# -- provenance of code ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _distributions_of_packages() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _distribution(module_name: str) -> tuple[str | None, str | None]:
    """(distribution name, version) that ships the top-level package of ``module_name``; (None, None) if none."""
    top = module_name.partition(".")[0]
    names = _distributions_of_packages().get(top) or []
    if not names:
        return None, None
    try:
        return names[0], importlib.metadata.version(names[0])
    except importlib.metadata.PackageNotFoundError:
        return names[0], None


def module_provenance(module_name: str) -> dict[str, Any]:
    """``{"module", "source_sha256", "distribution", "version"}`` of an imported module (None where unknown)."""
    module = sys.modules.get(module_name)
    source = getattr(module, "__file__", None)
    try:
        digest = file_sha256(source) if source else None
    except OSError:
        digest = None
    dist, version = _distribution(module_name)
    return {"module": module_name, "source_sha256": digest, "distribution": dist, "version": version}


def object_provenance(obj: Any) -> dict[str, Any]:
    """The provenance of an object's class (for networks, guidances and scalers handed over as objects)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return {"class": cls.__qualname__, **module_provenance(cls.__module__)}


def component_provenance(kind: str, name: str) -> dict[str, Any]:
    """Where the registered ``kind`` ``name`` comes from now: provider, factory, source sha256, distribution.

    Two runs that resolve a name to different code (a plugin that shadows a built-in, an upgraded or
    edited plugin) get different records, so a resume or a merge can refuse to mix them.
    """
    from .registry import default_registry

    comp = default_registry().get(kind, name)
    factory = comp.factory
    module = getattr(factory, "__module__", None) or "?"
    return {"kind": kind, "name": name, "provider": comp.provider,
            "factory": getattr(factory, "__qualname__", repr(factory)), **module_provenance(module)}


def components_identity(components: Iterable[tuple[str, str | None]] = (),
                        objects: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Provenance of the components a run uses, keyed ``"component KIND 'NAME'"`` (registered ones) and
    ``"component LABEL"`` (objects such as a loaded network), to merge into a run's options: a resume
    or merge then refuses, naming the component, when its code differs. ``None`` names are skipped. For an
    object only its module's source and distribution count (its class is identified by its weights)."""
    record = {f"component {kind} {name!r}": component_provenance(kind, name) for kind, name in components if name}
    for label, obj in (objects or {}).items():
        if obj is not None:
            record[f"component {label}"] = module_provenance(type(obj).__module__)
    return record


# -- content records and manifests ---------------------------------------------------------------------
def content_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"sha256": ..., "bytes": ...}`` of a file, as manifests and run records store it."""
    return {"sha256": file_sha256(path), "bytes": os.path.getsize(path)}


def verify_content(path: str | os.PathLike[str], expected: Mapping[str, Any] | str, fix: str) -> None:
    """Raise :class:`IdentityError` when the file's sha256 (and size) differ from ``expected``.

    ``fix`` says what to do (e.g. "pass --overwrite to sample it again"); the message names the file and
    both digests. The size is compared first, so a truncated file is reported without reading it.
    """
    want = expected if isinstance(expected, Mapping) else {"sha256": expected}
    size = os.path.getsize(path)
    if want.get("bytes") is not None and int(want["bytes"]) != size:
        raise IdentityError(f"{str(path)!r} holds {size} bytes but its manifest records {want['bytes']}: the file was "
                            f"truncated, damaged or replaced after it was written; {fix}")
    actual = file_sha256(path)
    if actual != want.get("sha256"):
        raise IdentityError(f"{str(path)!r} has sha256 {actual[:16]}… but its manifest records {str(want.get('sha256'))[:16]}…: "
                            f"the file was damaged or replaced after it was written; {fix}")


def manifest_path(path: str | os.PathLike[str]) -> Path:
    """``NAME.manifest.json`` beside ``NAME``."""
    path = Path(path)
    return path.with_name(path.name + MANIFEST_SUFFIX)


def write_manifest(path: str | os.PathLike[str], inputs: Mapping[str, Any], *, kind: str) -> Path:
    """Write ``NAME.manifest.json`` (atomically) with the content record of ``path`` and its ``inputs``."""
    from .io.atomic import atomic_write

    manifest = {"format": MANIFEST_FORMAT, "kind": kind, "file": Path(path).name, "content": content_record(path),
                "inputs": dict(inputs)}
    target = manifest_path(path)
    with atomic_write(target, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True, default=str)
    return target


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest beside ``path`` (None when there is none); an unreadable one is an :class:`IdentityError`."""
    target = manifest_path(path)
    if not target.is_file():
        return None
    try:
        manifest = json.loads(target.read_text())
    except (OSError, ValueError) as exc:
        raise IdentityError(f"{str(target)!r} is unreadable ({exc}); delete it (the file it describes is then "
                            "used unchecked) or regenerate both") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise IdentityError(f"{str(target)!r} is not a {MANIFEST_FORMAT} manifest; delete it or regenerate both")
    return manifest


def find_record(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]] | None:
    """The record that describes ``path``: its ``NAME.manifest.json``, else a run record in its folder whose
    ``"content"`` lists the file's name or whose ``"npz"`` is that name (``run.json`` of ``guidekit sample``);
    None when there is none."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is not None:
        return manifest_path(path), manifest
    for candidate in sorted(path.parent.glob("*.json")):
        try:
            record = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        content = record.get("content")
        if (isinstance(content, dict) and isinstance(content.get(path.name), Mapping)) or record.get("npz") == path.name:
            return candidate, record
    return None


def recorded_content(record: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The ``{"sha256", "bytes"}`` a manifest or run record holds for the file ``name``."""
    content = record.get("content")
    if not isinstance(content, Mapping):
        return None
    if record.get("file") == name and "sha256" in content:
        return content
    entry = content.get(name)
    return entry if isinstance(entry, Mapping) else None


def verify_manifest(path: str | os.PathLike[str], fix: str) -> dict[str, Any] | None:
    """Check ``path`` against the manifest beside it (if any); return the manifest."""
    manifest = read_manifest(path)
    if manifest is not None:
        verify_content(path, manifest["content"], fix)
    return manifest


def verify_recorded(path: str | os.PathLike[str], fix: str) -> dict[str, Any] | None:
    """Check ``path`` against whatever record describes it (:func:`find_record`); return that record."""
    found = find_record(path)
    if found is None:
        return None
    entry = recorded_content(found[1], Path(path).name)
    if entry is not None:
        verify_content(path, entry, fix + f" (the record is {str(found[0])!r})")
    return found[1]


def changed_inputs(saved: Mapping[str, Any], now: Mapping[str, Any], names: Mapping[str, str] | None = None,
                   ignore: tuple[str, ...] = ()) -> list[str]:
    """``"NAME: was A, now B"`` for every input whose recorded identity differs (JSON-normalised); ``names``
    maps keys to what an error calls them (a flag, "the checkpoint's contents")."""
    names = names or {}
    a, b = (json.loads(json.dumps(dict(x), sort_keys=True, default=str)) for x in (saved, now))
    out = []
    for key in sorted(a.keys() | b.keys()):
        if key in ignore or a.get(key) == b.get(key):
            continue
        out.append(f"{names.get(key, key)}: was {_short(a.get(key))}, now {_short(b.get(key))}")
    return out


def _short(value: Any) -> str:
    """A value for an error message: sha256 digests cut to 12 characters, long values cut."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"
    if isinstance(value, dict) and "source_sha256" in value:
        sha = value.get("source_sha256") or "?"
        dist = " ".join(str(v) for v in (value.get("distribution"), value.get("version")) if v) or "no distribution"
        who = f"{value['provider']} " if value.get("provider") else ""
        return f"{who}({value.get('module')}, {dist}, source {sha[:12]}…)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

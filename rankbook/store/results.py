"""Run results on disk: arrays (``arrays.npz``) and a manifest (``manifest.json``) of how they were made.

A run folder is named ``<name>-<key>`` where ``key`` hashes the run's full
config, so a notebook that asks for a config finds the matching result and
reuses it instead of training again. The manifest is written last: a folder
without one is an unfinished run. A folder whose manifest holds a different
config is never reused: :func:`find` skips it with a warning and :func:`save`
refuses to overwrite it.

Search order: ``<repo>/results`` (paper-scale runs made on a GPU and
committed), then ``<build>/results`` (where training writes by default).
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import platform
import subprocess
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rankbook.store import atomic
from rankbook.store import paths

MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


class ResultMismatchError(RuntimeError):
    """A results folder that belongs to a different config than the one asked for."""


@dataclasses.dataclass
class Result:
    """A finished run: its arrays, its manifest, and where it lives."""

    path: Path
    arrays: dict[str, np.ndarray]
    manifest: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]


def canonical(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as JSON would read it back (tuples become lists), for hashing and comparing."""
    return json.loads(json.dumps(dict(config), sort_keys=True, default=atomic._jsonable))


def config_key(config: Mapping[str, Any]) -> str:
    """Short hash of a config: equal configs, equal keys."""
    text = json.dumps(canonical(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def search_roots() -> list[Path]:
    """Where finished results are looked for, in order."""
    return [paths.REPO_ROOT / "results", paths.build_root() / "results"]


def default_root() -> Path:
    """Where new results are written unless told otherwise."""
    return paths.build_root() / "results"


def run_dir(name: str, config: Mapping[str, Any], root: Path | None = None) -> Path:
    return Path(root or default_root()) / f"{name}-{config_key(config)}"


def find(name: str, config: Mapping[str, Any], roots: list[Path] | None = None) -> Result | None:
    """The finished result of exactly ``config``, searching ``roots`` (default :func:`search_roots`)."""
    want = canonical(config)
    for root in roots or search_roots():
        folder = run_dir(name, config, root)
        manifest_path = folder / MANIFEST
        if not manifest_path.exists():
            continue
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("config") != want:
            warnings.warn(f"{folder} holds a result of a different config; not reused", stacklevel=2)
            continue
        return load(folder)
    return None


def load(folder: Path) -> Result:
    """Read a finished run folder."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    with np.load(folder / ARRAYS) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return Result(folder, arrays, manifest)


def check_folder(folder: Path, config: Mapping[str, Any]) -> None:
    """Raise if ``folder`` already holds a finished result of another config."""
    manifest_path = Path(folder) / MANIFEST
    if manifest_path.exists():
        found = json.loads(manifest_path.read_text()).get("config")
        if found != canonical(config):
            raise ResultMismatchError(
                f"{folder} already holds a result of a different config; refusing to overwrite it. "
                f"Remove the folder or write elsewhere.")


def save(folder: Path, config: Mapping[str, Any], arrays: Mapping[str, Any], *, wall_s: float,
         device: str, extra: Mapping[str, Any] | None = None) -> Result:
    """Write ``arrays`` then the manifest (both atomically) into ``folder``."""
    folder = Path(folder)
    check_folder(folder, config)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    atomic.write_with(folder / ARRAYS, lambda tmp: _savez(tmp, arrays))
    manifest = {"config": canonical(config), "key": config_key(config), "code_version": code_version(),
                "device": device, "libraries": library_versions(), "python": platform.python_version(),
                "platform": platform.platform(), "wall_s": round(float(wall_s), 3),
                "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "arrays": {k: list(v.shape) for k, v in arrays.items()}, **(extra or {})}
    atomic.write_json(folder / MANIFEST, manifest)
    return Result(folder, arrays, canonical(manifest))


def _savez(tmp: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a bare path
        np.savez(fh, **arrays)


def code_version() -> str:
    """The git commit of the repository (``+dirty`` with uncommitted changes), or ``unknown``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "rankbook"], cwd=paths.REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    found = {}
    for name in ("torch", "torchvision", "numpy", "rankbook"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found

"""Run results on disk: arrays (``arrays.npz``) and a manifest (``manifest.json``) of how they were made.

A run folder is named ``<name>-<key>`` where ``key`` hashes the run's full
config, so a notebook that asks for a config finds the matching result and
reuses it instead of training again. The manifest is written last: a folder
without one is an unfinished run. A folder whose manifest holds a different
config is never reused: :func:`find` skips it with a warning and :func:`save`
refuses to overwrite it.

Search order: ``<repo>/results`` (paper-scale runs made on a GPU and
committed), then ``<build>/results`` (where training writes by default).

Damaged folders never block a configuration: :func:`find` skips a folder
whose manifest or arrays cannot be read (truncated, empty, an array the
manifest lists but the file lacks) with a warning, as an unfinished run, and
:func:`save` overwrites it. :func:`load` of such a folder is a
:class:`DamagedResultError` naming the file and the fix. Asking a loaded
result for an array it does not hold is a :class:`MissingArrayError` naming
the array, the folder and the arrays it does hold.

Data identity: the training code puts the data's fingerprints
(:func:`rankbook.data.images.fingerprint`) into the config, so a run on
other data has another key, and passes ``extra={"data": {...}}`` so the
manifest says which data it was (:attr:`Result.data`).
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

from rankbook.store import atomic, errors, paths

MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


class ResultMismatchError(RuntimeError):
    """A results folder that belongs to a different config than the one asked for."""


class DamagedResultError(errors.DamagedFileError):
    """A results folder whose manifest or arrays cannot be read."""


class MissingArrayError(KeyError):
    """An array a result does not hold."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


class Arrays(dict):
    """A result's arrays by name; a name it lacks is a :class:`MissingArrayError` saying what it holds."""

    def __init__(self, arrays: Mapping[str, np.ndarray] = (), folder: Path | None = None):
        super().__init__(arrays)
        self.folder = folder

    def __missing__(self, name: str):
        held = ", ".join(sorted(self)) or "none"
        raise MissingArrayError(
            f"the result in {self.folder} has no array {name!r} (it holds: {held}); "
            f"it was made by code that did not record it: delete {self.folder} to compute it again")


@dataclasses.dataclass
class Result:
    """A finished run: its arrays, its manifest, and where it lives."""

    path: Path
    arrays: dict[str, np.ndarray]
    manifest: dict[str, Any]

    def __post_init__(self):
        if not isinstance(self.arrays, Arrays):
            self.arrays = Arrays(self.arrays, self.path)

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    @property
    def data(self) -> dict[str, Any]:
        """What the manifest says about the data (``{}`` for runs saved without it)."""
        return self.manifest.get("data") or {}


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
    """The finished result of exactly ``config``, searching ``roots`` (default :func:`search_roots`).

    A damaged folder is skipped with a warning (an unfinished run: training
    again overwrites it), never an error that blocks the configuration.
    """
    want = canonical(config)
    for root in roots or search_roots():
        folder = run_dir(name, config, root)
        if not (folder / MANIFEST).exists():
            continue
        try:
            manifest = read_manifest(folder)
            if manifest["config"] != want:
                warnings.warn(f"{folder} holds a result of a different config; not reused", stacklevel=2)
                continue
            return load(folder)
        except DamagedResultError as exc:
            warnings.warn(f"{exc} Treated as an unfinished run: it is not reused, and training this "
                          f"config again overwrites it.", stacklevel=2)
    return None


def read_manifest(folder: Path) -> dict[str, Any]:
    """A run folder's manifest; :class:`DamagedResultError` naming the file when it cannot be read."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        problem = None if isinstance(manifest, dict) and "config" in manifest else "it holds no config"
    except FileNotFoundError:
        raise DamagedResultError(f"{folder} is not a finished run: it has no {MANIFEST} (the run was "
                                 f"interrupted). Train it again, or delete {folder}.") from None
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        raise DamagedResultError(f"{path} is damaged or truncated ({problem}). Fix: delete {folder} and "
                                 f"train again (a run of this config overwrites it).")
    return manifest


def read_arrays(folder: Path, expected: list[str] | None = None) -> dict[str, np.ndarray]:
    """A run folder's arrays; :class:`DamagedResultError` when truncated, empty or lacking one expected."""
    path = Path(folder) / ARRAYS
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # BadZipFile, EOFError, zlib.error, ValueError: all mean a damaged file
        what = "missing" if isinstance(exc, FileNotFoundError) else "damaged, truncated or empty"
        raise DamagedResultError(f"{path} is {what} ({type(exc).__name__}: {exc}). Fix: delete {folder} "
                                 f"and train again (a run of this config overwrites it).") from exc
    lacking = [k for k in expected or [] if k not in arrays]
    if lacking:
        raise DamagedResultError(f"{path} lacks the array(s) {', '.join(lacking)} that {MANIFEST} lists. "
                                 f"Fix: delete {folder} and train again.")
    return arrays


def load(folder: Path) -> Result:
    """Read a finished run folder; :class:`DamagedResultError` naming the file when it cannot be read."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    listed = manifest.get("arrays")
    arrays = read_arrays(folder, list(listed) if isinstance(listed, dict) else None)
    return Result(folder, arrays, manifest)


def check_folder(folder: Path, config: Mapping[str, Any]) -> None:
    """Raise if ``folder`` already holds a finished result of another config (a damaged one may go)."""
    if not (Path(folder) / MANIFEST).exists():
        return
    try:
        found = read_manifest(folder)["config"]
    except DamagedResultError as exc:
        warnings.warn(f"{exc} It will be overwritten.", stacklevel=2)
        return
    if found != canonical(config):
        raise ResultMismatchError(
            f"{folder} already holds a result of a different config; refusing to overwrite it. "
            f"Remove the folder or write elsewhere.")


def save(folder: Path, config: Mapping[str, Any], arrays: Mapping[str, Any], *, wall_s: float,
         device: str, extra: Mapping[str, Any] | None = None) -> Result:
    """Write ``arrays`` then the manifest (both atomically) into ``folder``."""
    folder = Path(folder)
    atomic.sweep_once(folder.parent)  # temporaries of runs killed earlier, in every run folder here
    check_folder(folder, config)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    atomic.write_with(folder / ARRAYS, lambda tmp: _savez(tmp, arrays))
    manifest = {"config": canonical(config), "key": config_key(config), "code_version": code_version(),
                "device": device, "libraries": library_versions(), "python": platform.python_version(),
                "platform": platform.platform(), "wall_s": round(float(wall_s), 3),
                "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "arrays": {k: list(v.shape) for k, v in arrays.items()}, **(extra or {})}
    atomic.write_json(folder / MANIFEST, manifest)
    return Result(folder, Arrays(arrays, folder), canonical(manifest))


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

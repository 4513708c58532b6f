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

Integrity: the manifest records the sha256 of ``arrays.npz`` (``"sha256"``),
checked by :func:`load`, so arrays swapped between two runs or edited are a
:class:`DamagedResultError`; so is a non-finite value anywhere but the first
tracked row (step 0 has no training loss and no Δ yet, recorded as NaN).
Manifests written before checksums were recorded load with a one-line
warning until ``python -m rankbook.store.migrate FOLDER...`` adds them.

Provenance: beside git's commit (``code_version``) the manifest records
``source_sha256``, the hash of the package's own source files (what ran, even
from a stale or uncommitted copy), and data described by name, split and
fingerprint with paths written relative to ``$RANKBOOK_DATA`` /
``$RANKBOOK_CACHE`` (``$RANKBOOK_DATA/wikitext-2/valid.txt``), never absolute.

Lookups are recorded for the runner's staleness check
(:mod:`rankbook.store.inputs`).

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
import re
import subprocess
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rankbook.store import atomic, errors, inputs, paths

MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
_NOTED: set[str] = set()  # folders whose missing checksum was already reported in this process


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
    key = config_key(config)
    for root in roots or search_roots():
        folder = run_dir(name, config, root)
        if not (folder / MANIFEST).exists():
            continue
        try:
            manifest = read_manifest(folder)
            if manifest["config"] != want:
                warnings.warn(f"{folder} holds a result of a different config; not reused", stacklevel=2)
                continue
            found = load(folder)
            _record("result", name, key, folder)
            return found
        except DamagedResultError as exc:
            if Path(root).resolve() == default_root().resolve():
                then = "training this config again overwrites it"
            else:  # a stored (e.g. committed) run: training writes elsewhere and leaves this folder damaged
                then = (f"training this config writes a new run under {default_root()} and leaves this one "
                        f"as it is (restore it, e.g. git checkout -- {folder}, or delete it)")
            warnings.warn(f"{exc} Treated as an unfinished run: it is not reused, and {then}.", stacklevel=2)
    record_lookup(name, key, None)
    return None


def record_lookup(name: str, key: str, folder: Path | None) -> None:
    """Tell the runner's staleness check that run ``<name>-<key>`` was read from ``folder`` (None: not found).

    :func:`find` does this itself; readers of stored folders that do not go through it (the toy tiers'
    summaries) call it so that a chapter showing them is re-executed when they change or appear.
    """
    if folder is None:
        inputs.record({"kind": "miss", "name": name, "key": key, "folder_name": f"{name}-{key}"})
    else:
        _record("result", name, key, folder)


def _record(kind: str, name: str, key: str, folder: Path) -> None:
    inputs.record({"kind": kind, "name": name, "key": key, "folder_name": f"{name}-{key}",
                   "folder": str(Path(folder).resolve()), "manifest": inputs.file_state(folder / MANIFEST),
                   "arrays": inputs.file_state(folder / ARRAYS)})


def locate_stored(name: str, key: str) -> Path | None:
    """The folder :func:`find` would read for run ``name`` with results key ``key`` (no reading), or None."""
    for root in search_roots():
        folder = Path(root) / f"{name}-{key}"
        if (folder / MANIFEST).is_file():
            return folder.resolve()
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
        if _lfs_pointer(path):
            raise DamagedResultError(
                f"{path} is a Git LFS pointer, not the arrays (the clone was made without git-lfs). Fix: "
                f"install git-lfs and run `git lfs pull` in the clone") from exc
        what = "missing" if isinstance(exc, FileNotFoundError) else "damaged, truncated or empty"
        raise DamagedResultError(f"{path} is {what} ({type(exc).__name__}: {exc}). Fix: delete {folder} "
                                 f"and train again (a run of this config overwrites it).") from exc
    lacking = [k for k in expected or [] if k not in arrays]
    if lacking:
        raise DamagedResultError(f"{path} lacks the array(s) {', '.join(lacking)} that {MANIFEST} lists. "
                                 f"Fix: delete {folder} and train again.")
    return arrays


def _lfs_pointer(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(40).startswith(b"version https://git-lfs")
    except OSError:
        return False


def check_shapes(folder: Path, manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """:class:`DamagedResultError` when an array's shape is not the one the manifest lists (another run's)."""
    listed = manifest.get("arrays")
    if not isinstance(listed, dict):
        return
    for name, shape in sorted(listed.items()):
        if name in arrays and isinstance(shape, list) and list(arrays[name].shape) != shape:
            raise DamagedResultError(
                f"{Path(folder) / ARRAYS}: array {name!r} has shape {list(arrays[name].shape)}, but "
                f"{MANIFEST} lists {shape}: the arrays belong to another run (swapped?) or were edited. "
                f"Fix: put the run's own {ARRAYS} back, or delete {folder} and train again.")


def load(folder: Path) -> Result:
    """Read a finished run folder; :class:`DamagedResultError` naming the file when it cannot be read."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    listed = manifest.get("arrays")
    arrays = read_arrays(folder, list(listed) if isinstance(listed, dict) else None)  # names truncation
    check_shapes(folder, manifest, arrays)  # then: the right file? (swapped between runs, edited)
    check_checksum(folder, manifest)
    check_finite(folder, arrays)
    return Result(folder, arrays, manifest)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_checksum(folder: Path, manifest: Mapping[str, Any]) -> None:
    """:class:`DamagedResultError` when ``arrays.npz`` is not the file the manifest's checksum names.

    A manifest without a checksum (written before they were recorded) gets a
    one-line warning per process, naming the command that adds one.
    """
    folder = Path(folder)
    sums = manifest.get("sha256")
    expected = sums.get(ARRAYS) if isinstance(sums, dict) else None
    if sums is not None and not (isinstance(expected, str) and len(expected) == 64):
        raise DamagedResultError(f"{folder / MANIFEST}: its sha256 entry {sums!r} is not a checksum of "
                                 f"{ARRAYS}. Fix: restore the manifest, or delete {folder} and train again.")
    if not expected:
        if str(folder) not in _NOTED:
            _NOTED.add(str(folder))
            warnings.warn(f"{folder / MANIFEST} records no checksum of {ARRAYS} (written before checksums "
                          f"were recorded), so its arrays are not verified; add one with: "
                          f"python -m rankbook.store.migrate {folder}", stacklevel=3)
        return
    try:
        actual = sha256_file(folder / ARRAYS)
    except OSError:
        return  # read_arrays names the missing or unreadable file
    if actual != expected:
        raise DamagedResultError(
            f"{folder / ARRAYS} is not the file {MANIFEST} was written with (sha256 {actual[:16]}…, the "
            f"manifest says {expected[:16]}…): it was replaced (by another run's arrays?) or edited. Fix: "
            f"put the run's own {ARRAYS} back, or delete {folder} and train again.")


def check_finite(folder: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """:class:`DamagedResultError` naming the array and index of a NaN or infinity a run cannot hold.

    Tracked arrays (first axis as long as ``step``) may be NaN in their first
    row only: step 0 has no training loss and a zero Δ whose stable rank is
    undefined. Anywhere else a non-finite value means damage (or a run that
    diverged, which training refuses to store).
    """
    steps = len(arrays["step"]) if "step" in arrays and np.ndim(arrays["step"]) == 1 else None
    for name in sorted(arrays):
        a = arrays[name]
        if a.dtype.kind not in "fc" or a.size == 0:
            continue
        bad = ~np.isfinite(a)
        if steps is not None and a.ndim >= 1 and a.shape[0] == steps and steps > 0:
            bad[0] &= ~np.isnan(a[0])  # NaN at step 0 is "not defined yet", not damage
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DamagedResultError(
                f"{Path(folder) / ARRAYS}: array {name!r} holds {a[where]} at index {list(where)} "
                f"({int(bad.sum())} non-finite value(s)); a stored run holds finite numbers there. Fix: "
                f"delete {folder} and train again (or restore the folder from git).")


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
    extra = dict(extra or {})
    if "data" in extra:
        extra["data"] = portable(extra["data"])
    manifest = {"config": canonical(config), "key": config_key(config), "code_version": code_version(),
                "source_sha256": source_hash(), "sha256": {ARRAYS: sha256_file(folder / ARRAYS)},
                "device": device, "libraries": library_versions(), "python": platform.python_version(),
                "platform": platform.platform(), "wall_s": round(float(wall_s), 3),
                "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "arrays": {k: list(v.shape) for k, v in arrays.items()}, **extra}
    atomic.write_json(folder / MANIFEST, manifest)
    _record("saved", folder.name.rsplit("-", 1)[0], config_key(config), folder)
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


def source_hash() -> str:
    """sha256 of the package's own ``.py`` files (relative names and bytes, in name order): what ran."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def portable(value: Any) -> Any:
    """``value`` (text, or lists/dicts of it) with local absolute paths written relative to the RANKBOOK_*
    folders (``$RANKBOOK_DATA/...``, ``$RANKBOOK_CACHE/...``) or the home folder (``~/...``)."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    if not isinstance(value, str):
        return value
    roots = []
    for var, root in (("$RANKBOOK_DATA", paths.data_root), ("$RANKBOOK_CACHE", paths.cache_root),
                      ("~", Path.home)):
        try:
            roots.append((var, str(root().resolve())))
        except (OSError, RuntimeError, KeyError, paths.PathSettingError):
            continue
    for var, root in roots:
        if root not in ("/", ""):
            value = value.replace(root + "/", var + "/").replace(root + ")", var + ")")
    # any other absolute path (another machine's cache, /tmp): only its last part says anything; a path
    # already shortened ("…/name") is left as it is, so that migrating twice changes nothing
    return re.sub(r"(?<![\w$~.…])/(?:[^\s,()/]+/)*([^\s,()/]+)", r"…/\1", value)


def library_versions() -> dict[str, str]:
    found = {}
    for name in ("torch", "torchvision", "numpy", "rankbook"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found

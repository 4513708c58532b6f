"""Where rankbook reads data and writes outputs; each overridable by an environment variable.

A relative value (``RANKBOOK_BUILD=out``) means relative to the directory the
process was in when the variable was first read, and the absolute path is
written back into ``os.environ``. Every process started afterwards (the
notebook kernels, which run in ``notebooks/``) inherits the absolute value, so
the runner and the kernels write to the same place. Importing this module
resolves the variables already set (:func:`export_absolute`), before any
kernel can start.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: the variables that hold paths (RANKBOOK_PROFILE and the others hold names, not paths)
PATH_VARS = ("RANKBOOK_DATA", "RANKBOOK_CACHE", "RANKBOOK_BUILD", "RANKBOOK_IMAGENET")


class PathSettingError(NotADirectoryError):
    """A RANKBOOK_* variable that names a file where a folder is needed."""


class SettingError(ValueError):
    """A RANKBOOK_* variable whose value cannot be read (``RANKBOOK_STOP_AFTER_S=10min``)."""


TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def env_flag(var: str) -> bool:
    """``$var`` as a yes/no switch (1/true/yes/on, 0/false/no/off or unset); else a SettingError."""
    value = os.environ.get(var, "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise SettingError(f"{var}={os.environ[var]!r} is not understood: set it to 1 (or true, yes, on) to "
                       f"turn it on, or 0 / unset it to turn it off")


def env_seconds(var: str, default: float = float("inf")) -> float:
    """``$var`` as a number of seconds ≥ 0 (``540``, ``5.5``; ``0``: stop at the first checkpoint; unset:
    ``default``), else SettingError."""
    value = os.environ.get(var, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0:
        raise SettingError(f"{var}={value!r} is not a number of seconds: write it in seconds, e.g. "
                           f"{var}=600 for ten minutes (no unit), or unset it for no limit")
    return seconds


def is_clone(root: Path | None = None) -> bool:
    """Whether the package runs from a clone of the repository (or its editable install), not a wheel."""
    root = root or REPO_ROOT
    return (root / "pyproject.toml").is_file() and (root / "rankbook").is_dir()


def env_path(var: str) -> Path | None:
    """``$var`` as an absolute path (re-exported absolute), or None when unset or empty."""
    value = os.environ.get(var, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    path = path.resolve()
    if os.environ.get(var) != str(path):
        os.environ[var] = str(path)  # children (kernels in another directory) see the same place
    if path.exists() and not path.is_dir():
        raise PathSettingError(f"{var}={value} is a file, not a folder ({path}); set {var} to a folder, "
                               f"or unset it to use the default")
    return path


def export_absolute() -> dict[str, str]:
    """Resolve every set RANKBOOK_* path variable to an absolute path in ``os.environ``; return them."""
    done = {}
    for var in PATH_VARS:
        try:
            path = env_path(var)
        except PathSettingError:
            continue  # reported when the path is used, where the message can say what it was for
        if path is not None:
            done[var] = str(path)
    return done


def _env_path(var: str, default: Path) -> Path:
    return env_path(var) or default


def data_root() -> Path:
    """Offline copies of data sets (``$RANKBOOK_DATA``, default ``<repo>/data``); may be read-only."""
    return _env_path("RANKBOOK_DATA", REPO_ROOT / "data")


def cache_root() -> Path:
    """Cache for downloads, unpacked archives and decoded data (``$RANKBOOK_CACHE``); may be read-only."""
    given = env_path("RANKBOOK_CACHE")
    if given:
        return given
    try:
        return Path.home() / ".cache" / "rankbook"
    except (RuntimeError, KeyError) as exc:  # no HOME and no passwd entry (e.g. a container's random uid)
        raise PathSettingError(f"no home directory to keep the cache in ({exc}); set RANKBOOK_CACHE to a "
                               f"writable folder") from exc


def build_root() -> Path:
    """Executed notebooks, outputs, results and the site (``$RANKBOOK_BUILD``, default ``<repo>/_build``).

    An installed wheel (Colab, ``pip install .``) has no clone to hold ``_build``: its default is
    ``<cache>/build`` (``~/.cache/rankbook/build``, or under ``$RANKBOOK_CACHE``), never site-packages.
    """
    if not is_clone():
        return _env_path("RANKBOOK_BUILD", cache_root() / "build")
    return _env_path("RANKBOOK_BUILD", REPO_ROOT / "_build")


def imagenet_root() -> Path:
    """ImageNet in the ImageFolder layout (``$RANKBOOK_IMAGENET``, default ``<data>/imagenet``)."""
    return _env_path("RANKBOOK_IMAGENET", data_root() / "imagenet")


def output_dir(profile: str, chapter: str) -> Path:
    """A chapter's output folder for one profile (figures, JSON summaries), created on demand."""
    path = build_root() / "outputs" / profile / chapter
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from rankbook.store import errors  # errors imports this module

        raise errors.storage_error(path, exc) from exc
    return path


export_absolute()

"""Where rankbook reads data and writes outputs; each overridable by an environment variable."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def data_root() -> Path:
    """Offline copies of data sets (``$RANKBOOK_DATA``, default ``<repo>/data``); may be read-only."""
    return _env_path("RANKBOOK_DATA", REPO_ROOT / "data")


def cache_root() -> Path:
    """Writable cache for downloads and unpacked archives (``$RANKBOOK_CACHE``)."""
    return _env_path("RANKBOOK_CACHE", Path.home() / ".cache" / "rankbook")


def build_root() -> Path:
    """Executed notebooks, outputs and the rendered site (``$RANKBOOK_BUILD``, default ``<repo>/_build``)."""
    return _env_path("RANKBOOK_BUILD", REPO_ROOT / "_build")


def output_dir(profile: str, chapter: str) -> Path:
    """A chapter's output folder for one profile (figures, JSON summaries), created on demand."""
    path = build_root() / "outputs" / profile / chapter
    path.mkdir(parents=True, exist_ok=True)
    return path

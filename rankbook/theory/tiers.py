"""Stored tiers of the toy chapters (01 theory, 02 toy, 03 assumptions): their reference and paper runs.

The toy chapters are CPU work. Run at the ``reference`` or ``paper`` profile
(``python -m rankbook run 02 --profile reference``), a chapter ends by calling
:func:`record`, which writes its summary (every number its claims and tier
tables are computed from, JSON) with a manifest to
``<build>/results/toy-<chapter>-<profile>-<key>/``; committed, the folder
lives under ``results/``. The key hashes the chapter, the profile's settings
and :data:`VERSION`, so a change of settings (or of what the summary holds,
which bumps :data:`VERSION`) makes the stored folder stale:
``tests/test_stored_results.py`` then fails and names the command to rerun.

A fast build finds the stored tiers with :func:`stored` (never computing),
and shows them beside its live run.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Mapping

from rankbook.settings import profiles
from rankbook.store import atomic
from rankbook.store import results as store

#: bump when a chapter's summary changes shape or meaning (the stored tiers are then stale)
VERSION = 1
PREFIX = "toy-"
SUMMARY = "summary.json"
CHAPTERS = ("01_theory", "02_toy", "03_assumptions")
#: the profiles whose toy results are stored (fast runs live in every build)
STORED_TIERS = ("reference", "paper")


def config(chapter: str, profile: str, settings) -> dict[str, Any]:
    """What a stored tier's key hashes: the chapter, the profile, its settings and :data:`VERSION`."""
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter={chapter!r}: the toy chapters are {', '.join(CHAPTERS)}")
    return store.canonical({"kind": "toy", "chapter": chapter, "profile": profile,
                            "settings": settings.as_dict(), "version": VERSION})


def folder_name(chapter: str, profile: str, settings) -> str:
    """``toy-<chapter>-<profile>-<key>``: the stored folder of this chapter, profile and settings."""
    return f"{PREFIX}{chapter}-{profile}-{store.config_key(config(chapter, profile, settings))}"


def start() -> float:
    """A clock reading, taken when a chapter starts, so :func:`record` can store its wall time."""
    return time.perf_counter()


def record(chapter: str, profile: str, settings, summary: Mapping[str, Any], started: float,
           root: Path | None = None) -> Path | None:
    """Store ``summary`` when ``profile`` is a stored tier (reference, paper); fast stores nothing.

    Returns the folder written (under ``root``, default the build's results folder), or None.
    """
    if profile not in STORED_TIERS:
        return None
    cfg = config(chapter, profile, settings)
    folder = Path(root or store.default_root()) / folder_name(chapter, profile, settings)
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_json(folder / SUMMARY, dict(summary))
    atomic.write_json(folder / store.MANIFEST, {
        "config": cfg, "key": store.config_key(cfg), "wall_s": time.perf_counter() - started,
        "device": f"cpu ({platform.processor() or platform.machine()})", "created": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "code_version": store.code_version()})
    return folder


def load(chapter: str, profile: str, settings, roots: list[Path] | None = None) -> dict[str, Any] | None:
    """The stored summary of ``chapter`` at ``profile`` with exactly these settings, or None (never computes).

    The summary carries its manifest under ``"manifest"`` (wall time, device, date).
    """
    name = folder_name(chapter, profile, settings)
    for root in roots or store.search_roots():
        folder = Path(root) / name
        if (folder / SUMMARY).is_file() and (folder / store.MANIFEST).is_file():
            manifest = json.loads((folder / store.MANIFEST).read_text())
            if manifest.get("config") != config(chapter, profile, settings):
                raise ValueError(f"{folder / store.MANIFEST}: its config is not the one its name's key says; "
                                 f"delete {folder} and rerun `python -m rankbook run {chapter[:2]} "
                                 f"--profile {profile}`")
            return {**json.loads((folder / SUMMARY).read_text()), "manifest": manifest}
    return None


def stored(chapter: str, table: Mapping[str, Any], profile: str,
           roots: list[Path] | None = None) -> dict[str, dict[str, Any] | None]:
    """{tier: stored summary or None} for each stored tier but ``profile`` (``table``: the PROFILES)."""
    return {tier: load(chapter, tier, table[tier], roots) for tier in STORED_TIERS if tier != profile}


def expected(table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{folder name: config} of every stored toy tier the current code and settings ask for."""
    return {folder_name(c, p, table[p]): config(c, p, table[p]) for c in CHAPTERS for p in STORED_TIERS}


def note(found: Mapping[str, Mapping[str, Any] | None]) -> str:
    """One phrase per stored tier: how long its run took and on what, or that none is stored."""
    parts = []
    for tier, summary in found.items():
        if summary is None:
            parts.append(f"{tier}: not stored for these settings")
        else:
            m = summary["manifest"]
            parts.append(f"{tier}: stored, {m['wall_s'] / 60:.1f} min on {m['device']} ({m['created'][:10]})")
    return "; ".join(parts) if parts else "no other tier"


def by_tier(live_profile: str, live: Mapping[str, Any],
            found: Mapping[str, Mapping[str, Any] | None]) -> dict:
    """{tier: summary} of the live run and each stored tier that was found, in profile order."""
    out = {live_profile: live, **{t: s for t, s in found.items() if s is not None}}
    return {t: out[t] for t in profiles.PROFILE_NAMES if t in out}


def side_by_side(summaries: Mapping[str, Mapping[str, Any]],
                 fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A narrow table: one row per measured quantity, one column per tier.

    ``fields`` maps a row label to a function of a summary returning the cell's text (or None: not measured
    at that tier, e.g. an α the profile does not run).
    """
    rows = []
    for label, get in fields.items():
        row = {"quantity": label}
        for tier, summary in summaries.items():
            try:
                value = get(summary)
            except (KeyError, IndexError, ValueError):
                value = None
            row[tier] = "–" if value is None else value
        rows.append(row)
    return rows


def normalize(summary: Mapping[str, Any]) -> dict[str, Any]:
    """``summary`` as it reads back from JSON (tuples → lists, NumPy → Python), so live and stored tiers are
    handed to the same functions in the same form."""
    return json.loads(json.dumps(dict(summary), default=atomic._jsonable))

"""The claims the book checks, as each chapter states them: one row per claim, written to ``claims.json``.

A chapter calls :func:`record` once with its rows; the results page reads
every chapter's file with :func:`load_all`. A row says what the paper claims
(and where), what this run measured, on which tier (``fast`` run live,
``reference`` or ``paper`` stored runs), and the verdict computed from the
measurement (never typed by hand).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from rankbook.store import atomic, paths

FILE = "claims.json"
TIERS = ("fast", "reference", "paper")
FIELDS = ("claim", "paper", "tier", "measured", "verdict", "chapter")


def row(claim: str, paper: str, tier: str, measured: str, verdict: str, chapter: str) -> dict[str, str]:
    """One claim: the paper's statement, where the paper makes it (e.g. "Fig. 1a"), and the book's finding."""
    if tier not in TIERS:
        raise ValueError(f"tier={tier!r}: choose one of {', '.join(TIERS)}")
    return {"claim": claim, "paper": paper, "tier": tier, "measured": measured, "verdict": verdict,
            "chapter": chapter}


def record(profile: str, chapter: str, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` as the claims of ``chapter`` under ``profile``; returns the file written."""
    for r in rows:
        missing = [f for f in FIELDS if f not in r]
        if missing:
            raise ValueError(f"claim row {r!r} lacks {', '.join(missing)}")
    path = paths.output_dir(profile, chapter) / FILE
    atomic.write_json(path, {"profile": profile, "chapter": chapter, "claims": list(rows)})
    return path


def load_all(profile: str) -> list[dict[str, Any]]:
    """Every chapter's claims for ``profile``, in chapter order."""
    root = paths.build_root() / "outputs" / profile
    out: list[dict[str, Any]] = []
    for path in sorted(root.glob(f"*/{FILE}")):
        out.extend(json.loads(path.read_text())["claims"])
    return out

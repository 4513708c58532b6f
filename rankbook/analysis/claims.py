"""The claims the book checks, as each chapter states them: one row per claim, written to ``claims.json``.

A chapter calls :func:`record` once with its rows; the results page reads
every chapter's file with :func:`load_all`. A row says what the paper claims
(and where), what this run measured, on which tier (``fast`` run live,
``reference`` or ``paper`` stored runs), and the verdict computed from the
measurement (never typed by hand).

**One verdict vocabulary** for the whole book (:data:`VOCABULARY`, defined
with its thresholds on the results page): :data:`SHOWN`, :data:`PARTLY`,
:data:`NOT_SHOWN`, :data:`CONTRADICTED` and :data:`CANNOT`. Chapters build
their verdicts with :func:`verdict` (a test that passed or not),
:func:`combine` (several parts of one claim) or :func:`trend_verdict` (a
trend over layers); :func:`normalize` maps the words used before
("agrees", "reproduced", "low rank suffices", ...) onto it, so that the
results page speaks one vocabulary even for a chapter not yet updated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from rankbook.store import atomic, paths

FILE = "claims.json"
TIERS = ("fast", "reference", "paper")
FIELDS = ("claim", "paper", "tier", "measured", "verdict", "chapter")

SHOWN = "shown"
PARTLY = "partly shown"
NOT_SHOWN = "not shown at this scale"
CONTRADICTED = "contradicted"
CANNOT = "cannot be shown by this tier's runs"

#: each verdict word and when a chapter may use it (the results page prints this)
VOCABULARY = {
    SHOWN: "every part of the claim passes its test at this tier. For a trend over training: in more than "
    "half of the layers, for every product the claim names, the stable rank rises by the calibrated trend "
    "rule (rankbook.analysis.trend; ≤ 5% false rises on every null family and grid). For a comparison: "
    "the measured inequality holds (e.g. the top singular value's share of Δ above that of the product "
    "at initialization).",
    PARTLY: "some parts of the claim pass their tests and others do not (e.g. one of the two products "
    "rises in more than half of the layers, the other does not).",
    NOT_SHOWN: "the test does not pass, but the measurement does not go the other way either (e.g. the "
    "curves are flat by the trend rule, or the run is too small or too short for the effect): the claim "
    "is neither confirmed nor refuted at this scale.",
    CONTRADICTED: "the measurement goes against the claim by the same test (e.g. the stable rank falls in "
    "more than half of the layers by the trend rule, or Δ is less concentrated than the product at "
    "initialization).",
    CANNOT: "this tier's runs cannot test the claim (e.g. too few heads for the head-agreement test, a "
    "setting the claim needs is absent); never counted as shown.",
}
VERDICTS = tuple(VOCABULARY)

#: words chapters used before this vocabulary, and what they meant
LEGACY = {
    "agrees": SHOWN,
    "holds": SHOWN,
    "reproduced": SHOWN,
    "partly reproduced": PARTLY,
    "not reproduced": NOT_SHOWN,
    "differs": NOT_SHOWN,
    "does not hold": NOT_SHOWN,
    "low rank suffices": SHOWN,
    "needs a high rank": NOT_SHOWN,
    "attention matters": SHOWN,
    "attention barely matters": NOT_SHOWN,
}


def normalize(word: str) -> str:
    """A verdict in the book's vocabulary (an old word mapped by :data:`LEGACY`; other words unchanged)."""
    return word if word in VOCABULARY else LEGACY.get(word, word)


def verdict(ok: bool, *, against: bool = False) -> str:
    """The verdict of a claim tested once: shown when the test passed; contradicted when ``against`` (the
    measurement goes the other way), else not shown at this scale."""
    return SHOWN if ok else CONTRADICTED if against else NOT_SHOWN


def combine(parts: Sequence[str]) -> str:
    """One claim's verdict from the verdicts of its parts: all shown → shown; some → partly shown; none and
    any contradicted → contradicted; all cannot → cannot; else not shown at this scale."""
    parts = [normalize(p) for p in parts]
    if not parts:
        raise ValueError("combine() needs at least one part's verdict")
    if all(p == SHOWN for p in parts):
        return SHOWN
    if any(p in (SHOWN, PARTLY) for p in parts):
        return PARTLY
    if all(p == CANNOT for p in parts):
        return CANNOT
    return CONTRADICTED if any(p == CONTRADICTED for p in parts) else NOT_SHOWN


def trend_verdict(rises: int, falls: int, layers: int) -> str:
    """One product's verdict on "the stable rank rises": shown when more than half of the layers rise,
    contradicted when more than half fall, else not shown at this scale."""
    if rises * 2 > layers:
        return SHOWN
    if falls * 2 > layers:
        return CONTRADICTED
    return NOT_SHOWN


def row(claim: str, paper: str, tier: str, measured: str, verdict: str, chapter: str) -> dict[str, str]:
    """One claim: the paper's statement, where the paper makes it (e.g. "Fig. 1a"), and the book's finding."""
    if tier not in TIERS:
        raise ValueError(f"tier={tier!r}: choose one of {', '.join(TIERS)}")
    return {
        "claim": claim,
        "paper": paper,
        "tier": tier,
        "measured": measured,
        "verdict": verdict,
        "chapter": chapter,
    }


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

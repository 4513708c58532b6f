"""The results page: every claim the book checks, one row per claim, its numbers at each tier side by side.

Rows come from the chapters' ``claims.json`` files
(:func:`rankbook.analysis.claims.load_all`), written when a chapter runs, so
the page shows what the runs measured and the verdicts computed from them;
nothing here is typed by hand. A tier (``fast``, ``reference``, ``paper``)
with no stored run shows "not run".
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from rankbook.analysis import claims
from rankbook.figures.tables import Link, Table

TIER_COLUMNS = {"fast": "fast (this build)", "reference": "reference", "paper": "paper scale"}
MISSING = "not run"


def chapter_link(chapter: str, stems: Sequence[str]) -> Link:
    """A link to the chapter's page (``chapter`` is a notebook stem or its number, e.g. "04")."""
    hits = [s for s in stems if s == chapter or s.split("_", 1)[0] == chapter]
    if len(hits) != 1:
        raise ValueError(f"claims.json names chapter {chapter!r}, which is not one of {', '.join(stems)}")
    return Link(hits[0].split("_", 1)[0], f"{hits[0]}.html")


def claim_rows(rows: Sequence[Mapping[str, Any]], stems: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (chapter, claim, paper location), the tiers' measurements in columns, in chapter order.

    The verdict shown is the one of the largest tier measured (paper, else
    reference, else fast), named in brackets; each tier's cell carries its
    own verdict when it differs.
    """
    grouped: dict[tuple, dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        key = (r["chapter"], r["claim"], r["paper"])
        if r["tier"] in grouped.setdefault(key, {}):
            raise ValueError(f"claim {r['claim']!r} of chapter {r['chapter']} is recorded twice for tier "
                             f"{r['tier']}: record each claim once per tier")
        grouped[key][r["tier"]] = r
    out = []
    for (chapter, claim, paper), tiers in grouped.items():
        top = next(t for t in reversed(claims.TIERS) if t in tiers)
        row: dict[str, Any] = {"claim (where in the paper)": f"{claim} ({paper})"}
        for tier, column in TIER_COLUMNS.items():
            found = tiers.get(tier)
            cell = MISSING if found is None else str(found["measured"])
            if found is not None and found["verdict"] != tiers[top]["verdict"]:
                cell += f" ({found['verdict']})"
            row[column] = cell
        row["verdict"] = f"{tiers[top]['verdict']} ({top})"
        row["ch."] = chapter_link(chapter, stems)
        out.append(row)
    return out


def claims_table(profile: str, stems: Sequence[str] | None = None) -> Table:
    """The results page's table for the book built under ``profile`` (``stems``: the chapters' notebook names,
    by default the book's notebooks, else the chapters the rows name)."""
    found = claims.load_all(profile)
    if stems is None:
        from rankbook.book import runner

        stems = [p.stem for p in runner.available()] or sorted({r["chapter"] for r in found})
    rows = claim_rows(found, stems)
    # a scale with no stored run anywhere gets no column (the title says so) rather than a column of "not run"
    measured = [t for t in claims.TIERS if any(r["tier"] == t for r in found)] or ["fast"]
    columns = ["claim (where in the paper)", *(TIER_COLUMNS[t] for t in measured), "verdict", "ch."]
    absent = [TIER_COLUMNS[t] for t in claims.TIERS if t not in measured]
    title = f"Claims checked by the book ({len(rows)}), built with the {profile} profile" + (
        f"; no {' or '.join(absent)} runs stored" if absent else "")
    return Table(rows, columns, title=title)


def tally(table: Table) -> dict[str, int]:
    """How many claims end in each verdict (the page's summary line)."""
    counts: dict[str, int] = {}
    for r in table.records():
        verdict = r["verdict"].rsplit(" (", 1)[0]
        counts[verdict] = counts.get(verdict, 0) + 1
    return counts

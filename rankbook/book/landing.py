"""The landing page's findings: verdicts per tier, the headline claims, a key figure, what is not reproduced.

Nothing here decides a verdict: the counts and the headline rows come from
the chapters' ``claims.json`` records through the results page's own
functions (:func:`rankbook.book.results.claim_rows`,
:func:`rankbook.analysis.claims.load_all`, the vocabulary of
:mod:`rankbook.analysis.claims`), and the "not reproduced" list from the
crosswalk (:func:`rankbook.analysis.crosswalk.not_reproduced`). The landing
page runs after every chapter (``notebooks/99_findings``), so it reads this
build's records.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from rankbook.analysis import claims, crosswalk
from rankbook.book import results
from rankbook.figures.tables import Table

TIER_NAMES = {"fast": "fast (this build, CPU)", "reference": "reference (stored)",
              "paper": "paper scale (stored)"}


def verdict_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """``{tier: {verdict: count}}`` over the claim records, verdicts in the book's vocabulary."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        word = claims.normalize(r["verdict"])
        tier = out.setdefault(r["tier"], {})
        tier[word] = tier.get(word, 0) + 1
    return out


def tier_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """One row per tier that has records: claims checked and how many end in each verdict."""
    counts = verdict_counts(rows)
    words = [w for w in claims.VERDICTS if any(w in c for c in counts.values())]
    words += sorted({w for c in counts.values() for w in c} - set(words))  # any word outside the vocabulary
    table = []
    for tier in claims.TIERS:
        if tier not in counts:
            continue
        table.append({"tier": TIER_NAMES.get(tier, tier), "claims checked": sum(counts[tier].values()),
                      **{w: counts[tier].get(w, 0) for w in words}})
    return Table(table, ["tier", "claims checked", *words],
                 title="Verdicts per tier (every claim the book checks)")


def headline_table(rows: Sequence[Mapping[str, Any]], stems: Sequence[str]) -> Table:
    """Each claim with the verdict of the largest tier that measured it (the results page's rows, short)."""
    found = results.claim_rows(rows, stems)
    # the verdict right after the claim: on a phone the columns past the first two scroll out of view
    return Table([{"claim": r[results.CLAIM], "paper (v1)": r[results.WHERE], "verdict": r[results.VERDICT],
                   "ch.": r["ch."]} for r in found], ["claim", "verdict", "ch.", "paper (v1)"],
                 title=f"The {len(found)} claims and their verdicts at the largest tier measured")


def headline_sentence(rows: Sequence[Mapping[str, Any]]) -> str:
    """One sentence per tier: "at the paper scale, 3 of 4 claims shown, 1 partly shown"."""
    counts = verdict_counts(rows)
    parts = []
    for tier in reversed(claims.TIERS):
        if tier not in counts:
            continue
        c = counts[tier]
        words = [w for w in claims.VERDICTS if c.get(w)] + sorted(set(c) - set(claims.VERDICTS))
        parts.append(f"{TIER_NAMES.get(tier, tier)}: {sum(c.values())} claims, "
                     + ", ".join(f"{c[w]} {w}" for w in words))
    return "; ".join(parts) + "." if parts else "no chapter has recorded its claims in this build yet."


def not_reproduced_table() -> Table:
    """The paper's figures this book does not reproduce, and why (crosswalk rows without a book figure)."""
    return Table([{"paper figure (v1)": r["v1"], "NeurIPS 2023": r["neurips"], "what it shows": r["what"],
                   "why not here": r["status"]} for r in crosswalk.not_reproduced()],
                 ["paper figure (v1)", "NeurIPS 2023", "what it shows", "why not here"],
                 title="What is not reproduced here")


def key_figure(profile: str):
    """The paper's central measurement at the largest stored tier: the stable rank of ΔW_K W_Q^T and
    ΔW_V W_O^T through training of the CIFAR-10 ViT (the analogue of the paper's Fig. 12 (v1)); returns
    ``(figure, tier)``, the figure a note when no run is stored."""
    from rankbook.analysis import report
    from rankbook.figures import stable_rank
    from rankbook.settings.vit import PROFILES
    from rankbook.training import vit

    stored = report.stored(vit.run, PROFILES, profile, dataset="cifar10", init_scale=1.0)
    tier = next((t for t in ("paper", "reference") if stored.get(t)), "paper")
    return stable_rank.stored_figure(stored, tier, "the ViT on CIFAR-10"), tier

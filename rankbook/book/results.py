"""The results page: every claim the book checks with its verdict, then what each tier measured for it.

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


CLAIM, VERDICT, WHERE = "claim", "verdict (largest tier)", "paper (v1)"


def claim_rows(rows: Sequence[Mapping[str, Any]], stems: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (chapter, claim, paper location): the claim, its verdict beside it, where the paper makes
    it, the tiers' measurements in columns, in chapter order.

    The verdict shown is the one of the largest tier measured (paper, else reference, else fast), named in
    brackets, in the book's vocabulary (:data:`rankbook.analysis.claims.VOCABULARY`; older words are mapped
    by :func:`rankbook.analysis.claims.normalize`); a tier's cell ends with its own verdict when it differs.
    """
    grouped: dict[tuple, dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        key = (r["chapter"], r["claim"], r["paper"])
        if r["tier"] in grouped.setdefault(key, {}):
            raise ValueError(
                f"claim {r['claim']!r} of chapter {r['chapter']} is recorded twice for tier "
                f"{r['tier']}: record each claim once per tier"
            )
        grouped[key][r["tier"]] = r
    out = []
    for (chapter, claim, paper), tiers in grouped.items():
        top = next(t for t in reversed(claims.TIERS) if t in tiers)
        top_verdict = claims.normalize(tiers[top]["verdict"])
        row: dict[str, Any] = {
            CLAIM: claim,
            VERDICT: f"{top_verdict} ({top})",
            WHERE: paper.replace(" (v1)", ""),
        }
        for tier, column in TIER_COLUMNS.items():
            found = tiers.get(tier)
            cell = MISSING if found is None else str(found["measured"])
            if found is not None and claims.normalize(found["verdict"]) != top_verdict:
                cell += f" — verdict at this tier: {claims.normalize(found['verdict'])}"
            row[column] = cell
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
    columns = [CLAIM, VERDICT, WHERE, *(TIER_COLUMNS[t] for t in measured), "ch."]
    absent = [TIER_COLUMNS[t] for t in claims.TIERS if t not in measured]
    title = f"Claims checked by the book ({len(rows)}), built with the {profile} profile" + (
        f"; no {' or '.join(absent)} runs stored" if absent else ""
    )
    return Table(rows, columns, title=title)


def tally(table: Table) -> dict[str, int]:
    """How many claims end in each verdict (the page's summary line)."""
    counts: dict[str, int] = {}
    for r in table.records():
        verdict = r[VERDICT].rsplit(" (", 1)[0]
        counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def vocabulary_table() -> Table:
    """The verdict words and when a chapter may use them, with the trend rule's thresholds."""
    from rankbook.analysis import trend

    rows = [{"verdict": word, "means": meaning} for word, meaning in claims.VOCABULARY.items()]
    rows.append({"verdict": "(trend rule)", "means": trend.rule_text()})
    return Table(rows, title="The verdict vocabulary of the whole book, with its thresholds")


def crosswalk_table(profile: str, stems: Sequence[str] | None = None) -> Table:
    """The crosswalk of the paper's figures (:mod:`rankbook.analysis.crosswalk`), statuses from this build's
    claims."""
    from rankbook.analysis import crosswalk

    return crosswalk.table(claims.load_all(profile), stems)


def _tier_runs(profile: str) -> dict[tuple[str, str], list]:
    """The runs each tier's trend claims rest on, looked up (never trained): ``{(model, tier): [results]}``.

    Fast runs are found where this build's chapters 04 and 06 stored them; missing ones are left out.
    """
    from rankbook.analysis.report import lookup
    from rankbook.settings import lm as lm_settings
    from rankbook.settings import vit as vit_settings
    from rankbook.training import lm, vit

    out: dict[tuple[str, str], list] = {}
    for tier in claims.TIERS:
        s = vit_settings.PROFILES[tier]
        found = [lookup(vit.run, s, s.datasets[0], s.init_scale, seed) for seed in s.seeds]
        out[("ViT", tier)] = [r for r in found if r is not None]
        s = lm_settings.PROFILES[tier]
        found = [lookup(lm.run, s, seed) for seed in s.seeds]
        out[("language model", tier)] = [r for r in found if r is not None]
    return {k: v for k, v in out.items() if v}


def rule_change_table(profile: str, runs: Mapping[tuple[str, str], list] | None = None) -> Table:
    """Per model, tier and product: layers that rise by the replaced trend rule and by the new one, then one
    row per layer whose verdict changed, with why (:func:`rankbook.analysis.report.rule_change`); the first
    row of each group carries its counts (one row per layer keeps every cell a few lines tall)."""
    from rankbook.analysis import report

    runs = _tier_runs(profile) if runs is None else runs
    rows = []
    for (model, tier), rs in runs.items():
        for kind in report.KINDS:
            change = report.rule_change(rs, kind)
            seeds = f", {len(rs)} seeds pooled" if len(rs) > 1 else ""
            for i, why in enumerate(change["changes"] or ["nothing"]):
                first = i == 0
                rows.append(
                    {
                        "model, tier": f"{model}, {tier}{seeds}" if first else "",
                        "product": report.NAMES[kind] if first else "",
                        "rises: old rule": change["old"] if first else "",
                        "rises: new rule": change["new"] if first else "",
                        "what changed and why": why,
                    }
                )
    return Table(rows, title="Trend verdicts before (old rule) and after (the calibrated rule), per tier")


def verdicts_table(table: Table) -> Table:
    """The claims with their verdicts and chapters beside them (the short columns of :func:`claims_table`)."""
    return Table(table.records(), [CLAIM, VERDICT, "ch.", WHERE], title=f"Verdicts: {table.title}")


class Measurements:
    """What each tier measured for each claim, as a list under each claim (HTML in Jupyter and on the site,
    text in a terminal): a measurement is often a paragraph, which in a table column beside the claim
    either grows taller than a screen or pushes the table past the page's width."""

    def __init__(self, table: Table):
        tiers = [c for c in table.columns if c in TIER_COLUMNS.values()]
        #: ``[(claim, [(tier, measured), ...]), ...]`` in the table's order
        self.items = [(r[CLAIM], [(t, str(r[t])) for t in tiers]) for r in table.records()]

    def __str__(self) -> str:
        return "\n".join(f"{claim}\n" + "\n".join(f"  {t}: {m}" for t, m in tiers)
                         for claim, tiers in self.items)

    def _repr_html_(self) -> str:
        import html

        items = "".join(
            f'<dt style="font-weight:600;margin-top:0.6em">{html.escape(claim)}</dt>'
            '<dd><ul style="margin:0.2em 0">'
            + "".join(f"<li><em>{html.escape(t)}</em>: {html.escape(m)}</li>" for t, m in tiers)
            + "</ul></dd>"
            for claim, tiers in self.items
        )
        return f'<dl class="rankbook-measurements">{items}</dl>'


def measurements(table: Table) -> Measurements:
    """What each tier measured for each claim (:func:`claims_table`'s tier columns), claim by claim."""
    return Measurements(table)

"""The results page's table: one row per claim, the tiers side by side, verdicts from the records, links."""

import os
import time

import pytest

from rankbook.analysis import claims
from rankbook.book import results, runner

STEMS = ["04_vit_spectra", "06_language"]


def _row(tier, measured, verdict, claim="Δ is low-rank", chapter="04_vit_spectra"):
    return claims.row(claim, "Fig. 1a", tier, measured, verdict, chapter)


V = results.VERDICT


def test_tiers_become_columns_and_the_largest_tier_gives_the_verdict():
    rows = [
        _row("fast", "stable rank 2.1", "shown"),
        _row("paper", "stable rank 1.3", "shown"),
        _row("fast", "0.4", "contradicted", claim="rank rises", chapter="06"),
    ]
    out = results.claim_rows(rows, STEMS)
    assert [r[results.CLAIM] for r in out] == ["Δ is low-rank", "rank rises"]  # no "(Fig. 1a)" glued on
    assert list(out[0])[:3] == [results.CLAIM, V, results.WHERE]  # the verdict sits beside the claim
    first = out[0]
    assert first["fast (this build)"] == "stable rank 2.1" and first["reference"] == results.MISSING
    assert first["paper scale"] == "stable rank 1.3" and first[V] == "shown (paper)"
    assert first[results.WHERE] == "Fig. 1a"
    assert out[1][V] == "contradicted (fast)"
    assert out[1]["ch."].href == "06_language.html" and str(out[1]["ch."]) == "06"


def test_a_smaller_tier_that_disagrees_shows_its_own_verdict_and_old_words_are_mapped():
    out = results.claim_rows([_row("fast", "1.9", "differs"), _row("reference", "1.2", "reproduced")], STEMS)
    assert out[0]["fast (this build)"] == "1.9 — verdict at this tier: not shown at this scale"
    assert out[0][V] == "shown (reference)"


def test_vocabulary_is_defined_once_with_thresholds_and_crosswalk_lists_what_is_missing():
    vocab = results.vocabulary_table().records()
    words = [r["verdict"] for r in vocab]
    assert words[:4] == ["shown", "partly shown", "not shown at this scale", "contradicted"]
    assert "p ≤ 0.05" in vocab[-1]["means"] and "step 10" in vocab[-1]["means"]
    from rankbook.analysis import crosswalk

    missing = {r["v1"] for r in crosswalk.not_reproduced()}
    assert missing == {"1b", "13-14", "15-16"}
    assert all(r["status"].startswith("not reproduced") for r in crosswalk.not_reproduced())
    table = crosswalk.table(
        [_row("paper", "x", "shown", claim="c", chapter="04_vit_spectra") | {"paper": "Fig. 12"}]
    )
    by_v1 = {r["paper, v1"]: r for r in table.records()}
    assert by_v1["Fig. 12"]["status"] == "shown (paper)" and by_v1["Fig. 12"]["paper, NeurIPS"].startswith(
        "Fig. 3"
    )
    assert by_v1["Fig. 5"]["paper, NeurIPS"] == "Fig. 4" and by_v1["Fig. 3"]["paper, NeurIPS"] == "Fig. 5"


def test_duplicates_and_unknown_chapters_are_refused():
    with pytest.raises(ValueError, match="recorded twice for tier fast"):
        results.claim_rows([_row("fast", "1", "shown"), _row("fast", "2", "shown")], STEMS)
    with pytest.raises(ValueError, match="names chapter '09_nope'"):
        results.claim_rows([_row("fast", "1", "shown", chapter="09_nope")], STEMS)


def test_table_reads_the_chapters_records(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path))
    claims.record("fast", "04_vit_spectra", [_row("fast", "2.0", "shown")])
    claims.record(
        "fast",
        "06_language",
        [_row("fast", "0.1", "not shown at this scale", claim="rank rises", chapter="06_language")],
    )
    table = results.claims_table("fast", STEMS)
    assert len(table.rows) == 2 and results.tally(table) == {"shown": 1, "not shown at this scale": 1}
    assert '<a href="04_vit_spectra.html">04</a>' in table._repr_html_()
    assert "reference" not in table.columns
    assert table.title.endswith("no reference or paper scale runs stored")
    claims.record("fast", "06_language", [_row("paper", "0.2", "shown", claim="rank rises", chapter="06")])
    table = results.claims_table("fast", STEMS)
    assert table.columns[3:5] == ["fast (this build)", "paper scale"] and "no reference runs" in table.title
    # the page shows two tables: verdicts beside their claims, then each tier's measurement in its own row
    assert results.verdicts_table(table).columns == [results.CLAIM, results.VERDICT, "ch.", results.WHERE]
    listed = results.measurements(table)
    assert listed.items == [("Δ is low-rank", [("fast (this build)", "2.0"), ("paper scale", "not run")]),
                            ("rank rises", [("fast (this build)", "not run"), ("paper scale", "0.2")])]
    assert "<li><em>paper scale</em>: 0.2</li>" in listed._repr_html_()
    assert "  paper scale: 0.2" in str(listed)


def test_results_page_is_stale_when_a_chapter_records_claims_after_it(tmp_path, monkeypatch):
    nb = tmp_path / "notebooks"
    nb.mkdir()
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", nb)
    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "_build"))
    src = nb / "08_results.py"
    src.write_text('# %% tags=["parameters"]\nprofile: str = ""\n')
    out = runner.execute(src, "fast", progress=False).output
    assert runner.is_current(src, "fast")
    written = claims.record("fast", "04_vit_spectra", [_row("fast", "2.0", "shown")])
    later = time.time() + 5
    os.utime(written, (later, later))
    assert not runner.is_current(src, "fast")
    assert out.exists()


def test_combine_and_trend_verdicts():
    assert claims.combine(["shown", "shown"]) == claims.SHOWN
    assert claims.combine(["shown", "not shown at this scale"]) == claims.PARTLY
    assert claims.combine(["contradicted", "not shown at this scale"]) == claims.CONTRADICTED
    assert claims.combine([claims.CANNOT]) == claims.CANNOT
    assert claims.trend_verdict(4, 0, 6) == claims.SHOWN and claims.trend_verdict(3, 0, 6) == claims.NOT_SHOWN
    assert claims.trend_verdict(0, 4, 6) == claims.CONTRADICTED
    with pytest.raises(ValueError, match="at least one part"):
        claims.combine([])


def test_rule_change_table_counts_and_explains(tmp_path):
    """Before/after on the stored reference ViT seeds (results/): the old rule said 6 of 6 for ΔW_K W_Q^T."""
    from rankbook.analysis import calibration

    vit_runs = calibration.stored_runs()["reference ViT"]
    if len(vit_runs) < 3:
        pytest.skip("the three stored reference ViT seeds are not in results/")
    table = results.rule_change_table("fast", {("ViT", "reference"): vit_runs})
    records = table.records()
    starts = [i for i, r in enumerate(records) if r["product"]]
    assert len(starts) == 2, "one group of rows per product"
    qk, vo = records[:starts[1]], records[starts[1]:]
    assert qk[0]["model, tier"] == "ViT, reference, 3 seeds pooled"
    assert qk[0]["rises: old rule"] == "6 of 6 layers" and qk[0]["rises: new rule"] == "3 of 6 layers"
    assert len(qk) == 3, "one row per layer whose verdict changed (6 → 3 rising layers)"
    assert all(r["model, tier"] == "" and r["rises: old rule"] == "" for r in qk[1:])
    why = qk[0]["what changed and why"]
    assert why.startswith("layer 1: rises → flat") and "heads rise" in why
    assert vo[0]["rises: new rule"] == "6 of 6 layers"
    assert [r["what changed and why"] for r in vo] == ["nothing"]

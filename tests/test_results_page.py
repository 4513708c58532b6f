"""The results page's table: one row per claim, the tiers side by side, verdicts from the records, links."""
import os
import time

import pytest

from rankbook.analysis import claims
from rankbook.book import results, runner

STEMS = ["04_vit_spectra", "06_language"]


def _row(tier, measured, verdict, claim="Δ is low-rank", chapter="04_vit_spectra"):
    return claims.row(claim, "Fig. 1a", tier, measured, verdict, chapter)


def test_tiers_become_columns_and_the_largest_tier_gives_the_verdict():
    rows = [_row("fast", "stable rank 2.1", "holds"), _row("paper", "stable rank 1.3", "holds"),
            _row("fast", "0.4", "does not hold", claim="rank rises", chapter="06")]
    out = results.claim_rows(rows, STEMS)
    claimed = [r["claim (where in the paper)"] for r in out]
    assert claimed == ["Δ is low-rank (Fig. 1a)", "rank rises (Fig. 1a)"]
    first = out[0]
    assert first["fast (this build)"] == "stable rank 2.1" and first["reference"] == results.MISSING
    assert first["paper scale"] == "stable rank 1.3" and first["verdict"] == "holds (paper)"
    assert out[1]["verdict"] == "does not hold (fast)"
    assert out[1]["ch."].href == "06_language.html" and str(out[1]["ch."]) == "06"


def test_a_smaller_tier_that_disagrees_shows_its_own_verdict():
    out = results.claim_rows([_row("fast", "1.9", "does not hold"), _row("reference", "1.2", "holds")], STEMS)
    assert out[0]["fast (this build)"] == "1.9 (does not hold)" and out[0]["verdict"] == "holds (reference)"


def test_duplicates_and_unknown_chapters_are_refused():
    with pytest.raises(ValueError, match="recorded twice for tier fast"):
        results.claim_rows([_row("fast", "1", "holds"), _row("fast", "2", "holds")], STEMS)
    with pytest.raises(ValueError, match="names chapter '09_nope'"):
        results.claim_rows([_row("fast", "1", "holds", chapter="09_nope")], STEMS)


def test_table_reads_the_chapters_records(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path))
    claims.record("fast", "04_vit_spectra", [_row("fast", "2.0", "holds")])
    claims.record("fast", "06_language", [_row("fast", "0.1", "does not hold", claim="rank rises",
                                                chapter="06_language")])
    table = results.claims_table("fast", STEMS)
    assert len(table.rows) == 2 and results.tally(table) == {"holds": 1, "does not hold": 1}
    assert '<a href="04_vit_spectra.html">04</a>' in table._repr_html_()
    assert "reference" not in table.columns
    assert table.title.endswith("no reference or paper scale runs stored")
    claims.record("fast", "06_language", [_row("paper", "0.2", "holds", claim="rank rises", chapter="06")])
    table = results.claims_table("fast", STEMS)
    assert table.columns[1:3] == ["fast (this build)", "paper scale"] and "no reference runs" in table.title


def test_results_page_is_stale_when_a_chapter_records_claims_after_it(tmp_path, monkeypatch):
    nb = tmp_path / "notebooks"
    nb.mkdir()
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", nb)
    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "_build"))
    src = nb / "08_results.py"
    src.write_text('# %% tags=["parameters"]\nprofile: str = ""\n')
    out = runner.execute(src, "fast", progress=False).output
    assert runner.is_current(src, "fast")
    written = claims.record("fast", "04_vit_spectra", [_row("fast", "2.0", "holds")])
    later = time.time() + 5
    os.utime(written, (later, later))
    assert not runner.is_current(src, "fast")
    assert out.exists()

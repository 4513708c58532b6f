"""Tables keep their columns (padding, rules, alignment) and show numbers with sensible digits."""
import re

import numpy as np
import pytest

from rankbook.figures import tables
from rankbook.figures.tables import Link, Math, Table, format_column


def test_numbers_share_decimals_down_a_column_and_integers_stay_integers():
    assert format_column([0.5, 1.25, 12.0], 3) == ["0.50", "1.25", "12.00"]
    assert format_column([25, 3], 4) == ["25", "3"]
    assert format_column([2.5, np.float32(0.125)], 2) == ["2.50", "0.12"]
    assert format_column([float("nan"), float("inf"), 1.0], 3) == ["nan", "inf", "1.00"]


def test_far_apart_magnitudes_and_extremes():
    assert format_column([0.001234, 123.4], 3) == ["0.00123", "123"]
    assert format_column([1.5e-7, 2.0, 1.25], 3) == ["1.50e-07", "2.00", "1.25"]
    assert format_column([2.5e6], 2) == ["2.5e+06"]
    assert format_column([True, "x", None], 3) == ["True", "x", "None"]


def test_html_keeps_columns_apart_and_aligns_numbers_right():
    t = Table([{"coordinate": 25, "value": 2.5, "name": "qk"}], title="QK")
    h = t._repr_html_()
    cells = re.findall(r'<td style="([^"]*)">([^<]*)</td>', h)
    assert [c for _, c in cells] == ["25", "2.500", "qk"]
    styles = [s for s, _ in cells]
    assert all("padding" in s for s in styles)
    assert ["text-align:right" in s for s in styles] == [True, True, False]
    assert "text-align:left" in styles[2]
    assert "<caption" in h and "border-collapse" in h


def test_text_rendering_is_aligned_and_escaped_html():
    t = Table([{"a": 1, "b": "x<y"}, {"a": 100, "b": "z"}])
    lines = str(t).splitlines()
    assert lines[2] == "  1  x<y" and lines[3] == "100  z"
    assert "x&lt;y" in t._repr_html_()


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="has 1 cells for 2 columns"):
        Table([[1]], columns=["a", "b"])
    with pytest.raises(ValueError, match="give columns="):
        Table([[1, 2]])
    with pytest.raises(ValueError, match="digits=0"):
        Table([{"a": 1}], digits=0)


def test_link_cells_are_anchors_in_html_and_text_in_a_terminal():
    t = Table([{"chapter": Link("04 <ViT>", "04_vit_spectra.html")}])
    assert '<a href="04_vit_spectra.html">04 &lt;ViT&gt;</a>' in t._repr_html_()
    assert str(t).splitlines()[-1] == "04 <ViT>"


def test_long_cells_wrap_at_a_readable_measure_and_short_ones_never_wrap():
    long_text = "the stable rank rises in more than half of the layers, heads agreeing"
    h = Table([{"claim": long_text, "verdict": "shown"}])._repr_html_()
    cells = re.findall(r'<td style="([^"]*)">(.*?)</td>', h)
    (long_style, long_html), (short_style, short_html) = cells
    # the long cell wraps inside a box at least WRAP_MIN_EM wide (so never one word per line)
    assert f"min-width:{tables.WRAP_MIN_EM}em" in long_html and long_text in long_html
    assert "white-space:nowrap" in short_style and short_html == "shown"
    # the table is free to be wider than the page: its box scrolls instead of squeezing the columns
    assert 'class="rankbook-scroll"' in h and "overflow-x:auto" in h
    assert "max-width:100%" not in re.search(r'<table[^>]*style="([^"]*)"', h)[1]
    # a paragraph gets the full measure, so it is never squeezed to the minimum beside another long column
    paragraph = "word " * (tables.PARAGRAPH_CELL // 5 + 1)
    h = Table([{"claim": long_text, "measured": paragraph}])._repr_html_()
    (_, claim_html), (_, measured_html) = re.findall(r'<td style="([^"]*)">(.*?)</td>', h)
    assert f"width:{tables.WRAP_MAX_EM}em" in measured_html and "min-width" not in measured_html
    assert f"min-width:{tables.WRAP_MIN_EM}em" in claim_html


def test_math_cells_are_typeset_in_html_and_tex_in_text():
    t = Table([{"product": Math(r"\Delta W_K W_Q^\top", "ΔW_K W_Q^T"), "rank": 1.5}])
    assert r'<span class="math notranslate nohighlight">\(\Delta W_K W_Q^\top\)</span>' in t._repr_html_()
    assert "ΔW_K W_Q^T" in str(t)


def test_highlighted_rows_are_tinted_and_the_flags_must_match_the_rows():
    t = Table([{"a": 1}, {"a": 2}, {"a": 3}], highlight=[False, True, False])
    rows = re.findall(r"<tr[^>]*>", t._repr_html_().split("<tbody>", 1)[1])
    assert ["background" in r for r in rows] == [False, True, False]
    with pytest.raises(ValueError, match="2 flags for 3 rows"):
        Table([{"a": 1}, {"a": 2}, {"a": 3}], highlight=[True, False])


def test_product_names_in_headers_titles_and_cells_are_typeset_and_the_rest_escaped():
    from rankbook.figures import tables

    assert tables.typeset("a < b: ΔW_K W_Q^T") == (
        'a &lt; b: <span class="math notranslate nohighlight">\\(\\Delta W_K W_Q^\\top\\)</span>')
    assert "W_K W_Q^\\top" in tables.typeset("W_K W_Q^T") and "\\Delta" not in tables.typeset("W_K W_Q^T")
    html = tables.Table([{"ΔW_V W_O^T per head": 1.5, "note": "ΔW_Q fused"}], title="Δ(W_K W_Qᵀ) by layer")
    out = html._repr_html_()
    assert out.count('class="math') == 3 and "^T" not in out and "Qᵀ" not in out
    assert str(html).splitlines()[1].startswith("ΔW_V W_O^T per head")  # a terminal keeps the plain names

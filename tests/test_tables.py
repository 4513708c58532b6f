"""Tables keep their columns (padding, rules, alignment) and show numbers with sensible digits."""
import re

import numpy as np
import pytest

from rankbook.figures.tables import Link, Table, format_column


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

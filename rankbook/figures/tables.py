"""Small tables that render as styled HTML in notebooks and on the site, and as aligned text in a terminal.

The HTML carries its own inline styles (padding, rules, alignment, tabular
figures), so a table keeps its columns in Jupyter, Colab and the rendered
site alike, whatever the theme's CSS: a coordinate 25 and a value 2.5 never
run together as "252.5". Numbers are formatted per column with ``digits``
significant figures, the same decimals down a column so the points line up,
and scientific notation only for very large or very small magnitudes.
Numeric columns are right-aligned, text columns left-aligned.

Width: a short cell never wraps (``white-space:nowrap``), a long text cell
wraps at a readable measure (between :data:`WRAP_MIN_EM` and
:data:`WRAP_MAX_EM`), so no cell reads one word per line, and a paragraph
(over :data:`PARAGRAPH_CELL` characters) gets the full measure, so no row
grows taller than a screen. A table wider than
the page scrolls sideways inside its box (the site's stylesheet makes that
scroll bar visible) instead of squeezing its columns or being cut off.
Cells may hold :class:`Link` (a link to a page) and :class:`Math` (TeX that
MathJax typesets on the site and in Jupyter).
"""
from __future__ import annotations

import html
import math
import numbers
import re
from typing import Any, Iterable, Mapping, Sequence

#: magnitudes shown without an exponent: 1e-3 <= |x| < 1e6
_PLAIN = (-3, 6)
_TABLE_STYLE = ("border-collapse:collapse;margin:0.6em 0 1em;font-size:0.9em;"
                "font-variant-numeric:tabular-nums;width:auto")
#: a text cell longer than this many characters wraps, at a measure between WRAP_MIN_EM and WRAP_MAX_EM
LONG_CELL = 20
WRAP_MIN_EM, WRAP_MAX_EM = 14, 30
_HIGHLIGHT_STYLE = "background:#fff3cd"
_WRAP_STYLE = f"min-width:{WRAP_MIN_EM}em;max-width:{WRAP_MAX_EM}em;white-space:normal"
#: a text cell longer than this (a paragraph) gets the full measure, WRAP_MAX_EM: left to the table's
#: automatic layout it shrinks to WRAP_MIN_EM beside another long column and grows taller than a screen
PARAGRAPH_CELL = 160
_PARAGRAPH_STYLE = f"width:{WRAP_MAX_EM}em;white-space:normal"
_CAPTION_STYLE = "caption-side:top;text-align:left;font-weight:600;padding:0 0 0.35em"
_CELL_STYLE = "padding:0.3em 0.9em;border-bottom:1px solid #ddd;vertical-align:top;text-align:{align}"
_HEAD_STYLE = _CELL_STYLE + ";border-bottom:2px solid #888;font-weight:600;white-space:nowrap"


class Math:
    """A cell in TeX: typeset by MathJax in HTML (``\\(...\\)``), the TeX itself in a terminal."""

    def __init__(self, tex: str, text: str = ""):
        self.tex, self.text = tex, text or tex

    def __str__(self) -> str:
        return self.text

    def html(self) -> str:
        return f'<span class="math notranslate nohighlight">\\({html.escape(self.tex)}\\)</span>'


#: the book's names of the products as plain text (terminals, claims records) and in TeX: a table's headers,
#: title and text cells show them typeset on the site (MathJax), wherever they occur in the text
PRODUCT_TEX = {
    "ΔW_K W_Q^T": r"\Delta W_K W_Q^\top",
    "ΔW_V W_O^T": r"\Delta W_V W_O^\top",
    "Δ(W_K W_Qᵀ)": r"\Delta(W_K W_Q^\top)",
    "Δ(W_V W_Oᵀ)": r"\Delta(W_V W_O^\top)",
    "W_K W_Q^T": r"W_K W_Q^\top",
    "W_V W_O^T": r"W_V W_O^\top",
    "ΔW_Q": r"\Delta W_Q",
}
_PRODUCTS = re.compile("|".join(re.escape(k) for k in sorted(PRODUCT_TEX, key=len, reverse=True)))


def typeset(text: str) -> str:
    """``text`` as HTML, each product name in it (:data:`PRODUCT_TEX`) as MathJax inline math."""
    return _PRODUCTS.sub(lambda m: Math(PRODUCT_TEX[m.group(0)]).html(), html.escape(text))


class Link:
    """A cell that links to another page: ``<a href>`` in HTML, its text in a terminal."""

    def __init__(self, text: str, href: str):
        self.text, self.href = text, href

    def __str__(self) -> str:
        return self.text

    def html(self) -> str:
        return f'<a href="{html.escape(self.href, quote=True)}">{html.escape(self.text)}</a>'


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite_float(value: Any) -> bool:
    return _is_number(value) and not isinstance(value, numbers.Integral) and math.isfinite(float(value))


def _magnitude(x: float) -> int:
    return math.floor(math.log10(abs(x))) if x else 0


def _plain(x: float) -> bool:
    return not x or _PLAIN[0] <= _magnitude(x) < _PLAIN[1]


def _decimals(x: float, digits: int) -> int:
    """Decimals that show ``x`` with ``digits`` significant figures."""
    return max(0, digits - 1 - _magnitude(x))


def format_column(values: Sequence[Any], digits: int) -> list[str]:
    """Cells of one column: integers as they are, floats to ``digits`` significant figures."""
    # values of extreme magnitude get an exponent each; the others share decimals when their magnitudes
    # are close (the points line up), else each shows its own significant figures
    floats = [float(v) for v in values if _finite_float(v) and _plain(float(v))]
    mags = [_magnitude(x) for x in floats if x]
    # one number of decimals down the column when magnitudes are close; else each value its own
    # (the largest value gets at most one figure more than asked, so no false precision piles up)
    shared = None
    if not mags or max(mags) - min(mags) <= 2:
        shared = max((_decimals(x, digits) for x in floats), default=0)
        shared = min(shared, _decimals(max(floats, key=abs), digits) + 1) if floats else shared
    out = []
    for v in values:
        if isinstance(v, bool) or not _is_number(v):
            out.append(str(v))
        elif isinstance(v, numbers.Integral):
            out.append(str(int(v)))
        elif not math.isfinite(float(v)):
            out.append(str(float(v)))  # nan, inf, -inf
        elif not _plain(float(v)):
            out.append(f"{float(v):.{max(digits - 1, 0)}e}")
        else:
            out.append(f"{float(v):.{_decimals(float(v), digits) if shared is None else shared}f}")
    return out


class Table:
    """Rows of cells under named columns; displays itself in Jupyter as a styled HTML table."""

    def __init__(self, rows: Iterable[Mapping[str, Any] | Sequence[Any]],
                 columns: Sequence[str] | None = None, *, title: str = "", digits: int = 4,
                 highlight: Sequence[bool] | None = None):
        rows = list(rows)
        if columns is None:
            if rows and not isinstance(rows[0], Mapping):
                raise ValueError("give columns= when rows are sequences")
            columns = list(rows[0].keys()) if rows else []
        self.columns = list(columns)
        self.rows = [[r.get(c, "") for c in self.columns] if isinstance(r, Mapping) else list(r)
                     for r in rows]
        for r in self.rows:
            if len(r) != len(self.columns):
                raise ValueError(f"row {r!r} has {len(r)} cells for {len(self.columns)} columns")
        if digits < 1:
            raise ValueError(f"digits={digits}: need at least one significant figure")
        self.title = title
        self.digits = digits
        #: per row: shown on a tinted background in HTML (say in a column or the title what it marks)
        self.highlight = [bool(h) for h in highlight] if highlight is not None else [False] * len(self.rows)
        if len(self.highlight) != len(self.rows):
            raise ValueError(f"highlight has {len(self.highlight)} flags for {len(self.rows)} rows")

    def numeric(self) -> list[bool]:
        """Per column: whether every non-empty cell is a number (those columns are right-aligned)."""
        return [bool(col) and all(_is_number(v) for v in col if v != "")
                for col in ([r[i] for r in self.rows] for i in range(len(self.columns)))]

    def cells(self) -> list[list[str]]:
        by_column = [format_column([r[i] for r in self.rows], self.digits) for i in range(len(self.columns))]
        return [list(row) for row in zip(*by_column)] if self.rows else []

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]

    def __str__(self) -> str:
        cells, numeric = self.cells(), self.numeric()
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]

        def line(vals):
            cells = (v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric))
            return "  ".join(cells).rstrip()

        out = ([self.title] if self.title else []) + [line(self.columns), line(["-" * w for w in widths])]
        return "\n".join(out + [line(r) for r in cells]).rstrip()

    def _repr_html_(self) -> str:
        aligns = ["right" if n else "left" for n in self.numeric()]
        head = "".join(f'<th style="{_HEAD_STYLE.format(align=a)}">{typeset(c)}</th>'
                       for c, a in zip(self.columns, aligns))
        links = [[v.html() if isinstance(v, (Link, Math)) else None for v in r] for r in self.rows]
        body = "".join((f'<tr style="{_HIGHLIGHT_STYLE}">' if hl else "<tr>")
                       + "".join(_td(v, a, ln) for v, a, ln in zip(r, aligns, lr)) + "</tr>"
                       for r, lr, hl in zip(self.cells(), links, self.highlight))
        caption = (f'<caption style="{_CAPTION_STYLE}">{typeset(self.title)}</caption>'
                   if self.title else "")
        # a table wider than the page scrolls sideways instead of being cut off
        return (f'<div class="rankbook-scroll" style="overflow-x:auto;max-width:100%">'
                f'<table class="rankbook-table" style="{_TABLE_STYLE}">{caption}'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _td(text: str, align: str, markup: str | None) -> str:
    """One cell: short ones on one line, long text wrapped at a readable measure (never a word per line)."""
    style = _CELL_STYLE.format(align=align)
    content = markup or typeset(text)
    if len(text) > PARAGRAPH_CELL:
        return f'<td style="{style}"><div style="{_PARAGRAPH_STYLE}">{content}</div></td>'
    if len(text) > LONG_CELL:
        return f'<td style="{style}"><div style="{_WRAP_STYLE}">{content}</div></td>'
    return f'<td style="{style};white-space:nowrap">{content}</td>'

"""The book's one figure style: every figure of every chapter is made with :func:`figure` and :func:`finish`.

Chapters display figures with :func:`show` (or glue them with myst-nb). The
rules, set here once and checked by ``tests/test_style.py`` and the browser
test:

- **Sized for the content column.** A figure is at most :data:`COLUMN_IN`
  inches wide. It is drawn at :data:`DPI` = 96 dots per inch, the CSS pixel,
  and shown at that size, so one inch of figure is one inch of page and a
  9 pt label reads as 9 pt on screen. The site's text column is 688 CSS
  px at a 1280 px window (measured by the browser test), so a 672 px figure
  is never shrunk.
- **Text of at least** :data:`MIN_FONT_PT` **pt**: the rcParams below, and
  :func:`finish` raises any smaller text (a legend asked for at 7 pt) to it.
- **Few panels per row**: at most :data:`MAX_COLS` panels of at least
  :data:`MIN_PANEL_IN` inches side by side; a wider grid is folded onto
  more rows, and the axes keep the ``rows × cols`` shape the caller asked
  for, so ``axes[r, c]`` still means logical row r, column c.
- **2× PNG**: notebooks and the site get PNGs rendered at twice the
  resolution with their display size in the output's metadata ("retina").
- **Shown once**: figures live outside pyplot, so a kernel never displays
  one by itself; :func:`show` displays it, or ``glue(name, fig,
  display=False)`` hands it to a ``{glue:figure}`` caption (any cell tag).
- **Long titles and subtitles are wrapped** to the figure's width.
"""
from __future__ import annotations

import math
import re
import textwrap

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

#: width available to a figure: the site's text column is 688 CSS px at a 1280 px window (measured by the
#: browser test); 7 in at 96 CSS px per inch = 672 px, so a figure is never shrunk there
COLUMN_IN = 7.0
DPI = 96
MIN_FONT_PT = 9.0
MIN_PANEL_IN = 2.3
MAX_COLS = max(1, int(COLUMN_IN // MIN_PANEL_IN))  # 3
#: the rcParams of every figure (text sizes in points, as displayed)
RC = {
    "figure.dpi": DPI, "savefig.dpi": DPI, "figure.facecolor": "white", "savefig.facecolor": "white",
    "font.size": 10.0, "axes.titlesize": 10.0, "axes.labelsize": 10.0, "xtick.labelsize": 9.0,
    "ytick.labelsize": 9.0, "legend.fontsize": 9.0, "figure.titlesize": 10.5, "axes.grid": True,
    "grid.alpha": 0.3, "lines.linewidth": 1.6, "legend.framealpha": 0.85, "savefig.pad_inches": 0.05,
}
matplotlib.rcParams.update(RC)


def layout(rows: int, cols: int, width: float | None = None, height: float | None = None) -> dict:
    """Where panels go: physical grid, panel size and figure size (inches) for a logical ``rows × cols``."""
    if rows < 1 or cols < 1:
        raise ValueError(f"figure({rows}, {cols}): a figure needs at least one row and one column")
    folds = math.ceil(cols / MAX_COLS)  # physical rows per logical row
    per_row = math.ceil(cols / folds)  # balanced: 4 panels as 2 + 2, not 3 + 1
    panel_w = min(width or COLUMN_IN / per_row, COLUMN_IN / per_row)
    if width and height:
        panel_h = height * panel_w / width  # narrowed panels keep the caller's aspect ratio
    else:
        panel_h = height or max(0.75 * panel_w, 1.8)
    return {"grid": (rows * folds, per_row), "folds": folds, "panel": (panel_w, panel_h),
            "size": (panel_w * per_row, panel_h * rows * folds)}


def figure(rows: int = 1, cols: int = 1, *, width: float | None = None, height: float | None = None,
           **subplots_kw):
    """A figure of ``rows × cols`` panels; returns ``(fig, axes)`` with ``axes`` shaped ``(rows, cols)``.

    ``width`` and ``height`` are the panel size the caller would like (inches);
    panels are narrowed to fit the column (keeping their aspect ratio) and a
    row of more than :data:`MAX_COLS` panels is folded onto several rows.
    ``sharex``/``sharey`` (True, "row", "col") keep their meaning for the
    logical grid.
    """
    plan = layout(rows, cols, width, height)
    sharex, sharey = subplots_kw.pop("sharex", False), subplots_kw.pop("sharey", False)
    prows, pcols = plan["grid"]
    # outside pyplot: the kernel never shows it by itself (a glued figure appears once, where its caption
    # is), and it is freed with its last reference
    fig = Figure(figsize=plan["size"], dpi=DPI)
    FigureCanvasAgg(fig)
    grid = fig.subplots(prows, pcols, squeeze=False, **subplots_kw)
    axes = np.empty((rows, cols), dtype=object)
    for r in range(rows):
        for c in range(cols):
            axes[r, c] = grid[r * plan["folds"] + c // pcols, c % pcols]
    used = {id(ax) for ax in axes.flat}
    for ax in grid.flat:
        if id(ax) not in used:
            ax.set_axis_off()
    _share(axes, sharex, "x")
    _share(axes, sharey, "y")
    return fig, axes


def _share(axes: np.ndarray, how, axis: str) -> None:
    """Share x or y limits across the logical grid: True/"all", "row" or "col" (as plt.subplots)."""
    if how in (False, None, "none"):
        return
    groups = {True: [list(axes.flat)], "all": [list(axes.flat)], "row": [list(r) for r in axes],
              "col": [list(c) for c in axes.T]}.get(how)
    if groups is None:
        raise ValueError(f"share{axis}={how!r}: use True, 'all', 'row', 'col' or False")
    for group in groups:
        for ax in group[1:]:
            getattr(ax, f"share{axis}")(group[0])


def wrap(text: str, width_in: float, font_pt: float) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches at ``font_pt`` (about 0.5 em per character)."""
    chars = max(20, int(width_in * 72 / (0.52 * font_pt)))
    # never inside $...$: a line holding one "$" is drawn as raw TeX ("$W_K W_Q^\tops 7.8" in a legend);
    # textwrap breaks only at ASCII whitespace, so a math span's spaces become no-break spaces meanwhile
    def keep(part: str) -> str:
        return re.sub(r"\$[^$]*\$", lambda m: m.group(0).replace(" ", "\u00a0"), part)

    lines = (textwrap.fill(keep(part), chars, break_long_words=False) for part in text.split("\n"))
    return "\n".join(lines).replace("\u00a0", " ")


def finish(fig, title: str, subtitle: str = "", *, min_font: float = MIN_FONT_PT):
    """Title (and a subtitle stating data, profile and settings) wrapped to the figure's width, no text under
    ``min_font`` points, tight layout; returns ``fig``."""
    width_in = fig.get_size_inches()[0]
    size = matplotlib.rcParams["figure.titlesize"]
    text = _fitted_title(fig, title, subtitle, size, width_in)
    # grow the figure by the title's lines so the panels keep their height
    w, h = fig.get_size_inches()
    fig.set_size_inches(w, h + (text.count("\n") + 1) * size * 1.3 / 72)
    enforce_min_font(fig, min_font)
    fig.tight_layout()
    fit_column(fig)
    return fig


def _fitted_title(fig, title: str, subtitle: str, size: float, width_in: float) -> str:
    """Set the title block wrapped so that, as saved (2x), no line is wider than the figure: the wrap width
    starts from an estimate and shrinks while the measured block is too wide (wide glyphs, long words)."""
    limit = min(width_in, COLUMN_IN - 2 * matplotlib.rcParams["savefig.pad_inches"]) - 0.05
    chars_w = width_in
    for _ in range(10):
        text = wrap(title, chars_w, size) + (f"\n{wrap(subtitle, chars_w, size)}" if subtitle else "")
        fig.suptitle(text, fontsize=size)
        if _text_width_in(fig, fig._suptitle) <= limit:
            break
        chars_w *= 0.9
    return text


def _text_width_in(fig, text) -> float:
    dpi = fig.dpi
    fig.set_dpi(2 * DPI)  # measured as the 2x PNG renders it
    try:
        return text.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
    finally:
        fig.set_dpi(dpi)


def fit_column(fig, column_in: float = COLUMN_IN) -> None:
    """Narrow ``fig`` until what is saved (its tight box, legends or labels outside the axes included, plus
    the saving pad on each side) is no wider than the column, so the page never shrinks it (and its text)."""
    renderer = fig.canvas.get_renderer()
    column_in -= 2 * matplotlib.rcParams["savefig.pad_inches"]
    for legend in list(fig.legends):  # a figure-wide legend wider than the column: fewer entries per row
        width = legend.get_window_extent(renderer).width / fig.dpi
        if width > column_in and legend._ncols > 1:
            ncols = max(1, int(legend._ncols * column_in / width))
            handles, labels = legend.legend_handles, [t.get_text() for t in legend.texts]
            loc, frameon = legend._loc, legend.get_frame_on()
            legend.remove()
            fig.legend(handles, labels, loc=loc, ncols=ncols, frameon=frameon)
    for _ in range(5):
        extent = _saved_width_in(fig)
        if extent <= column_in + 0.01:
            return
        w, h = fig.get_size_inches()
        fig.set_size_inches(max(w - (extent - column_in) - 0.02, 1.0), h)
        fig.tight_layout()


def enforce_min_font(fig, min_font: float = MIN_FONT_PT) -> None:
    """Raise every text of ``fig`` (titles, labels, ticks, legends, annotations) to at least ``min_font``."""
    for ax in fig.axes:  # tick labels exist only once asked for
        ax.tick_params(labelsize=max(min_font, matplotlib.rcParams["xtick.labelsize"]))
    for text in fig.findobj(Text):
        if text.get_fontsize() < min_font:
            text.set_fontsize(min_font)


def _saved_width_in(fig) -> float:
    """Width (inches) of what the 2× PNG holds: text is measured at that resolution (hinting makes it ~2%
    wider than at 96 dpi), the saving pad left out."""
    dpi = fig.dpi
    fig.set_dpi(2 * DPI)
    try:
        return fig.get_tightbbox(fig.canvas.get_renderer()).width
    finally:
        fig.set_dpi(dpi)


def font_sizes(fig) -> list[float]:
    """The size of every visible, non-empty text of ``fig`` after drawing (for tests)."""
    fig.canvas.draw()
    return [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def show(fig) -> None:
    """Display ``fig`` in the notebook as a 2× PNG (nothing headless) and free it."""
    from IPython.display import display

    display(fig)
    plt.close(fig)


def _use_retina() -> None:
    """In a kernel, make figures (shown or glued) 2× PNGs with their display size in the metadata."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


_use_retina()

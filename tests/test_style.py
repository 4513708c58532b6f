"""The figure style: fits the content column, folds wide grids, no text under 9 pt, wrapped titles, 2× PNG."""
import base64
import struct

import matplotlib
import numpy as np
import pytest

from rankbook.figures import style

PX_PER_IN = 96  # CSS pixels per inch: the figure is shown at its own size


@pytest.fixture(autouse=True)
def _close():
    yield
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize("cols,width", [(1, None), (2, 5.0), (3, 3.6), (4, None), (8, 3.0)])
def test_figure_fits_the_column_and_keeps_the_logical_grid(cols, width):
    fig, axes = style.figure(2, cols, width=width, height=2.8 if width else None)
    w, h = fig.get_size_inches()
    assert w <= style.COLUMN_IN + 1e-9 and w * PX_PER_IN <= 672 + 1e-6
    assert axes.shape == (2, cols)
    assert len({id(a) for a in axes.flat}) == 2 * cols
    per_row = len({round(a.get_position().x0, 3) for a in axes.flat})
    assert per_row <= style.MAX_COLS
    panel_w = w / min(cols, style.MAX_COLS)
    assert panel_w >= min(style.MIN_PANEL_IN, width or style.MIN_PANEL_IN) - 1e-9


def test_wide_grid_folds_in_order_and_switches_off_spare_panels():
    assert style.layout(1, 4)["grid"] == (2, 2)
    fig, axes = style.figure(1, 5)
    assert style.layout(1, 5)["grid"] == (2, 3)
    # logical order reads left to right, then onto the next physical row
    x0 = [a.get_position().x0 for a in axes[0]]
    y0 = [a.get_position().y0 for a in axes[0]]
    assert x0[0] < x0[1] < x0[2] and y0[0] == y0[2] > y0[3] == y0[4] and x0[3] < x0[4]
    spare = [a for a in fig.axes if a not in list(axes.flat)]
    assert len(spare) == 1 and not any(a.axison for a in spare)


def test_sharey_row_shares_within_a_logical_row_only():
    fig, axes = style.figure(2, 4, sharey="row")
    axes[0, 0].plot([0, 1], [0, 10])
    axes[1, 0].plot([0, 1], [0, 1])
    assert axes[0, 3].get_ylim() == axes[0, 0].get_ylim()
    assert axes[1, 3].get_ylim() != axes[0, 0].get_ylim()
    with pytest.raises(ValueError, match="sharex='diagonal'"):
        style.figure(1, 2, sharex="diagonal")
    with pytest.raises(ValueError, match="at least one row"):
        style.figure(0, 2)


def test_finish_raises_small_text_and_wraps_long_subtitles(recwarn):
    fig, axes = style.figure(1, 3)
    for ax in axes.flat:
        ax.plot(np.arange(10), label="a series")
        ax.set_title("panel", fontsize=6)
        ax.legend(fontsize=7)
    subtitle = "CIFAR-10, fast profile, " + ", ".join(f"setting_{i} = {i}" for i in range(30))
    style.finish(fig, "A title", subtitle)
    sizes = style.font_sizes(fig)
    assert sizes and min(sizes) >= style.MIN_FONT_PT
    title = fig._suptitle
    assert title.get_text().count("\n") >= 2, "a 400-character subtitle must be wrapped"
    renderer = fig.canvas.get_renderer()
    assert title.get_window_extent(renderer).width <= fig.bbox.width + 1
    assert not [w for w in recwarn if "Tight layout not applied" in str(w.message)]
    # the title block sits above the panels
    assert max(a.get_position().y1 for a in fig.axes) < title.get_window_extent(renderer).y0 / fig.bbox.height


def test_a_legend_outside_the_axes_still_fits_the_column():
    fig, axes = style.figure(1, 2)
    for ax in axes.flat:
        for i in range(6):
            ax.plot([0, i], label=f"a rather long legend entry {i}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6)
    axes[0, 1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    style.finish(fig, "t")
    assert fig.legends[0]._ncols < 6
    assert _shown_width(fig) <= 672, "what the page shows must fit the 672 px column"
    fig, axes = style.figure(1, 3)  # a subtitle of wide glyphs: the estimate alone would overflow
    axes[0, 0].plot([0, 1])
    style.finish(fig, "MMMM WWWW " * 8, "WIDE MW " * 30)
    assert _shown_width(fig) <= 672
    fig, axes = style.figure(1, 1, width=7.0, height=3.0)  # a note that sticks out of the figure's edge
    axes[0, 0].plot([0, 1])
    fig.text(0.98, 0.5, "a note placed at the edge", ha="left")
    style.finish(fig, "t")
    assert 600 <= _shown_width(fig) <= 672


def test_figures_live_outside_pyplot_so_a_kernel_never_shows_them_by_itself():
    fig, _ = style.figure(1, 2)
    assert not matplotlib.pyplot.get_fignums() and fig.canvas.get_renderer() is not None


def _shown_width(fig) -> float:
    from IPython.core.formatters import format_display_data
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance()
    style._use_retina()
    return format_display_data(fig)[1]["image/png"]["width"]


def test_notebook_output_is_a_2x_png_shown_at_the_figure_size():
    from IPython.core.formatters import format_display_data
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance()
    style._use_retina()
    fig, axes = style.figure(1, 2)
    axes[0, 0].plot([0, 1])
    style.finish(fig, "t")
    data, meta = format_display_data(fig)
    png = base64.b64decode(data["image/png"]) if isinstance(data["image/png"], str) else data["image/png"]
    px_w, px_h = struct.unpack(">II", png[16:24])
    shown_w = meta["image/png"]["width"]
    assert px_w in (2 * shown_w, 2 * shown_w + 1), "a retina PNG has twice the pixels of its display width"
    assert shown_w <= 672


def test_every_figure_goes_through_the_style():
    """No module or chapter makes its own figure (plt.subplots, plt.figure, figsize) or asks small text."""
    import re

    from rankbook.store import paths

    banned = re.compile(r"plt\.subplots\(|plt\.figure\(|figsize="
                        r"|fontsize=[0-8](\.\d*)?\b|set_fontsize\([0-8]\b")
    files = [p for p in (paths.REPO_ROOT / "rankbook").rglob("*.py") if p.name != "style.py"]
    files += sorted((paths.REPO_ROOT / "notebooks").glob("*.py"))
    found = [f"{p.relative_to(paths.REPO_ROOT)}:{n}: {line.strip()}" for p in files
             for n, line in enumerate(p.read_text().splitlines(), 1) if banned.search(line)]
    assert not found, "make figures with rankbook.figures.style (figure/finish/show):\n" + "\n".join(found)


def test_wrap_never_breaks_inside_math():
    """A legend line holding one '$' is drawn as raw TeX: each wrapped line keeps its math spans whole."""
    from rankbook.figures import style

    text = (r"off the axes: at init $W_K W_Q^\top$ 7.8, $W_V W_O^\top$ 7.5; random, rank 2·d_head: 11.3 "
            r"and once more $W_V W_O^\top$ at the end")
    lines = style.wrap(text, 2.0, 9).split("\n")
    assert len(lines) > 2 and all(line.count("$") % 2 == 0 for line in lines)
    assert " ".join(lines) == text

"""The book's one figure style: every figure of every chapter is made with :func:`figure` and :func:`finish`.

Chapters display figures with :func:`show`. The sizes, fonts and output
format are set here once, so a change of style is a change of this module.
"""
from __future__ import annotations

import matplotlib.pyplot as plt


def figure(rows: int = 1, cols: int = 1, *, width: float = 4.2, height: float = 3.3, **subplots_kw):
    """A figure of ``rows × cols`` panels (each ``width × height`` inches), white background; returns (fig, axes)."""
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, **subplots_kw)
    fig.patch.set_facecolor("white")
    return fig, axes


def finish(fig, title: str, subtitle: str = ""):
    """Title line (and a subtitle stating data, profile and settings), tight layout; returns ``fig``."""
    fig.suptitle(f"{title}\n{subtitle}" if subtitle else title, fontsize=10)
    fig.tight_layout()
    return fig


def show(fig) -> None:
    """Display ``fig`` in the notebook (or nothing headless) and free it."""
    from IPython.display import display

    display(fig)
    plt.close(fig)

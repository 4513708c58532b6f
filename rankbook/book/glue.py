"""``glue(name, value)``: hand a number, text or figure to the page's prose (myst-nb's glue, without myst-nb).

Chapters write ``from rankbook.book.glue import glue`` rather than ``from
myst_nb import glue``: the output is the same (myst-nb's format, read by the
site build), but a chapter opened in Colab or a plain Jupyter does not need
myst-nb and Sphinx installed to run. ``tests/test_glue.py`` checks that both
write the same output.
"""
from __future__ import annotations

from typing import Any

#: the MIME prefix myst-nb reads back (``myst_nb.ext.glue.GLUE_PREFIX``)
GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, variable: Any, display: bool = True) -> None:
    """Store ``variable``'s display data in the cell's output under ``name`` (``display``: show it too)."""
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    mimebundle, metadata = format_display_data(variable)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = dict(name=name, mime_prefix=prefix)
    ipy_display({prefix + k: v for k, v in mimebundle.items()}, raw=True, metadata=metadata)


def glue_all(prefix: str, numbers: dict[str, Any]) -> None:
    """``glue(f"{prefix}_{key}", value, display=False)`` for every item (text for ``{glue:text}``)."""
    for key, value in numbers.items():
        glue(f"{prefix}_{key}", value, display=False)

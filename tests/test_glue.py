"""rankbook.book.glue writes what myst-nb's glue writes (the site reads it back), without myst-nb."""
import pytest

from rankbook.book import glue as rb_glue
from rankbook.figures import style


@pytest.fixture
def captured(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance()
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append((a, k)))
    monkeypatch.setattr("myst_nb.ext.glue.ipy_display", lambda *a, **k: shown.append((a, k)))
    return shown


@pytest.mark.parametrize("display", [False, True])
def test_same_output_as_myst_nb(captured, display):
    from myst_nb import glue as myst_glue
    from myst_nb.ext.glue import GLUE_PREFIX

    assert rb_glue.GLUE_PREFIX == GLUE_PREFIX
    fig, axes = style.figure(1, 1)
    axes[0, 0].plot([0, 1])
    for value in ("1.23", 4.5, fig):
        rb_glue.glue("ch99_x", value, display=display)
        myst_glue("ch99_x", value, display=display)
    ours, theirs = captured[0::2], captured[1::2]
    assert ours == theirs and len(ours) == 3
    keys = set(ours[0][0][0])
    assert keys == ({GLUE_PREFIX + "text/plain"} if not display else {"text/plain"})


def test_glue_all_prefixes_names(captured):
    rb_glue.glue_all("ch99", {"a": "1", "b": "2"})
    names = [k["metadata"]["scrapbook"]["name"] for _, k in captured]
    assert names == ["ch99_a", "ch99_b"]

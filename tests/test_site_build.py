"""The site build renders what chapters use, from executed copies with execution off: glued figures with
captions numbered by chapter (Fig. 2.1), glued text, {numref}, admonitions, folded (hide-input) cells under
their labels, folded source listings, a widget's static fallback; warnings are errors.

:func:`build_demo` builds a two-chapter demo book (about 40 s on two cores) that holds every kind of
content the browser checks care about (a wide table, long text cells, a long output line, math in prose
and in a table cell, figures); ``tests/test_site_browser.py`` opens it at 390 and 1280 px as well.
"""
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from rankbook.book import runner, site
from rankbook.store import paths

CHAPTER = '''# %% [markdown]
# # Demo chapter {n}
#
# The stable rank ends at {{glue:text}}`ch0{n}_rank`, as {{numref}}`fig-ch0{n}-demo` shows; the product
# $\\Delta W_K W_Q^\\top$ is typeset, and so is
#
# $$ \\operatorname{{srank}}(W) = \\frac{{\\|W\\|_F^2}}{{\\|W\\|_2^2}}. $$

# %% tags=["parameters"]
profile: str = ""

# %% tags=["hide-input"] mystnb={{"code_prompt_show": "Imports and settings"}}
from rankbook.book.glue import glue
from rankbook.book.source import show_source
from rankbook.figures import style
from rankbook.figures.tables import Math, Table

fig, axes = style.figure(1, 2)
axes[0, 0].plot([1, 2, 3])
axes[0, 1].plot([3, 1, 2])
style.finish(fig, "A demo figure", "fast profile")
glue("ch0{n}_fig", fig, display=False)
glue("ch0{n}_rank", f"{{1.2345:.2f}}", display=False)

# %% [markdown]
# ```{{glue:figure}} ch0{n}_fig
# :name: "fig-ch0{n}-demo"
#
# A captioned demo; the analogue of the paper's Fig. 1a (v1) at the fast profile.
# ```
#
# ```{{admonition}} Paper
# The paper's claim.
# ```

# %%
Table([{{"claim (where in the paper)": "the perturbation's stable rank rises through training in every "
          "layer, with the heads agreeing (Fig. 12, v1)", "product": Math(r"\\Delta W_K W_Q^\\top"),
          "fast": "rises in 5 of 6 layers, sign test p = 0.03 over 24 heads",
          "reference": "rises in 6 of 6 layers, sign test p = 0.002 over 24 heads pooled over seeds",
          "paper scale": "rises in 6 of 6 layers (one seed)", "verdict": "shown", "a": 1.5, "b": 2.25,
          "c": 3.125, "alpha = 1e-32": 0.0001}}], title="A wide table")

# %%
print("a long output line: " + " ".join(f"value_{{i}}={{i * 1.5:.3f}}" for i in range(40)))

# %% tags=["hide-input"]
show_source(style.wrap)
'''


def build_demo(root: Path, monkeypatch) -> Path:
    """Build the demo book under ``root`` (chapters 01 and 02, numbered like the book); returns its HTML."""
    book = root / "book root"
    (book / "notebooks").mkdir(parents=True)
    shutil.copy2(paths.REPO_ROOT / "_config.yml", book / "_config.yml")
    shutil.copytree(paths.REPO_ROOT / "book", book / "book")
    (book / "book" / "intro.md").write_text("# Demo book\n\nSee {doc}`../notebooks/01_demo`; "
                                            "{cite:t}`boixadsera2023transformers`.\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: Demo\n"
                                   "    numbered: 1\n    chapters:\n      - file: notebooks/01_demo\n"
                                   "      - file: notebooks/02_demo\n"
                                   "  - caption: Reference\n    chapters:\n      - file: book/references\n")
    for n in (1, 2):
        (book / "notebooks" / f"0{n}_demo.py").write_text(CHAPTER.format(n=n))
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", book / "notebooks")
    monkeypatch.setattr(site, "BOOK_ROOT", book)
    monkeypatch.setenv("RANKBOOK_BUILD", str(book / "_build"))
    for n in (1, 2):
        assert runner.execute(book / "notebooks" / f"0{n}_demo.py", "fast", progress=False).status == "ok"
    return site.build("fast", strict=True)


@pytest.mark.slow
def test_glue_numref_admonitions_and_folded_cells_render(tmp_path, monkeypatch):
    out = build_demo(tmp_path, monkeypatch)
    html = (out / "notebooks" / "02_demo.html").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))
    # numbered by chapter: chapter 2's first figure is Fig. 2.1, never a bare number like the paper's
    assert "The stable rank ends at 1.23, as Fig. 2.1 shows;" in text
    assert re.search(r'<figure[^>]*id="fig-ch02-demo"', html)
    assert re.search(r"Fig\. 2\.1\s*</span>\s*<span[^>]*>\s*A captioned demo", html)
    plots = re.findall(r'<img[^>]*src="\.\./_images/[^"]*"[^>]*>', html)
    assert len(plots) == 1, "a glued figure appears once: in its captioned figure, not again in the cell"
    assert 'class="admonition' in html and "The paper’s claim." in html
    assert "tag_hide-input" in html  # the plumbing cell is folded, not removed
    # folded cells carry their labels, not "Show code cell source"
    prompts = re.findall(r'<p class="collapsed admonition-title">([^<]*)</p>', html)
    assert prompts[:2] == ["Parameters", "Imports and settings"], prompts
    # the source listing (an output) is folded too: inside a closed <details>
    listing = re.search(r'<details class="rankbook-source">(.*?)</details>', html, re.S)
    assert listing and "def wrap(" in re.sub(r"<[^>]+>", "", listing[1])
    assert "def wrap(" not in re.sub(r'<details class="rankbook-source">.*?</details>', "", html, flags=re.S)
    assert "_static/mathjax/tex-mml-chtml.js" in html and "rankbook.css" in html
    assert (out / "_static" / "rankbook.css").exists()
    refs = (out / "book" / "references.html").read_text()
    assert "arxiv.org/abs/2306.07042" in refs, "the bibliography links the paper's arXiv page"
    assert not re.search(r"\[[A-Z][A-Za-z+]*\d\d\]", refs), "alpha labels like [BAdseraLA+23] in the list"
    assert "Boix-Adserà et al., 2023" in refs, "the list's labels are author-year, like the text"
    assert "Vaswani" not in refs, ":filter: cited lists only what is cited"


def test_for_site_labels_the_parameters_cell_and_shows_a_widgets_static_fallback(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("profile: str = ''", metadata={"tags": ["parameters"]})
    widget = nbformat.v4.new_code_cell("panel")
    widget.outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": "VBox()", "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
        "text/html": '<div class="rankbook-static-widget">first view</div>'})]
    bare = nbformat.v4.new_code_cell("other")
    bare.outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": "VBox()", "application/vnd.jupyter.widget-view+json": {"model_id": "y"}})]
    nb.cells = [params, widget, bare]
    nbformat.write(nb, tmp_path / "in.ipynb")
    site.for_site(tmp_path / "in.ipynb", tmp_path / "out.ipynb")
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert "hide-input" in out.cells[0].metadata.tags
    assert out.cells[0].metadata.mystnb["code_prompt_show"] == "Parameters"
    assert set(out.cells[1].outputs[0].data) == {"text/plain", "text/html"}
    # a widget with no fallback is left as it is (nothing to show instead)
    assert "application/vnd.jupyter.widget-view+json" in out.cells[2].outputs[0].data

"""The site build renders what chapters use, from executed copies with execution off: glued figures with
numbered captions, glued text, {numref}, admonitions, folded (hide-input) cells; warnings are errors."""
import re
import shutil

import pytest

from rankbook.book import runner, site
from rankbook.store import paths

CHAPTER = '''# %% [markdown]
# # Demo chapter
#
# The stable rank ends at {glue:text}`ch01_rank`, as {numref}`fig-ch01-demo` shows.

# %% tags=["parameters"]
profile: str = ""

# %% tags=["hide-input"]
from rankbook.book.glue import glue

from rankbook.figures import style

fig, axes = style.figure(1, 2)
axes[0, 0].plot([1, 2, 3])
style.finish(fig, "A demo figure", "fast profile")
glue("ch01_fig", fig, display=False)
glue("ch01_rank", f"{1.2345:.2f}", display=False)

# %% [markdown]
# ```{glue:figure} ch01_fig
# :name: "fig-ch01-demo"
#
# A captioned demo; reproduces the paper's Fig. 1a.
# ```
#
# ```{admonition} Paper
# The paper's claim.
# ```
'''


@pytest.mark.slow
def test_glue_numref_admonitions_and_folded_cells_render(tmp_path, monkeypatch):
    book = tmp_path / "book root"
    (book / "notebooks").mkdir(parents=True)
    shutil.copy2(paths.REPO_ROOT / "_config.yml", book / "_config.yml")
    shutil.copytree(paths.REPO_ROOT / "book", book / "book")
    (book / "book" / "intro.md").write_text("# Demo book\n\nSee {doc}`../notebooks/01_demo`.\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: Demo\n"
                                   "    chapters:\n      - file: notebooks/01_demo\n"
                                   "      - file: book/references\n")
    (book / "notebooks" / "01_demo.py").write_text(CHAPTER)
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", book / "notebooks")
    monkeypatch.setattr(site, "BOOK_ROOT", book)
    monkeypatch.setenv("RANKBOOK_BUILD", str(book / "_build"))
    assert runner.execute(book / "notebooks" / "01_demo.py", "fast", progress=False).status == "ok"
    html = (site.build("fast", strict=True) / "notebooks" / "01_demo.html").read_text()
    text = re.sub(r"<[^>]+>", "", html)
    assert "The stable rank ends at 1.23, as Fig. 1 shows." in re.sub(r"\s+", " ", text)
    assert re.search(r'<figure[^>]*id="fig-ch01-demo"', html)
    plots = re.findall(r'<img[^>]*src="\.\./_images/[^"]*"[^>]*>', html)
    assert len(plots) == 1, "a glued figure appears once: in its captioned figure, not again in the cell"
    assert re.search(r"width: (\d+)px", plots[0]) and int(re.search(r"width: (\d+)px", plots[0])[1]) <= 672
    assert re.search(r"Fig\. 1\s*</span>\s*<span[^>]*>\s*A captioned demo", html)
    assert 'class="admonition' in html and "The paper’s claim." in html
    assert "tag_hide-input" in html  # the plumbing cell is folded, not removed
    assert "_static/mathjax/tex-mml-chtml.js" in html

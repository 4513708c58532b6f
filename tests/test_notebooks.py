"""Every notebook source has an output-free .ipynb twin in sync, and a typed parameters cell."""
import json

import jupytext
import papermill
import pytest
import yaml

from rankbook.book import runner
from rankbook.store import paths

SOURCES = runner.available()


def _code_cells(nb):
    return [c.source.strip() for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks():
    assert [p.stem for p in SOURCES][:1] == ["00_setup"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_twin_in_sync_and_without_outputs(source):
    twin = source.with_suffix(".ipynb")
    assert twin.exists(), f"{twin.name} missing: run jupytext --sync {source}"
    raw = json.loads(twin.read_text())
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{twin.name} has outputs"
    py, ipynb = jupytext.read(source), jupytext.read(twin)
    assert [c.source.strip() for c in py.cells] == [c.source.strip() for c in ipynb.cells], \
        f"{twin.name} differs from {source.name}: run jupytext --sync {source}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_parameters_cell_is_typed_and_has_profile(source):
    params = papermill.inspect_notebook(str(source.with_suffix(".ipynb")))
    assert "profile" in params
    assert params["profile"]["inferred_type_name"] == "str"
    untyped = [k for k, v in params.items() if v["inferred_type_name"] == "None"]
    assert not untyped, f"parameters without a type annotation: {untyped}"


def test_toc_lists_every_notebook_and_every_entry_exists():
    toc = yaml.safe_load((paths.REPO_ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        matches = list(paths.REPO_ROOT.glob(f + ".*"))
        assert matches, f"toc entry {f} has no file"
    listed = {f for f in files if f.startswith("notebooks/")}
    assert listed == {f"notebooks/{p.stem}" for p in SOURCES}


def test_template_is_a_chapter_shape_kept_out_of_the_book():
    template = paths.REPO_ROOT / "notebooks" / "_template.py"
    assert template.exists() and template not in SOURCES
    toc = (paths.REPO_ROOT / "_toc.yml").read_text()
    assert "_template" not in toc
    cells = jupytext.read(template).cells
    tags = [set(c.metadata.get("tags", [])) for c in cells]
    assert {"parameters"} in tags and any("colab-setup" in t for t in tags)
    assert any("{glue:figure}" in c.source for c in cells if c.cell_type == "markdown")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebooks_define_no_functions_or_classes(source):
    """Notebooks tell the story; rankbook holds the logic (CONTRIBUTING.md, "A chapter's shape")."""
    import ast

    for cell in jupytext.read(source).cells:
        if cell.cell_type == "code":
            lines = cell.source.splitlines()
            code = "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))
            defined = [n.name for n in ast.walk(ast.parse(code))
                       if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
            assert not defined, f"{source.name} defines {defined} in a cell: move them into rankbook/"


#: the labels of a chapter's first folded cells on the site (myst-nb's per-cell ``code_prompt_show``)
FIRST_CELL_LABELS = {"parameters": "Parameters", "imports": "Imports and settings"}


def _first_cell_labels(path):
    """(label of the parameters cell, label of the first hide-input code cell after it) of a notebook."""
    cells = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
    params = next((i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])), None)
    assert params is not None, f"{path.name} has no parameters cell"
    label = lambda c: c.metadata.get("mystnb", {}).get("code_prompt_show")  # noqa: E731
    folded = next((c for c in cells[params + 1:] if "hide-input" in c.metadata.get("tags", [])), None)
    return label(cells[params]), (label(folded) if folded is not None else FIRST_CELL_LABELS["imports"])


@pytest.mark.parametrize("source", SOURCES + [paths.REPO_ROOT / "notebooks" / "_template.py"],
                         ids=lambda p: p.stem)
def test_first_cells_are_labelled_parameters_and_imports(source):
    """Every page opens with two folded cells: they read "Parameters" and "Imports and settings", not two
    unlabelled "Show code cell source" expanders. Label a cell in its jupytext header:
    ``# %% tags=["hide-input"] mystnb={"code_prompt_show": "Imports and settings"}``."""
    params, imports = _first_cell_labels(source)
    assert params == FIRST_CELL_LABELS["parameters"], f"{source.name}: parameters cell labelled {params!r}"
    assert imports == FIRST_CELL_LABELS["imports"], f"{source.name}: first folded cell labelled {imports!r}"


def test_numbered_chapters_get_their_own_numbers():
    """The toc's numbered parts number chapters in order (Sphinx continues across parts); each numbered
    notebook's number must be its NN, so its figures read Fig. NN.k (chapter 04's are Fig. 4.1, 4.2...)."""
    toc = yaml.safe_load((paths.REPO_ROOT / "_toc.yml").read_text())
    number = 0
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            stem = chapter["file"].rsplit("/", 1)[-1]
            in_notebooks = chapter["file"].startswith("notebooks/")
            chapter_nn = in_notebooks and stem[:2].isdigit() and 1 <= int(stem[:2]) <= 89
            if not part.get("numbered"):
                # an unnumbered page numbers its figures 1, 2, ... across the book: the paper's numbers
                assert not chapter_nn, f"{chapter['file']} is a chapter in a part without `numbered: 1`"
                continue
            number += 1
            assert chapter_nn and int(stem[:2]) == number, \
                f"{chapter['file']} is numbered {number} by the toc: reorder _toc.yml or rename the notebook"

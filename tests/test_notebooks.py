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

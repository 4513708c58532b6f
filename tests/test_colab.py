"""Colab: one setup cell in every chapter, written from _config.yml; an .ipynb twin runs as in Colab.

The clean-environment test does what Colab does with a chapter opened from
GitHub: a fresh Python environment holding only what Colab ships (torch,
torchvision, numpy, scipy, matplotlib, tqdm, ipywidgets, ipykernel and their
dependencies; linked from this machine's install instead of downloaded), no
rankbook, no repository around it (the kernel runs in an empty folder
elsewhere), and pip offline (``PIP_NO_INDEX``). The chapter's setup cell
must install rankbook (here from a wheel built from the working tree, passed
as ``$RANKBOOK_INSTALL`` in place of the repository's address) and the
chapter must then run top to bottom. The same plain install, run as
``python -m rankbook build`` outside any clone, must refuse with a message.
"""
from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

from rankbook.book import colab, runner
from rankbook.store import paths

#: what a Colab runtime has before a notebook installs anything (the parts of it the book uses)
COLAB_BASE = ("torch", "torchvision", "numpy", "scipy", "matplotlib", "tqdm", "ipywidgets", "ipykernel",
              "pyyaml", "pip", "setuptools")
TWINS = ("00_setup",)  # 01_theory once its setup cell is the one from rankbook.book.colab


def test_every_chapter_has_the_one_setup_cell():
    """The cell is the same in every chapter and carries _config.yml's address (run --write to fix)."""
    expected = colab.setup_cell()
    wrong = [s.name for s in runner.available() if colab.cell_in(s) != expected]
    assert not wrong, (f"setup cell missing or hand-edited in {wrong}: run "
                       f"`python -m rankbook.book.colab --write notebooks/NN_name.py` and jupytext --sync")


def test_setup_cell_is_written_from_the_config(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: https://example.org/me/fork/\n  branch: dev\n")
    cell = colab.setup_cell(config)
    assert '"rankbook @ git+https://example.org/me/fork@dev"' in cell and cell.startswith(colab.TAGS_LINE)
    src = tmp_path / "01_x.py"
    src.write_text('# %% tags=["parameters"]\nprofile: str = ""\n\n'
                   '# %% tags=["remove-cell"]\n# Colab: install rankbook (old cell)\nimport sys\n\n# %%\n1\n')
    assert colab.write(src, config) and colab.cell_in(src) == cell
    assert src.read_text().endswith("# %%\n1\n") and not colab.write(src, config)
    config.write_text("repository:\n  url: git@example.org:me/fork\n")
    with pytest.raises(ValueError, match="must be an https:// address"):
        colab.setup_cell(config)
    config.write_text("title: no repository\n")
    with pytest.raises(ValueError, match="cannot read repository.url"):
        colab.setup_cell(config)


def _closure(names) -> list[md.Distribution]:
    """The installed distributions ``names`` need (requirements with their extras, markers evaluated)."""
    seen: dict[str, md.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(name, "") for name in names]
    while todo:
        raw, extra = todo.pop()
        name = re.sub(r"[-_.]+", "-", raw).lower()
        if (name, extra) in done:
            continue
        done.add((name, extra))
        try:
            dist = seen.get(name) or md.distribution(name)
        except md.PackageNotFoundError:
            continue  # an optional dependency this machine lacks: Colab's runtime may lack it too
        seen[name] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                todo += [(req.name, "")] + [(req.name, e) for e in req.extras]
    return list(seen.values())


def _colab_base(folder: Path) -> Path:
    """A folder of links to the COLAB_BASE distributions' files (never rankbook or the book's tools)."""
    folder.mkdir()
    for dist in _closure(COLAB_BASE):
        assert dist.metadata["Name"].lower() != "rankbook"
        for file in dist.files or []:
            top = file.parts[0]
            if top.endswith(".pth") or top.startswith("__editable__") or ".." in file.parts or top == "bin":
                continue
            target = folder / top
            if not target.exists():
                target.symlink_to(Path(dist.locate_file(top)).resolve())
    return folder


def _wheel(out: Path) -> Path:
    """A wheel built from a copy of the working tree (no build litter in the repository)."""
    src = out / "src"
    src.mkdir(parents=True)
    shutil.copy2(paths.REPO_ROOT / "pyproject.toml", src)
    shutil.copy2(paths.REPO_ROOT / "README.md", src)
    shutil.copytree(paths.REPO_ROOT / "rankbook", src / "rankbook",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out / "dist"), str(src)], check=True, env={**os.environ, "PIP_NO_INDEX": "1"})
    (wheel,) = (out / "dist").glob("rankbook-*.whl")
    return wheel


@pytest.mark.slow
@pytest.mark.parametrize("twin", TWINS)
def test_ipynb_twin_runs_in_a_clean_colab_like_environment(tmp_path, twin, monkeypatch):
    from nbclient import NotebookClient

    wheel = _wheel(tmp_path / "wheel")
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)  # pip comes with the base
    python = venv / "bin" / "python"
    site_dir = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True).strip())
    (site_dir / "colab_base.pth").write_text(str(_colab_base(tmp_path / "colab-base")) + "\n")
    probe = "import importlib.util as u; print(u.find_spec('rankbook'), u.find_spec('papermill'))"
    assert subprocess.check_output([str(python), "-c", probe], text=True, cwd=tmp_path).strip() == "None None"

    kernels = tmp_path / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "colab-like", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    outside = tmp_path / "outside the repository"
    outside.mkdir()
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({"RANKBOOK_INSTALL": str(wheel), "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "RANKBOOK_BUILD": str(outside / "_build"), "RANKBOOK_CACHE": str(outside / "cache"),
                "MPLBACKEND": "module://matplotlib_inline.backend_inline", "OMP_WAIT_POLICY": "PASSIVE"})
    if os.environ.get("RANKBOOK_DATA"):
        env["RANKBOOK_DATA"] = os.environ["RANKBOOK_DATA"]

    nb = nbformat.read(paths.REPO_ROOT / "notebooks" / f"{twin}.ipynb", as_version=4)
    client = NotebookClient(nb, kernel_name="colab", timeout=240, allow_errors=False,
                            resources={"metadata": {"path": str(outside)}})
    client.execute(env=env)

    where = subprocess.check_output([str(python), "-c", "import rankbook; print(rankbook.__file__)"],
                                    text=True, cwd=outside).strip()
    assert where.startswith(str(site_dir)), f"rankbook imported from {where}, not installed by the setup cell"
    # issue 14.8 for real: a plain install run outside any clone refuses clearly and writes nothing
    refused = subprocess.run([str(python), "-m", "rankbook", "build"], cwd=outside, capture_output=True,
                             text=True, env={k: v for k, v in env.items() if k != "RANKBOOK_BUILD"})
    assert refused.returncode == 2 and "run from a clone of the repository" in refused.stderr
    assert not (Path(where).parent.parent / "_build").exists() and not (outside / "_build" / "site").exists()
    text = "".join(json.dumps(o) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Traceback" not in text
    assert len([c for c in nb.cells if c.cell_type == "code" and c.outputs]) >= 3


def test_chapters_glue_without_myst_nb():
    """Colab has no myst-nb: chapters and the package glue through rankbook.book.glue (same output)."""
    files = [*runner.available(), *(paths.REPO_ROOT / "rankbook").rglob("*.py")]
    found = [f"{p.relative_to(paths.REPO_ROOT)}:{n}" for p in files
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if re.match(r"\s*(from myst_nb\b|import myst_nb\b)", line)]
    assert not found, "use `from rankbook.book.glue import glue` (or glue_all) instead of myst_nb in: " + \
        ", ".join(found)

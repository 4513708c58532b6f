"""Which book the command line works on: ``--book PATH``, else the working directory or one of its parents.

A book is a folder holding ``_toc.yml`` and ``notebooks/NN_name.py``: a clone
of the repository. An editable install also finds the clone it came from; a
plain ``pip install .`` carries the package but not the book, so from
outside a clone the command refuses with a message instead of running
nothing, and never writes ``_build`` into site-packages.
"""
from __future__ import annotations

import os
from pathlib import Path

from rankbook.store import paths


class BookNotFound(RuntimeError):
    """No book at ``--book`` or around the working directory."""


def is_book(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / "_toc.yml").is_file() and any((folder / "notebooks").glob("[0-9][0-9]_*.py"))


def find(explicit: str | os.PathLike | None = None, cwd: Path | None = None) -> Path:
    """The book's root folder, or :class:`BookNotFound` saying what was looked at and what to do."""
    if explicit:
        root = Path(explicit).expanduser().resolve()
        if not is_book(root):
            raise BookNotFound(f"--book {explicit}: {root} is not a book (it needs _toc.yml and "
                               "notebooks/NN_name.py); pass the folder of a clone of the repository")
        return root
    cwd = Path(cwd or Path.cwd()).resolve()
    for folder in (cwd, *cwd.parents):
        if is_book(folder):
            return folder
    if is_book(paths.REPO_ROOT):  # an editable install run from elsewhere: the clone it came from
        return paths.REPO_ROOT
    raise BookNotFound(f"no book in {cwd} or its parents, and rankbook is installed without one "
                       f"({paths.REPO_ROOT}): run from a clone of the repository (the folder holding "
                       "_toc.yml and notebooks/) or pass --book PATH")


def use(root: Path) -> None:
    """Point the runner and the site builder at ``root``; its ``_build`` holds the outputs unless
    ``$RANKBOOK_BUILD`` says otherwise (exported, so the kernels agree)."""
    from rankbook.book import runner, site

    root = Path(root).resolve()
    runner.NOTEBOOK_DIR = root / "notebooks"
    site.BOOK_ROOT = root
    if root != paths.REPO_ROOT.resolve() and not os.environ.get("RANKBOOK_BUILD"):
        os.environ["RANKBOOK_BUILD"] = str(root / "_build")

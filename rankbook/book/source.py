"""Show the package code behind a result on the page: the code a reader sees is the code that ran.

A chapter puts ``show_source(rankbook.theory.algorithm1.algorithm1)`` in a folded
cell (``tags=["hide-input"]``). Folding the cell hides only its one-line input;
the listing is its *output*, so the listing folds itself: the output is Markdown,
a ``<details>`` block whose summary names the function and where it lives, around
a code block (the site highlights it with the book's theme, Jupyter and Colab
render the same Markdown), closed until the reader opens it. In a terminal it
prints as plain text.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import rankbook

PACKAGE_ROOT = Path(rankbook.__file__).resolve().parent


class Source:
    """The source of one package object, with where it lives (module path and line range)."""

    def __init__(self, obj):
        self.obj = obj
        try:
            lines, first = inspect.getsourcelines(obj)
            path = Path(inspect.getsourcefile(obj) or "").resolve()
        except (OSError, TypeError) as exc:
            raise TypeError(f"show_source: no source for {obj!r} ({exc}); pass a function, class or module "
                            "of the rankbook package") from exc
        if PACKAGE_ROOT not in path.parents:
            raise TypeError(f"show_source: {obj!r} is defined in {path}, outside the rankbook package; "
                            "the book shows only its own code")
        self.code = "".join(lines).rstrip("\n")
        self.path = "rankbook/" + path.relative_to(PACKAGE_ROOT).as_posix()
        self.first = first if first else 1  # a module reports line 0
        self.last = self.first + len(lines) - 1
        module = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
        qualname = getattr(obj, "__qualname__", None)
        self.name = f"{module}.{qualname}" if qualname and not inspect.ismodule(obj) else module

    @property
    def where(self) -> str:
        return f"{self.path}, lines {self.first}-{self.last}"

    def _repr_markdown_(self) -> str:
        fence = "`" * max(3, 1 + max((len(run) for run in _backtick_runs(self.code)), default=0))
        # blank lines around the fence: Markdown (MyST, Jupyter, Colab) renders the code block inside the
        # raw <details> block, so the listing is folded until opened
        summary = f"Source: <code>{self.name}</code> ({self.where}, {self.last - self.first + 1} lines)"
        return (f'<details class="rankbook-source">\n<summary>{summary}</summary>\n\n'
                f"{fence}python\n{self.code}\n{fence}\n\n</details>\n")

    def __repr__(self) -> str:
        return f"# {self.name} ({self.where})\n{self.code}"


def _backtick_runs(text: str) -> list[str]:
    runs, current = [], ""
    for ch in text:
        if ch == "`":
            current += ch
        elif current:
            runs.append(current)
            current = ""
    return runs + ([current] if current else [])


def show_source(obj) -> None:
    """Display the source of a rankbook function, class or module (anywhere in a cell)."""
    from IPython.display import display

    display(Source(obj))

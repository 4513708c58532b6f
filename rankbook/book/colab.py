"""The one setup cell every chapter starts with: a chapter opened alone (Colab, a download) installs rankbook.

The repository's address lives in ONE place: ``_config.yml``'s
``repository.url`` (it also drives the site's launch buttons). A notebook
opened in Colab is a lone file and cannot read that file, so the cell carries
the address; it is *written* from ``_config.yml`` by this module, never by
hand, and ``tests/test_colab.py`` fails when a chapter's cell differs from
:func:`setup_cell`. To change the address: edit ``_config.yml``, then run
``python -m rankbook.book.colab --write [notebooks/NN_name.py ...]`` (it also
replaces the old hand-written "# Colab: install rankbook" cell) and
``jupytext --sync`` on the files it names.

The cell installs rankbook only where it is missing, so it does nothing in
the repository's own environment. ``$RANKBOOK_INSTALL`` replaces what it
installs (a wheel, a fork, a branch); the clean-venv test points it at a
wheel built from the working tree. When pip fails (the repository cannot be
reached), the cell ends with one error naming ``RANKBOOK_INSTALL`` and
``_config.yml`` after pip's own message (B99).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from rankbook.store import paths

CONFIG = paths.REPO_ROOT / "_config.yml"
TAG = "colab-setup"
TAGS_LINE = f'# %% tags=["remove-cell", "{TAG}"]'
_TEMPLATE = '''{tags}
# Installs rankbook where it is missing (Colab, a downloaded notebook); does nothing in the repository.
# Written by `python -m rankbook.book.colab --write` from _config.yml's repository.url: do not edit by hand.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("rankbook") is None:
    _target = os.environ.get("RANKBOOK_INSTALL") or "rankbook @ git+{url}@{branch}"
    if subprocess.call([sys.executable, "-m", "pip", "install", "-q", _target]):
        raise RuntimeError(
            f"pip could not install rankbook from {{_target!r}} (pip's error is above). If that address "
            "cannot be reached (offline, private, moved), set RANKBOOK_INSTALL to what pip should install "
            "instead (a wheel, a local clone, another git+https:// address), e.g. "
            "os.environ['RANKBOOK_INSTALL'] = '/content/rankbook-0.1.0-py3-none-any.whl', and run this cell "
            "again. The address is the book's _config.yml repository.url and branch (python -m "
            "rankbook.book.colab --write rewrites this cell from it)."
        )
'''
#: one setup cell in the .py source: from its tags line to the next cell marker (or the end)
_CELL = re.compile(r'^# %% tags=\[[^\]]*"' + TAG + r'"[^\]]*\]\n.*?(?=^# %%|\Z)', re.S | re.M)
#: the hand-written cell the chapters had before this module ("# Colab: install rankbook ...")
_LEGACY = re.compile(r'^# %% tags=\["remove-cell"\]\n# Colab: install rankbook.*?(?=^# %%|\Z)', re.S | re.M)


def repository(config: Path = CONFIG) -> tuple[str, str]:
    """``(url, branch)`` from ``_config.yml``'s ``repository`` section."""
    try:
        repo = yaml.safe_load(Path(config).read_text())["repository"]
        url, branch = str(repo["url"]).rstrip("/"), str(repo.get("branch") or "main")
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ValueError(f"{config}: cannot read repository.url ({exc}); it must hold the repository's "
                         "https address under `repository: url:`") from exc
    if not url.startswith("https://"):
        raise ValueError(f"{config}: repository.url {url!r} must be an https:// address pip can install from")
    return url, branch


def setup_cell(config: Path = CONFIG) -> str:
    """The setup cell's text in jupytext percent format (tags line included), ending with a blank line."""
    url, branch = repository(config)
    return _TEMPLATE.format(tags=TAGS_LINE, url=url, branch=branch) + "\n"


def cell_in(source: Path) -> str | None:
    """The setup cell found in a notebook's ``.py`` source, or None."""
    found = _CELL.search(Path(source).read_text())
    return found.group(0) if found else None


def write(source: Path, config: Path = CONFIG) -> bool:
    """Replace the setup cell of ``source`` with :func:`setup_cell`; True when the file changed."""
    text = Path(source).read_text()
    pattern = _CELL if _CELL.search(text) else _LEGACY
    new = pattern.sub(lambda _: setup_cell(config), text, count=1)
    if new == text:
        return False
    Path(source).write_text(new)
    return True


def main(argv: list[str] | None = None) -> int:
    from rankbook.book import runner

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--write":
        sources = [Path(a) for a in argv[1:]] or runner.available()
        changed = [s.name for s in sources if write(s)]
        print("rewrote: " + (", ".join(changed) or "nothing") + "; now run jupytext --sync on them")
        return 0
    print(setup_cell(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

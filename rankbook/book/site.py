"""Render the website from one profile's executed notebooks.

Jupyter Book reads a staging copy of the book in which each chapter is the
executed ``.ipynb`` (never re-executed), so the site shows exactly the
profile's results, and each page's Colab button points at
``notebooks/<name>.ipynb``, the output-free twin committed in the repository.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from rankbook.store import paths
from rankbook.book import runner

BOOK_FILES = ("_config.yml", "_toc.yml")
BOOK_DIRS = ("book",)


def staging_dir(profile: str) -> Path:
    return paths.build_root() / "site-src" / profile


def html_dir(profile: str) -> Path:
    return paths.build_root() / "site" / profile / "_build" / "html"


def stage(profile: str) -> Path:
    """Copy the book's prose and the executed notebooks into a fresh staging folder."""
    stage_root = staging_dir(profile)
    if stage_root.exists():
        shutil.rmtree(stage_root)
    stage_root.mkdir(parents=True)
    for name in BOOK_DIRS:
        shutil.copytree(paths.REPO_ROOT / name, stage_root / name)
    shutil.copy2(paths.REPO_ROOT / "_toc.yml", stage_root / "_toc.yml")
    config = yaml.safe_load((paths.REPO_ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    # progress bars and library chatter go to stderr; errors already stopped the runner
    config["execute"]["stderr_output"] = "remove"
    config["sphinx"]["config"].pop("nb_custom_formats", None)
    config["exclude_patterns"] = [p for p in config["exclude_patterns"] if not p.endswith(".ipynb")]
    config["title"] = f"{config['title']} ({profile} profile)" if profile != "paper" else config["title"]
    (stage_root / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (stage_root / "notebooks").mkdir()
    for source in runner.available():
        executed = runner.executed_path(source, profile)
        if not executed.exists():
            raise runner.RunnerError(f"{source.stem} has no executed copy for profile {profile}; "
                                     f"run: python -m rankbook run --profile {profile} {source.stem}")
        shutil.copy2(executed, stage_root / "notebooks" / executed.name)
    return stage_root


def build(profile: str, strict: bool = True) -> Path:
    """Stage and run ``jupyter-book build``; ``strict`` turns warnings into errors."""
    stage_root = stage(profile)
    out_root = html_dir(profile).parent.parent
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(stage_root), "--path-output", str(out_root)]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return html_dir(profile)

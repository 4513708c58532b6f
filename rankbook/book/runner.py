"""Execute the book's notebooks from their ``.py`` sources with papermill, one folder per profile.

Executed copies land in ``<build>/executed/<profile>/notebooks/<name>.ipynb`` and
carry, in their metadata, the hash of the code that produced them (the
notebook source plus the ``rankbook`` package), so the site builder knows
which are current. Separate folders per profile matter: a cache keyed on code
alone cannot tell a ``fast`` run from a ``paper`` run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

from rankbook.store import paths
from rankbook.settings import profiles

NOTEBOOK_DIR = paths.REPO_ROOT / "notebooks"
PACKAGE_DIR = paths.REPO_ROOT / "rankbook"
#: per-cell limit; the paper profile trains for hours inside one cell
CELL_TIMEOUT_S = {"fast": 1800, "paper": None}


class RunnerError(RuntimeError):
    """A notebook name that does not exist, or a notebook that failed."""


@dataclasses.dataclass
class Outcome:
    name: str
    status: str  # "ok" | "failed"
    wall_s: float
    output: Path
    error: str = ""


def available() -> list[Path]:
    """The book's notebook sources, in order."""
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))


def select(names: Sequence[str] = ()) -> list[Path]:
    """Notebook sources named by path, file name, stem or number prefix; all of them when empty."""
    every = available()
    if not names:
        return every
    chosen = []
    for name in names:
        stem = Path(name).name.removesuffix(".py").removesuffix(".ipynb")
        hits = [p for p in every if p.stem == stem or p.stem.split("_", 1)[0] == stem]
        if len(hits) != 1:
            valid = ", ".join(p.stem for p in every)
            raise RunnerError(f"unknown notebook {name!r}; valid notebooks: {valid}")
        chosen.append(hits[0])
    return chosen


def code_hash(source: Path) -> str:
    """Hash of a notebook's source and of the package it imports: a change to either makes it stale."""
    digest = hashlib.sha256(source.read_bytes())
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def executed_dir(profile: str) -> Path:
    return paths.build_root() / "executed" / profile / "notebooks"


def executed_path(source: Path, profile: str) -> Path:
    return executed_dir(profile) / f"{source.stem}.ipynb"


def is_current(source: Path, profile: str) -> bool:
    """Whether an executed copy exists, succeeded, and came from the current code."""
    import nbformat

    out = executed_path(source, profile)
    if not out.exists():
        return False
    meta = nbformat.read(out, as_version=4).metadata.get("rankbook", {})
    return meta.get("status") == "ok" and meta.get("code_hash") == code_hash(source)


def execute(source: Path, profile: str, parameters: dict | None = None, progress: bool = True) -> Outcome:
    """Run one notebook source under ``profile``; the executed copy is written only on success."""
    import jupytext
    import nbformat
    import papermill

    profile = profiles.resolve(profile)
    out = executed_path(source, profile)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f".{out.stem}.running.ipynb")
    failed = out.with_name(f"{out.stem}.failed.ipynb")
    nbformat.write(jupytext.read(source), staged)
    params = {"profile": profile, **(parameters or {})}
    env_before = os.environ.get(profiles.ENV_VAR)
    os.environ[profiles.ENV_VAR] = profile  # the kernel inherits it, so nested helpers agree
    # busy-waiting OpenMP threads slow torch ~9x when other jobs share the cores
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(staged), str(staged), parameters=params, kernel_name="python3", language="python",
            cwd=str(NOTEBOOK_DIR), progress_bar=progress,
            execution_timeout=CELL_TIMEOUT_S[profile],
        )
    except papermill.PapermillExecutionError as exc:
        wall = time.perf_counter() - start
        staged.replace(failed)
        tail = _strip_ansi("\n".join(exc.traceback[-8:])) if exc.traceback else ""
        return Outcome(source.stem, "failed", wall, failed,
                       f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n{tail}")
    except Exception as exc:  # a cell timeout or a dead kernel: still a row in the table, not a crash
        wall = time.perf_counter() - start
        if staged.exists():
            staged.replace(failed)
        return Outcome(source.stem, "failed", wall, failed, f"{type(exc).__name__}: {exc}")
    finally:
        if env_before is None:
            os.environ.pop(profiles.ENV_VAR, None)
        else:
            os.environ[profiles.ENV_VAR] = env_before
    wall = time.perf_counter() - start
    nb = nbformat.read(staged, as_version=4)
    nb.metadata["rankbook"] = {"profile": profile, "status": "ok", "wall_s": round(wall, 2),
                               "code_hash": code_hash(source), "source": source.name}
    nbformat.write(nb, staged)
    os.replace(staged, out)
    failed.unlink(missing_ok=True)
    return Outcome(source.stem, "ok", wall, out)


def run_all(sources: Iterable[Path], profile: str, parameters: dict | None = None,
            only_stale: bool = False, progress: bool = True) -> list[Outcome]:
    """Execute notebooks in order, continuing past failures so the table shows every status."""
    sources = list(sources)
    outcomes = []
    for i, source in enumerate(sources, 1):
        if only_stale and is_current(source, profile):
            print(f"[{i}/{len(sources)}] {source.stem}: current, skipped", flush=True)
            outcomes.append(Outcome(source.stem, "current", 0.0, executed_path(source, profile)))
            continue
        print(f"[{i}/{len(sources)}] {source.stem} (profile {profile})", flush=True)
        outcome = execute(source, profile, parameters, progress)
        print(f"    {outcome.status} in {outcome.wall_s:.1f} s", flush=True)
        if outcome.error:
            print(_indent(outcome.error), file=sys.stderr, flush=True)
        outcomes.append(outcome)
    return outcomes


def summary_table(outcomes: Sequence[Outcome]) -> str:
    from rankbook.figures.tables import Table

    rows = [{"notebook": o.name, "status": o.status, "wall time (s)": f"{o.wall_s:.1f}",
             "output": os.path.relpath(o.output)} for o in outcomes]
    total = sum(o.wall_s for o in outcomes)
    return f"{Table(rows)}\ntotal wall time: {total:.1f} s"


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())

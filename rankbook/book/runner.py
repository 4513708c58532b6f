"""Execute the book's notebooks from their ``.py`` sources with papermill, one folder per profile.

Executed copies land in ``<build>/executed/<profile>/notebooks/<name>.ipynb`` and
carry, in their metadata, the hash of the code that produced them (the
notebook source plus the ``rankbook`` package) and the parameters they ran
with, so the site builder knows which are current: a copy made with
overridden parameters is never published as the profile's page. Separate
folders per profile matter: a cache keyed on code alone cannot tell a
``fast`` run from a ``paper`` run.

Staleness also follows what a chapter *read*: the kernel logs every stored
run it found or missed and every data fingerprint it computed
(:mod:`rankbook.store.inputs`), the executed copy records that log, and
:func:`staleness` re-checks it. A stored run removed, replaced or newly
stored, edited data, or ``RANKBOOK_DATA`` pointed at other data makes the copy
stale, and ``build``/``--stale-only`` execute it again.

A notebook runs in a staging file ``.<name>.<pid>.running.ipynb`` that
replaces the executed copy only on success; staging files left by a killed
run (their process is gone) are removed at the next start.
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

from rankbook.book import kernel
from rankbook.settings import profiles
from rankbook.store import errors, inputs, paths

NOTEBOOK_DIR = paths.REPO_ROOT / "notebooks"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the rankbook package the kernels import
#: per-cell limit for the fast profile (CI); the other profiles train for hours inside one cell
CELL_TIMEOUT_S = {"fast": 1800}
#: pages that gather every chapter's claims.json: stale whenever a chapter recorded claims after them
READS_CLAIMS = ("08_results", "99_findings")
_RUNNING = re.compile(r"^\.(?P<stem>.+?)(?:\.(?P<pid>\d+))?\.(?:running\.ipynb|inputs\.jsonl)$")


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
    """Notebook sources named by path, file name, stem or number prefix; all of them when empty.

    A notebook named twice runs once (first position kept). A name with a
    folder must be a notebook of the book's ``notebooks/`` folder; a folder,
    or a file elsewhere, is an error rather than silently read as its last part.
    """
    every = available()
    if not every:
        raise RunnerError(f"no notebooks (NN_name.py) in {NOTEBOOK_DIR}; run from the book's folder "
                          "(the one holding _toc.yml and notebooks/) or pass --book PATH")
    if not names:
        return every
    chosen: list[Path] = []
    for name in names:
        hit = _one(name, every)
        if hit not in chosen:
            chosen.append(hit)
    return chosen


def _one(name: str, every: Sequence[Path]) -> Path:
    path = Path(name)
    valid = ", ".join(p.stem for p in every)
    if path.is_dir():
        raise RunnerError(f"{name!r} is a folder; name notebooks instead (e.g. 04 or 04_vit_spectra). "
                          f"Valid notebooks: {valid}")
    stem = path.name.removesuffix(".py").removesuffix(".ipynb")
    hits = [p for p in every if p.stem == stem or p.stem.split("_", 1)[0] == stem]
    if len(hits) != 1:
        raise RunnerError(f"unknown notebook {name!r}; valid notebooks: {valid}")
    if len(path.parts) > 1 and path.resolve().parent != NOTEBOOK_DIR.resolve():
        raise RunnerError(f"{name!r} is not in the book's notebooks folder {NOTEBOOK_DIR}; the runner "
                          f"executes only the book's chapters: name it as {hits[0].stem}")
    return hits[0]


_PARAMETERS_CELL = re.compile(r'^# %%[^\n]*tags=\[[^\]]*"parameters"[^\]]*\][^\n]*\n(.*?)(?=^# %%|\Z)',
                              re.S | re.M)  # the cell's other metadata (mystnb labels) may follow its tags


def notebook_parameters(source: Path) -> dict[str, str]:
    """The names assigned in a chapter's ``parameters`` cell, each with its annotation (``"list"``, ...)."""
    import ast

    found = _PARAMETERS_CELL.search(Path(source).read_text(encoding="utf-8"))
    if not found:
        return {"profile": "str"}
    names = {}
    for node in ast.parse(found.group(1)).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign):
            names.update({t.id: "" for t in node.targets if isinstance(t, ast.Name)})
    return names


KERNEL = "python3"


def check_kernel() -> None:
    """:class:`RunnerError` when the ``python3`` kernel would run another interpreter than this one.

    A user-level kernelspec named ``python3`` (``~/.local/share/jupyter/kernels/python3``) wins over the
    one of this environment; the chapters would then run, and the setup cell pip-install, elsewhere.
    """
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        return  # reported with the book's other tools
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        return  # papermill reports it; ipykernel's own spec is found when installed
    argv0 = spec.argv[0] if spec.argv else ""
    own = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if not argv0 or argv0 in own:
        return  # jupyter_client runs a bare "python"/"python3" as this interpreter (ipykernel's own spec)
    import shutil

    target = Path(argv0 if os.path.isabs(argv0) else (shutil.which(argv0) or argv0))
    if target.parent == Path(sys.executable).parent or target.resolve() == Path(sys.executable):
        return  # this environment's bin/ (python, python3, ...): this interpreter
    raise RunnerError(
        f"the Jupyter kernel {KERNEL!r} ({spec.resource_dir}/kernel.json) runs {argv0}, not this Python "
        f"({sys.executable}): the chapters would run in another environment (and their setup cell would "
        f"install rankbook there). Fix: remove that kernelspec (jupyter kernelspec remove {KERNEL}), or make "
        f"it this environment's: {sys.executable} -m ipykernel install --user --name {KERNEL}")


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


def profile_parameters(profile: str) -> dict:
    """The parameters of a profile's own run: the profile alone, every other value from its settings."""
    return {"profile": profile}


def is_current(source: Path, profile: str) -> bool:
    """Whether an executed copy exists, succeeded, came from the current code, ran with the profile's
    own parameters and read stored runs and data that are unchanged since (see :func:`staleness`)."""
    return staleness(source, profile) is None


def staleness(source: Path, profile: str) -> str | None:
    """Why the executed copy of ``source`` is stale (``"code changed"``, ...), or None when it is current.

    A copy run with overrides, unreadable, or made before copies recorded their inputs is stale: the
    build re-executes it.
    """
    import nbformat

    out = executed_path(source, profile)
    if not out.exists():
        return "no executed copy"
    try:
        meta = nbformat.read(out, as_version=4).metadata.get("rankbook", {})
    except Exception:  # truncated or not JSON: a derived file, rebuilt rather than trusted
        return "the executed copy is unreadable"
    if meta.get("status") != "ok":
        return "the last run failed"
    if meta.get("code_hash") != code_hash(source):
        return "code changed"
    if meta.get("parameters") != profile_parameters(profile):
        return f"run with other parameters ({meta.get('parameters')})"
    if "inputs" not in meta:
        return "made before executed copies recorded the stored runs and data they read"
    if source.stem in READS_CLAIMS and _claims_newer_than(out, profile):
        return "a chapter recorded claims after it"
    return inputs.changed(meta["inputs"])


def _claims_newer_than(out: Path, profile: str) -> bool:
    """Whether a chapter recorded claims after ``out`` was made (the results page then is stale)."""
    made = out.stat().st_mtime
    records = (paths.build_root() / "outputs" / profile).glob("*/claims.json")
    return any(p.stat().st_mtime > made for p in records)


def clean_litter(folder: Path) -> list[Path]:
    """Remove staging files of runs whose process is gone (killed runs); returns what was removed."""
    removed = []
    for path in [*Path(folder).glob(".*.running.ipynb"), *Path(folder).glob(".*.inputs.jsonl")]:
        found = _RUNNING.match(path.name)
        pid = found and found.group("pid")
        if pid and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def execute(source: Path, profile: str, parameters: dict | None = None, progress: bool = True,
            log_output: bool = False) -> Outcome:
    """Run one notebook source under ``profile``; the executed copy is written only on success.

    ``parameters`` override the profile's values (recorded in the copy, which
    the site build then treats as stale); ``log_output`` streams the cells'
    output (a training loop's progress lines) to this process's log as they come.
    """
    import jupytext
    import nbformat
    import papermill

    profile = profiles.resolve(profile)
    out = executed_path(source, profile)
    staged = out.with_name(f".{out.stem}.{os.getpid()}.running.ipynb")
    failed = out.with_name(f"{out.stem}.failed.ipynb")
    log = out.with_name(f".{out.stem}.{os.getpid()}.inputs.jsonl")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(jupytext.read(source), staged)
        log.write_text("")
    except OSError as exc:  # a read-only or full build folder: one clear line, not a traceback
        raise errors.storage_error(staged, exc) from exc
    params = {**profile_parameters(profile), **(parameters or {})}
    start = time.perf_counter()
    try:
        with kernel.environment(profile, {inputs.ENV_VAR: str(log)}), kernel.papermill_log(log_output):
            papermill.execute_notebook(
                str(staged), str(staged), parameters=params, kernel_name=KERNEL, language="python",
                cwd=str(NOTEBOOK_DIR), progress_bar=progress, log_output=log_output,
                execution_timeout=CELL_TIMEOUT_S.get(profile), extra_arguments=kernel.KERNEL_ARGS,
            )
    except papermill.PapermillExecutionError as exc:
        log.unlink(missing_ok=True)
        staged.replace(failed)
        tail = _strip_ansi("\n".join(exc.traceback[-8:])) if exc.traceback else ""
        return Outcome(source.stem, "failed", time.perf_counter() - start, failed,
                       f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n{tail}")
    except (KeyboardInterrupt, SystemExit):
        staged.unlink(missing_ok=True)  # an interrupted run leaves nothing behind
        log.unlink(missing_ok=True)
        raise
    except Exception as exc:  # a cell timeout or a dead kernel: still a row in the table, not a crash
        log.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in errors.FULL | errors.DENIED:
            # papermill saving the notebook between cells onto a full disk: the file and the fix (A20), and
            # no truncated copy left behind, or pointed at as the failed run's executed copy
            staged.unlink(missing_ok=True)
            raise errors.storage_error(staged, exc) from exc
        if staged.exists():
            staged.replace(failed)
        return Outcome(source.stem, "failed", time.perf_counter() - start, failed,
                       f"{type(exc).__name__}: {exc}")
    wall = time.perf_counter() - start
    nb = nbformat.read(staged, as_version=4)
    nb.metadata["rankbook"] = {"profile": profile, "status": "ok", "wall_s": round(wall, 2),
                               "code_hash": code_hash(source), "source": source.name, "parameters": params,
                               "inputs": inputs.summarize(inputs.read_log(log))}
    log.unlink(missing_ok=True)
    try:
        nbformat.write(nb, staged)
        os.replace(staged, out)
    except OSError as exc:  # a full disk after the run: the file and the fix, and no half copy left
        staged.unlink(missing_ok=True)
        raise errors.storage_error(out, exc) from exc
    failed.unlink(missing_ok=True)
    return Outcome(source.stem, "ok", wall, out)


def run_all(sources: Iterable[Path], profile: str, parameters: dict | None = None,
            only_stale: bool = False, progress: bool = True, log_output: bool = False) -> list[Outcome]:
    """Execute notebooks in order, continuing past failures so the table shows every status."""
    sources = list(sources)
    removed = clean_litter(executed_dir(profile)) if executed_dir(profile).is_dir() else []
    if removed:
        print(f"removed {len(removed)} staging file(s) left by an interrupted run", flush=True)
    outcomes = []
    for i, source in enumerate(sources, 1):
        why = staleness(source, profile) if only_stale else None
        if only_stale and why is None:
            print(f"[{i}/{len(sources)}] {source.stem}: current, skipped", flush=True)
            outcomes.append(Outcome(source.stem, "current", 0.0, executed_path(source, profile)))
            continue
        stale = f"; stale: {why}" if why else ""
        print(f"[{i}/{len(sources)}] {source.stem} (profile {profile}{stale})", flush=True)
        outcome = execute(source, profile, parameters, progress, log_output)
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

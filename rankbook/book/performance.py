"""The performance page's data: run the benchmark scripts (quick) when their JSON is missing; tabulate."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from rankbook.figures import tables
from rankbook.store import paths

BENCHMARKS_DIR = paths.REPO_ROOT / "benchmarks"
#: scripts the page runs itself (in --quick mode); toy_solver is only read when its JSON exists
RUNNABLE = ("vit_throughput", "tracking_overhead", "spectra")


def ensure(name: str, folder: Path, *, timeout: float = 120) -> dict[str, Any]:
    """The JSON report of ``benchmarks/<name>.py``: a current one from ``folder`` or ``<build>/benchmarks``
    (where CI's benchmark step writes, before the notebooks run), else run now (``--quick``) into ``folder``.

    Stale: older than its script, so an edited benchmark is measured again.
    """
    out = Path(folder) / f"{name}.json"
    script = BENCHMARKS_DIR / f"{name}.py"
    for candidate in (out, paths.build_root() / "benchmarks" / f"{name}.json"):
        if candidate.exists() and candidate.stat().st_mtime >= script.stat().st_mtime:
            return json.loads(candidate.read_text())
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], cwd=paths.REPO_ROOT,
                   env=env, check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def reports(folder: Path) -> dict[str, dict[str, Any] | None]:
    """Every benchmark's report for the page: the runnable ones via :func:`ensure`, toy_solver if any."""
    found: dict[str, dict[str, Any] | None] = {name: ensure(name, folder) for name in RUNNABLE}
    found["toy_solver"] = existing("toy_solver", folder)
    return found


def shown_path(path: Path) -> str:
    """``path`` as a reader would type it: relative to the book's folder when inside it (no home folders)."""
    root = paths.build_root().parent
    return Path(path).relative_to(root).as_posix() if Path(path).is_relative_to(root) else str(path)


def existing(name: str, folder: Path) -> dict[str, Any] | None:
    """A report found in ``folder`` or in ``<build>/benchmarks`` (where CI writes), else None."""
    for candidate in (Path(folder) / f"{name}.json", paths.build_root() / "benchmarks" / f"{name}.json"):
        if candidate.exists():
            return json.loads(candidate.read_text())
    return None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.3g}%"


def figures_table(reports: dict[str, dict[str, Any] | None]) -> tables.Table:
    """One row per figure: benchmark, figure, value, ratio or target, device."""
    rows: list[dict[str, Any]] = []

    def add(bench, figure, value, ratio="", device=""):
        rows.append({"benchmark": bench, "figure": figure, "value": value, "ratio / target": ratio,
                     "device": device})

    if (r := reports.get("vit_throughput")):
        dev = f"{r['device']} ({r['mode']})"
        add("ViT throughput", f"fast path, {r['fast']['precision']} (images/s)",
            f"{r['fast']['images_per_s']:.1f}", f"{r['speedup']:.2f}x the plain path", dev)
        add("ViT throughput", "plain path, fp32 DataLoader + PIL (images/s)",
            f"{r['plain']['images_per_s']:.1f}", "1x", dev)
        add("ViT throughput", "model FLOP utilization, fast / plain",
            f"{_pct(r['fast']['mfu'])} / {_pct(r['plain']['mfu'])}", r["peak_source"], dev)
    if (r := reports.get("tracking_overhead")):
        dev = f"{r['device']} ({r['mode']})"
        s = r["schedule"]
        add("tracker overhead", "one epoch of training (s)", f"{r['epoch_s']:.3g}", "", dev)
        add("tracker overhead", "spectra per tracking point (s)", f"{r['spectra_s_per_point']:.3g}",
            f"{_pct(r['spectra_vs_epoch'])} of an epoch", dev)
        add("tracker overhead", f"spectra over the run ({s['tracking_points']} points, {s['epochs']} epochs)",
            _pct(r["spectra_overhead"]), f"target < {_pct(r['target_overhead'])}", dev)
        add("tracker overhead", "spectra + test evaluation over the run",
            _pct(r["spectra_and_eval_overhead"]), "", dev)
    if (r := reports.get("spectra")):
        dev = f"{r['device']} ({r.get('mode', 'full')})"
        for name, c in r["cases"].items():
            add("factored vs dense spectra", f"{name}: factored (s) / dense (s)",
                f"{c['factored_s']:.3g} / {c['dense_s']:.3g}",
                f"{c['speedup']:.1f}x faster, max rel. error {c['max_rel_error']:.1e}", dev)
        add("factored vs dense spectra", "bound for Δ (dense SVD / 2·d_head core SVD)",
            f"{r['delta_speedup_bound']['ratio']:.1f}x", "", dev)
    if (r := reports.get("toy_solver")):
        dev = f"{r.get('device', 'cpu')} ({r.get('mode', 'full')})"
        try:
            _toy_solver_rows(r, lambda figure, value, ratio: add("toy solver", figure, value, ratio, dev))
        except (KeyError, TypeError):  # a report of another version of the script: say so, never guess
            add("toy solver", "report in a format this page does not read", f"keys: {', '.join(sorted(r))}",
                "see the JSON", dev)
    elif "toy_solver" in reports:
        add("toy solver", "not measured in this build", "no report",
            "run: python benchmarks/toy_solver.py --quick", "")
    return tables.Table(rows, ["benchmark", "figure", "value", "ratio / target", "device"],
                        title="Performance figures")


def _toy_solver_rows(r: dict[str, Any], add) -> None:
    """The rows of ``benchmarks/toy_solver.py``'s report: the race against gradient descent at each α, the
    cost growth with log(1/α), one evaluation against autograd, and the solver comparison."""
    for alpha, race in r["accuracy_race"].items():
        target = race["target_max_rel_error"]
        figure = f"event method vs GD evaluations at α={alpha} (stage-time error ≤ {target:g})"
        if "evaluation_ratio" not in race:
            add(figure, "a method did not reach the target", "see the JSON")
            continue
        how = "GD extrapolated from its finest run" if race["gd_extrapolated"] else "both measured"
        add(figure,
            f"{race['flow']['evaluations']} vs {race['gd_evaluations']:.0f}",
            f"{race['evaluation_ratio']:.0f}x fewer ({how}); target ≥ 1000x at 1e-32")
    evals = {row["alpha"]: row["events_evaluations"] for row in r["cost_against_alpha"]}
    start, end = max(evals), (1e-32 if 1e-32 in evals else min(evals))  # the span: 1e-4 → 1e-32
    add(f"event method evaluations, α = {start:g} → {end:g}", f"{evals[start]} → {evals[end]}",
        f"x{evals[end] / evals[start]:.2f}; target ≤ x1.2")
    cost = r["evaluation_cost_ms"]
    add("loss + gradient, hand vs autograd, one thread (diagonal / full head)",
        f"{cost['diagonal_hand_ms']:.2f} / {cost['full_hand_ms']:.2f} ms",
        f"{cost['diagonal_speedup']:.1f}x / {cost['full_speedup']:.1f}x autograd's speed")
    for row in r["solver_comparison"]:
        if "failed" in row:
            add(f"solver {row['method']} (rtol {row['rtol']:g}) at α = 1e-32", "failed", row["failed"][:60])
        else:
            add(f"solver {row['method']} (rtol {row['rtol']:g}) at α = 1e-32",
                f"{row['evaluations']} evaluations, {row['wall_s']:.2f} s",
                f"stage-time error {row['max_rel_error']:.0e}")


# --------------------------------------------------------------------------- what each run costs


def chapter_costs(profiles_: Sequence[str] | None = None) -> tables.Table:
    """One row per executed chapter and profile: the wall time the runner recorded in the executed copy
    (``metadata.rankbook.wall_s``: papermill start to end, the kernel's start included).

    The runner records no device; the executed copies in this build folder were made by this machine's
    runner, so the device column names this machine (:func:`rankbook.book.environment.summary`).
    """
    import nbformat

    from rankbook.book import environment, runner
    from rankbook.settings import profiles

    here = environment.summary(profiles.DEFAULT_PROFILE)["device"]
    rows = []
    for profile in profiles_ or profiles.PROFILE_NAMES:
        for source in runner.available():
            path = runner.executed_path(source, profile)
            if not path.exists():
                continue
            meta = nbformat.read(path, as_version=4).metadata.get("rankbook", {})
            if meta.get("status") != "ok" or "wall_s" not in meta:
                continue
            rows.append({"chapter": source.stem, "profile": profile, "wall time": _duration(meta["wall_s"]),
                         "seconds": round(float(meta["wall_s"])), "device": f"this machine: {here}"})
    total = {}
    for r in rows:
        total[r["profile"]] = total.get(r["profile"], 0.0) + r["seconds"]
    for profile, s in total.items():
        rows.append({"chapter": "all chapters above", "profile": profile, "wall time": _duration(s),
                     "seconds": round(s), "device": ""})
    return tables.Table(rows, ["chapter", "profile", "wall time", "seconds", "device"],
                        title="What each chapter cost in this build (executed copies' recorded wall time)")


def stored_run_costs(roots: Sequence[Path] | None = None) -> tables.Table:
    """One row per stored training run (``results/*/manifest.json``): what it trained, the profile whose
    settings it matches, its device, steps and training wall time, as its manifest records them."""
    from rankbook.store import results

    rows = []
    for root in roots or [paths.REPO_ROOT / "results"]:
        for manifest_path in sorted(Path(root).glob(f"*/{results.MANIFEST}")):
            try:
                m = json.loads(manifest_path.read_text())
            except (OSError, ValueError):
                continue
            config = m.get("config", {})
            wall = m.get("train_wall_s", m.get("wall_s"))
            rows.append({"stored run": manifest_path.parent.name, "profile": closest_profile(config),
                         "steps": m.get("total_steps", ""), "device": m.get("device", "not recorded"),
                         "training time": _duration(wall) if wall is not None else "not recorded"})
    return tables.Table(rows, ["stored run", "profile", "steps", "device", "training time"],
                        title="What each stored run cost (from its manifest)")


def closest_profile(config: Mapping[str, Any]) -> str:
    """The profile whose settings match the run's config (seed, scale and data set aside), or the closest
    one with the settings that differ named."""
    from rankbook.settings import profiles

    module = {"vit": "rankbook.settings.vit", "gpt": "rankbook.settings.lm"}.get(config.get("kind", ""))
    if module is None:
        return "unknown"
    import importlib

    table = importlib.import_module(module).PROFILES
    best = None
    for name in profiles.PROFILE_NAMES:
        settings = profiles.select(table, name).as_dict()
        shared = [k for k in config if k in settings and k not in ("seed", "init_scale", "dataset")]
        differ = [k for k in shared if not isinstance(settings[k], tuple) and settings[k] != "auto"
                  and config[k] != settings[k]]
        if best is None or len(differ) < len(best[1]):
            best = (name, differ)
    name, differ = best
    if not differ:
        return name
    return f"closest: {name} ({', '.join(differ[:3])}{', ...' if len(differ) > 3 else ''} differ)"


def _duration(seconds: float) -> str:
    s = float(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"

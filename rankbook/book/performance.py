"""The performance page's data: run the benchmark scripts (quick) when their JSON is missing; tabulate."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
        race = r["accuracy_race"]
        add("toy solver", f"log-flow vs GD evaluations at α={race['alpha']:g} (same stage-time accuracy)",
            f"{race['flow']['evaluations']} vs {race['gd']['evaluations']}",
            f"{race['evaluation_ratio']:.0f}x fewer, {race['wall_ratio']:.0f}x less wall time", "cpu")
        cost = r["evaluation_cost_ms"]
        add("toy solver", "hand-derived gradient vs autograd (diagonal / full head)",
            f"{cost['diagonal_hand_ms']:.2f} / {cost['full_hand_ms']:.2f} ms",
            f"{cost['diagonal_speedup']:.2f}x / {cost['full_speedup']:.2f}x", "cpu")
    return tables.Table(rows, ["benchmark", "figure", "value", "ratio / target", "device"],
                        title="Performance figures")

"""What the toy chapters measure on gradient-flow runs: switches, stage times against Algorithm 1, separation.

Every count here is taken from the flow runs themselves (a coordinate "switches on"
when its |u_i v_i| rises from below ``threshold`` to ``threshold``), never from
Algorithm 1's predictions, which are compared with them.
"""
from __future__ import annotations

import numpy as np

from rankbook.theory import flow
from rankbook.theory.flow import Trajectory

#: a coordinate whose |u_i v_i| is already ≥ the threshold at the first record has no onset time
AT_INIT = "above threshold at init"


def above_at_init(traj: Trajectory, threshold: float) -> np.ndarray:
    """Boolean per coordinate: |u_i v_i| ≥ ``threshold`` at the first record (possible at large α)."""
    return np.abs(traj.beta[0]) >= threshold


def switched_on(traj: Trajectory, threshold: float) -> np.ndarray:
    """Indices of the coordinates whose |u_i v_i| starts below ``threshold`` and reaches it during the run."""
    reached = ~np.isnan(flow.activation_times(traj, threshold))
    return np.flatnonzero(reached & ~above_at_init(traj, threshold))


def switch_rows(net, runs: dict, expected: np.ndarray, threshold: float) -> list[dict]:
    """Per α: the coordinates the flow switched on, whether they are ``expected``, the largest other entry."""
    rows = []
    for alpha, traj in runs.items():
        on = switched_on(traj, threshold)
        others = np.setdiff1d(np.arange(traj.beta.shape[1]), expected)
        rows.append({"α": alpha, "switched on": int(on.size),
                     "above threshold at init": int(above_at_init(traj, threshold).sum()),
                     "same as the teacher's": bool(np.array_equal(np.sort(on), np.sort(expected))),
                     "coordinates": ", ".join(net.coordinate_name(i) for i in sorted(on, key=int)),
                     "largest |u_i v_i| off the teacher": float(np.abs(traj.beta[:, others]).max())})
    return rows


def stage_time_rows(net, predicted: dict, runs: dict, threshold: float) -> list[dict]:
    """Per coordinate Algorithm 1 switches on: predicted T_k, measured onset per α and relative error.

    A coordinate above ``threshold`` at initialization has no onset: its cells say :data:`AT_INIT`.
    """
    onsets = {alpha: flow.activation_times(traj, threshold) for alpha, traj in runs.items()}
    at_init = {alpha: above_at_init(traj, threshold) for alpha, traj in runs.items()}
    rows = []
    for k, (i, t_pred) in enumerate(sorted(predicted.items(), key=lambda kv: kv[1]), start=1):
        row = {"stage": k, "coordinate": net.coordinate_name(i), "T_k (Algorithm 1)": t_pred}
        for alpha, times in onsets.items():
            if at_init[alpha][i]:
                row[f"α={alpha:g}"] = row[f"rel. err α={alpha:g}"] = AT_INIT
            else:
                row[f"α={alpha:g}"] = float(times[i])
                row[f"rel. err α={alpha:g}"] = abs(float(times[i]) - t_pred) / t_pred
        rows.append(row)
    return rows


def max_relative_errors(rows: list[dict], alphas) -> dict:
    """{α: max over stages with an onset of |measured − predicted| / predicted}; NaN if a stage never came."""
    out = {}
    for alpha in alphas:
        errs = [r[f"rel. err α={alpha:g}"] for r in rows if r[f"rel. err α={alpha:g}"] != AT_INIT]
        out[alpha] = float(np.max(errs)) if errs else float("nan")
    return out


def count_at_init(rows: list[dict], alphas) -> dict:
    """{α: how many of Algorithm 1's coordinates were above the threshold at initialization}."""
    return {alpha: sum(r[f"α={alpha:g}"] == AT_INIT for r in rows) for alpha in alphas}


def seed_spread_rows(per_seed: dict, alphas) -> list[dict]:
    """Onsets across seeds: per stage and α, "mean ± std" of the seeds' onsets (or the one value)."""
    seeds = list(per_seed)
    rows = []
    for k, row in enumerate(per_seed[seeds[0]]):
        out = {key: row[key] for key in ("stage", "coordinate", "T_k (Algorithm 1)")}
        for alpha in alphas:
            vals = [per_seed[s][k][f"α={alpha:g}"] for s in seeds]
            if any(v == AT_INIT for v in vals):
                out[f"α={alpha:g}"] = AT_INIT
            elif len(seeds) > 1:
                out[f"α={alpha:g}"] = f"{np.mean(vals):.3f} ± {np.std(vals):.3f}"
            else:
                out[f"α={alpha:g}"] = float(vals[0])
        rows.append(out)
    return rows


def separation_rows(runs: dict) -> list[dict]:
    """Per α: the transition windows of the learned coordinates, their widths and the gaps between them."""
    rows = []
    for alpha, traj in runs.items():
        windows = sorted(flow.transition_windows(traj).values())
        widths = [end - start for start, end in windows]
        gaps = [nxt[0] - cur[1] for cur, nxt in zip(windows, windows[1:])]
        rows.append({"α": alpha, "stages": len(windows), "max jump width (τ)": max(widths),
                     "min gap between jumps (τ)": min(gaps) if gaps else float("nan"),
                     "width × log(1/α) (t)": max(widths) * flow.log_inverse(alpha)})
    return rows


def decreasing(values) -> bool:
    """True when each value is smaller than the one before (a trend over the whole sequence)."""
    values = list(values)
    return all(b < a for a, b in zip(values, values[1:]))


def conservation(traj: Trajectory) -> dict:
    """Largest relative drift of c_i = u_i² − v_i² along ``traj`` and the largest growth of u_i² meanwhile."""
    c = traj.u * traj.u - traj.v * traj.v
    return {"drift": float((np.abs(c - c[0]).max(axis=0) / np.abs(c[0])).max()),
            "growth": float((traj.u[-1] ** 2 / traj.u[0] ** 2).max())}


def singular_value_onsets(tau: np.ndarray, values: np.ndarray, threshold: float) -> list[float | None]:
    """Per singular value (column), the first recorded τ at which it reaches ``threshold`` (None if never)."""
    return [float(tau[np.argmax(col >= threshold)]) if (col >= threshold).any() else None for col in values.T]


def tier(profile: str) -> str:
    """The claims tier of a profile's run: the live ``fast`` run, or a stored ``reference``/``paper`` one."""
    return profile if profile in ("fast", "reference", "paper") else "fast"


def verdict(ok: bool) -> str:
    """The word a claims row carries, computed from a test on the measurement."""
    return "agrees" if ok else "differs"


def one_at_a_time(onsets: list[float | None]) -> bool:
    """True when at least two singular values switch on and the onsets that happen are strictly increasing."""
    times = [t for t in onsets if t is not None]
    return len(times) >= 2 and all(b > a for a, b in zip(times, times[1:]))


def onsets_text(onsets: dict[str, list[float | None]]) -> str:
    """"name: τ1, τ2, never; ..." for the singular-value onsets of each product."""
    return "; ".join(f"{name}: " + ", ".join("never" if t is None else f"{t:.3f}" for t in times)
                     for name, times in onsets.items())


def toy_claims(tier_name: str, chapter: str, switches: list[dict], errors: dict, onsets: dict,
               n_teacher: int) -> list[dict]:
    """Chapter 02's claims rows: switches at the smallest α (counted on the flow), full-weight onsets."""
    from rankbook.analysis import claims

    small = min(switches, key=lambda r: r["α"])
    return [
        claims.row("As α → 0, one diagonal entry switches on per stage: those of the teacher",
                   "Figs. 2a-c, 6-8", tier_name,
                   f"flow at α={small['α']:g} switches on {small['switched on']} coordinates (teacher: "
                   f"{n_teacher}); max onset error vs Algorithm 1 {errors[small['α']]:.3f}",
                   verdict(small["same as the teacher's"]), chapter),
        claims.row("Full weights learn singular values incrementally", "Fig. 2d-f", tier_name,
                   f"singular-value onsets (τ) {onsets_text(onsets)}",
                   verdict(all(one_at_a_time(times) for times in onsets.values())), chapter)]

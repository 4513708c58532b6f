"""What the toy chapters measure on gradient-flow runs: switches, stage times against Algorithm 1, separation.

Every count here is taken from the flow runs themselves (a coordinate "switches on"
when its |u_i v_i| rises from below ``threshold`` to ``threshold``), never from
Algorithm 1's predictions, which are compared with them.
"""
from __future__ import annotations

import numpy as np

from rankbook.analysis import claims
from rankbook.theory import flow
from rankbook.theory.flow import Trajectory

#: the switch table's column: the flow switched on exactly the teacher's coordinates
SAME = "same as the teacher's"
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
                     SAME: bool(np.array_equal(np.sort(on), np.sort(expected))),
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


def compact_stage_rows(rows: list[dict], alphas) -> list[dict]:
    """:func:`stage_time_rows` narrowed to one column per α: "onset (relative error)", or "at init"."""
    out = []
    for r in rows:
        row = {key: r[key] for key in ("stage", "coordinate", "T_k (Algorithm 1)")}
        for alpha in alphas:
            onset, err = r[f"α={alpha:g}"], r[f"rel. err α={alpha:g}"]
            row[f"α = {alpha:g}"] = "at init" if onset == AT_INIT else f"{onset:.3f} ({100 * err:.1f} %)"
        out.append(row)
    return out


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


#: the book's verdict words (rankbook.analysis.claims.VOCABULARY): what a tier's run shows of a claim
SHOWN, PARTLY, NOT_SHOWN = claims.SHOWN, claims.PARTLY, claims.NOT_SHOWN


def verdict(ok: bool, partly: bool = False) -> str:
    """The word a claims row carries, computed from a test on the measurement: shown, partly shown, or not."""
    return SHOWN if ok else PARTLY if partly else NOT_SHOWN


def one_at_a_time(onsets: list[float | None]) -> bool:
    """True when at least two singular values switch on and the onsets that happen are strictly increasing."""
    times = [t for t in onsets if t is not None]
    return len(times) >= 2 and all(b > a for a, b in zip(times, times[1:]))


#: a singular value counts as learned when its final value is at least this many times the switch-on threshold
LEARNED_FACTOR = 10.0


def _first_crossing(tau: np.ndarray, col: np.ndarray, level: float) -> float:
    """First τ at which ``col`` reaches ``level``, interpolated in log(value) (NaN if never)."""
    above = np.flatnonzero(col >= level)
    if above.size == 0:
        return float("nan")
    k = above[0]
    if k == 0:
        return float(tau[0])
    a, b = np.log(max(col[k - 1], 1e-300)), np.log(col[k])
    return float(tau[k - 1] + (np.log(level) - a) / (b - a) * (tau[k] - tau[k - 1]))


def singular_value_windows(tau: np.ndarray, values: np.ndarray, threshold: float,
                           low: float = 1e-3, high: float = 0.5) -> list[tuple[float, float]]:
    """The jump of each learned singular value: the τ at which it reaches ``low`` and ``high`` × its final
    value.

    Learned: a final value ≥ :data:`LEARNED_FACTOR` × ``threshold`` (a value that rises past the threshold and
    falls back is a transient, not a learned direction). The windows are those of
    :func:`rankbook.theory.flow.transition_windows` (chapter 03), for singular values instead of entries.
    """
    out = []
    for col in np.asarray(values).T:
        final = float(col[-1])
        if final >= LEARNED_FACTOR * threshold:
            out.append((_first_crossing(tau, col, low * final), _first_crossing(tau, col, high * final)))
    return out


def window_gaps(windows: list[tuple[float, float]]) -> list[float]:
    """Gaps between consecutive jumps (start of the next − end of the previous, by start); < 0: overlap."""
    ordered = sorted(windows)
    return [nxt[0] - cur[1] for cur, nxt in zip(ordered, ordered[1:])]


def one_at_a_time_verdict(gaps: dict[str, list[float]]) -> str:
    """Shown when every consecutive pair of learned singular values is separated (gap > 0), partly shown when
    some are, not shown when none is or fewer than two are learned."""
    flat = [g for gs in gaps.values() for g in gs]
    separated = sum(g > 0 for g in flat)
    return verdict(bool(flat) and separated == len(flat), partly=separated > 0)


def onsets_text(onsets: dict[str, list[float | None]]) -> str:
    """"name: τ1, τ2, never; ..." for the singular-value onsets of each product."""
    return "; ".join(f"{name}: " + ", ".join("never" if t is None else f"{t:.3f}" for t in times)
                     for name, times in onsets.items())


def alpha_key(alpha: float) -> str:
    """How an α names its entry in a chapter's summary (JSON keys are text): ``f"{alpha:g}"``."""
    return f"{float(alpha):g}"


def theory_claims(summary: dict, tier_name: str, chapter: str) -> list[dict]:
    """Chapter 01's claims rows from its summary (live or stored): stage times against Algorithm 1, Lemma 4.1.

    Theorem 4.5 is shown when the largest relative stage-time error shrinks at every step to a smaller α,
    partly shown when it is smaller at the smallest α than at the largest but not at every step.
    """
    errors = summary["max_relative_error"]  # {α as text: error}, α in the profile's order
    ordered = sorted(errors, key=float, reverse=True)
    values = [errors[a] for a in ordered]
    law = summary["conservation"]
    return [
        claims.row("Gradient flow follows Algorithm 1's stages as α → 0", "Theorem 4.5", tier_name,
                   "max relative stage-time error " + ", ".join(f"{errors[a]:.3f} (α={a})" for a in ordered),
                   verdict(decreasing(values), partly=len(values) > 1 and values[-1] < values[0]), chapter),
        claims.row("u_i² − v_i² is conserved along gradient flow", "Lemma 4.1", tier_name,
                   f"max relative drift {law['drift']:.1e} while u² grew {law['growth']:.1e}×",
                   verdict(law["drift"] < 1e-6), chapter)]


def toy_claims(summary: dict, tier_name: str, chapter: str) -> list[dict]:
    """Chapter 02's claims rows from its summary (live or stored): the switches at the smallest α (counted on
    the flow) and whether the full-weight head's singular values are learned one at a time
    (:func:`one_at_a_time_verdict` on the gaps between their jumps)."""
    small = min(summary["switches"], key=lambda r: r["α"])
    error = summary["max_relative_error"][alpha_key(small["α"])]
    gaps = summary["full"]["gaps"]
    return [
        claims.row("As α → 0, one diagonal entry switches on per stage: those of the teacher",
                   "Figs. 2a-c, 6-8", tier_name,
                   f"flow at α={small['α']:g} switches on {small['switched on']} coordinates (teacher: "
                   f"{summary['n_teacher']}); max onset error vs Algorithm 1 {error:.3f}",
                   verdict(small[SAME]), chapter),
        claims.row("Full weights learn singular values incrementally", "Fig. 2d-f", tier_name,
                   "gaps between consecutive singular-value jumps (τ; < 0: overlap) " + "; ".join(
                       f"{name}: " + (", ".join(f"{g:+.3f}" for g in gs) or "fewer than 2 learned")
                       for name, gs in gaps.items()),
                   one_at_a_time_verdict(gaps), chapter)]


def _alphas_of(summaries: dict, key: str) -> list[float]:
    """Every α some tier's summary measures under ``key`` (a {α as text: value} mapping), largest first."""
    return sorted({float(a) for s in summaries.values() for a in s[key]}, reverse=True)


def theory_tier_rows(summaries: dict) -> list[dict]:
    """Chapter 01's numbers at each tier (``{tier: summary}``), one row per quantity, one column per tier."""
    from rankbook.theory import tiers

    fields = {f"max rel. stage-time error, α = {a:g}":
              (lambda s, a=a: f"{s['max_relative_error'][alpha_key(a)]:.3f}")
              for a in _alphas_of(summaries, "max_relative_error")}
    fields.update({"Algorithm 1 stages": lambda s: s["n_stages"],
                   "dense teacher: coordinates switched on": lambda s: s["dense_teacher_switches"],
                   "conservation: max relative drift": lambda s: f"{s['conservation']['drift']:.1e}"})
    return tiers.side_by_side(summaries, fields)


def toy_tier_rows(summaries: dict) -> list[dict]:
    """Chapter 02's numbers at each tier (``{tier: summary}``), one row per quantity, one column per tier."""
    from rankbook.theory import tiers

    switched = {alpha_key(r["α"]): r for s in summaries.values() for r in s["switches"]}
    fields = {}
    for a in sorted(map(float, switched), reverse=True):
        fields[f"α = {a:g}: switched on (the teacher's?)"] = lambda s, a=a: _switch_text(s, a)
    for a in _alphas_of(summaries, "max_relative_error"):
        fields[f"α = {a:g}: max onset error vs Algorithm 1"] = (
            lambda s, a=a: f"{s['max_relative_error'][alpha_key(a)]:.3f}")
    fields.update({
        "seeds": lambda s: s["settings"]["n_seeds"],
        "full weights: α": lambda s: f"{s['settings']['full_alpha']:g}",
        "full weights: gaps between jumps, W_K W_Q^T": lambda s: _gaps_text(s["full"]["gaps"]["W_K W_Q^T"]),
        "full weights: gaps between jumps, W_V W_O^T": lambda s: _gaps_text(s["full"]["gaps"]["W_V W_O^T"]),
        "full weights: λ_max at the end": lambda s: f"{s['full']['lambda_max']:.1f}"})
    return tiers.side_by_side(summaries, fields)


def _gaps_text(gaps: list[float]) -> str:
    return ", ".join(f"{g:+.3f}" for g in gaps) or "fewer than 2 learned"


def _switch_text(summary: dict, alpha: float) -> str | None:
    """"5 (yes)": coordinates the flow switched on at ``alpha`` and whether they are the teacher's."""
    for r in summary["switches"]:
        if alpha_key(r["α"]) == alpha_key(alpha):
            return f"{r['switched on']} ({'yes' if r[SAME] else 'no'})"
    return None


def optimizer_survival(runs: dict, expected, threshold: float,
                       reference: str = "gradient flow") -> list[dict]:
    """Per optimizer run: does it switch on exactly ``expected`` (the teacher's coordinates), in the order the
    ``reference`` run (the flow) switches them on, and how far its onsets are from the flow's (in τ; "–" for a
    run that does not keep the flow's switches)?"""
    def order(traj):
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged run's u⊙v overflows
            onsets = flow.activation_times(traj, threshold)
        ever = np.flatnonzero(~np.isnan(onsets))
        return onsets, [int(i) for i in sorted(ever, key=lambda i: onsets[i])]

    ref_onsets, ref_order = order(runs[reference])
    rows = []
    for name, traj in runs.items():
        onsets, seq = order(traj)
        same = sorted(seq) == sorted(int(i) for i in expected) and seq == ref_order
        shift = float(np.max(np.abs(onsets[ref_order] - ref_onsets[ref_order]))) if same else "–"
        rows.append({"run": name, "coordinates switched on": len(seq),
                     "the teacher's, in the flow's order": same,
                     "largest onset shift vs the flow (τ)": shift})
    return rows

"""Chapter 03's experiments: Figs. 9 and 10 of appendix A run on the toy head, and their numbers.

Fig. 9 (Assumption 4.3): kicks at random times on every plateau between stages;
the number is the decay of ‖Δ(u⊙v)‖ over the rest of that plateau.
Fig. 10 (Assumption 4.4): kicks as each coordinate's weight first exceeds the
threshold; the number is the distance of the perturbed run to Algorithm 1's
next saddle θ^{k+1} (what the assumption says), and the time shift of the
closest approach compared with the unperturbed run.
"""
from __future__ import annotations

import numpy as np

from rankbook.settings.toy import ToySettings
from rankbook.theory import flow, perturbations
from rankbook.theory.perturbations import Perturbation


def _solver(settings: ToySettings) -> dict:
    return {"rtol": settings.rtol, "atol": settings.atol, "method": settings.solver}


def plateau_experiments(net, traj, stages, settings: ToySettings,
                        rng: np.random.Generator) -> list[tuple[int, Perturbation]]:
    """Fig. 9: (stage k, experiment) for random times on each plateau θ^k, window to the plateau's end."""
    found = perturbations.plateaus(traj, stages, settings.perturb_threshold)
    ends = {p["stage"]: p["end"] for p in found}
    out = []
    for k, tau in perturbations.plateau_times(found, rng, settings.perturb_per_plateau):
        start, j = perturbations.state_at(net, traj, tau, **_solver(settings))
        # a plateau can be shorter than the return takes at this α: then the window runs into the next jump
        duration = max(ends[k] - tau, settings.perturb_window) * flow.log_inverse(traj.alpha)
        out.append((k, perturbations.kick_and_follow(
            net, start, j, std=settings.perturb_std_plateau, threshold=settings.perturb_threshold,
            duration=duration, rng=rng, compare=traj, **_solver(settings))))
    return out


def saddle_experiments(net, stages, settings: ToySettings,
                       rng: np.random.Generator) -> list[tuple[int, Perturbation]]:
    """Assumption 4.3 as α → 0: kick each saddle θ^k of Algorithm 1 itself, follow ``saddle_window``."""
    out = []
    for stage in stages:
        start = perturbations.at_saddle(net, stage.beta, settings.perturb_alpha)
        out.append((stage.k, perturbations.kick_and_follow(
            net, start, 0, std=settings.perturb_std_plateau, threshold=settings.perturb_threshold,
            duration=settings.saddle_window, rng=rng, n_record=40, **_solver(settings))))
    return out


def plateau_rows(experiments: list[tuple[int, Perturbation]], final_stage: int,
                 found: list[dict] | None = None) -> list[dict]:
    """Per kick: plateau, window, kicked weights, ‖Δ(u⊙v)‖ right after and at the window's end, decay rate.

    With ``found`` (:func:`rankbook.theory.perturbations.plateaus`), also the plateau's length and how close
    the unperturbed run comes to θ^k on it.
    """
    plateau = {p["stage"]: p for p in found or []}
    rows = []
    for k, e in experiments:
        d = e.distance
        window = e.reference.t[-1] - e.reference.t[0]
        row = {"plateau": f"θ^{k}" + (" (final)" if k == final_stage else "")}
        if k in plateau:
            log_inv = flow.log_inverse(e.reference.alpha)
            row.update({"plateau length (t)": (plateau[k]["end"] - plateau[k]["start"]) * log_inv,
                        "unperturbed: closest to θ^k": plateau[k]["closest"]})
        rows.append(row)
        row.update({"τ of kick": e.tau, "window (t)": window, "weights kicked": int(e.perturbed_coords.size),
                    "‖Δ(u⊙v)‖ after kick": float(d[0]), "‖Δ(u⊙v)‖ at window end": float(d[-1]),
                    "decay end / start": float(d[-1] / d[0]) if d[0] > 0 else float("nan"),
                    "closest return min / start": float(d.min() / d[0]) if d[0] > 0 else float("nan"),
                    "decay rate (1/t)": float(np.log(d[0] / d[-1]) / window) if d[0] > 0 else float("nan")})
    return rows


def _target(stages, coord: int, tau: float):
    """The stage whose saddle the jump of ``coord`` at ``tau`` leads to (its own stage, else the next one)."""
    own = [s for s in stages if s.winner == coord]
    later = [s for s in stages if s.time > tau]
    return own[0] if own else (later[0] if later else None)


def jump_experiments(net, traj, stages, settings: ToySettings, rng: np.random.Generator) -> list[dict]:
    """Fig. 10: kick at each first crossing of the threshold; follow to the end of the next saddle's plateau.

    Returns dicts with the experiment, the crossing coordinate and Algorithm 1's target stage.
    """
    # window: to the end of θ^{k+1}'s plateau, at most ``perturb_window`` past the unperturbed run's arrival
    ends = {p["stage"]: min(p["end"], p["start"] + settings.perturb_window)
            for p in perturbations.plateaus(traj, stages, settings.perturb_threshold)}
    out = []
    for tau, coord in perturbations.crossings(traj, settings.perturb_threshold):
        start, j = perturbations.crossing_state(net, traj, coord, settings.perturb_threshold,
                                                **_solver(settings))
        target = _target(stages, coord, tau)
        end = ends[target.k] if target is not None else traj.tau[-1]
        duration = max(end - start.tau[j], 0.05) * flow.log_inverse(traj.alpha)
        exp = perturbations.kick_and_follow(net, start, j, std=settings.perturb_std_jump,
                                            threshold=settings.perturb_threshold, duration=duration, rng=rng,
                                            compare=traj, **_solver(settings))
        out.append({"experiment": exp, "coord": coord, "stage": target})
    return out


def jump_rows(net, found: list[dict]) -> list[dict]:
    """Per crossing: was the new coordinate kicked; distance of both runs to θ^{k+1}; time shift."""
    rows = []
    for item in found:
        e, stage, coord = item["experiment"], item["stage"], item["coord"]
        row = {"τ of kick": e.tau, "new coordinate": net.coordinate_name(coord),
               "weights kicked": int(e.perturbed_coords.size),
               "new coordinate kicked": bool(coord in e.kicked(net.p)),
               "next saddle": f"θ^{stage.k}" if stage is not None else "none"}
        if stage is not None:
            d_ref = perturbations.closest_approach(e.reference, stage.beta)[0]
            d_pert = perturbations.closest_approach(e.perturbed, stage.beta)[0]
            shift = (perturbations.jump_time(e.perturbed, coord, stage.beta[coord])
                     - perturbations.jump_time(e.reference, coord, stage.beta[coord]))
            row.update({"‖θ^{k+1}‖": float(np.linalg.norm(stage.beta)), "unperturbed: min distance": d_ref,
                        "perturbed: min distance": d_pert, "time shift (τ)": shift,
                        "time shift (t)": shift * flow.log_inverse(e.reference.alpha)})
        row["‖Δ(u⊙v)‖ at window end"] = float(e.distance[-1])
        rows.append(row)
    return rows


def separation_verdict(sep_rows: list[dict]) -> str:
    """Assumption 4.2 from the separation table (rows in decreasing α): shown when the widest jump shrinks at
    every smaller α and no two jumps overlap at any α; partly shown when it shrinks and the jumps are separate
    at the smallest α but overlap at a larger one; not shown otherwise."""
    from rankbook.theory import stages

    rows = sorted(sep_rows, key=lambda r: r["α"], reverse=True)
    widths = [r["max jump width (τ)"] for r in rows]
    gaps = [r["min gap between jumps (τ)"] for r in rows]
    shrinks = stages.decreasing(widths)
    return stages.verdict(shrinks and all(g > 0 for g in gaps), partly=shrinks and gaps[-1] > 0)


def claim_rows(summary: dict, tier: str, chapter: str) -> list[dict]:
    """Chapter 03's claims from its summary (live or stored): decay at every saddle, kicked jumps reaching
    θ^{k+1}, and the stages separating (:func:`separation_verdict`)."""
    from rankbook.analysis import claims
    from rankbook.theory import stages

    saddle_rows, jump_rows = summary["saddles"], summary["jumps"]
    sep_rows = sorted(summary["separation"], key=lambda r: r["α"], reverse=True)
    targeted = [r for r in jump_rows if r["next saddle"] != "none"]
    decay = ", ".join(f"{r['decay end / start']:.1e}" for r in saddle_rows)
    reach = ", ".join(f"{r['perturbed: min distance']:.1e}" for r in targeted)
    jump_ok = all(r["new coordinate kicked"] for r in jump_rows) and all(
        r["perturbed: min distance"] <= max(2 * r["unperturbed: min distance"], 1e-6) for r in targeted)
    widths = " → ".join(f"{r['max jump width (τ)']:.3f}" for r in sep_rows)
    gaps = " → ".join(f"{r['min gap between jumps (τ)']:+.3f}" for r in sep_rows)
    return [
        claims.row("Plateaus are strict local minima: kicks decay", "Fig. 9, Assumption 4.3", tier,
                   f"‖Δ(u⊙v)‖ end/start at θ^k {decay}",
                   stages.verdict(all(r["decay end / start"] < 1e-3 for r in saddle_rows)), chapter),
        claims.row("Kicked jumps reach the next saddle θ^{k+1}", "Fig. 10, Assumption 4.4", tier,
                   f"min distance to θ^(k+1) {reach}",
                   stages.verdict(jump_ok), chapter),
        claims.row("Stages separate as α → 0", "appendix A, Assumption 4.2", tier,
                   f"α {sep_rows[0]['α']:g} → {sep_rows[-1]['α']:g}: widest jump {widths}; "
                   f"smallest gap {gaps} (< 0: overlap)",
                   separation_verdict(sep_rows), chapter)]


def tier_rows(summaries: dict) -> list[dict]:
    """Chapter 03's numbers at each tier (``{tier: summary}``), one row per quantity, one column per tier."""
    from rankbook.theory import tiers

    def sep(s, a, key, fmt):
        row = next((r for r in s["separation"] if f"{r['α']:g}" == f"{a:g}"), None)
        return None if row is None else format(row[key], fmt)

    alphas = sorted({r["α"] for s in summaries.values() for r in s["separation"]}, reverse=True)
    def kicked(s):
        return f"{sum(r['new coordinate kicked'] for r in s['jumps'])} of {len(s['jumps'])}"

    def reach(s):
        return f"{max(r['perturbed: min distance'] for r in s['jumps'] if r['next saddle'] != 'none'):.1e}"

    fields = {"saddles: largest ‖Δ(u⊙v)‖ end / start":
              lambda s: f"{max(r['decay end / start'] for r in s['saddles']):.1e}",
              "kicked jumps: new coordinate kicked": kicked,
              "kicked jumps: largest min distance to θ^(k+1)": reach}
    for a in alphas:
        fields[f"α = {a:g}: widest jump (τ)"] = lambda s, a=a: sep(s, a, "max jump width (τ)", ".3f")
        fields[f"α = {a:g}: smallest gap (τ)"] = lambda s, a=a: sep(s, a, "min gap between jumps (τ)", "+.3f")
    fields["stages separate"] = lambda s: separation_verdict(s["separation"])
    return tiers.side_by_side(summaries, fields)

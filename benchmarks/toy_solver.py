"""Benchmark of the toy model's solvers (prints; not a timed test).

All on the same problem: the toy diagonal head (``fast`` profile, ``--n-samples`` sequences), horizon τ = 0.9.
Stage-time accuracy = max over the teacher's coordinates of |onset − reference onset| / reference onset,
onsets at |u_i v_i| ≥ 1e-2, the reference a log-coordinate Radau flow at rtol 1e-10.

1. Equal stage-time accuracy (≤ --target) at α = 1e-8 and 1e-32: evaluations of the event method (plateaus
   skipped, ROS2 through the jumps) against fixed-step gradient descent, and their ratio. Each method takes
   the first setting of its grid (rtol, lr: coarse to fine, ~3× apart) that reaches the target; the winner's
   loss is then recorded and its largest rise printed. GD runs whose estimated time would pass the budget
   (--gd-budget-s: 30 s with --quick, 30 min with --full) are not run: GD's error is first order in lr, so
   the first lr of its grid predicted (from its finest run) to reach the target is taken, the output says
   so, and it also gives the evaluations at the lr tuned exactly to the target. Measured once with the
   budget raised (50 sequences, 2 cores, issue 23): GD needs lr 3e-4 at both α (errors 5.72e-4 and
   5.73e-4): 55,263 steps at 1e-8 (83 s) and 221,049 at 1e-32 (293 s), what the extrapolation predicts.
2. Cost against α: evaluations of the event method at the fast profile's tolerance (1e-5),
   α = 1e-4 … 1e-128, and of the
   plain Radau flow (the default before) at 1e-4 and 1e-32.
3. One evaluation (loss + gradient): hand-derived NumPy vs torch autograd, one thread.
4. Solvers on one problem (α = 1e-32): Radau, BDF, LSODA (capped steps, as before), and the event method
   with ROS2 / Radau / BDF inside: evaluations, wall time, stage-time error, largest loss rise above 1e-22.

--quick (default without CUDA): 50 training sequences, ~2 minutes on two CPU cores;
--full: the paper's 1000 and the GD runs at 1e-32 measured unless one would take > 30 minutes.

Usage: python benchmarks/toy_solver.py [--quick|--full] [--out PATH] [--n-samples N] [--target REL]
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from rankbook.book import benchmarking
from rankbook.settings import profiles
from rankbook.settings.toy import PROFILES
from rankbook.store import atomic
from rankbook.theory import descent, flow, toy
from rankbook.theory.diagonal import single_thread_blas

HORIZON_TAU = 0.9  # all of the toy teacher's stages end before τ ≈ 0.8 (see chapter 01)
#: both grids step by ~3×, coarse to fine: each method gets the first setting that reaches the target
FLOW_RTOLS = (3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5)
GD_LRS = (0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5)


def stage_error(traj: flow.Trajectory, coords: np.ndarray, reference: np.ndarray) -> float:
    onsets = flow.activation_times(traj, 1e-2)[coords]
    return float(np.max(np.abs(onsets - reference) / reference))


def _reference(net, settings, alpha: float, n_record: int):
    u0, v0 = toy.diagonal_init(settings, alpha)
    times = flow.record_times(alpha, HORIZON_TAU, n_record)
    coords = np.flatnonzero(toy.teacher(settings).beta)
    reference = flow.log_flow(net, u0, v0, alpha, times, method="Radau", rtol=1e-10, atol=1e-10,
                              record_loss=False)
    return u0, v0, times, coords, flow.activation_times(reference, 1e-2)[coords], reference.n_evals


def accuracy_race(net, settings, alpha: float, target: float, n_record: int, gd_budget_s: float) -> dict:
    u0, v0, times, coords, ref_onsets, ref_evals = _reference(net, settings, alpha, n_record)
    flow_trials, gd_trials = [], []
    for rtol in FLOW_RTOLS:
        traj = flow.log_flow(net, u0, v0, alpha, times, method="events-ROS2", rtol=rtol,
                             atol=rtol, record_loss=False)
        flow_trials.append({"rtol": rtol, "evaluations": traj.n_evals, "wall_s": traj.wall_s,
                            "max_rel_error": stage_error(traj, coords, ref_onsets)})
        print(f"  α = {alpha:g} events rtol {rtol:g}: {traj.n_evals} evaluations, {traj.wall_s:.2f} s, "
              f"error {flow_trials[-1]['max_rel_error']:.2e}")
        if flow_trials[-1]["max_rel_error"] <= target:
            break
    theta0 = np.concatenate([u0, v0])
    seconds_per_eval, spent = None, 0.0
    skipped = []
    for lr in GD_LRS:
        steps = int(round(times[-1] / lr)) + 1
        if seconds_per_eval is not None and spent + steps * seconds_per_eval > gd_budget_s:
            skipped.append({"lr": lr, "evaluations": steps, "estimated_s": steps * seconds_per_eval})
            print(f"  α = {alpha:g} GD lr {lr:g}: not run ({steps} steps, ~{steps * seconds_per_eval:.0f} s "
                  f"estimated, past the {gd_budget_s:g} s budget)")
            break
        traj = descent.gradient_descent(net.loss_and_grad, theta0, alpha, lr, times)
        spent += traj.wall_s
        seconds_per_eval = traj.wall_s / traj.n_evals
        gd_trials.append({"lr": lr, "evaluations": traj.n_evals, "wall_s": traj.wall_s,
                          "max_rel_error": stage_error(traj, coords, ref_onsets)})
        print(f"  α = {alpha:g} GD lr {lr:g}: {traj.n_evals} evaluations, {traj.wall_s:.2f} s, "
              f"error {gd_trials[-1]['max_rel_error']:.2e}")
        if gd_trials[-1]["max_rel_error"] <= target:
            break
    best_flow = next((t for t in flow_trials if t["max_rel_error"] <= target), None)
    best_gd = next((t for t in gd_trials if t["max_rel_error"] <= target), None)
    out = {"alpha": alpha, "target_max_rel_error": target, "reference_evaluations": ref_evals,
           "flow_trials": flow_trials, "gd_trials": gd_trials, "gd_not_run": skipped, "flow": best_flow,
           "gd": best_gd, "gd_extrapolated": False}
    if best_flow:
        # the winner's loss, recorded afterwards (the trials time the solver alone): is it monotone?
        traj = flow.log_flow(net, u0, v0, alpha, times, method="events-ROS2", rtol=best_flow["rtol"],
                             atol=best_flow["rtol"])
        best_flow["largest_loss_rise"] = descent.largest_loss_rise(traj, flow.ROUNDING_FLOOR)
    if best_flow and best_gd:
        out["gd_evaluations"] = best_gd["evaluations"]
    elif best_flow and gd_trials:
        # GD's error is first order in lr (measured: ×3 per ×3 in lr, the same at α = 1e-8 and 1e-32): the
        # first lr of its grid predicted to reach the target, as a run would pick it (the flow also gets the
        # first rtol of its grid that does), and the lr tuned exactly to the target, for comparison
        last = gd_trials[-1]
        lr = next((lr for lr in GD_LRS if last["max_rel_error"] * lr / last["lr"] <= target), None)
        if lr is not None:
            out["gd_evaluations"] = int(round(times[-1] / lr)) + 1
            out["gd_extrapolated_lr"] = lr
        out["gd_evaluations_exact_lr"] = last["evaluations"] * last["max_rel_error"] / target
        out["gd_extrapolated"] = True
    if best_flow and "gd_evaluations" in out:
        out["evaluation_ratio"] = out["gd_evaluations"] / best_flow["evaluations"]
    return out


def cost_against_alpha(net, settings, alphas, n_record: int) -> list[dict]:
    rows = []
    for alpha in alphas:
        u0, v0 = toy.diagonal_init(settings, alpha)
        times = flow.record_times(alpha, HORIZON_TAU, n_record)
        run = flow.log_flow(net, u0, v0, alpha, times, rtol=settings.rtol, atol=settings.atol,
                            record_loss=False)
        row = {"alpha": alpha, "log(1/alpha)": flow.log_inverse(alpha), "events_evaluations": run.n_evals,
               "events_wall_s": run.wall_s, "plateaus_skipped": len(run.skips),
               "learned": int((np.abs(run.beta[-1]) > 1e-2).sum())}
        line = (f"  α = {alpha:g}: events {run.n_evals} evaluations ({run.wall_s:.2f} s, {len(run.skips)} "
                f"plateaus skipped, {row['learned']} coordinates learned)")
        if alpha in (1e-4, 1e-32):
            old = flow.log_flow(net, u0, v0, alpha, times, method="Radau", rtol=1e-6, atol=1e-6,
                                record_loss=False)
            row["radau_evaluations"] = old.n_evals
            line += f"; plain Radau (rtol 1e-6, steps ≤ 0.01 τ) {old.n_evals}"
        rows.append(row)
        print(line)
    return rows


def _median_ms(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(1e3 * (time.perf_counter() - start))
    return statistics.median(samples)


def evaluation_cost(settings, repeats: int = 30) -> dict:
    net, full = toy.diagonal_head(settings), toy.full_head(settings)
    rng = np.random.default_rng(0)
    beta = 0.5 * rng.standard_normal(net.p)
    theta = 0.5 * rng.standard_normal(full.size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a fair comparison: the hand-derived path runs BLAS on one thread

    def autograd_diag():
        b = torch.tensor(beta, requires_grad=True)
        torch.autograd.grad(net.loss_torch(b), b)

    def autograd_full():
        t = torch.tensor(theta, requires_grad=True)
        torch.autograd.grad(full.loss_torch(t), t)

    try:
        with single_thread_blas():
            out = {"diagonal_hand_ms": _median_ms(lambda: net.loss_and_g(beta), repeats),
                   "diagonal_autograd_ms": _median_ms(autograd_diag, repeats),
                   "full_hand_ms": _median_ms(lambda: full.loss_and_grad(theta), repeats),
                   "full_autograd_ms": _median_ms(autograd_full, repeats)}
    finally:
        torch.set_num_threads(threads)
    out["diagonal_speedup"] = out["diagonal_autograd_ms"] / out["diagonal_hand_ms"]
    out["full_speedup"] = out["full_autograd_ms"] / out["full_hand_ms"]
    return out


SOLVER_RUNS = (("Radau", 1e-6), ("BDF", 1e-6), ("LSODA", 1e-6), ("events", 1e-5), ("events", 1e-3),
               ("events-BDF", 1e-4), ("events-ROS2", 1e-2), ("events-ROS2", 1e-3), ("events-ROS2", 1e-5))


def solver_comparison(net, settings, alpha: float, n_record: int) -> list[dict]:
    u0, v0, times, coords, ref_onsets, _ = _reference(net, settings, alpha, n_record)
    rows = []
    for method, rtol in SOLVER_RUNS:
        try:
            run = flow.log_flow(net, u0, v0, alpha, times, method=method, rtol=rtol, atol=rtol)
        except RuntimeError as err:
            rows.append({"method": method, "rtol": rtol, "failed": str(err)})
            print(f"  {method:13s} rtol {rtol:g}: failed ({err})")
            continue
        row = {"method": method, "rtol": rtol, "evaluations": run.n_evals, "wall_s": run.wall_s,
               "max_rel_error": stage_error(run, coords, ref_onsets),
               "largest_loss_rise": descent.largest_loss_rise(run, flow.ROUNDING_FLOOR)}
        rows.append(row)
        print(f"  {method:13s} rtol {rtol:g}: {run.n_evals:5d} evaluations, {run.wall_s:5.2f} s, stage-time "
              f"error {row['max_rel_error']:.1e}, largest loss rise above {flow.ROUNDING_FLOOR:g}: "
              f"{max(row['largest_loss_rise'], 0.0):.1e}")
    return rows


def main(argv=None) -> dict:
    parser = benchmarking.parser("toy_solver", __doc__)
    parser.add_argument("--n-samples", type=int, default=None,
                        help="training sequences (default: 50 with --quick, the paper's 1000 with --full)")
    parser.add_argument("--target", type=float, default=1e-3, help="max relative stage-time error to reach")
    parser.add_argument("--n-record", type=int, default=3000, help="recorded points (stage-time resolution)")
    parser.add_argument("--gd-budget-s", type=float, default=None,
                        help="seconds of GD per α past which GD is extrapolated (30 quick, 1800 full)")
    args = parser.parse_args(argv)
    _, quick = benchmarking.resolve(args)  # the toy solvers run on the CPU whatever the device
    args.n_samples = args.n_samples or (50 if quick else 1000)
    budget = args.gd_budget_s if args.gd_budget_s is not None else (30.0 if quick else 1800.0)
    settings = profiles.select(PROFILES, "fast", n_samples=args.n_samples)
    net = toy.diagonal_head(settings)
    print(f"toy head: {toy.describe(settings, 'fast')}")
    print(f"1. equal stage-time accuracy (max rel. error ≤ {args.target:g}): event method vs GD")
    races = {alpha: accuracy_race(net, settings, alpha, args.target, args.n_record, budget)
             for alpha in (1e-8, 1e-32)}
    print(f"2. cost against α (event method, the profile's rtol {settings.rtol:g}; horizon τ = 0.9)")
    by_alpha = cost_against_alpha(net, settings, (1e-4, 1e-8, 1e-32, 1e-64, 1e-128), args.n_record // 10)
    print("3. one evaluation (loss + gradient), median ms, one thread")
    cost = evaluation_cost(settings)
    print("4. solvers at α = 1e-32, same problem and records")
    solvers = solver_comparison(net, settings, 1e-32, args.n_record // 10)
    evals = {row["alpha"]: row["events_evaluations"] for row in by_alpha}
    print("\nsummary")
    for alpha, race in races.items():
        if "evaluation_ratio" in race:
            flow_evals = race["flow"]["evaluations"]
            how = (f"lr {race['gd_extrapolated_lr']:g}, NOT RUN: extrapolated from its finest run, a run "
                   f"would pass the {budget:g} s budget; at the lr tuned exactly to the target "
                   f"{race['gd_evaluations_exact_lr']:.0f}, "
                   f"{race['gd_evaluations_exact_lr'] / flow_evals:.0f}×"
                   if race["gd_extrapolated"] else f"lr {race['gd']['lr']:g}, measured")
            print(f"  α = {alpha:g}: events-ROS2 {flow_evals} (rtol {race['flow']['rtol']:g}, largest loss "
                  f"rise {max(race['flow']['largest_loss_rise'], 0.0):.0e}) vs "
                  f"GD {race['gd_evaluations']:.0f} evaluations ({how}): "
                  f"{race['evaluation_ratio']:.0f}× fewer")
        else:
            print(f"  α = {alpha:g}: a method did not reach the target: {race}")
    print(f"  cost growth α = 1e-4 → 1e-32: {evals[1e-4]} → {evals[1e-32]} evaluations "
          f"(×{evals[1e-32] / evals[1e-4]:.2f}); 1e-64: {evals[1e-64]}, 1e-128: {evals[1e-128]}")
    print(f"  one evaluation: diagonal hand {cost['diagonal_hand_ms']:.2f} ms vs autograd "
          f"{cost['diagonal_autograd_ms']:.2f} ms ({cost['diagonal_speedup']:.1f}×); full hand "
          f"{cost['full_hand_ms']:.2f} ms vs autograd {cost['full_autograd_ms']:.2f} ms "
          f"({cost['full_speedup']:.1f}×)")
    print("  solvers at α = 1e-32 (evaluations / stage-time error / largest loss rise): " + "; ".join(
        f"{r['method']} {r['rtol']:g}: " + ("failed" if "failed" in r else
                                            f"{r['evaluations']} / {r['max_rel_error']:.0e} / "
                                            f"{max(r['largest_loss_rise'], 0.0):.0e}") for r in solvers))
    by_run = {(r["method"], r["rtol"]): r for r in solvers if "failed" not in r}
    default, ros2 = by_run.get(("events", settings.rtol)), by_run.get(("events-ROS2", settings.rtol))
    if default and ros2:
        cheaper = ("Radau (order 5) is the cheaper there: the default; ROS2 (order 2) wins at loose "
                   "tolerances (the race)" if default["evaluations"] <= ros2["evaluations"] else
                   "ROS2 is the cheaper there too (the default is not the cheapest)")
        print(f"  the default, events (Radau inside) at the profile's rtol {settings.rtol:g}: "
              f"{default['evaluations']} evaluations, stage-time error {default['max_rel_error']:.0e}, "
              f"loss rise {max(default['largest_loss_rise'], 0.0):.0e}; events-ROS2 at that rtol: "
              f"{ros2['evaluations']}, "
              f"{ros2['max_rel_error']:.0e}, {max(ros2['largest_loss_rise'], 0.0):.0e}. {cheaper}")
    result = {"mode": "quick" if quick else "full", "settings": settings.as_dict(),
              "accuracy_race": {f"{a:g}": r for a, r in races.items()}, "cost_against_alpha": by_alpha,
              "evaluation_cost_ms": cost, "solver_comparison": solvers}
    atomic.write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

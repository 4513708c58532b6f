"""Benchmark of the toy model's solvers (prints; not a timed test).

1. Same stage-time accuracy at α = 1e-8: vector-field evaluations and wall time of the
   adaptive log-coordinate gradient flow vs fixed-step gradient descent, and their ratio.
   Accuracy = max over the teacher's coordinates of |onset − reference onset| / reference onset,
   onsets measured as |u_i v_i| ≥ 1e-2, the reference a log-coordinate flow at rtol 1e-10.
2. Cost against α: evaluations of the log-coordinate flow and of a plain θ-coordinate
   adaptive solver (RK45) at α = 1e-4 and 1e-32, same rescaled horizon.
3. Cost of one evaluation: hand-derived gradient vs torch autograd (diagonal and full head).

--quick (default without CUDA): 50 training sequences, about a minute on two CPU cores;
--full: the paper's 1000 (GD then needs ~55k steps: minutes).

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


def stage_error(traj: flow.Trajectory, coords: np.ndarray, reference: np.ndarray) -> float:
    onsets = flow.activation_times(traj, 1e-2)[coords]
    return float(np.max(np.abs(onsets - reference) / reference))


def accuracy_race(net, settings, alpha: float, target: float, n_record: int) -> dict:
    u0, v0 = toy.diagonal_init(settings, alpha)
    times = flow.record_times(alpha, HORIZON_TAU, n_record)
    coords = np.flatnonzero(toy.teacher(settings).beta)
    reference = flow.log_flow(net, u0, v0, alpha, times, rtol=1e-10, atol=1e-10, record_loss=False)
    ref_onsets = flow.activation_times(reference, 1e-2)[coords]
    flow_trials, gd_trials = [], []
    for rtol in (1e-3, 1e-4, 1e-5, 1e-6, 1e-7):
        traj = flow.log_flow(net, u0, v0, alpha, times, rtol=rtol, atol=rtol, record_loss=False)
        flow_trials.append({"rtol": rtol, "evaluations": traj.n_evals, "wall_s": traj.wall_s,
                            "max_rel_error": stage_error(traj, coords, ref_onsets)})
        print(f"  log-flow rtol {rtol:g}: {traj.n_evals} evaluations, {traj.wall_s:.2f} s, "
              f"error {flow_trials[-1]['max_rel_error']:.2e}")
        if flow_trials[-1]["max_rel_error"] <= target:
            break
    theta0 = np.concatenate([u0, v0])
    for lr in (0.03, 0.01, 3e-3, 1e-3, 3e-4):
        traj = descent.gradient_descent(net.loss_and_grad, theta0, alpha, lr, times)
        gd_trials.append({"lr": lr, "evaluations": traj.n_evals, "wall_s": traj.wall_s,
                          "max_rel_error": stage_error(traj, coords, ref_onsets)})
        print(f"  GD lr {lr:g}: {traj.n_evals} evaluations, {traj.wall_s:.2f} s, "
              f"error {gd_trials[-1]['max_rel_error']:.2e}")
        if gd_trials[-1]["max_rel_error"] <= target:
            break
    best_flow = next((t for t in flow_trials if t["max_rel_error"] <= target), None)
    best_gd = next((t for t in gd_trials if t["max_rel_error"] <= target), None)
    out = {"alpha": alpha, "target_max_rel_error": target, "reference_evaluations": reference.n_evals,
           "flow_trials": flow_trials, "gd_trials": gd_trials, "flow": best_flow, "gd": best_gd}
    if best_flow and best_gd:
        out["evaluation_ratio"] = best_gd["evaluations"] / best_flow["evaluations"]
        out["wall_ratio"] = best_gd["wall_s"] / best_flow["wall_s"]
    elif best_flow:  # GD error is first order in lr: extrapolate from the smallest lr tried, and say so
        last = gd_trials[-1]
        needed = last["evaluations"] * last["max_rel_error"] / target
        out["gd_extrapolated_evaluations"] = needed
        out["evaluation_ratio_extrapolated"] = needed / best_flow["evaluations"]
    return out


def cost_against_alpha(net, settings, alphas, n_record: int) -> list[dict]:
    rows = []
    for alpha in alphas:
        u0, v0 = toy.diagonal_init(settings, alpha)
        times = flow.record_times(alpha, HORIZON_TAU, n_record)
        log_run = flow.log_flow(net, u0, v0, alpha, times, record_loss=False)
        theta_run = flow.theta_flow(net.loss_and_grad, np.concatenate([u0, v0]), alpha, times, rtol=1e-6,
                                    atol=1e-12 * alpha ** 2)
        rows.append({"alpha": alpha, "log(1/alpha)": flow.log_inverse(alpha),
                     "log_flow_evaluations": log_run.n_evals, "log_flow_wall_s": log_run.wall_s,
                     "theta_flow_rk45_evaluations": theta_run.n_evals, "theta_flow_wall_s": theta_run.wall_s})
        print(f"  α = {alpha:g}: log-flow {log_run.n_evals} evaluations ({log_run.wall_s:.2f} s), "
              f"θ-flow RK45 {theta_run.n_evals} ({theta_run.wall_s:.2f} s)")
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


def main(argv=None) -> dict:
    parser = benchmarking.parser("toy_solver", __doc__)
    parser.add_argument("--n-samples", type=int, default=None,
                        help="training sequences (default: 50 with --quick, the paper's 1000 with --full)")
    parser.add_argument("--target", type=float, default=1e-3, help="max relative stage-time error to reach")
    parser.add_argument("--n-record", type=int, default=3000, help="recorded points (stage-time resolution)")
    args = parser.parse_args(argv)
    _, quick = benchmarking.resolve(args)  # the toy solvers run on the CPU whatever the device
    args.n_samples = args.n_samples or (50 if quick else 1000)
    settings = profiles.select(PROFILES, "fast", n_samples=args.n_samples)
    net = toy.diagonal_head(settings)
    print(f"toy head: {toy.describe(settings, 'fast')}")
    print(f"1. same stage-time accuracy (max rel. error ≤ {args.target:g}) at α = 1e-8")
    race = accuracy_race(net, settings, 1e-8, args.target, args.n_record)
    if "evaluation_ratio" in race:
        print(f"   → log-flow {race['flow']['evaluations']} vs GD {race['gd']['evaluations']} evaluations: "
              f"{race['evaluation_ratio']:.0f}× fewer; wall {race['flow']['wall_s']:.2f} s vs "
              f"{race['gd']['wall_s']:.2f} s ({race['wall_ratio']:.0f}×)")
    elif "evaluation_ratio_extrapolated" in race:
        print("   → GD did not reach the target at the step sizes tried; extrapolating its first-order "
              f"error: ~{race['gd_extrapolated_evaluations']:.0f} evaluations, "
              f"{race['evaluation_ratio_extrapolated']:.0f}× the log-flow's")
    print("2. cost against α (horizon τ = 0.9)")
    by_alpha = cost_against_alpha(net, settings, (1e-4, 1e-32), args.n_record // 10)
    print("3. one evaluation (loss + gradient), median ms, one thread")
    cost = evaluation_cost(settings)
    print(f"   diagonal: hand {cost['diagonal_hand_ms']:.2f} ms, autograd "
          f"{cost['diagonal_autograd_ms']:.2f} ms ({cost['diagonal_speedup']:.1f}×); "
          f"full: hand {cost['full_hand_ms']:.2f} ms, autograd "
          f"{cost['full_autograd_ms']:.2f} ms ({cost['full_speedup']:.1f}×)")
    result = {"mode": "quick" if quick else "full", "settings": settings.as_dict(), "accuracy_race": race,
              "cost_against_alpha": by_alpha, "evaluation_cost_ms": cost}
    atomic.write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

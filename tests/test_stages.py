"""Measurements on flow runs: switches counted from the runs, onsets above threshold at init, helpers."""
import math

import numpy as np

from rankbook.theory import flow, stages


class _Net:
    @staticmethod
    def coordinate_name(i):
        return f"coordinate {i}"


def _traj(beta, alpha=math.exp(-1.0)):
    """A synthetic run with u = β, v = 1 (so u⊙v = β) and τ = t."""
    beta = np.asarray(beta, dtype=float)
    theta = np.concatenate([beta, np.ones_like(beta)], 1)
    times = np.arange(len(beta), dtype=float)
    return flow.Trajectory(alpha, times, theta, np.zeros(len(beta)), 0, 0.0, "synthetic")


# coordinate 0 starts above the threshold (0.05 ≥ 1e-2); 1 switches on at τ = 1.5; 2 never
RUN = _traj([[0.05, 1e-4, 1e-6], [0.06, 1e-3, 1e-6], [0.1, 1e-1, 1e-6], [0.2, 1.0, 1e-6]])


def test_switches_are_counted_on_the_run_and_exclude_coordinates_above_threshold_at_init():
    np.testing.assert_array_equal(stages.switched_on(RUN, 1e-2), [1])
    rows = stages.switch_rows(_Net(), {0.1: RUN}, np.array([1]), 1e-2)
    assert rows[0]["switched on"] == 1 and rows[0]["above threshold at init"] == 1
    assert rows[0]["same as the teacher's"] is True


def test_onset_above_threshold_at_init_is_reported_as_such_not_as_an_error():
    rows = stages.stage_time_rows(_Net(), {0: 1.0, 1: 1.5, 2: 2.0}, {0.1: RUN}, 1e-2)
    assert rows[0]["α=0.1"] == stages.AT_INIT and rows[0]["rel. err α=0.1"] == stages.AT_INIT
    assert rows[1]["rel. err α=0.1"] == 0.0
    assert math.isnan(rows[2]["α=0.1"])  # never switched on: NaN, which the max propagates
    assert math.isnan(stages.max_relative_errors(rows, [0.1])[0.1])
    assert stages.max_relative_errors(rows[:2], [0.1])[0.1] == 0.0
    assert stages.count_at_init(rows, [0.1]) == {0.1: 1}


def test_helpers():
    assert stages.decreasing([3, 2, 1]) and not stages.decreasing([3, 3, 1])
    assert stages.one_at_a_time([0.1, 0.3, None]) and not stages.one_at_a_time([0.3, 0.1])
    assert not stages.one_at_a_time([0.1, None])
    assert stages.tier("paper") == "paper" and stages.verdict(False) == stages.NOT_SHOWN
    assert stages.verdict(True) == stages.SHOWN and stages.verdict(False, partly=True) == stages.PARTLY
    tau = np.array([0.0, 1.0, 2.0])
    values = np.array([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]])
    assert stages.singular_value_onsets(tau, values, 0.4) == [1.0, None]


def test_conservation_numbers():
    traj = _traj([[1.0], [2.0]])
    traj.theta[:, 1] = [0.5, np.sqrt(4.0 - 0.75)]  # c = u² − v² = 0.75 at both records
    out = stages.conservation(traj)
    assert out["drift"] < 1e-12 and out["growth"] == 4.0


def _sigmoids(tau, centres, finals, width=0.02):
    """Singular-value paths: a logistic jump per column at ``centres``, from ~0 to ``finals``."""
    return np.stack([f / (1 + np.exp(-(tau - c) / width)) for c, f in zip(centres, finals)], 1)


def test_one_at_a_time_criterion_separates_sequential_from_overlapping_jumps():
    tau = np.linspace(0.0, 1.0, 2001)
    apart = _sigmoids(tau, [0.3, 0.6], [2.0, 1.0])
    together = _sigmoids(tau, [0.3, 0.32], [2.0, 1.0])
    w_apart = stages.singular_value_windows(tau, apart, 1e-2)
    w_together = stages.singular_value_windows(tau, together, 1e-2)
    # the jump ends at half the final value: at the logistic's centre
    assert abs(w_apart[0][1] - 0.3) < 1e-3 and abs(w_apart[1][1] - 0.6) < 1e-3
    gaps_apart, gaps_together = stages.window_gaps(w_apart), stages.window_gaps(w_together)
    assert gaps_apart[0] > 0 > gaps_together[0]
    assert stages.one_at_a_time_verdict({"a": gaps_apart, "b": gaps_apart}) == stages.SHOWN
    assert stages.one_at_a_time_verdict({"a": gaps_apart, "b": gaps_together}) == stages.PARTLY
    assert stages.one_at_a_time_verdict({"a": gaps_together}) == stages.NOT_SHOWN
    assert stages.one_at_a_time_verdict({"a": []}) == stages.NOT_SHOWN  # fewer than two learned


def test_a_transient_that_falls_back_below_ten_thresholds_is_not_learned():
    tau = np.linspace(0.0, 1.0, 501)
    bump = 0.03 * np.exp(-((tau - 0.5) / 0.05) ** 2) + 0.005  # rises past 1e-2, ends at 0.005
    values = np.stack([_sigmoids(tau, [0.3], [2.0])[:, 0], bump], 1)
    assert len(stages.singular_value_windows(tau, values, 1e-2)) == 1


def test_optimizer_survival_checks_the_set_and_the_order_of_the_switches():
    flow_run = _traj([[1e-4, 1e-4, 1e-4], [0.5, 1e-4, 1e-4], [1.0, 0.5, 1e-4], [1.0, 1.0, 1e-4]])
    same = _traj([[1e-4, 1e-4, 1e-4], [1e-3, 1e-4, 1e-4], [1.0, 0.5, 1e-4], [1.0, 1.0, 1e-4]])
    swapped = _traj([[1e-4, 1e-4, 1e-4], [1e-4, 0.5, 1e-4], [0.5, 1.0, 1e-4], [1.0, 1.0, 1e-4]])
    extra = _traj([[1e-4, 1e-4, 1e-4], [0.5, 1e-4, 0.5], [1.0, 0.5, 1.0], [1.0, 1.0, 1.0]])
    rows = stages.optimizer_survival({"gradient flow": flow_run, "same": same, "swapped": swapped,
                                      "extra": extra}, np.array([0, 1]), 1e-2)
    kept = {r["run"]: r["the teacher's, in the flow's order"] for r in rows}
    assert kept == {"gradient flow": True, "same": True, "swapped": False, "extra": False}
    shift = "largest onset shift vs the flow (τ)"
    assert rows[0][shift] == 0.0 and rows[1][shift] > 0


def test_claims_from_a_summary_use_the_stated_criteria():
    summary = {"max_relative_error": {"0.0001": 0.3, "1e-08": 0.2, "1e-32": 0.05},
               "conservation": {"drift": 1e-9, "growth": 1e4}}
    rows = stages.theory_claims(summary, "reference", "01_theory")
    assert [r["verdict"] for r in rows] == [stages.SHOWN, stages.SHOWN] and rows[0]["tier"] == "reference"
    summary["max_relative_error"]["1e-08"] = 0.4  # smaller at the smallest α, but not at every step
    assert stages.theory_claims(summary, "fast", "01_theory")[0]["verdict"] == stages.PARTLY

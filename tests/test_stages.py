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
    assert stages.tier("paper") == "paper" and stages.verdict(False) == "differs"
    tau = np.array([0.0, 1.0, 2.0])
    values = np.array([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]])
    assert stages.singular_value_onsets(tau, values, 0.4) == [1.0, None]


def test_conservation_numbers():
    traj = _traj([[1.0], [2.0]])
    traj.theta[:, 1] = [0.5, np.sqrt(4.0 - 0.75)]  # c = u² − v² = 0.75 at both records
    out = stages.conservation(traj)
    assert out["drift"] < 1e-12 and out["growth"] == 4.0

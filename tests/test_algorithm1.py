"""Algorithm 1 on a diagonal linear network solved by hand, and against gradient flow at small α."""
import numpy as np
import pytest

from rankbook.theory import algorithm1, diagonal, flow


def _orthogonal_design(n, p, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, p)))
    return q * np.sqrt(n)  # XᵀX / N = I: g(β) = β* − β


TEACHER = np.array([0.0, 2.0, -0.5, 0.0, -1.25, 0.8])


def test_orthogonal_linear_network_stages_by_hand():
    """With XᵀX/N = I, coordinate j switches on at T = 1/|β*_j|, largest first, and is fit exactly."""
    x = _orthogonal_design(40, TEACHER.size)
    net = diagonal.DiagonalLinearNetwork(x, x @ TEACHER)
    result = algorithm1.algorithm1(net)
    order = np.argsort(-np.abs(TEACHER))[:4]
    assert [s.winner for s in result.stages] == order.tolist()
    np.testing.assert_allclose([s.time for s in result.stages], 1 / np.abs(TEACHER[order]), rtol=1e-6)
    for k, s in enumerate(result.stages):
        assert s.sign == np.sign(TEACHER[order[k]])
        learned = np.zeros_like(TEACHER)
        learned[order[: k + 1]] = TEACHER[order[: k + 1]]
        np.testing.assert_allclose(s.beta, learned, atol=1e-7)
        assert s.loss_after == pytest.approx(0.5 * np.sum((TEACHER - learned) ** 2), abs=1e-10)
    assert result.stop_reason.startswith("T = ∞")


def test_first_stage_time_is_one_over_max_gradient():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 5)) @ (np.eye(5) + 0.3 * rng.standard_normal((5, 5)))  # correlated features
    net = diagonal.DiagonalLinearNetwork(x, x @ np.array([1.0, -0.3, 0.0, 0.7, 0.2]))
    g0 = net.loss_and_g(np.zeros(5))[1]
    first = algorithm1.algorithm1(net, max_stages=1).stages[0]
    assert first.time == pytest.approx(1 / np.abs(g0).max(), rel=1e-12)
    assert first.winner == int(np.argmax(np.abs(g0)))
    assert first.name == f"coordinate {first.winner}"


def test_time_until_active_formula():
    b = np.array([1.0, 0.5, 1.5, 1.0])
    g = np.array([2.0, -1.0, -0.5, 0.0])
    np.testing.assert_allclose(algorithm1.time_until_active(b, g, 1e-12), [0.5, 1.5, 1.0, np.inf])


def test_gradient_flow_stage_times_approach_algorithm1():
    """Measured activation times at finite α converge to T_k as α → 0 (the error shrinks)."""
    x = _orthogonal_design(40, TEACHER.size, seed=1)
    net = diagonal.DiagonalLinearNetwork(x, x @ TEACHER)
    predicted = algorithm1.algorithm1(net).stage_times()
    errors = []
    for alpha in (1e-3, 1e-12):
        u0, v0 = np.random.default_rng(2).standard_normal((2, TEACHER.size)) * alpha
        traj = flow.log_flow(net, u0, v0, alpha, flow.record_times(alpha, 3.0, 400))
        measured = flow.activation_times(traj, 1e-2)
        errors.append(max(abs(measured[i] - t) / t for i, t in predicted.items()))
    assert errors[1] < 0.5 * errors[0] and errors[1] < 0.1


def test_b0_zero_would_start_the_first_stage_at_time_zero():
    """Pseudo-code's b⁰ = 0: Δ_0(i) = 0 for g_i > 0; b⁰ = 1: T_1 = 1/max|g_i(0)|, what the flow does."""
    x = _orthogonal_design(40, TEACHER.size, seed=2)
    net = diagonal.DiagonalLinearNetwork(x, x @ TEACHER)
    zero = algorithm1.algorithm1(net, b0=0.0, max_stages=1).stages[0]
    one = algorithm1.algorithm1(net, b0=1.0, max_stages=1).stages[0]
    assert zero.time == 0.0
    assert one.time == pytest.approx(1 / np.abs(TEACHER).max(), rel=1e-6)
    alpha = 1e-16
    u0, v0 = np.random.default_rng(4).standard_normal((2, TEACHER.size)) * alpha
    traj = flow.log_flow(net, u0, v0, alpha, flow.record_times(alpha, 1.0, 200))
    first = np.nanmin(flow.activation_times(traj, 1e-2))
    assert abs(first - one.time) < 0.15 * one.time and first > 0.3


def test_errors_against_flow_shrink_as_alpha_goes_to_zero_down_to_1e64():
    """The one call for "the error between flow and Algorithm 1 at each α" (chapter 02), event solver."""
    x = _orthogonal_design(40, TEACHER.size, seed=1)
    net = diagonal.DiagonalLinearNetwork(x, x @ TEACHER)
    runs = {}
    for alpha in (1e-4, 1e-16, 1e-64):
        u0, v0 = np.random.default_rng(2).standard_normal((2, TEACHER.size)) * alpha
        runs[alpha] = flow.log_flow(net, u0, v0, alpha, flow.record_times(alpha, 3.0, 400))
    errors = algorithm1.errors_against_flow(net, runs, 1e-2)
    assert list(errors) == [1e-4, 1e-16, 1e-64]
    assert errors[1e-64] < errors[1e-16] < errors[1e-4] and errors[1e-64] < 0.02

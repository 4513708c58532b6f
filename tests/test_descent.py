"""GD stability numbers: the Hessian's top eigenvalue against its exact value, loss rises above 2/λ_max."""
import numpy as np
import pytest

from rankbook.theory import descent


def _quadratic(eigenvalues):
    """L(θ) = ½ θᵀ A θ with A = Q diag(eigenvalues) Qᵀ: λ_max is known exactly."""
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((len(eigenvalues),) * 2))
    a = q @ np.diag(eigenvalues) @ q.T

    def loss_and_grad(theta, index=None):
        return 0.5 * float(theta @ a @ theta), a @ theta
    return loss_and_grad


def test_top_hessian_eigenvalue_matches_the_exact_one():
    f = _quadratic([0.5, 3.0, 40.0, 86.5])
    assert descent.top_hessian_eigenvalue(f, np.ones(4), steps=200) == pytest.approx(86.5, rel=1e-4)


def test_gd_rises_above_two_over_lambda_max_and_not_below():
    f = _quadratic([1.0, 10.0, 50.0])
    theta0, times = np.ones(3), np.linspace(0.0, 2.0, 50)
    stable = descent.gradient_descent(f, theta0, 0.1, 0.9 * 2 / 50.0, times)
    unstable = descent.gradient_descent(f, theta0, 0.1, 1.1 * 2 / 50.0, times)
    assert descent.largest_loss_rise(stable) <= 0.0
    assert descent.largest_loss_rise(unstable) > 0.0
    assert unstable.loss[-1] > unstable.loss[0]  # above 2/λ_max the top direction grows


def test_optimizer_name_is_checked():
    with pytest.raises(ValueError, match="optimizer must be 'gd' or 'adam'"):
        descent.gradient_descent(_quadratic([1.0]), np.ones(1), 0.1, 0.1, np.linspace(0, 1, 3),
                                 optimizer="sgd")

"""Hand-derived g(θ) and head gradients against autograd and finite differences; conservation-law helpers."""
import numpy as np
import pytest
import torch

from rankbook.theory import diagonal


def _head_data(seed=0, n=6, tokens=4, dim=5):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, tokens, dim, generator=gen, dtype=torch.float64)
    y = torch.randn(n, tokens, dim, generator=gen, dtype=torch.float64)
    return x, y


def _autograd_g(net, beta):
    b = torch.tensor(beta, requires_grad=True)
    (grad,) = torch.autograd.grad(net.loss_torch(b), b)
    return -grad.numpy()


@pytest.mark.parametrize("kind", ["head", "linear"])
def test_g_matches_autograd_and_finite_differences(kind):
    rng = np.random.default_rng(1)
    if kind == "head":
        net = diagonal.DiagonalAttentionHead(*_head_data())
    else:
        net = diagonal.DiagonalLinearNetwork(rng.standard_normal((30, 7)), rng.standard_normal(30))
    beta = rng.standard_normal(net.p)
    loss, g = net.loss_and_g(beta)
    assert loss == pytest.approx(float(net.loss_torch(torch.tensor(beta))), rel=1e-12)
    np.testing.assert_allclose(g, _autograd_g(net, beta), rtol=1e-10, atol=1e-12)
    h = 1e-6
    fd = np.array([-(net.loss(beta + h * e) - net.loss(beta - h * e)) / (2 * h) for e in np.eye(net.p)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_g_is_minus_gradient_in_u_v():
    """du/dt = v⊙g, dv/dt = u⊙g (eq. 4): ∂L/∂u = −v⊙g, ∂L/∂v = −u⊙g."""
    net = diagonal.DiagonalAttentionHead(*_head_data(2))
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal((2, net.p))
    theta = torch.tensor(np.concatenate([u, v]), requires_grad=True)
    tu, tv = theta.split(net.p)
    (grad,) = torch.autograd.grad(net.loss_torch(tu * tv), theta)
    g = net.g(u, v)
    np.testing.assert_allclose(grad.numpy(), np.concatenate([-v * g, -u * g]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(net.loss_and_grad(theta.detach().numpy())[1], grad.numpy(), rtol=1e-10,
                               atol=1e-12)


def test_minibatch_gradient_is_the_gradient_on_those_samples():
    x, y = _head_data(3, n=8)
    net = diagonal.DiagonalAttentionHead(x, y)
    sub = diagonal.DiagonalAttentionHead(x[[1, 4, 6]], y[[1, 4, 6]])
    beta = np.random.default_rng(3).standard_normal(net.p)
    np.testing.assert_allclose(net.loss_and_g(beta, np.array([1, 4, 6]))[1], sub.loss_and_g(beta)[1],
                               rtol=1e-12)


def test_full_head_gradient_matches_autograd_and_diagonal_head():
    x, y = _head_data(4)
    full = diagonal.FullAttentionHead(x, y)
    theta = np.random.default_rng(4).standard_normal(full.size) * 0.5
    t = torch.tensor(theta, requires_grad=True)
    loss_ref = full.loss_torch(t)
    (grad_ref,) = torch.autograd.grad(loss_ref, t)
    loss, grad = full.loss_and_grad(theta)
    assert loss == pytest.approx(float(loss_ref.detach()), rel=1e-12)
    np.testing.assert_allclose(grad, grad_ref.numpy(), rtol=1e-10, atol=1e-12)
    # with diagonal weights the full head is the diagonal head
    u, v = np.random.default_rng(5).standard_normal((2, 10))
    eye = np.eye(5)
    flat = np.stack([eye * u[:5], eye * v[:5], eye * u[5:], eye * v[5:]]).reshape(-1)
    diag_net = diagonal.DiagonalAttentionHead(x, y)
    assert full.loss_and_grad(flat)[0] == pytest.approx(diag_net.loss(u * v), rel=1e-12)
    kq, vo = full.products(flat)
    np.testing.assert_allclose(np.concatenate([np.diag(kq), np.diag(vo)]), u * v)


def test_head_convention_rows_are_tokens():
    x, y = _head_data(5, n=1, tokens=3, dim=2)
    net = diagonal.DiagonalAttentionHead(x, y)
    beta = torch.tensor([0.3, -0.7, 1.1, 2.0], dtype=torch.float64)
    X = x[0]
    expected = torch.softmax(X @ torch.diag(beta[:2]) @ X.T, dim=1) @ X @ torch.diag(beta[2:])
    torch.testing.assert_close(net.predict(beta)[0], expected)
    assert net.coordinate_name(1) == "QK coordinate 1" and net.coordinate_name(2) == "VO coordinate 0"


def test_conservation_helpers_round_trip():
    rng = np.random.default_rng(6)
    u, v = rng.standard_normal((2, 50)) * 1e-20
    cu, cv, signs = diagonal.canonical_signs(u, v)
    assert np.all(cu + cv >= 0)
    np.testing.assert_array_equal(cu * cv, u * v)
    c = diagonal.conserved(cu, cv)
    ru, rv = diagonal.uv_from_w(cu + cv, c)
    np.testing.assert_allclose(ru * signs, u, rtol=1e-9)
    np.testing.assert_allclose(rv * signs, v, rtol=1e-9)
    np.testing.assert_allclose(diagonal.product_from_log_w(np.log(cu + cv), c), u * v, rtol=1e-9)


def test_single_thread_blas_restores_state():
    with diagonal.single_thread_blas():
        a = np.ones((3, 3)) @ np.ones((3, 3))
    assert a[0, 0] == 3.0


def test_forward_only_loss_matches():
    net = diagonal.DiagonalAttentionHead(*_head_data(7))
    beta = np.random.default_rng(7).standard_normal(net.p)
    assert net.loss(beta) == pytest.approx(net.loss_and_g(beta)[0], rel=1e-13)


def test_single_thread_blas_sets_every_openblas_and_restores_it():
    """NumPy and SciPy load separate OpenBLAS copies; setting only one left NumPy's threaded (issue 23)."""
    import scipy.linalg  # noqa: F401  (loads SciPy's copy)

    found = diagonal._openblas()
    before = [get() for get, _ in found]
    with diagonal.single_thread_blas():
        assert all(get() == 1 for get, _ in found)
    assert [get() for get, _ in found] == before

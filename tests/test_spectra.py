"""Factored spectra agree with dense SVDs (rank-deficient perturbations too); stable rank; null reference."""

import math

import pytest
import torch

from rankbook.analysis import spectra


def _dense(a):
    return torch.linalg.svdvals(a.double())


def test_factored_matches_dense_batched():
    g = torch.Generator().manual_seed(0)
    left, right = torch.randn(3, 2, 20, 6, generator=g), torch.randn(3, 2, 20, 6, generator=g)
    got = spectra.factored_svdvals(left, right)
    assert got.shape == (3, 2, 6)
    torch.testing.assert_close(got, _dense(left @ right.transpose(-1, -2))[..., :6])


def test_factored_rank_deficient_factor():
    g = torch.Generator().manual_seed(1)
    left = torch.randn(30, 2, generator=g, dtype=torch.float64) @ torch.randn(
        2, 8, generator=g, dtype=torch.float64
    )
    right = torch.randn(30, 8, generator=g, dtype=torch.float64)
    got = spectra.factored_svdvals(left, right)
    dense = _dense(left @ right.T)[:8]
    torch.testing.assert_close(got, dense, atol=1e-10, rtol=1e-10)
    assert (got[2:] < 1e-12 * got[0]).all()


@pytest.mark.parametrize("moved", ["none", "one_column", "all"])
def test_perturbation_matches_dense(moved):
    g = torch.Generator().manual_seed(2)
    w0, w0p = (
        torch.randn(2, 24, 5, generator=g, dtype=torch.float64),
        torch.randn(2, 24, 5, generator=g, dtype=torch.float64),
    )
    w, wp = w0.clone(), w0p.clone()
    if moved == "one_column":  # Δ of rank ≤ 2
        w[..., 0] += 1e-3 * torch.randn(2, 24, generator=g, dtype=torch.float64)
    elif moved == "all":
        w += 0.1 * torch.randn(2, 24, 5, generator=g, dtype=torch.float64)
        wp += 0.1 * torch.randn(2, 24, 5, generator=g, dtype=torch.float64)
    got = spectra.perturbation_svdvals(w, wp, w0, w0p)
    assert got.shape == (2, 10)
    dense = _dense(w @ wp.transpose(-1, -2) - w0 @ w0p.transpose(-1, -2))[..., :10]
    if moved == "none":
        assert (got == 0).all()  # exactly zero at iteration 0, no round-off noise
    else:
        torch.testing.assert_close(got, dense, atol=1e-12 * float(dense.max()), rtol=1e-8)
    if moved == "one_column":
        assert (got[..., 2:] < 1e-10 * got[..., :1]).all()


def test_tiny_perturbation_of_float32_weights_is_resolved():
    g = torch.Generator().manual_seed(3)
    w0, w0p = torch.randn(64, 8, generator=g), torch.randn(64, 8, generator=g)
    w = w0.clone()
    w[:, 0] += 1e-4
    got = spectra.perturbation_svdvals(w, w0p, w0, w0p)
    exact = _dense((w.double() - w0.double()) @ w0p.double().T)
    torch.testing.assert_close(got[0], exact[0], rtol=1e-10, atol=0)
    assert got[1] < 1e-10 * got[0]


def test_products_are_the_papers():
    g = torch.Generator().manual_seed(4)
    w = {k: torch.randn(4, 3, generator=g) for k in "qkvo"}
    torch.testing.assert_close(spectra.product(w, "qk"), w["k"] @ w["q"].T)
    torch.testing.assert_close(spectra.product(w, "vo"), w["v"] @ w["o"].T)
    with pytest.raises(ValueError, match="'qk' or 'vo'"):
        spectra.product(w, "kq")


def test_stable_rank_known_answers():
    assert float(spectra.stable_rank(torch.tensor([3.0, 0, 0]))) == 1.0
    assert float(spectra.stable_rank(torch.ones(7))) == 7.0
    assert float(spectra.stable_rank(torch.tensor([2.0, 1.0]))) == pytest.approx(1.25)
    assert math.isnan(float(spectra.stable_rank(torch.zeros(4))))
    eye = torch.eye(6, dtype=torch.float64)
    assert float(spectra.stable_rank(spectra.factored_svdvals(eye, eye))) == pytest.approx(6.0)
    batch = spectra.stable_rank(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    assert batch[0] == 2.0 and math.isnan(batch[1])


def test_normalized():
    torch.testing.assert_close(
        spectra.normalized(torch.tensor([4.0, 2.0, 1.0])), torch.tensor([1.0, 0.5, 0.25])
    )
    assert spectra.normalized(torch.zeros(3)).isnan().all()


def test_null_reference():
    full = spectra.null_reference((200, 200), frobenius_norm=5.0, samples=4)
    assert full["svals"].shape == (200,)
    assert float(full["svals"].norm()) == pytest.approx(5.0, rel=1e-3)  # mean over samples of norm-5 spectra
    assert full["stable_rank_mean"] == pytest.approx(200 / 4, rel=0.15)  # Marchenko-Pastur: m/4 for square
    low = spectra.null_reference((200, 200), rank=10, samples=4)
    assert low["svals"].shape == (10,)  # a rank-10 product has 10 singular values
    assert 1 < low["stable_rank_mean"] < 10
    assert (
        spectra.null_reference((200, 200), samples=2, seed=7)["stable_rank_mean"]
        == spectra.null_reference((200, 200), samples=2, seed=7)["stable_rank_mean"]
    )


def test_delta_top_vectors_match_the_dense_svd():
    torch.manual_seed(3)
    shape = (2, 3, 12, 4)  # [layers, heads, d_model, d_head]
    initial = {k: torch.randn(shape, dtype=torch.float64) for k in "qkvo"}
    weights = {k: v + 0.3 * torch.randn(shape, dtype=torch.float64) for k, v in initial.items()}
    for kind in ("qk", "vo"):
        left, right = spectra.delta_top_vectors(weights, initial, kind)
        dense = spectra.product(weights, kind) - spectra.product(initial, kind)
        u, s, vh = torch.linalg.svd(dense)
        assert left.shape == right.shape == shape[:2] + (12,)
        torch.testing.assert_close(
            (left * u[..., :, 0]).sum(-1).abs(), torch.ones(shape[:2], dtype=torch.float64)
        )
        torch.testing.assert_close(
            (right * vh[..., 0, :]).sum(-1).abs(), torch.ones(shape[:2], dtype=torch.float64)
        )
        # u1ᵀ Δ v1 = σ1 (the pair belongs together, signs consistent)
        torch.testing.assert_close(
            (left.unsqueeze(-2) @ dense @ right.unsqueeze(-1)).squeeze(-1).squeeze(-1), s[..., 0]
        )

"""Per-head products W_K W_Q^T and W_V W_O^T, their change from initialization, spectra and stable rank.

All functions are batched: factors have shape ``[..., d_model, d_head]``
(e.g. ``[layers, heads, d_model, d_head]``) and results keep the leading dims.

Singular values come from the thin factors, never from the dense
``d_model × d_model`` product: for ``A = U V^T`` with ``U = Q_u R_u`` and
``V = Q_v R_v`` (reduced QR), ``A = Q_u (R_u R_v^T) Q_v^T`` and ``Q_u, Q_v``
have orthonormal columns, so the singular values of ``A`` are those of the
small core ``R_u R_v^T``. Householder QR needs no pivoting for this: ``Q``
stays orthonormal and ``Q R`` reproduces the factor even when it is rank
deficient.

The perturbation ``Δ = W W'^T - W_0 W_0'^T`` is factored as
``Δ = (W - W_0) W'^T + W_0 (W' - W_0')^T``, i.e. ``U = [D, W_0]`` and
``V = [W', D']`` with ``D = W - W_0``, ``D' = W' - W_0'``. Unlike
``[W, -W_0][W', W_0']^T`` this has no cancellation: when nothing has moved
(iteration 0) the core is exactly zero, and a small ``Δ`` is resolved to
relative, not absolute, precision. The rank of ``Δ`` is at most ``2·d_head``.

Stable rank ``‖A‖_F² / ‖A‖_2²`` is scale-free and lies in ``[1, rank A]``.
For ``A = 0`` it is undefined and reported as NaN (so that an untouched head
at iteration 0 is not mistaken for rank 1 or rank 0); normalized spectra of a
zero matrix are NaN for the same reason. Plots skip NaN.
"""

from __future__ import annotations

import math

import torch

#: dtype of the QR and core SVD: float64 so that tiny perturbations are resolved
COMPUTE_DTYPE = torch.float64


def factored_svdvals(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Singular values (descending) of ``left @ right^T`` from its factors ``[..., m, r]``, ``[..., n, r]``.

    Returns ``[..., min(m, n, r)]``; the product is never formed.
    """
    if left.shape[-1] != right.shape[-1] or left.shape[:-2] != right.shape[:-2]:
        raise ValueError(f"factor shapes do not match: {tuple(left.shape)} and {tuple(right.shape)}")
    left, right = left.to(COMPUTE_DTYPE), right.to(COMPUTE_DTYPE)
    r_left = _thin_r(left)
    r_right = _thin_r(right)
    # σ² are the eigenvalues of C Cᵀ for the small core C = R_l R_rᵀ: a batched symmetric eigensolve is 4×
    # faster than a batched SVD on an H100 (0.09 s vs 0.30 s CPU / 0.44 s cuSOLVER for the paper's 48 heads),
    # and in float64 it resolves σ/σ₁ down to ~1e-8, far below what stable ranks and the figures use
    core = r_left @ r_right.transpose(-1, -2)
    squares = torch.linalg.eigvalsh(core @ core.transpose(-1, -2)).clamp_min(0)
    return squares.flip(-1).sqrt()


def factored_top_vectors(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top left and right singular vectors ``[..., m]``, ``[..., n]`` of ``left @ right^T``, from its factors.

    Signs are arbitrary (compare with ``|cos|``); the product is never formed.
    """
    left, right = left.to(COMPUTE_DTYPE), right.to(COMPUTE_DTYPE)
    q_left, r_left = torch.linalg.qr(left)
    q_right, r_right = torch.linalg.qr(right)
    u, _, vh = torch.linalg.svd(r_left @ r_right.transpose(-1, -2))
    return (q_left @ u[..., :, :1]).squeeze(-1), (q_right @ vh[..., :1, :].transpose(-1, -2)).squeeze(-1)


def _thin_r(factor: torch.Tensor) -> torch.Tensor:
    """``R`` of the reduced QR of ``factor [..., m, r]``: ``[..., min(m, r), r]``."""
    return torch.linalg.qr(factor, mode="r").R[..., : min(factor.shape[-2], factor.shape[-1]), :]


def perturbation_factors(
    w: torch.Tensor, w_prime: torch.Tensor, w0: torch.Tensor, w0_prime: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors ``U, V`` with ``U V^T = w w'^T - w0 w0'^T``, written without cancellation (see module doc)."""
    w, w_prime, w0, w0_prime = (t.to(COMPUTE_DTYPE) for t in (w, w_prime, w0, w0_prime))
    left = torch.cat([w - w0, w0], dim=-1)
    right = torch.cat([w_prime, w_prime - w0_prime], dim=-1)
    return left, right


def perturbation_svdvals(
    w: torch.Tensor, w_prime: torch.Tensor, w0: torch.Tensor, w0_prime: torch.Tensor
) -> torch.Tensor:
    """Singular values of ``Δ = w w'^T - w0 w0'^T``: ``[..., 2·d_head]`` (at most that many are non-zero)."""
    return factored_svdvals(*perturbation_factors(w, w_prime, w0, w0_prime))


def product_factors(weights: dict[str, torch.Tensor], kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's factors: ``kind="qk"`` → ``(W_K, W_Q)`` for ``W_K W_Q^T``; ``"vo"`` → ``(W_V, W_O)``."""
    if kind == "qk":
        return weights["k"], weights["q"]
    if kind == "vo":
        return weights["v"], weights["o"]
    raise ValueError(f"kind must be 'qk' or 'vo', got {kind!r}")


def product(weights: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    """Dense ``W_K W_Q^T`` or ``W_V W_O^T`` ``[..., d_model, d_model]`` (for tests and small models)."""
    left, right = product_factors(weights, kind)
    return left @ right.transpose(-1, -2)


def head_svdvals(weights: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    """Singular values of every head's ``W_K W_Q^T`` (``"qk"``) or ``W_V W_O^T`` (``"vo"``)."""
    return factored_svdvals(*product_factors(weights, kind))


def delta_svdvals(
    weights: dict[str, torch.Tensor], initial: dict[str, torch.Tensor], kind: str
) -> torch.Tensor:
    """Singular values of every head's ``Δ W_K W_Q^T`` or ``Δ W_V W_O^T`` relative to ``initial``."""
    left, right = product_factors(weights, kind)
    left0, right0 = product_factors(initial, kind)
    return perturbation_svdvals(left, right, left0, right0)


def delta_top_vectors(
    weights: dict[str, torch.Tensor], initial: dict[str, torch.Tensor], kind: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top left/right singular vectors ``[..., d_model]`` of every head's Δ (for head alignment)."""
    left, right = product_factors(weights, kind)
    left0, right0 = product_factors(initial, kind)
    return factored_top_vectors(*perturbation_factors(left, right, left0, right0))


def stable_rank(svals: torch.Tensor) -> torch.Tensor:
    """``‖A‖_F² / ‖A‖_2²`` from singular values ``[..., k]``; NaN where ``A = 0``."""
    svals = torch.as_tensor(svals)
    top = svals.amax(dim=-1)
    ratio = (svals**2).sum(dim=-1) / top**2
    return torch.where(top > 0, ratio, torch.full_like(ratio, math.nan))


def normalized(svals: torch.Tensor) -> torch.Tensor:
    """Singular values divided by the largest (the paper's "normalized spectrum"); NaN where ``A = 0``."""
    svals = torch.as_tensor(svals)
    top = svals.amax(dim=-1, keepdim=True)
    return torch.where(top > 0, svals / top, torch.full_like(svals, math.nan))


def null_reference(
    shape: tuple[int, int],
    frobenius_norm: float = 1.0,
    rank: int | None = None,
    samples: int = 8,
    seed: int = 0,
) -> dict[str, object]:
    """What an unstructured matrix of the same shape and norm looks like.

    ``rank=None``: i.i.d. Gaussian ``shape`` matrices. ``rank=k``: products
    ``G_1 G_2^T`` of Gaussian ``[m, k]`` and ``[n, k]`` factors, the fair
    comparison for ``Δ``, whose rank is at most ``2·d_head``. Each sample is
    rescaled to Frobenius norm ``frobenius_norm``. Returns the mean singular
    values ``svals`` (descending), and the mean and std of the stable rank
    over ``samples``.
    """
    m, n = shape
    gen = torch.Generator().manual_seed(seed)
    if rank is None:
        mats = torch.randn(samples, m, n, generator=gen, dtype=COMPUTE_DTYPE)
        svals = torch.linalg.svdvals(mats)
    else:
        left = torch.randn(samples, m, rank, generator=gen, dtype=COMPUTE_DTYPE)
        right = torch.randn(samples, n, rank, generator=gen, dtype=COMPUTE_DTYPE)
        svals = factored_svdvals(left, right)
    svals = svals * (frobenius_norm / svals.norm(dim=-1, keepdim=True))
    ranks = stable_rank(svals)
    return {
        "svals": svals.mean(0),
        "stable_rank_mean": float(ranks.mean()),
        "stable_rank_std": float(ranks.std()) if samples > 1 else 0.0,
        "shape": (m, n),
        "rank": rank,
    }

"""Networks with diagonal weights, f(x; u, v) = h(x; u⊙v) (Definition 3.1), and the conservation law.

Everything here is float64: at α = 1e-32 the products u⊙v start near 1e-64.

A :class:`DiagonalNetwork` only needs the loss as a function of the product
β = u⊙v and its gradient. The paper's g(θ) (eq. 4) is then ``g = -∂L/∂β``, and the
gradient flow on (u, v) reads du/dt = v⊙g, dv/dt = u⊙g, because ∂L/∂u = v⊙∂L/∂β.

Loss normalization used throughout: L = mean over samples of ½‖f(x) − y‖², with
the squared norm summed over every output entry (for the attention head: over
all tokens and all dimensions).

The attention head is softmax(X W_K W_Q^T X^T) X W_V W_O^T for one sample
X ∈ R^{n×d} (tokens as rows, softmax over each row). Its diagonal version has
W = diag(w) for all four weights, so it depends on (w_K⊙w_Q, w_V⊙w_O) only:
u = [w_K, w_V], v = [w_Q, w_O] (Example 3.2), p = 2d. Gradients are derived by
hand (tests check them against autograd and finite differences) because one
vector-field evaluation is the unit of cost of every solver in :mod:`rankbook.theory.flow`.
"""
from __future__ import annotations

import abc
import contextlib
import ctypes
import re
from typing import Iterator

import numpy as np
import torch

DTYPE = torch.float64


def _openblas() -> list[tuple]:
    """(get, set) thread-count functions of every loaded OpenBLAS (empty: none, or not Linux).

    NumPy and SciPy each ship their own OpenBLAS (``libscipy_openblas64_`` and ``libscipy_openblas``);
    setting only the first one found (SciPy's) left NumPy's on all threads: ``np.vdot`` on the toy head's
    25,000 residuals took 25 ms instead of 5 µs on a loaded 2-core machine (issue 23).
    """
    try:
        maps = open("/proc/self/maps").read()
    except OSError:
        return []
    found = []
    for path in dict.fromkeys(re.findall(r"\S*openblas\S*\.so\S*", maps)):
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", "_64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    found.append((get, put))
                    break
            else:
                continue
            break
    return found


@contextlib.contextmanager
def single_thread_blas() -> Iterator[None]:
    """Run NumPy's and SciPy's BLAS on one thread inside the block.

    The toy model's matrices are tiny (≤ 2000×50); OpenBLAS's threads made one
    vector-field evaluation ~8× slower (1 ms → 8 ms diagonal, 2.6 ms → 120 ms full)
    on a shared 2-core machine. A no-op when the BLAS is not OpenBLAS.
    """
    found = _openblas()
    before = [get() for get, _ in found]
    for _, put in found:
        put(1)
    try:
        yield
    finally:
        for (_, put), n in zip(found, before):
            put(n)


def _t(a) -> torch.Tensor:
    return torch.as_tensor(a, dtype=DTYPE)


# ----------------------------------------------------------------------------- conservation law
def conserved(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """c = u² − v², constant along gradient flow for every coordinate (Lemma 4.1)."""
    return u * u - v * v


def canonical_signs(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flip (u_i, v_i) → (−u_i, −v_i) where u_i + v_i < 0, so that w = u + v ≥ 0.

    The flip leaves u⊙v, hence the whole trajectory of u⊙v, unchanged (the
    paper's WLOG). Returns the flipped (u, v) and the flip signs (±1) to undo it.
    """
    signs = np.where(u + v < 0, -1.0, 1.0)
    return u * signs, v * signs, signs


def uv_from_w(w: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) from w = u + v > 0 and c = u² − v²: u − v = c / w."""
    d = c / w
    return 0.5 * (w + d), 0.5 * (w - d)


def product_from_log_w(z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """β = u⊙v from z = log w and c: β = (w + c/w)(w − c/w)/4."""
    w = np.exp(z)
    d = c / w
    return 0.25 * (w + d) * (w - d)


# ----------------------------------------------------------------------------- networks
class DiagonalNetwork(abc.ABC):
    """A model f(x; u, v) = h(x; u⊙v) with a fixed training set and MSE loss."""

    #: number of diagonal coordinates p (u, v ∈ R^p)
    p: int

    @abc.abstractmethod
    def predict(self, beta: torch.Tensor) -> torch.Tensor:
        """h(X; β) for the whole training set, differentiable in β (used by tests and autograd)."""

    @abc.abstractmethod
    def loss_and_g(self, beta: np.ndarray, index: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """(L(β), g) with g = −∂L/∂β: the paper's g(θ) at any θ with u⊙v = β (hand-derived).

        ``index`` restricts the mean to those samples (a minibatch, for SGD).
        """

    def loss(self, beta: np.ndarray) -> float:
        return self.loss_and_g(beta)[0]

    def g(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """g(θ) of eq. (4) at θ = (u, v)."""
        return self.loss_and_g(u * v)[1]

    def loss_torch(self, beta: torch.Tensor) -> torch.Tensor:
        """The loss through :meth:`predict` (autograd reference)."""
        return 0.5 * ((self.predict(beta) - self.targets) ** 2).sum() / self.n_samples

    def coordinate_name(self, i: int) -> str:
        return f"coordinate {i}"

    def loss_and_grad(self, theta: np.ndarray, index: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """(L, ∂L/∂θ) for θ = [u, v]: ∂L/∂u = −v⊙g, ∂L/∂v = −u⊙g (for GD and θ-space solvers)."""
        u, v = np.split(np.asarray(theta, dtype=np.float64), 2)
        loss, g = self.loss_and_g(u * v, index)
        return loss, np.concatenate([-v * g, -u * g])

    targets: torch.Tensor
    n_samples: int


class DiagonalLinearNetwork(DiagonalNetwork):
    """y ≈ Σ_i u_i v_i x_i: the hand-solvable case (g(β) = Xᵀ(y − Xβ)/N, T_1 = 1/max|g_i(0)|)."""

    def __init__(self, inputs, targets):
        self.inputs, self.targets = _t(inputs), _t(targets)
        self.n_samples, self.p = self.inputs.shape
        self._xtx = (self.inputs.T @ self.inputs / self.n_samples).numpy()
        self._xty = (self.inputs.T @ self.targets / self.n_samples).numpy()
        self._yy = float((self.targets ** 2).sum() / self.n_samples)

    def predict(self, beta):
        return self.inputs @ beta

    def loss_and_g(self, beta, index=None):
        beta = np.asarray(beta, dtype=np.float64)
        if index is not None:
            x, y = self.inputs.numpy()[index], self.targets.numpy()[index]
            resid = y - x @ beta
            return 0.5 * float(resid @ resid) / len(index), x.T @ resid / len(index)
        xtxb = self._xtx @ beta
        loss = 0.5 * (self._yy - 2 * self._xty @ beta + beta @ xtxb)
        return float(loss), self._xty - xtxb


class AttentionHeadData:
    """Inputs X (N×n×d) and targets Y (N×n×d) of the attention-head regression.

    The hand-derived loss and gradients run in NumPy: its batched matmul on these
    small matrices was ~3× faster than torch's on one CPU thread here, and torch's
    multi-threaded kernels slowed down >10× on a shared 2-core machine.
    """

    def __init__(self, inputs, targets):
        self.inputs, self.targets = _t(inputs), _t(targets)
        self.n_samples, self.n_tokens, self.dim = self.inputs.shape
        self._x = self.inputs.numpy()
        self._xt = np.ascontiguousarray(self._x.transpose(0, 2, 1))
        self._y = self.targets.numpy()

    def head_output(self, kq: torch.Tensor, vo: torch.Tensor, diagonal: bool):
        """(attention A, AX, output F) in torch, differentiable, for W_K W_Q^T = kq, W_V W_O^T = vo.

        ``kq`` and ``vo`` are vectors (the diagonals) when ``diagonal``, else d×d matrices.
        """
        x = self.inputs
        logits = (x * kq if diagonal else x @ kq) @ x.transpose(1, 2)
        attn = torch.softmax(logits, dim=-1)
        mixed = attn @ x
        return attn, mixed, (mixed * vo if diagonal else mixed @ vo)

    def loss_only(self, kq: np.ndarray, vo: np.ndarray, diagonal: bool) -> float:
        """L alone (forward pass only: about half the cost of :meth:`loss_and_product_grads`)."""
        logits = (self._x * kq if diagonal else self._x @ kq) @ self._xt
        logits -= logits.max(-1, keepdims=True)
        attn = np.exp(logits)
        attn /= attn.sum(-1, keepdims=True)
        mixed = attn @ self._x
        resid = (mixed * vo if diagonal else mixed @ vo) - self._y
        return 0.5 * float(np.vdot(resid, resid)) / self.n_samples

    def loss_and_product_grads(self, kq: np.ndarray, vo: np.ndarray, diagonal: bool,
                               index: np.ndarray | None = None):
        """(L, ∂L/∂(W_K W_Q^T), ∂L/∂(W_V W_O^T)) by hand; only the diagonal parts when ``diagonal``.

        ``index`` restricts the loss to those samples (a minibatch).
        """
        x, xt, y, d = self._x, self._xt, self._y, self.dim
        if index is not None:
            x, xt, y = x[index], xt[index], y[index]
        n = len(x)
        logits = (x * kq if diagonal else x @ kq) @ xt
        logits -= logits.max(-1, keepdims=True)
        attn = np.exp(logits)
        attn /= attn.sum(-1, keepdims=True)
        mixed = attn @ x
        resid = ((mixed * vo if diagonal else mixed @ vo) - y) / n
        loss = 0.5 * n * float(np.vdot(resid, resid))
        if diagonal:
            grad_vo = np.einsum("stj,stj->j", resid, mixed)
            grad_mixed = resid * vo
        else:
            grad_vo = mixed.reshape(-1, d).T @ resid.reshape(-1, d)
            grad_mixed = resid @ vo.T
        grad_attn = grad_mixed @ xt
        grad_logits = attn * (grad_attn - (grad_attn * attn).sum(-1, keepdims=True))  # softmax backward
        back = grad_logits @ x  # ∂L/∂KQ = Σ_s X_sᵀ (∂L/∂S_s) X_s
        if diagonal:
            grad_kq = np.einsum("stj,stj->j", x, back)
        else:
            grad_kq = x.reshape(-1, d).T @ back.reshape(-1, d)
        return loss, grad_kq, grad_vo


class DiagonalAttentionHead(DiagonalNetwork):
    """softmax(X diag(β_KQ) Xᵀ) X diag(β_VO) with β = [w_K⊙w_Q, w_V⊙w_O] (Example 3.2)."""

    def __init__(self, inputs, targets):
        self.data = AttentionHeadData(inputs, targets)
        self.targets, self.n_samples, self.dim = self.data.targets, self.data.n_samples, self.data.dim
        self.p = 2 * self.dim

    def split(self, beta):
        """(β_KQ, β_VO): the diagonals of W_K W_Q^T and W_V W_O^T."""
        return beta[..., : self.dim], beta[..., self.dim:]

    def predict(self, beta):
        kq, vo = self.split(beta)
        return self.data.head_output(kq, vo, diagonal=True)[2]

    def loss_and_g(self, beta, index=None):
        kq, vo = self.split(np.asarray(beta, dtype=np.float64))
        loss, grad_kq, grad_vo = self.data.loss_and_product_grads(kq, vo, diagonal=True, index=index)
        return loss, -np.concatenate([grad_kq, grad_vo])

    def loss(self, beta):
        kq, vo = self.split(np.asarray(beta, dtype=np.float64))
        return self.data.loss_only(kq, vo, diagonal=True)

    def coordinate_name(self, i: int) -> str:
        return f"QK coordinate {i}" if i < self.dim else f"VO coordinate {i - self.dim}"


class FullAttentionHead:
    """The same head with full weights W_K, W_Q, W_V, W_O ∈ R^{d×d_head}, flattened into one vector θ.

    Not a diagonal network (beyond the theory); trained with the same solvers via :meth:`loss_and_grad`.
    """

    def __init__(self, inputs, targets, head_dim: int | None = None):
        self.data = AttentionHeadData(inputs, targets)
        self.dim = self.data.dim
        self.head_dim = head_dim or self.dim
        self.size = 4 * self.dim * self.head_dim

    def unflatten(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """(W_K, W_Q, W_V, W_O) from the flat parameter vector."""
        return tuple(np.asarray(theta, dtype=np.float64).reshape(4, self.dim, self.head_dim))

    def products(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(W_K W_Q^T, W_V W_O^T)."""
        wk, wq, wv, wo = self.unflatten(theta)
        return wk @ wq.T, wv @ wo.T

    def loss_torch(self, theta: torch.Tensor) -> torch.Tensor:
        wk, wq, wv, wo = theta.reshape(4, self.dim, self.head_dim).unbind(0)
        out = self.data.head_output(wk @ wq.T, wv @ wo.T, diagonal=False)[2]
        return 0.5 * ((out - self.data.targets) ** 2).sum() / self.data.n_samples

    def loss_and_grad(self, theta, index=None) -> tuple[float, np.ndarray]:
        """(L, ∂L/∂θ) by the chain rule through the products: ∂L/∂W_K = (∂L/∂KQ) W_Q, etc."""
        wk, wq, wv, wo = self.unflatten(theta)
        loss, gkq, gvo = self.data.loss_and_product_grads(wk @ wq.T, wv @ wo.T, diagonal=False, index=index)
        grads = np.stack([gkq @ wq, gkq.T @ wk, gvo @ wo, gvo.T @ wv])
        return loss, grads.reshape(-1)

"""The LoRA question: how much of a trained transformer survives if each attention update is cut to rank r?

For a trained model with attention weights ``W`` and their initial values
``W_0``, every attention weight matrix is replaced by ``W_0 + [W - W_0]_r``,
``[·]_r`` the best rank-``r`` approximation (truncated SVD, Eckart–Young),
and the model is evaluated. Everything else (embeddings, MLPs, LayerNorms,
read-out) keeps its trained value, so the sweep isolates the attention
updates, which are what LoRA adapts.

The unit is LoRA's: the **fused per-layer matrix** of each of Q, K, V, O,
``[d_model, heads·d_head]`` (head ``h``'s ``W^h`` are its columns
``h·d_head … (h+1)·d_head``), not the per-head blocks; a rank-``r`` update of
it is what a LoRA adapter of rank ``r`` on that layer can express.

Null: the same sweep with ``[Δ]_r`` replaced by a random rank-``r`` matrix
(Gaussian factors) of the same Frobenius norm as ``[Δ]_r``: if a random
update of that size did as well, the rank curve would say nothing about the
structure of Δ.

Recovery: with ``m(r)`` the metric (accuracy or loss) at rank ``r``, ``m(0)``
(attention at init, the rest trained) and ``m(full)`` (the trained model),
the fraction recovered is ``(m(r) - m(0)) / (m(full) - m(0))``;
:func:`recovery_rank` is the smallest swept ``r`` at which it reaches 95% or
99%.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from rankbook.store import results
from rankbook.training import loop as train

KINDS = ("q", "k", "v", "o")
COMPUTE_DTYPE = torch.float64


def fuse(per_head: torch.Tensor) -> torch.Tensor:
    """``[..., heads, d_model, d_head]`` → the fused ``[..., d_model, heads·d_head]`` (heads side by side)."""
    *lead, h, d, e = per_head.shape
    return per_head.movedim(-3, -2).reshape(*lead, d, h * e)


def unfuse(fused: torch.Tensor, heads: int) -> torch.Tensor:
    """Inverse of :func:`fuse`."""
    *lead, d, he = fused.shape
    return fused.reshape(*lead, d, heads, he // heads).movedim(-2, -3)


def full_rank(matrix_shape: Sequence[int]) -> int:
    """The largest rank a matrix of shape ``[..., m, n]`` can have."""
    return int(min(matrix_shape[-2], matrix_shape[-1]))


def truncate(delta: torch.Tensor, rank: int) -> torch.Tensor:
    """Best rank-``rank`` approximation of each ``[..., m, n]`` matrix (exactly ``delta`` at full rank)."""
    if rank < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    if rank >= full_rank(delta.shape):
        return delta.clone()
    if rank == 0:
        return torch.zeros_like(delta)
    u, s, vh = torch.linalg.svd(delta.to(COMPUTE_DTYPE), full_matrices=False)
    return ((u[..., :rank] * s[..., None, :rank]) @ vh[..., :rank, :]).to(delta.dtype)


def random_rank(shape: Sequence[int], rank: int, norms: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random ``[..., m, n]`` matrices ``G_1 G_2^T`` of rank ``rank`` (Gaussian factors) with Frobenius norms ``norms``."""
    *lead, m, n = shape
    if rank == 0:
        return torch.zeros(*shape, dtype=COMPUTE_DTYPE)
    rank = min(rank, m, n)
    left = torch.randn(*lead, m, rank, generator=generator, dtype=COMPUTE_DTYPE)
    right = torch.randn(*lead, n, rank, generator=generator, dtype=COMPUTE_DTYPE)
    mats = left @ right.transpose(-1, -2)
    scale = torch.as_tensor(norms, dtype=COMPUTE_DTYPE) / torch.linalg.matrix_norm(mats)
    return mats * scale[..., None, None]


def rank_r_weights(initial: Mapping[str, torch.Tensor], final: Mapping[str, torch.Tensor], rank: int,
                   null: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """Attention weights ``W_0 + [W - W_0]_r`` per kind (``[layers, heads, d_model, d_head]``).

    ``null=True``: ``W_0 + R_r`` with ``R_r`` random of rank ``r`` and ``‖R_r‖_F = ‖[W - W_0]_r‖_F``.
    At full rank (and not null) the trained weights are returned exactly.
    """
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for kind in KINDS:
        w0, w = initial[kind], final[kind]
        heads = w.shape[-3]
        delta = fuse(w.to(COMPUTE_DTYPE) - w0.to(COMPUTE_DTYPE))
        if not null and rank >= full_rank(delta.shape):
            out[kind] = w.clone()
            continue
        update = truncate(delta, rank)
        if null:
            update = random_rank(delta.shape, rank, torch.linalg.matrix_norm(update), gen)
        out[kind] = (w0.to(COMPUTE_DTYPE) + unfuse(update, heads)).to(w.dtype)
    return out


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The attention module of every block (``model.blocks[i].attn``, as in the ViT and the GPT)."""
    return [block.attn for block in model.blocks]


@torch.no_grad()
def set_attention_weights(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """Copy ``weights[kind][layer]`` into each block's ``w_q, w_k, w_v, w_o``."""
    for layer, attn in enumerate(attention_modules(model)):
        for kind in KINDS:
            getattr(attn, f"w_{kind}").copy_(weights[kind][layer])


def sweep_ranks(full: int) -> list[int]:
    """0, 1, 2, 4, 8, … below ``full``, and ``full``."""
    ranks, r = [0], 1
    while r < full:
        ranks.append(r)
        r *= 2
    return ranks + [full]


def rank_sweep(model: nn.Module, initial: Mapping[str, torch.Tensor], evaluate: Callable[[nn.Module], float],
               ranks: Iterable[int] | None = None, null_seeds: Sequence[int] = (0,)) -> dict[str, np.ndarray]:
    """Evaluate ``model`` with every attention update cut to each rank (and the random null of each rank).

    ``model`` holds the trained weights (restored on return). Returns ``rank``, ``truncated`` and
    ``null`` (mean over ``null_seeds``) and ``null_std``; ``rank`` ends with the full rank.
    """
    final = {k: v.clone() for k, v in attention_modules_weights(model).items()}
    full = full_rank(fuse(final["q"]).shape)
    ranks = sweep_ranks(full) if ranks is None else sorted(set(ranks))
    truncated, null_mean, null_std = [], [], []
    try:
        for r in ranks:
            set_attention_weights(model, rank_r_weights(initial, final, r))
            truncated.append(evaluate(model))
            vals = []
            for s in null_seeds:
                set_attention_weights(model, rank_r_weights(initial, final, r, null=True, seed=s))
                vals.append(evaluate(model))
            null_mean.append(float(np.mean(vals)))
            null_std.append(float(np.std(vals)))
    finally:
        set_attention_weights(model, final)
    return {"rank": np.asarray(ranks), "truncated": np.asarray(truncated), "null": np.asarray(null_mean),
            "null_std": np.asarray(null_std)}


def attention_modules_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's attention weights ``[layers, heads, d_model, d_head]`` per kind (detached)."""
    return {kind: torch.stack([getattr(a, f"w_{kind}").detach() for a in attention_modules(model)])
            for kind in KINDS}


def recovered_fraction(metric: np.ndarray, at_zero: float, at_full: float) -> np.ndarray:
    """``(m(r) - m(0)) / (m(full) - m(0))``: 0 at rank 0, 1 at full rank (works for losses and accuracies)."""
    gain = at_full - at_zero
    return (np.asarray(metric, dtype=float) - at_zero) / gain if gain != 0 else np.full(np.shape(metric), np.nan)


def recovery_rank(ranks: Sequence[int], metric: Sequence[float], fraction: float) -> int | None:
    """Smallest swept rank whose metric recovers ``fraction`` of the full model's gain over rank 0 (None: never).

    ``metric[0]`` must be rank 0 and ``metric[-1]`` full rank.
    """
    rec = recovered_fraction(np.asarray(metric), metric[0], metric[-1])
    hits = np.flatnonzero(rec >= fraction)
    return int(np.asarray(ranks)[hits[0]]) if len(hits) else None


def load_trained(task: Any, result: results.Result) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The final model of a finished run of ``task`` and its initial attention weights, from its last checkpoint.

    The results store keeps spectra, not weights; the training loop checkpoints the final step
    (model state and initial attention weights) in the run folder, which is what is read here.
    """
    path = Path(result.path) / train.CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the result at {result.path} keeps spectra only, and its final "
                                f"weights were in that checkpoint. Remove the folder to train the run again.")
    ckpt = train.load_checkpoint(path)  # a clear error for a truncated or foreign file
    if ckpt["config"] != result.config or ckpt["step"] != task.total_steps():
        raise results.ResultMismatchError(f"{path} is not the final checkpoint of {result.path.name} "
                                          f"(step {ckpt['step']} of {task.total_steps()})")
    model = task.build_model()
    model.load_state_dict(ckpt["model"])
    return model.eval(), {k: v.cpu() for k, v in ckpt["initial"].items()}


# --------------------------------------------------------------------------- LoRA adapters trained from init


class LowRankUpdate(nn.Module):
    """Parametrization ``W = W_0 + unfuse(B A)`` of a ``[heads, d_model, d_head]`` weight, ``W_0`` frozen.

    ``B [d_model, rank]`` starts at zero and ``A [rank, heads·d_head]`` at N(0, 0.02²) (LoRA's start:
    the model begins exactly at ``W_0``); only ``A`` and ``B`` train.
    """

    def __init__(self, heads: int, d_model: int, d_head: int, rank: int, generator: torch.Generator):
        super().__init__()
        self.heads = heads
        self.b = nn.Parameter(torch.zeros(d_model, rank))
        self.a = nn.Parameter(torch.randn(rank, heads * d_head, generator=generator) * 0.02)

    def forward(self, w0: torch.Tensor) -> torch.Tensor:
        return w0 + unfuse(self.b @ self.a, self.heads)


def add_adapters(model: nn.Module, rank: int, seed: int = 0) -> nn.Module:
    """Freeze every attention weight of ``model`` at its current value and add a rank-``rank`` adapter to it.

    Everything else in the model stays trainable (as in the truncation sweep, which cuts only attention).
    ``model.attention_weights()`` then returns ``W_0 + B A``, so the tracker sees the adapted weights.
    """
    from torch.nn.utils import parametrize

    gen = torch.Generator().manual_seed(seed)
    for attn in attention_modules(model):
        for kind in KINDS:
            heads, d_model, d_head = getattr(attn, f"w_{kind}").shape
            parametrize.register_parametrization(attn, f"w_{kind}", LowRankUpdate(heads, d_model, d_head, rank, gen))
            getattr(attn.parametrizations, f"w_{kind}").original.requires_grad_(False)
    return model

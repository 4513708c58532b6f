"""How much of a trained transformer survives if each attention update is cut to rank r?

For a trained model with attention weights ``W`` and their initial values
``W_0``, every attention weight matrix is replaced by ``W_0 + [W - W_0]_r``,
``[·]_r`` the best rank-``r`` approximation (truncated SVD, Eckart–Young),
and the model is evaluated. Everything else (embeddings, MLPs, LayerNorms,
read-out) keeps its trained value, so the sweep isolates the attention
updates, which are what LoRA adapts. Rank 0 is the *attention ablation*:
attention reset to its initialization, the rest trained
(:func:`attention_ablation`, chapter 06's measure of whether attention matters).

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

from rankbook.analysis import claims
from rankbook.models.adapters import KINDS, attention_weights, fuse, set_attention_weights, unfuse
from rankbook.store import results
from rankbook.training import checkpoint

COMPUTE_DTYPE = torch.float64


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


def random_rank(
    shape: Sequence[int], rank: int, norms: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Random ``[..., m, n]`` matrices ``G_1 G_2^T`` of rank ``rank`` (Gaussian factors), norms ``norms``."""
    *lead, m, n = shape
    if rank == 0:
        return torch.zeros(*shape, dtype=COMPUTE_DTYPE)
    rank = min(rank, m, n)
    left = torch.randn(*lead, m, rank, generator=generator, dtype=COMPUTE_DTYPE)
    right = torch.randn(*lead, n, rank, generator=generator, dtype=COMPUTE_DTYPE)
    mats = left @ right.transpose(-1, -2)
    scale = torch.as_tensor(norms, dtype=COMPUTE_DTYPE) / torch.linalg.matrix_norm(mats)
    return mats * scale[..., None, None]


def rank_r_weights(
    initial: Mapping[str, torch.Tensor],
    final: Mapping[str, torch.Tensor],
    rank: int,
    null: bool = False,
    seed: int = 0,
    svds: Mapping[str, tuple[torch.Tensor, ...]] | None = None,
) -> dict[str, torch.Tensor]:
    """Attention weights ``W_0 + [W - W_0]_r`` per kind (``[layers, heads, d_model, d_head]``).

    ``null=True``: ``W_0 + R_r`` with ``R_r`` random of rank ``r`` and ``‖R_r‖_F = ‖[W - W_0]_r‖_F``.
    At full rank (and not null) the trained weights are returned exactly. ``svds``: :func:`delta_svds` of the
    same weights, computed once by a sweep instead of once per rank and draw.
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
        u, sv, vh = svds[kind] if svds is not None else torch.linalg.svd(delta, full_matrices=False)
        r = min(rank, sv.shape[-1])
        update = (u[..., :r] * sv[..., None, :r]) @ vh[..., :r, :]  # [Δ]_r, Eckart–Young (as truncate)
        if null:
            # drawn on the CPU (one generator, the same draw on every device), then moved to the weights'
            norms = torch.linalg.matrix_norm(update).cpu()
            update = random_rank(delta.shape, rank, norms, gen).to(delta.device)
        out[kind] = (w0.to(COMPUTE_DTYPE) + unfuse(update, heads)).to(w.dtype)
    return out


def sweep_ranks(full: int) -> list[int]:
    """0, 1, 2, 4, 8, … below ``full``, and ``full``."""
    ranks, r = [0], 1
    while r < full:
        ranks.append(r)
        r *= 2
    return ranks + [full]


def delta_svds(
    initial: Mapping[str, torch.Tensor], final: Mapping[str, torch.Tensor]
) -> dict[str, tuple[torch.Tensor, ...]]:
    """Per kind, the SVD ``(u, s, vh)`` of the fused update ``W - W_0`` in ``COMPUTE_DTYPE``: a sweep needs it
    once, not once per rank and draw (GPT-2 small: 11 ranks × 3 draws × 4 kinds of [12, 768, 768] float64
    SVDs, minutes even on a GPU)."""
    return {
        kind: tuple(torch.linalg.svd(fuse(final[kind].to(COMPUTE_DTYPE) - initial[kind].to(COMPUTE_DTYPE)),
                                     full_matrices=False))
        for kind in KINDS
    }


def rank_sweep(
    model: nn.Module,
    initial: Mapping[str, torch.Tensor],
    evaluate: Callable[[nn.Module], float],
    ranks: Iterable[int] | None = None,
    null_seeds: Sequence[int] = (0,),
) -> dict[str, np.ndarray]:
    """Evaluate ``model`` with every attention update cut to each rank (and the random null of each rank).

    ``model`` holds the trained weights (restored on return). Returns ``rank``, ``truncated`` and
    ``null`` (mean over ``null_seeds``) and ``null_std``; ``rank`` ends with the full rank.
    """
    final = attention_weights(model)
    full = full_rank(fuse(final["q"]).shape)
    ranks = sweep_ranks(full) if ranks is None else sorted(set(ranks))
    truncated, null_mean, null_std = [], [], []
    svds = delta_svds(initial, final)
    try:
        for r in ranks:
            set_attention_weights(model, rank_r_weights(initial, final, r, svds=svds))
            truncated.append(evaluate(model))
            vals = []
            for s in null_seeds:
                set_attention_weights(model, rank_r_weights(initial, final, r, null=True, seed=s, svds=svds))
                vals.append(evaluate(model))
            null_mean.append(float(np.mean(vals)))
            null_std.append(float(np.std(vals)))
    finally:
        set_attention_weights(model, final)
    return {
        "rank": np.asarray(ranks),
        "truncated": np.asarray(truncated),
        "null": np.asarray(null_mean),
        "null_std": np.asarray(null_std),
    }


def recovered_fraction(metric: np.ndarray, at_zero: float, at_full: float) -> np.ndarray:
    """``(m(r) - m(0)) / (m(full) - m(0))``: 0 at rank 0, 1 at full rank (works for losses and accuracies)."""
    gain = at_full - at_zero
    return (
        (np.asarray(metric, dtype=float) - at_zero) / gain if gain != 0 else np.full(np.shape(metric), np.nan)
    )


def recovery_rank(ranks: Sequence[int], metric: Sequence[float], fraction: float) -> int | None:
    """Smallest swept rank whose metric recovers ``fraction`` of the full gain over rank 0 (None: never).

    ``metric[0]`` must be rank 0 and ``metric[-1]`` full rank.
    """
    rec = recovered_fraction(np.asarray(metric), metric[0], metric[-1])
    hits = np.flatnonzero(rec >= fraction)
    return int(np.asarray(ranks)[hits[0]]) if len(hits) else None


def recovery_ranks(
    sweep: Mapping[str, np.ndarray], fractions: Sequence[float] = (0.95, 0.99)
) -> dict[float, int | None]:
    """The smallest swept rank recovering each fraction of the full model's gain over rank 0."""
    return {f: recovery_rank(sweep["rank"], sweep["truncated"], f) for f in fractions}


def load_trained(task: Any, result: results.Result) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The final model of a finished run of ``task`` and its initial attention weights, from its checkpoint.

    The results store keeps spectra, not weights; the training loop checkpoints the final step
    (model state and initial attention weights) in the run folder, which is what is read here.
    """
    path = Path(result.path) / checkpoint.CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the result at {result.path} keeps spectra only, and its final "
            f"weights were in that checkpoint. Remove the folder to train the run again."
        )
    ckpt = checkpoint.load(path)  # a clear error for a truncated or foreign file
    if ckpt["config"] != result.config or ckpt["step"] != task.total_steps():
        raise results.ResultMismatchError(
            f"{path} is not the final checkpoint of {result.path.name} "
            f"(step {ckpt['step']} of {task.total_steps()})"
        )
    model = task.build_model()
    model.load_state_dict(ckpt["model"])
    return model.eval(), {k: v.cpu() for k, v in ckpt["initial"].items()}


def ablation(
    model: nn.Module,
    initial: Mapping[str, torch.Tensor],
    fresh: nn.Module,
    evaluate: Callable[[nn.Module], float],
) -> dict[str, float]:
    """Is attention worth anything? ``model`` (trained) with its attention reset to ``initial`` (rank 0).

    ``fresh`` is the whole model at initialization. Returns the metric of the trained model (``trained``),
    with attention at init and the rest trained (``attention_at_init``), of the whole model at init
    (``model_at_init``), and ``share``: the part of the whole training gain lost without the attention
    updates, ``(m(attention at init) - m(trained)) / (m(model at init) - m(trained))`` (for a loss; the
    same formula holds for an accuracy, both differences changing sign). ``model`` is restored on return.
    """
    final = attention_weights(model)
    with torch.no_grad():
        trained = evaluate(model)
        try:
            set_attention_weights(model, initial)
            at_init = evaluate(model)
        finally:
            set_attention_weights(model, final)
        whole = evaluate(fresh)
    gain = whole - trained
    return {
        "trained": trained,
        "attention_at_init": at_init,
        "model_at_init": whole,
        "worth": at_init - trained,
        "share": (at_init - trained) / gain if gain else float("nan"),
    }


def attention_ablation(
    task: Any, result: results.Result, metric: str, device: str = "cpu"
) -> dict[str, float]:
    """:func:`ablation` of a finished run of ``task``, from its final checkpoint, in ``metric``."""
    dev = torch.device(device)
    model, initial = load_trained(task, result)
    evaluate = lambda m: task.evaluate(m, dev)[metric]  # noqa: E731
    return ablation(model.to(dev), initial, task.build_model().to(dev).eval(), evaluate)


def task_rank_sweep(
    task: Any,
    result: results.Result,
    metric: str,
    null_seeds: Sequence[int] = (0,),
    ranks: Iterable[int] | None = None,
    device: str = "cpu",
) -> dict[str, np.ndarray]:
    """:func:`rank_sweep` of a finished run of ``task``, evaluated with the task's own ``metric``."""
    dev = torch.device(device)
    model, initial = load_trained(task, result)
    with torch.no_grad():
        evaluate = lambda m: task.evaluate(m, dev)[metric]  # noqa: E731
        return rank_sweep(model.to(dev), initial, evaluate, ranks=ranks, null_seeds=null_seeds)


# --------------------------------------------------------------------------- chapter 07: rank-r cuts and LoRA


def sweep_numbers(sweep: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Chapter 07's glued text of one rank sweep: metric at rank 0 and full, recovery ranks, null there."""
    ranks = list(sweep["rank"])
    full = int(ranks[-1])
    found = recovery_ranks(sweep)
    out = {
        "rank0": f"{sweep['truncated'][0]:.3f}",
        "full": f"{sweep['truncated'][-1]:.3f}",
        "full_rank": str(full),
    }
    for frac, key in ((0.95, "r95"), (0.99, "r99")):
        r = found[frac]
        out[key] = str(r) if r is not None else "never"
        out[f"{key}_share"] = f"{r / full:.0%}" if r is not None else "—"
        out[f"null{key[1:]}"] = f"{sweep['null'][ranks.index(r)]:.3f}" if r is not None else "—"
    return out


def lora_numbers(rows: Sequence[Mapping]) -> dict[str, str]:
    """One sentence per adapter rank: the adapter's loss against the full run cut to that rank."""
    parts = []
    for row in rows:
        better = "better" if row["LoRA from init"] < row["full training cut to r"] else "worse"
        parts.append(
            f"rank {row['rank r']}: LoRA from init {row['LoRA from init']:.3f} vs the full run cut to "
            f"rank {row['rank r']} {row['full training cut to r']:.3f} ({better})"
        )
    full = f"; full training {rows[0]['full training']:.3f} nats/token." if rows else ""
    return {"summary": "; ".join(parts) + full}


def lora_claims(
    sweeps: Mapping[str, Mapping[str, np.ndarray]], lora_rows: Sequence[Mapping], tier: str, chapter: str
) -> list[dict[str, str]]:
    """Claim rows (beyond the paper): how low a rank recovers the trained attention updates."""
    out = []
    for name, sweep in sweeps.items():
        n = sweep_numbers(sweep)
        low = n["r95"] != "never" and int(n["r95"]) <= int(n["full_rank"]) // 4
        out.append(
            claims.row(
                f"{name}: a low-rank cut of the attention updates keeps the trained model",
                "Sec. 1.1 (open question)",
                tier,
                f"95% of the gain at rank {n['r95']} of {n['full_rank']} (random: {n['null95']})",
                claims.verdict(low),  # shown: 95% of the gain by a quarter of the full rank
                chapter,
            )
        )
    return out


# --------------------------------------------------------------------------- per head against fused per layer


def energy_rank(svals: torch.Tensor, fraction: float = 0.95) -> torch.Tensor:
    """Fewest singular values (last axis, descending) holding ``fraction`` of the squared Frobenius norm."""
    energy = svals.double() ** 2
    cum = energy.cumsum(-1) / energy.sum(-1, keepdim=True).clamp_min(1e-300)
    return (cum < fraction - 1e-12).sum(-1) + 1


def rank_profile(initial: Mapping[str, torch.Tensor], final: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Why a per-head stable rank near 1 and a fused per-layer rank of many tens are not in conflict.

    Per layer and kind (q, k, v, o): the stable rank ``‖Δ‖_F²/‖Δ‖_2²`` and the 95%-energy rank of the fused
    update ``Δ = fuse(W - W_0)`` (``[d_model, heads·d_head]``, what LoRA and the sweep cut), the mean over
    heads of the same two numbers for each head's own block ``Δ^h`` (``[d_model, d_head]``), and the
    stable rank of the fused update built from each head's top singular direction only (``[Δ^h]_1`` side by
    side): heads that each learn about one direction, but different directions, make a fused matrix of
    rank up to ``heads``. Lists are ``[layers]``.
    """
    from rankbook.analysis import spectra

    out: dict[str, Any] = {"full_rank": int(full_rank(fuse(final["q"]).shape))}
    for kind in KINDS:
        per_head = final[kind].to(COMPUTE_DTYPE) - initial[kind].to(COMPUTE_DTYPE)  # [L, H, d, e]
        fused = fuse(per_head)
        s_fused = torch.linalg.svdvals(fused)
        s_head = torch.linalg.svdvals(per_head)
        tops = fuse(truncate(per_head, 1))
        out[kind] = {
            "fused_stable_rank": spectra.stable_rank(s_fused).tolist(),
            "fused_energy95": energy_rank(s_fused).tolist(),
            "head_stable_rank": spectra.stable_rank(s_head).mean(-1).tolist(),
            "head_energy95": energy_rank(s_head).double().mean(-1).tolist(),
            "tops_stable_rank": spectra.stable_rank(torch.linalg.svdvals(tops)).tolist(),
        }
    return out

"""What the loop records about the attention weights, and how the records become a run's arrays.

At each tracking step: for every head of every layer, the singular values of
ΔW_K W_Q^T and ΔW_V W_O^T relative to the initial weights, from the thin
factors (:mod:`rankbook.analysis.spectra`). At the end: the spectra of the
initial products, the stable ranks, and the top singular vectors of each
head's Δ (to tell heads that learned the same direction from heads that learned
different ones).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from rankbook.analysis import spectra

SPECTRA = ("delta_qk", "delta_vo")


def all_finite(weights: Mapping[str, torch.Tensor]) -> bool:
    return bool(torch.stack([torch.isfinite(w).all() for w in weights.values()]).all())


def measure(
    weights: Mapping[str, torch.Tensor], initial: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Singular values of every head's Δ: ``delta_qk``, ``delta_vo``, each ``[layers, heads, 2·d_head]``."""
    return {
        f"delta_{kind}": spectra.delta_svdvals(weights, initial, kind).float().cpu() for kind in ("qk", "vo")
    }


def stack(
    records: list[dict[str, Any]], initial: Mapping[str, torch.Tensor], final: Mapping[str, torch.Tensor]
) -> dict[str, np.ndarray]:
    """The run's arrays: one row per tracking step, plus the initial spectra and the final top vectors."""
    scalars = [k for k in records[0] if k not in SPECTRA]
    out = {k: np.asarray([r[k] for r in records]) for k in scalars}
    for k in SPECTRA:
        out[k] = torch.stack([r[k] for r in records]).numpy()
        out[f"stable_rank_{k}"] = spectra.stable_rank(torch.from_numpy(out[k])).numpy()
    for kind in ("qk", "vo"):
        init = spectra.head_svdvals(initial, kind).float().cpu()
        out[f"init_{kind}"] = init.numpy()
        out[f"stable_rank_init_{kind}"] = spectra.stable_rank(init).numpy()
        left, right = spectra.delta_top_vectors(final, initial, kind)
        out[f"top_left_{kind}"] = left.float().cpu().numpy()
        out[f"top_right_{kind}"] = right.float().cpu().numpy()
    return out

"""The first-step transient: why the stable rank of Δ starts high under Adam, measured on the run's own model.

At step 1, Δ is Adam's first update. With its moment estimates bias-corrected,
that update is ``-lr · g / (|g| + eps)``, i.e. almost ``-lr · sign(g)``
entry by entry, whatever the gradient's structure. Taking signs spreads a
low-rank gradient over many directions, so the stable rank of
``ΔW_K W_Q^T`` and ``ΔW_V W_O^T`` after one Adam step is higher than after a
gradient step; as Adam's second-moment estimate fills in, the updates follow
the gradient again and the curve falls before it rises (see
:mod:`rankbook.analysis.trend`).

:func:`first_step` measures this on a task (the chapters' ViT or LM) from
the same initialization and the same first batch:

* ``adam``: one step of ``torch.optim.Adam`` (the training loop's defaults:
  betas (0.9, 0.999), eps 1e-8, no weight decay) at learning rate ``lr``;
* ``gradient``: one step along ``-g``, scaled per head and per matrix
  (``W_Q, W_K, W_V, W_O`` of each head) to the Frobenius norm of Adam's
  update of that matrix, so the two differ in direction only;
* ``sign``: ``-lr · sign(g)``, what Adam's step tends to as ``eps → 0``.

Stable ranks of Δ per ``[layer, head]`` for each, from
:mod:`rankbook.analysis.spectra`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rankbook.analysis import spectra
from rankbook.models.adapters import KINDS, attention_weights

STEPS = ("adam", "gradient", "sign")


def first_gradient(task: Any, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict, dict]:
    """The task's model at initialization, its attention weights, and their gradient on the first batch."""
    device = torch.device(device)
    model = task.build_model().to(device).train()
    inputs, targets = task.train_batch(0, device)
    model.zero_grad(set_to_none=True)
    task.loss(model, inputs, targets).backward()
    return model, attention_weights(model), attention_weights(model, "grad")


def _head_norms(t: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of every head's ``[d_model, d_head]`` matrix, shaped to broadcast: ``[..., 1, 1]``."""
    return torch.linalg.matrix_norm(t.double())[..., None, None]


def first_step(
    task: Any, lr: float, *, eps: float = 1e-8, device: str | torch.device = "cpu"
) -> dict[str, dict[str, np.ndarray]]:
    """Stable rank of Δ after one Adam step, one gradient step of the same size, and one sign step.

    Returns ``{"adam" | "gradient" | "sign": {"qk" | "vo": [layers, heads]}}``, plus ``"update_norm"``:
    ``{kind: [layers, heads]}`` Frobenius norms of Adam's update of each head's ``W_kind`` (the gradient
    step's norms, by construction).
    """
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    model, initial, grads = first_gradient(task, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=eps, weight_decay=0.0)
    optimizer.step()
    adam = attention_weights(model)
    updates = {k: adam[k].double() - initial[k].double() for k in KINDS}
    norms = {k: _head_norms(updates[k]) for k in KINDS}
    weights = {
        "adam": adam,
        "gradient": {
            k: initial[k].double() - grads[k].double() * norms[k] / _head_norms(grads[k]).clamp_min(1e-300)
            for k in KINDS
        },
        "sign": {k: initial[k].double() - lr * torch.sign(grads[k].double()) for k in KINDS},
    }
    out: dict[str, Any] = {
        name: {
            kind: spectra.stable_rank(spectra.delta_svdvals(w, initial, kind)).cpu().numpy()
            for kind in ("qk", "vo")
        }
        for name, w in weights.items()
    }
    out["update_norm"] = {k: norms[k][..., 0, 0].cpu().numpy() for k in KINDS}
    return out


def first_lr(result) -> float:
    """The learning rate of a run's first update (its ``lr`` array at step 1), to repeat that step exactly."""
    steps = list(np.asarray(result.arrays["step"]))
    if 1 not in steps:
        raise ValueError(f"{result.path}: step 1 was not tracked, so its learning rate is unknown; pass lr=")
    return float(result.arrays["lr"][steps.index(1)])


def summary(measured: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Mean over all heads and layers: ``{"qk" | "vo": {"adam": …, "gradient": …, "sign": …}}``."""
    return {kind: {name: float(np.nanmean(measured[name][kind])) for name in STEPS} for kind in ("qk", "vo")}

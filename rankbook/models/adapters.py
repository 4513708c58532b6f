"""Access to every block's attention weights, and LoRA adapters on them.

Both the ViT and the GPT keep each block's attention in ``model.blocks[i].attn``
with per-head parameters ``w_q, w_k, w_v, w_o`` of shape ``[heads, d_model,
d_head]``. :func:`attention_modules`, :func:`attention_weights` and
:func:`set_attention_weights` read and write them for the analyses (rank-r
truncation, the first-step transient). :func:`add_adapters` freezes them and
trains a rank-``r`` update ``B A`` of each fused per-layer matrix instead
(LoRA's parametrization), for chapter 07's runs from initialization.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

KINDS = ("q", "k", "v", "o")


def fuse(per_head: torch.Tensor) -> torch.Tensor:
    """``[..., heads, d_model, d_head]`` → the fused ``[..., d_model, heads·d_head]`` (heads side by side)."""
    *lead, h, d, e = per_head.shape
    return per_head.movedim(-3, -2).reshape(*lead, d, h * e)


def unfuse(fused: torch.Tensor, heads: int) -> torch.Tensor:
    """Inverse of :func:`fuse`."""
    *lead, d, he = fused.shape
    return fused.reshape(*lead, d, heads, he // heads).movedim(-2, -3)


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The attention module of every block (``model.blocks[i].attn``, as in the ViT and the GPT)."""
    return [block.attn for block in model.blocks]


def attention_weights(model: nn.Module, what: str = "data") -> dict[str, torch.Tensor]:
    """Detached copies of every block's weights (``what="data"``) or their gradients (``"grad"``).

    ``{kind: [layers, heads, d_model, d_head]}`` for kind in q, k, v, o.
    """
    out = {}
    for kind in KINDS:
        tensors = [getattr(getattr(a, f"w_{kind}"), what) for a in attention_modules(model)]
        if any(t is None for t in tensors):
            raise ValueError(f"w_{kind} has no {what}: run a backward pass before reading gradients")
        out[kind] = torch.stack([t.detach().clone() for t in tensors])
    return out


@torch.no_grad()
def set_attention_weights(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """Copy ``weights[kind][layer]`` into each block's ``w_q, w_k, w_v, w_o``."""
    for layer, attn in enumerate(attention_modules(model)):
        for kind in KINDS:
            getattr(attn, f"w_{kind}").copy_(weights[kind][layer])


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
            parametrize.register_parametrization(
                attn, f"w_{kind}", LowRankUpdate(heads, d_model, d_head, rank, gen)
            )
            getattr(attn.parametrizations, f"w_{kind}").original.requires_grad_(False)
    return model

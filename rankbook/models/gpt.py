"""A GPT-2-style causal language model whose heads hold W_Q, W_K, W_V, W_O as explicit tensors.

Architecture (GPT-2, Radford et al. 2019): token embeddings plus learned
position embeddings, ``depth`` pre-norm blocks ``x + Attn(LN(x))``,
``x + MLP(LN(x))`` with a GELU MLP of width ``mlp_dim`` (4·d_model in GPT-2),
a final LayerNorm and a linear read-out to the vocabulary. No dropout.
Embeddings are **tied** by default (the read-out matrix is the token
embedding, as in GPT-2); ``tied=False`` gives the read-out its own matrix.

Attention follows the convention of :mod:`rankbook.models.vit` exactly: head ``h``
holds ``W_Q^h, W_K^h, W_V^h, W_O^h`` of shape ``[d_model, d_head]``
(parameters ``w_q, w_k, w_v, w_o`` of shape ``[heads, d_model, d_head]``), the
logits are ``X W_Q^h (X W_K^h)^T / sqrt(d_head)`` with row ``i`` the query,
masked causally (query ``i`` sees keys ``j <= i``), and the output is
``sum_h softmax(logits_h) X W_V^h (W_O^h)^T + b_O``. Unlike GPT-2 there are no
Q/K/V biases, so that the logits are exactly the bilinear form
``X (W_Q W_K^T) X^T`` the paper studies (a bias would add terms linear in
``X`` outside the product); the output bias is kept. ``attention_weights()``
has the ViT's contract, so :mod:`rankbook.analysis.spectra` and the tracker apply
unchanged.

Initialization is GPT-2's: every weight ~ N(0, 0.02²), biases 0, LayerNorm
gains 1, and the residual-stream projections (``W_O`` and the MLP's second
layer) scaled by ``1/sqrt(2·depth)``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from rankbook.models.vit import Attention, require_positive_ints

INIT_STD = 0.02


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """Shape of a :class:`GPT`; the defaults are GPT-2 small (124M parameters with the BPE vocabulary)."""

    vocab_size: int = 50257
    context: int = 1024
    d_model: int = 768
    depth: int = 12
    heads: int = 12
    d_head: int = 64
    mlp_dim: int = 3072
    tied: bool = True

    def __post_init__(self) -> None:
        require_positive_ints(
            self, ("vocab_size", "context", "d_model", "depth", "heads", "d_head", "mlp_dim")
        )
        if not isinstance(self.tied, bool):
            raise ValueError(f"GPTConfig.tied must be True or False, got {self.tied!r}")


class CausalAttention(Attention):
    """The ViT's attention with a causal mask and GPT-2's initialization."""

    def __init__(self, d_model: int, heads: int, d_head: int, depth: int):
        self._depth = depth  # read by reset_parameters, which the base constructor calls
        super().__init__(d_model, heads, d_head, causal=True)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for w in (self.w_q, self.w_k, self.w_v):
                nn.init.normal_(w, std=INIT_STD)
            nn.init.normal_(self.w_o, std=INIT_STD / math.sqrt(2 * self._depth))
            nn.init.zeros_(self.b_o)


class Block(nn.Module):
    """Pre-norm transformer block with a GELU MLP."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalAttention(cfg.d_model, cfg.heads, cfg.d_head, cfg.depth)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.mlp_dim), nn.GELU(), nn.Linear(cfg.mlp_dim, cfg.d_model)
        )
        with torch.no_grad():
            nn.init.normal_(self.mlp[0].weight, std=INIT_STD)
            nn.init.zeros_(self.mlp[0].bias)
            nn.init.normal_(self.mlp[2].weight, std=INIT_STD / math.sqrt(2 * cfg.depth))
            nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """Causal LM on token ids ``[batch, tokens]`` (tokens <= context); returns next-token logits."""

    def __init__(self, cfg: GPTConfig = GPTConfig()):
        super().__init__()
        self.cfg = cfg
        self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_embed = nn.Parameter(torch.empty(1, cfg.context, cfg.d_model))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.unembed = None if cfg.tied else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        with torch.no_grad():
            nn.init.normal_(self.tok_embed.weight, std=INIT_STD)
            nn.init.normal_(self.pos_embed, std=INIT_STD / 2)  # GPT-2's wpe init
            if self.unembed is not None:
                nn.init.normal_(self.unembed.weight, std=INIT_STD)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        if n > self.cfg.context:
            raise ValueError(f"{n} tokens exceed the context of {self.cfg.context}")
        x = self.tok_embed(tokens) + self.pos_embed[:, :n]
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x @ self.tok_embed.weight.T if self.unembed is None else self.unembed(x)

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (nats) of ``tokens [batch, n+1]`` (inputs ``[:, :-1]``, targets ``[:, 1:]``)."""
        logits = self(tokens[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))

    def attention_weights(self) -> dict[str, torch.Tensor]:
        """Each of ``q, k, v, o`` stacked over layers: ``[depth, heads, d_model, d_head]`` (detached)."""
        return {
            name: torch.stack([getattr(b.attn, f"w_{name}").detach() for b in self.blocks])
            for name in ("q", "k", "v", "o")
        }


def parameter_count(cfg: GPTConfig) -> int:
    """Number of parameters of ``GPT(cfg)`` without building it (tied embeddings counted once)."""
    d = cfg.d_model
    attn = 4 * cfg.heads * d * cfg.d_head + d
    mlp = d * cfg.mlp_dim + cfg.mlp_dim + cfg.mlp_dim * d + d
    per_block = attn + mlp + 4 * d
    readout = 0 if cfg.tied else cfg.vocab_size * d
    return cfg.vocab_size * d + cfg.context * d + cfg.depth * per_block + 2 * d + readout

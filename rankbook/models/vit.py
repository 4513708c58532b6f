"""The paper's vision transformer, with each head's W_Q, W_K, W_V, W_O held as explicit tensors.

Architecture (section 5 and appendix B of the paper): images cut into
``patch_size``×``patch_size`` patches, a linear patch embedding, a class
token and learned position embeddings (together the "token mapper"), then
``depth`` pre-norm blocks ``x + Attn(LN(x))``, ``x + MLP(LN(x))`` with GELU,
a final LayerNorm and a linear classifier on the class token. No dropout.

Attention convention. Head ``h`` of a layer holds ``W_Q^h, W_K^h, W_V^h,
W_O^h`` of shape ``[d_model, d_head]`` (the parameters ``w_q, w_k, w_v, w_o``
have shape ``[heads, d_model, d_head]``). On tokens ``X`` (rows, already
LayerNormed) it computes::

    logits_h = (X W_Q^h)(X W_K^h)^T / sqrt(d_head) = X (W_Q^h W_K^h^T) X^T / sqrt(d_head)
    out      = sum_h softmax_rows(logits_h) X W_V^h (W_O^h)^T + b_O

Row ``i`` of ``logits_h`` is query token ``i``. The paper writes the same head
as ``softmax(X W_K W_Q^T X^T)``: its bilinear matrix ``W_K W_Q^T`` is the
transpose of ours (the paper puts the key on the left), so the two have the
same singular values and the same stable rank, and :mod:`rankbook.analysis.spectra`
reports the paper's ``W_K W_Q^T``. ``tests/test_vit.py`` pins this
convention against the model's own outputs.

Default initialization is PyTorch's ``nn.Linear`` default, as in a ViT built
from fused ``Linear(d_model, 3·heads·d_head, bias=False)`` and
``Linear(heads·d_head, d_model)`` layers: ``U(±1/sqrt(fan_in))``. The
``init_scale`` sweep multiplies the initial values of every parameter after
the token mapper (attention, MLP, the classifier, and the LayerNorm gains and
biases only when ``scale_norms``) and leaves the token mapper (patch
embedding, class token, position embeddings) at its default scale, as the
paper fixes "the scale of the initial token mapper". With ``scale_norms`` every
residual branch shrinks as s³ (gain, then two scaled matrices), which stalls
training at small s; see :mod:`rankbook.settings.vit`.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

#: parameter-name prefixes of the token mapper, which ``init_scale`` leaves alone
TOKEN_MAPPER = ("patch_embed.", "cls_token", "pos_embed")


def require_positive_ints(config: object, names: tuple[str, ...]) -> None:
    """Raise a ValueError naming the first field of ``config`` that is not a positive int (bools excluded)."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """Shape of a :class:`ViT`; the defaults are the paper's CIFAR model."""

    image_size: int = 32
    patch_size: int = 4
    in_channels: int = 3
    num_classes: int = 10
    d_model: int = 512
    depth: int = 6
    heads: int = 8
    d_head: int = 128
    mlp_dim: int = 512
    init_scale: float = 1.0
    scale_norms: bool = False

    def __post_init__(self) -> None:
        require_positive_ints(
            self,
            (
                "image_size",
                "patch_size",
                "in_channels",
                "num_classes",
                "d_model",
                "depth",
                "heads",
                "d_head",
                "mlp_dim",
            ),
        )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"patch_size={self.patch_size} does not divide image_size={self.image_size}: "
                f"choose a patch size among {[p for p in range(1, self.image_size + 1) if self.image_size % p == 0]}"  # noqa: E501
            )
        if not (
            isinstance(self.init_scale, (int, float))
            and self.init_scale > 0
            and math.isfinite(self.init_scale)
        ):
            raise ValueError(
                f"ViTConfig.init_scale must be a positive finite number, got {self.init_scale!r}"
            )

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class Attention(nn.Module):
    """Multi-head self-attention whose per-head weights are the paper's matrices, unfused.

    Shared by the ViT and the GPT (``causal=True``); subclasses choose the initialization.
    """

    def __init__(self, d_model: int, heads: int, d_head: int, causal: bool = False):
        super().__init__()
        self.heads, self.d_head, self.causal = heads, d_head, causal
        self.w_q = nn.Parameter(torch.empty(heads, d_model, d_head))
        self.w_k = nn.Parameter(torch.empty(heads, d_model, d_head))
        self.w_v = nn.Parameter(torch.empty(heads, d_model, d_head))
        self.w_o = nn.Parameter(torch.empty(heads, d_model, d_head))
        self.b_o = nn.Parameter(torch.empty(d_model))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default for the fused Linear layers these weights replace."""
        d_model = self.w_q.shape[1]
        bound_in = 1 / math.sqrt(d_model)  # fan_in of the fused Q/K/V Linear
        bound_out = 1 / math.sqrt(self.heads * self.d_head)  # fan_in of the fused output Linear
        for w in (self.w_q, self.w_k, self.w_v):
            nn.init.uniform_(w, -bound_in, bound_in)
        nn.init.uniform_(self.w_o, -bound_out, bound_out)
        nn.init.uniform_(self.b_o, -bound_out, bound_out)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-head queries, keys, values ``[batch, heads, tokens, d_head]`` of tokens ``x``.

        One matmul against the three weights laid out head-last (``[d_model, 3·heads·d_head]``): the
        activations are read once and never permuted into a head-first copy; only the views are.
        """
        h, e = self.heads, self.d_head
        w = torch.cat([m.permute(1, 0, 2) for m in (self.w_q, self.w_k, self.w_v)], dim=1)  # [d, 3·h, e]
        qkv = (x @ w.reshape(w.shape[0], 3 * h * e)).unflatten(-1, (3, h, e))  # [b, n, 3, h, e]
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # views [b, h, n, e]
        return q, k, v

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax scores ``[batch, heads, query, key]``, -inf above the diagonal when causal.

        For inspection and tests; forward uses SDPA.
        """
        q, k, _ = self.project(x)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
        if self.causal:
            n = x.shape[1]
            future = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, -math.inf)
        return scores

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.project(x)
        heads_out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # scale 1/sqrt(d_head)
        w_o = self.w_o.permute(0, 2, 1).reshape(self.heads * self.d_head, -1)  # [h·e, d_model]
        return heads_out.transpose(1, 2).flatten(2) @ w_o + self.b_o


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.heads, cfg.d_head)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.mlp_dim), nn.GELU(), nn.Linear(cfg.mlp_dim, cfg.d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Vision transformer for ``[batch, channels, H, W]`` float images; returns class logits."""

    def __init__(self, cfg: ViTConfig = ViTConfig()):
        super().__init__()
        self.cfg = cfg
        patch_dim = cfg.in_channels * cfg.patch_size**2
        self.patch_embed = nn.Linear(patch_dim, cfg.d_model)
        self.cls_token = nn.Parameter(torch.randn(1, 1, cfg.d_model))
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.num_patches + 1, cfg.d_model))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.num_classes)
        if cfg.init_scale != 1.0:
            scale_initialization(self, cfg.init_scale, cfg.scale_norms)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` → ``[B, patches, C·p·p]``, patches in row-major order."""
        b, c, h, w = images.shape
        p = self.cfg.patch_size
        if (h, w) != (self.cfg.image_size,) * 2 or c != self.cfg.in_channels:
            raise ValueError(
                f"expected images [B, {self.cfg.in_channels}, {self.cfg.image_size}, "
                f"{self.cfg.image_size}], got {list(images.shape)}"
            )
        x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p * c)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The token mapper: patch embeddings with a class token prepended, plus positions."""
        x = self.patch_embed(self.patchify(images))
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.pos_embed

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.tokens(images)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))

    def attention_weights(self) -> dict[str, torch.Tensor]:
        """Each of ``q, k, v, o`` stacked over layers: ``[depth, heads, d_model, d_head]`` (detached)."""
        return {
            name: torch.stack([getattr(b.attn, f"w_{name}").detach() for b in self.blocks])
            for name in ("q", "k", "v", "o")
        }


def is_token_mapper(name: str) -> bool:
    """Whether parameter ``name`` belongs to the token mapper (left alone by ``init_scale``)."""
    return name.startswith(TOKEN_MAPPER)


@torch.no_grad()
def scale_initialization(model: nn.Module, scale: float, scale_norms: bool = False) -> None:
    """Multiply every parameter outside the token mapper by ``scale``, in place (LayerNorms only if asked)."""
    norms = {
        f"{name}.{p}"
        for name, m in model.named_modules()
        if isinstance(m, nn.LayerNorm)
        for p, _ in m.named_parameters(recurse=False)
    }
    for name, param in model.named_parameters():
        if not is_token_mapper(name) and (scale_norms or name not in norms):
            param.mul_(scale)

"""The book's ViT written as an HF transformers ViT and as a timm VisionTransformer of the same shape.

Both conversions copy every parameter, so the converted model computes the same function (the tests compare
logits); the per-head weights go through each library's own layout (:mod:`rankbook.inspect.layouts` reads
them back). The book's ViT has no Q/K/V biases (``qkv_bias=False``), exact GELU and LayerNorm eps 1e-5.
Patches: the book flattens a patch as ``(row, column, channel)``; a ``Conv2d`` patch embedding holds
``[d_model, channel, row, column]``.
"""

from __future__ import annotations

import torch
from torch import nn

from rankbook.models.vit import ViT


def _qkv_rows(w: torch.Tensor) -> torch.Tensor:
    """``[heads, d, e]`` → Linear weight ``[heads·e, d]`` (head h's outputs are rows h·e..)."""
    return w.detach().permute(0, 2, 1).reshape(-1, w.shape[1])


def _out_cols(w: torch.Tensor) -> torch.Tensor:
    """``[heads, d, e]`` → output Linear weight ``[d, heads·e]`` (head h's inputs are columns h·e..)."""
    return w.detach().permute(1, 0, 2).reshape(w.shape[1], -1)


def _patch_conv(vit: ViT) -> torch.Tensor:
    c, p = vit.cfg.in_channels, vit.cfg.patch_size
    return vit.patch_embed.weight.detach().reshape(-1, p, p, c).permute(0, 3, 1, 2).contiguous()


def _copy(dst: nn.Module, src: nn.Module) -> None:
    dst.weight.copy_(src.weight.detach())
    if getattr(dst, "bias", None) is not None:
        dst.bias.copy_(src.bias.detach())


@torch.no_grad()
def to_hf_vit(vit: ViT):
    """A ``transformers.ViTForImageClassification`` computing what ``vit`` computes (transformers 5.x)."""
    import transformers

    c = vit.cfg
    if c.heads * c.d_head != c.d_model:
        raise ValueError(f"HF ViT needs heads × d_head = d_model; this ViT has {c.heads} × {c.d_head} != "
                         f"{c.d_model}")
    config = transformers.ViTConfig(
        hidden_size=c.d_model, num_hidden_layers=c.depth, num_attention_heads=c.heads,
        intermediate_size=c.mlp_dim, hidden_act="gelu", hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, layer_norm_eps=1e-5, image_size=c.image_size,
        patch_size=c.patch_size, num_channels=c.in_channels, qkv_bias=False, num_labels=c.num_classes)
    hf = transformers.ViTForImageClassification(config).eval()
    emb = hf.vit.embeddings
    emb.cls_token.copy_(vit.cls_token.detach())
    emb.position_embeddings.copy_(vit.pos_embed.detach())
    emb.patch_embeddings.projection.weight.copy_(_patch_conv(vit))
    emb.patch_embeddings.projection.bias.copy_(vit.patch_embed.bias.detach())
    layers = getattr(hf.vit, "layers", None)
    if layers is None:
        raise ValueError(f"transformers {transformers.__version__}: to_hf_vit writes the 5.x names "
                         f"(vit.layers.N.attention.q_proj); install transformers 5 (requirements.txt)")
    for block, layer in zip(vit.blocks, layers):
        a, att = block.attn, layer.attention
        att.q_proj.weight.copy_(_qkv_rows(a.w_q))
        att.k_proj.weight.copy_(_qkv_rows(a.w_k))
        att.v_proj.weight.copy_(_qkv_rows(a.w_v))
        att.o_proj.weight.copy_(_out_cols(a.w_o))
        att.o_proj.bias.copy_(a.b_o.detach())
        _copy(layer.layernorm_before, block.norm1)
        _copy(layer.layernorm_after, block.norm2)
        _copy(layer.mlp.fc1, block.mlp[0])
        _copy(layer.mlp.fc2, block.mlp[2])
    _copy(hf.vit.layernorm, vit.norm)
    _copy(hf.classifier, vit.head)
    return hf


@torch.no_grad()
def to_timm_vit(vit: ViT):
    """A ``timm`` ``VisionTransformer`` computing what ``vit`` computes."""
    from timm.models.vision_transformer import VisionTransformer

    c = vit.cfg
    if c.heads * c.d_head != c.d_model:
        raise ValueError(f"timm's ViT needs heads × d_head = d_model; this ViT has {c.heads} × {c.d_head}")
    tv = VisionTransformer(img_size=c.image_size, patch_size=c.patch_size, in_chans=c.in_channels,
                           num_classes=c.num_classes, embed_dim=c.d_model, depth=c.depth, num_heads=c.heads,
                           mlp_ratio=c.mlp_dim / c.d_model, qkv_bias=False, norm_layer=nn.LayerNorm,
                           act_layer=nn.GELU, global_pool="token").eval()
    tv.cls_token.copy_(vit.cls_token.detach())
    tv.pos_embed.copy_(vit.pos_embed.detach())
    tv.patch_embed.proj.weight.copy_(_patch_conv(vit))
    tv.patch_embed.proj.bias.copy_(vit.patch_embed.bias.detach())
    for block, tb in zip(vit.blocks, tv.blocks):
        a = block.attn
        tb.attn.qkv.weight.copy_(torch.cat([_qkv_rows(a.w_q), _qkv_rows(a.w_k), _qkv_rows(a.w_v)]))
        tb.attn.proj.weight.copy_(_out_cols(a.w_o))
        tb.attn.proj.bias.copy_(a.b_o.detach())
        _copy(tb.norm1, block.norm1)
        _copy(tb.norm2, block.norm2)
        _copy(tb.mlp.fc1, block.mlp[0])
        _copy(tb.mlp.fc2, block.mlp[2])
    _copy(tv.norm, vit.norm)
    _copy(tv.head, vit.head)
    return tv

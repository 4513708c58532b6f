"""The ViT's explicit per-head weights are the matrices the paper studies, in the documented convention."""

import math

import pytest
import torch

from rankbook.analysis import spectra
from rankbook.models.vit import ViT, ViTConfig, is_token_mapper

SMALL = ViTConfig(
    image_size=8, patch_size=4, num_classes=3, d_model=12, depth=2, heads=3, d_head=5, mlp_dim=16
)


def _attention_input_and_output(model, images, layer):
    """The LayerNormed tokens entering a layer's attention and what the attention returns, by hooks."""
    seen = {}
    attn = model.blocks[layer].attn
    handle = attn.register_forward_hook(lambda mod, args, out: seen.update(x=args[0], out=out))
    model(images)
    handle.remove()
    return seen["x"].double(), seen["out"].double()


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ViT(SMALL).double()


def test_logits_are_x_wq_wk_t_x_t_and_the_paper_matrix_is_its_transpose(model):
    images = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    x, _ = _attention_input_and_output(model, images, layer=1)
    w = model.attention_weights()
    paper_qk = spectra.product({k: v[1] for k, v in w.items()}, "qk")  # W_K W_Q^T per head
    expected = torch.einsum("bid,hde,bje->bhij", x, paper_qk.transpose(-1, -2), x) / math.sqrt(SMALL.d_head)
    torch.testing.assert_close(model.blocks[1].attn.logits(x), expected)
    # key-side/query-side: row i is the query; the paper's W_K W_Q^T used untransposed gives the transpose
    wrong = torch.einsum("bid,hde,bje->bhij", x, paper_qk, x) / math.sqrt(SMALL.d_head)
    torch.testing.assert_close(wrong, expected.transpose(-1, -2))


def test_attention_output_is_sum_over_heads_of_paper_products(model):
    """Recompute the attention from W_K W_Q^T and W_V W_O^T alone; it must equal the SDPA forward pass."""
    images = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    for layer in range(SMALL.depth):
        x, out = _attention_input_and_output(model, images, layer)
        w = {k: v[layer] for k, v in model.attention_weights().items()}
        qk, vo = spectra.product(w, "qk"), spectra.product(w, "vo")
        logits = torch.einsum("bid,hed,bje->bhij", x, qk, x) / math.sqrt(SMALL.d_head)  # X (W_K W_Q^T)^T X^T
        per_head = torch.einsum("bhij,bjd,hde->bhie", logits.softmax(-1), x, vo)  # A_h X W_V W_O^T
        torch.testing.assert_close(out, per_head.sum(1) + model.blocks[layer].attn.b_o)


def test_single_head_contribution(model):
    """Zeroing the other heads' W_O leaves exactly head h's softmax(...) X W_V^h W_O^h^T."""
    images = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    h = 1
    attn = model.blocks[0].attn
    x, _ = _attention_input_and_output(model, images, 0)
    with torch.no_grad():
        keep = attn.w_o.clone()
        attn.w_o[[i for i in range(SMALL.heads) if i != h]] = 0
        only_h = attn(x) - attn.b_o
        attn.w_o.copy_(keep)
    w = {k: v[0, h] for k, v in model.attention_weights().items()}
    a = (x @ w["q"] @ (x @ w["k"]).transpose(-1, -2) / math.sqrt(SMALL.d_head)).softmax(-1)
    torch.testing.assert_close(only_h, a @ x @ spectra.product(w, "vo"))


def test_shapes_and_paper_default():
    cfg = ViTConfig()
    assert (cfg.d_model, cfg.depth, cfg.heads, cfg.d_head, cfg.mlp_dim, cfg.patch_size, cfg.num_patches) == (
        512,
        6,
        8,
        128,
        512,
        4,
        64,
    )
    model = ViT(SMALL)
    assert model(torch.randn(4, 3, 8, 8)).shape == (4, 3)
    assert {k: tuple(v.shape) for k, v in model.attention_weights().items()} == {
        k: (2, 3, 12, 5) for k in "qkvo"
    }


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(patch_size=3), "does not divide"),
        (dict(heads=0), "positive integer"),
        (dict(d_model=-4), "positive integer"),
        (dict(init_scale=0.0), "init_scale"),
    ],
)
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        ViTConfig(**{**SMALL.__dict__, **bad})


def test_wrong_image_shape_is_named():
    with pytest.raises(ValueError, match=r"expected images \[B, 3, 8, 8\]"):
        ViT(SMALL)(torch.randn(1, 3, 16, 16))


@pytest.mark.parametrize("scale_norms", [False, True])
def test_init_scale_scales_all_but_the_token_mapper(scale_norms):
    torch.manual_seed(1)
    base = dict(ViT(SMALL).named_parameters())
    torch.manual_seed(1)
    scaled = dict(
        ViT(
            ViTConfig(**{**SMALL.__dict__, "init_scale": 0.01, "scale_norms": scale_norms})
        ).named_parameters()
    )
    mapper = [n for n in base if is_token_mapper(n)]
    assert sorted(mapper) == ["cls_token", "patch_embed.bias", "patch_embed.weight", "pos_embed"]
    norms = [n for n in base if "norm" in n]
    assert len(norms) == 2 * (
        2 * SMALL.depth + 1
    )  # gain and bias of two LayerNorms per block plus the final one
    for name, p in base.items():
        factor = 1.0 if name in mapper or (name in norms and not scale_norms) else 0.01
        torch.testing.assert_close(scaled[name], p * factor, msg=name)
    assert any("attn.w_q" in n for n in base)


def test_paper_sized_model_runs_and_counts():
    torch.manual_seed(0)
    model = ViT(ViTConfig(num_classes=100))
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    w = model.attention_weights()
    assert tuple(w["q"].shape) == (6, 8, 512, 128)
    # per block: 4 per-head tensors, output bias, 2 LayerNorms, MLP 512→512→512
    per_block = 4 * 8 * 512 * 128 + 512 + 2 * 2 * 512 + 2 * (512 * 512 + 512)
    tokens = (48 * 512 + 512) + 512 + 65 * 512
    assert sum(p.numel() for p in model.parameters()) == tokens + 6 * per_block + 2 * 512 + 512 * 100 + 100

"""The LM's explicit per-head weights are the matrices the paper studies, and attention is causal."""

import math

import pytest
import torch

from rankbook.analysis import spectra
from rankbook.models.gpt import GPT, GPTConfig, parameter_count

SMALL = GPTConfig(vocab_size=11, context=9, d_model=12, depth=2, heads=3, d_head=5, mlp_dim=16)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GPT(SMALL).double()


def _attention_input_and_output(model, tokens, layer):
    seen = {}
    handle = model.blocks[layer].attn.register_forward_hook(
        lambda mod, args, out: seen.update(x=args[0], out=out)
    )
    model(tokens)
    handle.remove()
    return seen["x"], seen["out"]


def test_logits_are_x_wq_wk_t_x_t_masked_causally(model):
    tokens = torch.randint(0, 11, (2, 7))
    x, _ = _attention_input_and_output(model, tokens, layer=1)
    w = {k: v[1] for k, v in model.attention_weights().items()}
    paper_qk = spectra.product(w, "qk")  # W_K W_Q^T per head; the model's bilinear form is its transpose
    expected = torch.einsum("bid,hde,bje->bhij", x, paper_qk.transpose(-1, -2), x) / math.sqrt(SMALL.d_head)
    got = model.blocks[1].attn.logits(x)
    below = torch.ones(7, 7, dtype=torch.bool).tril()
    torch.testing.assert_close(got[..., below], expected[..., below])
    assert torch.isneginf(got[..., ~below]).all()


def test_attention_output_is_sum_over_heads_of_paper_products(model):
    """Recompute the attention from W_K W_Q^T and W_V W_O^T alone; it must equal the causal SDPA forward."""
    tokens = torch.randint(0, 11, (2, 8))
    for layer in range(SMALL.depth):
        x, out = _attention_input_and_output(model, tokens, layer)
        w = {k: v[layer] for k, v in model.attention_weights().items()}
        qk, vo = spectra.product(w, "qk"), spectra.product(w, "vo")
        logits = torch.einsum("bid,hed,bje->bhij", x, qk, x) / math.sqrt(SMALL.d_head)
        logits = logits.masked_fill(torch.ones(8, 8, dtype=torch.bool).triu(1), -math.inf)
        per_head = torch.einsum("bhij,bjd,hde->bhie", logits.softmax(-1), x, vo)
        torch.testing.assert_close(out, per_head.sum(1) + model.blocks[layer].attn.b_o)


def test_future_tokens_do_not_change_earlier_outputs(model):
    tokens = torch.randint(0, 11, (3, 9))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1 + torch.randint(0, 9, (3, 4))) % 11
    a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_shapes_loss_and_tying():
    torch.manual_seed(0)
    model = GPT(SMALL)
    assert model(torch.randint(0, 11, (4, 9))).shape == (4, 9, 11)
    assert {k: tuple(v.shape) for k, v in model.attention_weights().items()} == {
        k: (2, 3, 12, 5) for k in "qkvo"
    }
    # at init the logits are tiny, so the loss is close to ln(vocab)
    assert abs(float(model.loss(torch.randint(0, 11, (8, 10))).detach()) - math.log(11)) < 0.1
    assert sum(p.numel() for p in model.parameters()) == parameter_count(SMALL)
    untied = GPTConfig(**{**SMALL.__dict__, "tied": False})
    assert (
        sum(p.numel() for p in GPT(untied).parameters())
        == parameter_count(untied)
        == parameter_count(SMALL) + 11 * 12
    )
    with pytest.raises(ValueError, match="exceed the context"):
        model(torch.zeros(1, 10, dtype=torch.long))


def test_gpt2_small_default_counts():
    # GPT-2 small has 124M parameters with biases on Q/K/V; ours has none there (12 layers × 3 × 768 fewer)
    assert parameter_count(GPTConfig()) == 124_439_808 - 12 * 3 * 768


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(heads=0), "positive integer"),
        (dict(context=1.5), "positive integer"),
        (dict(tied="yes"), "tied"),
    ],
)
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**{**SMALL.__dict__, **bad})

"""The first-step transient: one Adam step vs one gradient step of the same size, on a small GPT."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rankbook.analysis import spectra, transient
from rankbook.models.adapters import KINDS
from rankbook.models.gpt import GPT, GPTConfig


class TinyTask:
    """The task protocol's three methods the transient needs: a seeded model, batch 0, the loss."""

    def build_model(self):
        torch.manual_seed(0)
        return GPT(GPTConfig(vocab_size=11, context=8, d_model=16, depth=2, heads=2, d_head=4, mlp_dim=16))

    def train_batch(self, step, device):
        g = torch.Generator().manual_seed(step)
        tokens = torch.randint(0, 11, (6, 9), generator=g)
        tokens[:, 1::2] = (tokens[:, 0::2][:, : tokens[:, 1::2].shape[1]] + 1) % 11  # some structure to learn
        return tokens[:, :-1].to(device), tokens[:, 1:].to(device)

    def loss(self, model, inputs, targets):
        return F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())


def test_adam_step_is_the_closed_form_and_gradient_step_has_its_size(one_thread):
    lr = 1e-3
    task = TinyTask()
    _, initial, grads = transient.first_gradient(task)
    out = transient.first_step(task, lr)
    # Adam's first bias-corrected step is lr·g/(|g| + eps): its per-head norms, from the closed form
    for k in KINDS:
        closed = lr * grads[k].double() / (grads[k].double().abs() + 1e-8)
        np.testing.assert_allclose(out["update_norm"][k], torch.linalg.matrix_norm(closed).numpy(), rtol=1e-4)
    assert set(out) == {"adam", "gradient", "sign", "update_norm"}
    assert out["adam"]["qk"].shape == out["gradient"]["vo"].shape == (2, 2)
    assert np.all(out["adam"]["qk"] >= 1) and np.all(out["gradient"]["qk"] >= 1)


def test_gradient_step_delta_is_the_first_order_product_of_the_gradient():
    """ΔW_K W_Q^T after W → W - c_h g: computed densely here, compared with the factored stable rank."""
    task = TinyTask()
    lr = 1e-3
    _, initial, grads = transient.first_gradient(task)
    out = transient.first_step(task, lr)
    w = {}
    for k in KINDS:
        c = (
            torch.as_tensor(out["update_norm"][k])[..., None, None]
            / torch.linalg.matrix_norm(grads[k].double())[..., None, None]
        )
        w[k] = initial[k].double() - c * grads[k].double()
    dense = spectra.product(w, "qk") - spectra.product({k: v.double() for k, v in initial.items()}, "qk")
    expected = spectra.stable_rank(torch.linalg.svdvals(dense)).numpy()
    np.testing.assert_allclose(out["gradient"]["qk"], expected, rtol=1e-6)


def test_sign_step_is_adams_step_when_gradients_dwarf_eps():
    task = TinyTask()
    out = transient.first_step(task, 1e-3, eps=1e-30)
    for kind in ("qk", "vo"):
        np.testing.assert_allclose(out["adam"][kind], out["sign"][kind], rtol=1e-4)


def test_adam_spreads_the_update_over_more_directions_than_the_gradient():
    """The point of the measurement: sign-like steps have a higher stable rank than the gradient's."""
    s = transient.summary(transient.first_step(TinyTask(), 1e-3))
    assert s["qk"]["adam"] > s["qk"]["gradient"] and s["vo"]["adam"] > s["vo"]["gradient"]


def test_deterministic_and_bad_lr_is_a_clear_error():
    a, b = (transient.summary(transient.first_step(TinyTask(), 1e-3)) for _ in range(2))
    assert a == b
    with pytest.raises(ValueError, match="lr must be positive"):
        transient.first_step(TinyTask(), 0.0)

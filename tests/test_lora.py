"""Rank-r truncation of attention updates, the random null, and the rank sweep on a real model."""

import numpy as np
import pytest
import torch

from rankbook.analysis import claims, truncation
from rankbook.models import adapters
from rankbook.models.gpt import GPT, GPTConfig


def test_fuse_puts_heads_side_by_side_and_unfuses():
    w = torch.randn(2, 3, 5, 4)  # layers, heads, d_model, d_head
    f = adapters.fuse(w)
    assert f.shape == (2, 5, 12)
    torch.testing.assert_close(f[1, :, 4:8], w[1, 1])
    torch.testing.assert_close(adapters.unfuse(f, 3), w)


def test_truncation_matches_dense_svd_and_is_exact_at_full_rank():
    gen = torch.Generator().manual_seed(0)
    delta = torch.randn(3, 7, 5, generator=gen, dtype=torch.float64)
    assert torch.equal(truncation.truncate(delta, 5), delta) and torch.equal(
        truncation.truncate(delta, 9), delta
    )
    assert torch.equal(truncation.truncate(delta, 0), torch.zeros_like(delta))
    for r in (1, 2, 4):
        got = truncation.truncate(delta, r)
        for i in range(3):
            u, s, vh = np.linalg.svd(delta[i].numpy())
            torch.testing.assert_close(got[i], torch.from_numpy(u[:, :r] @ np.diag(s[:r]) @ vh[:r]))
        assert (torch.linalg.matrix_rank(got) == r).all()
    with pytest.raises(ValueError, match=">= 0"):
        truncation.truncate(delta, -1)


def test_random_null_has_the_requested_rank_and_norm():
    gen = torch.Generator().manual_seed(1)
    norms = torch.tensor([[1.0, 2.0], [0.5, 3.0]])
    for r in (1, 3, 6):
        m = truncation.random_rank((2, 2, 8, 6), r, norms, gen)
        assert (torch.linalg.matrix_rank(m) == min(r, 6)).all()
        torch.testing.assert_close(torch.linalg.matrix_norm(m), norms.double())


def test_rank_r_weights_full_rank_exact_and_null_norm():
    torch.manual_seed(0)
    init = {k: torch.randn(2, 3, 6, 2) for k in adapters.KINDS}
    final = {k: v + 0.1 * torch.randn_like(v) for k, v in init.items()}
    full = truncation.rank_r_weights(init, final, 6)
    assert all(torch.equal(full[k], final[k]) for k in adapters.KINDS)
    zero = truncation.rank_r_weights(init, final, 0)
    assert all(torch.allclose(zero[k], init[k]) for k in adapters.KINDS)
    r2, null2 = (
        truncation.rank_r_weights(init, final, 2),
        truncation.rank_r_weights(init, final, 2, null=True, seed=3),
    )
    for k in adapters.KINDS:
        upd, nul = adapters.fuse(r2[k] - init[k]).double(), adapters.fuse(null2[k] - init[k]).double()
        torch.testing.assert_close(
            torch.linalg.matrix_norm(nul), torch.linalg.matrix_norm(upd), rtol=1e-5, atol=1e-6
        )
        assert (torch.linalg.matrix_rank(nul, atol=1e-5) == 2).all()


def test_sweep_ranks_and_recovery():
    assert truncation.sweep_ranks(12) == [0, 1, 2, 4, 8, 12] and truncation.sweep_ranks(8) == [0, 1, 2, 4, 8]
    ranks, acc = [0, 1, 2, 4], [0.1, 0.5, 0.88, 0.9]  # gain 0.8: 95% needs 0.86
    assert truncation.recovery_rank(ranks, acc, 0.95) == 2 and truncation.recovery_rank(ranks, acc, 0.99) == 4
    loss = [3.0, 2.0, 1.05, 1.0]  # losses: lower is better, same formula
    assert truncation.recovery_rank(ranks, loss, 0.95) == 2
    np.testing.assert_allclose(truncation.recovered_fraction(loss, 3.0, 1.0), [0, 0.5, 0.975, 1])


def test_rank_sweep_on_a_small_gpt_restores_weights_and_ends_at_the_trained_loss():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, context=6, d_model=8, depth=2, heads=2, d_head=3, mlp_dim=8))
    initial = {k: v.clone() for k, v in model.attention_weights().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    trained = {k: v.clone() for k, v in model.attention_weights().items()}
    tokens = torch.randint(0, 7, (4, 6))
    evaluate = lambda m: float(m.loss(tokens).detach())  # noqa: E731
    out = truncation.rank_sweep(model, initial, evaluate, null_seeds=(0, 1))
    assert out["rank"].tolist() == [0, 1, 2, 4, 6]
    assert out["truncated"][-1] == pytest.approx(evaluate(model))
    assert all(torch.equal(model.attention_weights()[k], trained[k]) for k in adapters.KINDS)
    assert out["null"][0] == pytest.approx(out["truncated"][0])  # rank 0: both are the initial attention


def test_lm_task_trains_through_the_generic_loop_and_its_final_weights_reload(tmp_path, monkeypatch):
    from rankbook.settings import lm as lm_profiles
    from rankbook.training import lm

    (tmp_path / "data" / "wikitext-2").mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (tmp_path / "data" / "wikitext-2" / f"{split}.txt").write_text(
            f" = {split} = \n the cat sat on the mat . \n" * 30
        )
    monkeypatch.setenv("RANKBOOK_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("RANKBOOK_CACHE", str(tmp_path / "cache"))
    settings = lm_profiles.PROFILES["fast"].replace(
        context=16,
        d_model=8,
        depth=2,
        heads=2,
        d_head=4,
        mlp_dim=16,
        steps=6,
        warmup_steps=1,
        batch_size=4,
        eval_windows=4,
        eval_batch_size=3,
        layers_shown=(1,),
        device="cpu",
    )
    task = lm.LMTask(settings, 0)
    inputs, targets = task.train_batch(3, torch.device("cpu"))
    assert inputs.shape == targets.shape == (4, 16) and torch.equal(inputs[:, 1:], targets[:, :-1])
    result = lm.run(settings, 0, root=tmp_path / "results", progress=False)
    a = result.arrays
    assert (
        a["step"][-1] == 6 and a["delta_qk"].shape[1:] == (2, 2, 8) and a["eval_loss"][-1] < a["eval_loss"][0]
    )
    assert result.config["kind"] == "gpt" and result.manifest["final_eval_loss"] == pytest.approx(
        a["eval_loss"][-1]
    )
    assert lm.run(settings, 0, root=tmp_path / "results").path == result.path  # reused, not retrained
    model, initial = truncation.load_trained(task, result)
    assert task.evaluate(model, torch.device("cpu"))["eval_loss"] == pytest.approx(
        a["eval_loss"][-1], rel=1e-6
    )
    torch.testing.assert_close(initial["q"], task.build_model().attention_weights()["q"])
    # the attention ablation is the sweep's rank 0; its share is the part of the whole drop it undoes
    ablation = truncation.attention_ablation(task, result, "eval_loss")
    sweep = truncation.task_rank_sweep(task, result, "eval_loss", ranks=[0, 8])
    assert ablation["attention_at_init"] == pytest.approx(sweep["truncated"][0])
    assert ablation["trained"] == pytest.approx(sweep["truncated"][-1]) == pytest.approx(a["eval_loss"][-1])
    drop = ablation["model_at_init"] - ablation["trained"]
    assert ablation["share"] == pytest.approx((ablation["attention_at_init"] - ablation["trained"]) / drop)
    # what the run stored from its final weights is what the final checkpoint gives on the test split
    cpu = torch.device("cpu")
    derived = lm.derived(result)
    on_test = lambda m: task.test_window_loss(m, cpu)  # noqa: E731
    live = truncation.ablation(model, initial, task.fresh_model(), on_test)
    for key in ("trained", "attention_at_init", "model_at_init", "share"):
        assert derived["ablation"][key] == pytest.approx(live[key], rel=1e-6)
    stored_sweep = lm.sweep_of(result)
    live_sweep = truncation.rank_sweep(model, initial, on_test, null_seeds=range(settings.null_seeds))
    np.testing.assert_allclose(stored_sweep["truncated"], live_sweep["truncated"], rtol=1e-6)
    np.testing.assert_allclose(stored_sweep["null"], live_sweep["null"], rtol=1e-6)
    test = derived["test"]
    test_text = task.text("test")
    assert test["tokens"] == len(test_text) - 1 and test["words"] == 30 * (10 + 2)  # 10 words, 2 line ends
    assert test["ppl_word"] == pytest.approx(np.exp(test["loss"] * test["tokens"] / test["words"]))
    assert test["ppl_token"] == pytest.approx(np.exp(test["loss"]))
    nats = 0.0  # by hand: every token after the first, predicted from at most 16 tokens of its window
    for start in range(0, len(test_text) - 1, 16):
        w = test_text.tokens[start : start + 17]
        with torch.no_grad():
            nats += float(torch.nn.functional.cross_entropy(model(w[None, :-1])[0], w[1:], reduction="sum"))
    assert test["loss"] == pytest.approx(nats / (len(test_text) - 1), rel=1e-6)
    ranks = derived["ranks"]
    assert ranks["full_rank"] == 8 and len(ranks["q"]["fused_stable_rank"]) == 2
    for kind in adapters.KINDS:  # a fused matrix's rank is at most the heads' ranks together
        r = ranks[kind]
        assert all(1 <= f <= 2 * 4 for f in r["fused_energy95"])
        assert all(1 <= h <= 4 for h in r["head_stable_rank"])
        assert all(1 <= t <= 2 for t in r["tops_stable_rank"])  # one direction per head, 2 heads
    assert set(derived["transient"]) == {"qk", "vo"} and derived["test_window_loss"] == live["trained"]
    lora = lm.run(settings, 0, lora_rank=2, root=tmp_path / "results", progress=False)
    assert set(lm.derived(lora)) == {"test_window_loss"} and lora.path != result.path


def test_adapters_start_at_w0_train_only_low_rank_factors_and_keep_the_rest_trainable():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, context=6, d_model=8, depth=2, heads=2, d_head=3, mlp_dim=8))
    w0 = {k: v.clone() for k, v in model.attention_weights().items()}
    adapters.add_adapters(model, rank=2, seed=0)
    assert all(torch.equal(model.attention_weights()[k], w0[k]) for k in adapters.KINDS)  # B = 0 at the start
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.endswith("original") for n in trainable)
    assert {
        "tok_embed.weight",
        "blocks.0.mlp.0.weight",
        "blocks.1.attn.parametrizations.w_v.0.a",
    } <= trainable
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    tokens = torch.randint(0, 7, (4, 6))
    for _ in range(3):
        opt.zero_grad()
        model.loss(tokens).backward()
        opt.step()
    for k in adapters.KINDS:
        delta = adapters.fuse(model.attention_weights()[k] - w0[k])
        assert delta.abs().max() > 0 and (torch.linalg.matrix_rank(delta) <= 2).all()


def test_sweep_and_lora_numbers():
    sweep = {
        "rank": np.array([0, 1, 2, 4]),
        "truncated": np.array([0.2, 0.5, 0.59, 0.6]),
        "null": np.array([0.2, 0.25, 0.3, 0.35]),
        "null_std": np.zeros(4),
    }
    n = truncation.sweep_numbers(sweep)
    assert (n["r95"], n["r99"], n["full_rank"], n["r95_share"], n["null95"]) == (
        "2",
        "4",
        "4",
        "50%",
        "0.300",
    )
    flat = dict(sweep, truncated=np.array([0.2, 0.2, 0.2, 0.6]))
    assert truncation.sweep_numbers(flat)["r95"] == "4"
    rows = [{"rank r": 1, "LoRA from init": 2.0, "full training cut to r": 2.5, "full training": 1.8}]
    assert "(better)" in truncation.lora_numbers(rows)["summary"]
    claims_rows = truncation.lora_claims({"ViT": sweep}, rows, "fast", "07_lora")
    assert claims_rows[0]["verdict"] == claims.NOT_SHOWN  # 95% at rank 2 of 4 is not a quarter
    low = dict(sweep, truncated=np.array([0.2, 0.59, 0.6, 0.6]))  # 95% of the gain at rank 1 of 4
    assert truncation.lora_claims({"ViT": low}, rows, "fast", "07_lora")[0]["verdict"] == claims.SHOWN


def test_rank_r_weights_from_a_sweeps_svds_equal_the_truncated_update():
    """The sweep's SVDs, computed once, give W_0 + truncate(Δ, r) at every rank and draw."""
    gen = torch.Generator().manual_seed(1)
    shape = (2, 3, 12, 4)  # [layers, heads, d_model, d_head]: fused [2, 12, 12], full rank 12
    initial = {k: torch.randn(*shape, generator=gen) for k in adapters.KINDS}
    final = {k: v + 0.1 * torch.randn(*shape, generator=gen) for k, v in initial.items()}
    svds = truncation.delta_svds(initial, final)
    for r in (0, 1, 3, 12):
        once = truncation.rank_r_weights(initial, final, r, svds=svds)
        for k in adapters.KINDS:
            delta = adapters.fuse(final[k].double() - initial[k].double())
            expected = (initial[k].double() + adapters.unfuse(truncation.truncate(delta, r), 3)).float()
            torch.testing.assert_close(once[k], expected, rtol=1e-6, atol=1e-6)
        for seed in (0, 1):
            null_once = truncation.rank_r_weights(initial, final, r, null=True, seed=seed, svds=svds)
            null_alone = truncation.rank_r_weights(initial, final, r, null=True, seed=seed)
            for k in adapters.KINDS:
                torch.testing.assert_close(null_once[k], null_alone[k], rtol=0, atol=0)

"""Chapter 05: per-scale diagnostics, tests over heads × seeds, ordering, verdict, and Fig. 3's plateau."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from rankbook.analysis import scales, spectra
from rankbook.figures import scales as scale_figures
from rankbook.figures import spectra as spectra_figures
from rankbook.settings.vit import PROFILES
from rankbook.store.results import Result
from rankbook.training.__main__ import vit_runs

LAYERS, HEADS, D, E = 2, 4, 12, 3


def run(tmp_path, seed: int, accuracy: float, collapsed: bool, move: float = 0.1) -> Result:
    """A run whose arrays come from real factors: initial and moved weights, their spectra and top vectors."""
    g = torch.Generator().manual_seed(seed)
    w0 = {k: torch.randn(LAYERS, HEADS, D, E, generator=g, dtype=torch.float64) for k in "qkvo"}
    if collapsed:  # every head moves along one shared rank-1 direction
        u, v = (
            torch.randn(D, 1, generator=g, dtype=torch.float64),
            torch.randn(1, E, generator=g, dtype=torch.float64),
        )
        w = {k: w0[k] + move * (u @ v) for k in "qkvo"}
    else:
        w = {
            k: w0[k] + move * torch.randn(LAYERS, HEADS, D, E, generator=g, dtype=torch.float64)
            for k in "qkvo"
        }
    arrays = {"step": np.array([0, 10])}
    for kind in ("qk", "vo"):
        delta = spectra.delta_svdvals(w, w0, kind).numpy()
        arrays[f"delta_{kind}"] = np.stack([np.zeros_like(delta), delta])
        arrays[f"stable_rank_delta_{kind}"] = spectra.stable_rank(
            torch.from_numpy(arrays[f"delta_{kind}"])
        ).numpy()
        arrays[f"init_{kind}"] = spectra.head_svdvals(w0, kind).numpy()
        left, right = spectra.delta_top_vectors(w, w0, kind)
        arrays[f"top_left_{kind}"], arrays[f"top_right_{kind}"] = left.numpy(), right.numpy()
    manifest = {
        "config": {"depth": LAYERS, "heads": HEADS, "d_model": D},
        "final_test_acc": accuracy,
        "classes": 10,
    }
    return Result(tmp_path / f"run{seed}", arrays, manifest), w, w0


def test_relative_change_is_the_dense_norm_ratio(tmp_path):
    r, w, w0 = run(tmp_path, 0, 0.5, collapsed=False)
    dense = spectra.product(w, "qk") - spectra.product(w0, "qk")
    expected = torch.linalg.matrix_norm(dense) / torch.linalg.matrix_norm(spectra.product(w0, "qk"))
    np.testing.assert_allclose(scales.relative_change(r, "qk"), expected.numpy(), rtol=1e-6)


def test_alignment_one_for_shared_directions_and_near_chance_for_independent_ones(tmp_path):
    collapsed, _, _ = run(tmp_path, 1, 0.2, collapsed=True, move=3.0)
    assert np.all(scales.head_alignment(collapsed) > 0.95)
    rng = np.random.default_rng(0)
    v = rng.standard_normal((50, 8, 400))
    assert scales.pairwise_alignment(v).mean() == pytest.approx(scales.random_alignment(400), rel=0.05)
    same = np.repeat(rng.standard_normal((3, 1, 5)), 4, axis=1) * np.array([1, -1, 1, -1])[None, :, None]
    np.testing.assert_allclose(scales.pairwise_alignment(same), 1.0)  # signs do not matter
    orth = np.eye(4)[None]
    np.testing.assert_allclose(scales.pairwise_alignment(orth), 0.0)


def test_random_alignment_matches_monte_carlo():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 20000, 64))
    cos = np.abs((a * b).sum(-1)) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert scales.random_alignment(64) == pytest.approx(cos.mean(), rel=0.02)
    assert scales.random_alignment(64) == pytest.approx(np.sqrt(2 / (np.pi * 64)), rel=0.01)


def test_status_and_the_lower_rank_check_leave_out_collapsed_and_untrained_scales(tmp_path):
    assert scales.status(0.107, 10, 0.2) == "did not train"
    assert scales.status(0.23, 10, 0.997) == "collapsed"
    assert scales.status(0.6, 10, 0.2) == "trained"
    by_scale = {
        1.0: [run(tmp_path, 2, 0.6, False, move=1.0)[0]],
        0.1: [run(tmp_path, 3, 0.23, True, move=3.0)[0]],
        0.01: [run(tmp_path, 4, 0.10, False)[0]],
    }
    rows = scales.diagnostics_rows(by_scale)
    assert [r["init scale"] for r in rows] == [1.0, 0.1, 0.01]
    assert [r["status"] for r in rows] == ["trained", "collapsed", "did not train"]
    assert rows[1]["stable rank"] < rows[0]["stable rank"]  # the collapsed scale *looks* lower-rank
    claim = scales.lower_rank_claim(rows)
    assert claim["scales"] == [1.0] and not claim["monotone"]
    assert claim["left out"] == {0.1: "collapsed", 0.01: "did not train"}


def test_missing_top_vectors_is_a_clear_error(tmp_path):
    r, _, _ = run(tmp_path, 5, 0.5, False)
    del r.arrays["top_left_qk"]
    with pytest.raises(KeyError, match="training version 2"):
        scales.head_alignment(r)
    with pytest.raises(ValueError, match="heads >= 2"):
        scales.pairwise_alignment(np.ones((2, 1, 3)))


def synthetic(tmp_path, name: str, ranks, accuracy: float = 0.6, shared: bool = False, seed: int = 0,
              steps=(0, 10, 100), d: int = 16) -> Result:
    """A tiny run whose final per-head spectra of Δ are ``[1, a, 0, ...]`` with stable rank ``1 + a²`` = the
    given ``ranks[layer][head]``; top vectors independent (or one ``shared`` direction); two earlier steps."""
    ranks = np.asarray(ranks, float)
    layers, heads = ranks.shape
    rng = np.random.default_rng(seed)
    final = np.zeros((layers, heads, 4))
    final[..., 0], final[..., 1] = 1.0, np.sqrt(ranks - 1)
    delta = np.stack([np.zeros_like(final), 0.5 * final, final])[: len(steps)]
    sr = (delta**2).sum(-1) / np.where(delta[..., 0] > 0, delta[..., 0] ** 2, np.nan)
    top = np.repeat(rng.standard_normal((layers, 1, d)), heads, 1) if shared else rng.standard_normal(
        (layers, heads, d))
    arrays = {"step": np.array(steps), "init_qk": np.ones((layers, heads, 4))}
    arrays.update(delta_qk=delta, stable_rank_delta_qk=sr, top_left_qk=top, top_right_qk=top)
    arrays["delta_vo"] = delta  # the Fig. 3 analogue draws both products
    config = {"kind": "vit", "dataset": "cifar10", "depth": layers, "heads": heads, "d_model": d,
              "d_head": d // 4, "epochs": 1, "lr": 1e-3, "batch_size": 8, "init_scale": 1.0, "seed": seed}
    manifest = {"config": config, "final_test_acc": accuracy, "classes": 10}
    return Result(tmp_path / name, arrays, manifest)


def sweep(tmp_path, means: dict, seeds: dict, heads: int = 6, layers: int = 2, spread: float = 0.05,
          options: dict | None = None):
    """``{scale: [run per seed]}`` whose heads' stable ranks are ``means[scale][layer]`` ± ``spread``;
    ``options[scale]`` are extra arguments of :func:`synthetic` (e.g. ``shared=True``)."""
    options = options or {}
    rng = np.random.default_rng(7)
    out = {}
    for s, m in means.items():
        m = np.broadcast_to(np.asarray(m, float), (layers,))
        out[s] = [synthetic(tmp_path, f"s{s}-{k}", m[:, None] + spread * rng.random((layers, heads)),
                            seed=k, **options.get(s, {})) for k in range(seeds.get(s, 1))]
    return out


def exact_u_p(a, b) -> float:
    """One-sided p that ``a`` is stochastically greater, by enumerating every split of the pooled values."""
    pooled = np.concatenate([a, b])
    u = lambda x, y: sum(float(xi > yj) for xi in x for yj in y)  # noqa: E731
    observed = u(a, b)
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    hits = sum(u(pooled[list(i)], np.delete(pooled, list(i))) >= observed for i in splits)
    return hits / len(splits)


def test_layer_test_pools_heads_and_seeds_and_matches_an_exact_permutation_of_u(tmp_path):
    runs = sweep(tmp_path, {1.0: [1.4, 2.0], 0.1: [1.3, 1.2]}, {1.0: 2, 0.1: 1}, heads=3, spread=0.3)
    rows = scales.diagnostics_rows(runs)
    assert [r["seeds"] for r in rows] == [2, 1]
    tests = scales.layer_tests(runs, scales.statuses(rows), [0, 1])
    assert [(t["layer"], t["scale"], t["heads"], t["seeds"]) for t in tests] == [
        (1, 0.1, "6 / 3", "2 / 1"), (2, 0.1, "6 / 3", "2 / 1")]
    for t, layer in zip(tests, (0, 1)):
        big = np.concatenate([r.arrays["stable_rank_delta_qk"][-1][layer] for r in runs[1.0]])
        small = runs[0.1][0].arrays["stable_rank_delta_qk"][-1][layer]
        assert t["p"] == pytest.approx(exact_u_p(big, small))
        assert t["p reversed"] == pytest.approx(exact_u_p(small, big))
        assert t["level"] == pytest.approx(0.05 / 2)
    assert tests[1]["p"] == pytest.approx(1 / math.comb(9, 3)) == pytest.approx(tests[1]["p floor"])
    assert tests[1]["significant"] and tests[1]["p over seeds"] == pytest.approx(1 / 3)
    assert tests[1]["p floor over seeds"] == pytest.approx(1 / 3)


def test_seed_permutation_p_is_exact():
    assert scales.seed_permutation_p([3, 4, 5], [1]) == pytest.approx(0.25)
    assert scales.seed_permutation_p([1, 2, 3], [4]) == pytest.approx(1.0)
    assert scales.seed_permutation_p([5, 6, 7], [1, 2, 3]) == pytest.approx(1 / 20)
    assert scales.permutation_floor(3, 3) == pytest.approx(1 / 20)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(4), rng.standard_normal(3)
    perm = stats.permutation_test((a, b), lambda x, y: x.mean() - y.mean(), permutation_type="independent",
                                  alternative="greater", n_resamples=np.inf)
    assert scales.seed_permutation_p(a, b) == pytest.approx(perm.pvalue)


def test_verdict_shown_only_with_significance_order_and_three_seeds(tmp_path):
    means = {1.0: 2.0, 0.1: 1.5, 0.01: 1.1}
    shown = scales.analyse(sweep(tmp_path, means, {1.0: 3, 0.1: 3, 0.01: 3}), [0, 1])
    assert shown["claim"]["verdict"] == scales.SHOWN and shown["claim"]["reasons"] == []
    assert all(o["monotone"] for o in shown["order"])
    one_seed = scales.analyse(sweep(tmp_path, means, {1.0: 3}), [0, 1])  # the stored state of today
    assert one_seed["claim"]["verdict"] == scales.PARTLY
    assert one_seed["claim"]["reasons"] == ["fewer than 3 seeds at scale 0.1 (1), scale 0.01 (1)"]
    assert scales.scale_numbers(one_seed)["seeds"] == "3 seeds at scale 1; 1 seed at scales 0.1, 0.01"


def test_a_reversal_in_one_layer_is_reported_and_blocks_shown(tmp_path):
    means = {1.0: [2.0, 2.0], 0.1: [1.5, 1.2], 0.01: [1.1, 1.6]}  # layer 2: 0.01 above 0.1
    a = scales.analyse(sweep(tmp_path, means, {1.0: 3, 0.1: 3, 0.01: 3}), [0, 1])
    assert [o["monotone"] for o in a["order"]] == [True, False]
    (rev,) = a["order"][1]["reversals"]
    assert (rev["above"], rev["below"]) == (0.01, 0.1) and rev["p"] < 0.01
    assert a["claim"]["verdict"] == scales.PARTLY
    assert a["claim"]["reasons"] == ["ordering not monotone in layer 2 (0.01 above 0.1)"]
    assert "layer 2: not monotone (0.01 above 0.1, p = " in scales.order_text(a["order"])


def test_collapsed_and_partly_aligned_scales_never_count(tmp_path):
    means = {1.0: 2.0, 0.1: 1.05, 0.01: 1.01}
    shared = {"shared": True}
    runs = sweep(tmp_path, means, {1.0: 3, 0.1: 3, 0.01: 3}, options={0.1: shared, 0.01: shared})
    a = scales.analyse(runs, [0, 1])
    assert a["status"] == {1.0: "trained", 0.1: "collapsed", 0.01: "collapsed"}
    assert a["tests"] == [] and a["claim"]["verdict"] == scales.CANNOT
    # partly aligned: heads share part of their direction (|cos| about 0.7)
    rng = np.random.default_rng(3)
    for r in runs[0.1]:
        common = rng.standard_normal((2, 1, 16))
        mixed = common + 0.5 * rng.standard_normal((2, 6, 16))
        r.arrays["top_left_qk"] = r.arrays["top_right_qk"] = mixed
    a = scales.analyse(runs, [0, 1])
    assert a["status"][0.1] == "partly aligned" and a["claim"]["partly aligned"] == [0.1]
    assert a["tests"] == [] and a["claim"]["verdict"] == scales.CANNOT
    only_default = scales.analyse({1.0: runs[1.0]}, [0, 1])
    assert only_default["claim"]["reasons"] == ["only scale 1 is stored"]


def test_default_below_smaller_scales_is_contradicted_and_equal_ones_not_shown(tmp_path):
    a = scales.analyse(sweep(tmp_path, {1.0: 1.2, 0.1: 2.0}, {1.0: 3, 0.1: 3}), [0, 1])
    assert a["claim"]["verdict"] == scales.CONTRADICTED
    same = scales.analyse(sweep(tmp_path, {1.0: 1.5, 0.1: 1.5}, {1.0: 3, 0.1: 3}, spread=0.5), [0, 1])
    assert not any(t["significant"] for t in same["tests"])
    assert same["claim"]["verdict"] == scales.NOT_SHOWN


def test_random_alignment_follows_each_runs_width(tmp_path):
    for d, expected in ((64, 0.1001), (128, 0.0707)):
        r = synthetic(tmp_path, f"w{d}", np.full((2, 3), 1.5), d=d)
        assert scales.diagnose([r])["random |cos|"] == pytest.approx(expected, abs=1e-4)


def test_stored_sweep_shows_whatever_seeds_are_stored(tmp_path):
    have = {(1.0, 0), (1.0, 1), (1.0, 2), (0.1, 0), (0.1, 2), (0.03, 0)}
    asked = []

    def run(settings, dataset, scale, seed, *, sweep, train_missing):
        asked.append((scale, seed, sweep, train_missing))
        return synthetic(tmp_path, f"{scale}-{seed}", np.full((2, 3), 1.5)) if (scale, seed) in have else None

    found = scales.stored_sweep(run, PROFILES, "reference", "cifar10")
    assert scales.seeds_per_scale(found) == {1.0: 3, 0.1: 2, 0.03: 1}  # 0.01: nothing stored, left out
    assert {(s, k) for s, k, _, _ in asked} == {(s, k) for s in (1.0, 0.1, 0.03, 0.01) for k in (0, 1, 2)}
    assert all(sweep and not train for _, _, sweep, train in asked)  # looks, never trains


def test_training_command_trains_the_sweep_over_sweep_seeds():
    ref = vit_runs(PROFILES["reference"], ["cifar10"])
    sweep_runs = {(r["init_scale"], r["seed"]) for r in ref if r["sweep"]}
    assert sweep_runs == {(s, k) for s in (1.0, 0.1, 0.03, 0.01) for k in (0, 1, 2)}
    fast = vit_runs(PROFILES["fast"], ["cifar10"])
    fast_sweep = {(r["init_scale"], r["seed"]) for r in fast if r["sweep"]}
    assert fast_sweep == {(s, 0) for s in (1.0, 0.1, 0.03, 0.01)}
    given = vit_runs(PROFILES["reference"], ["cifar10"], seeds=[2], scales=[0.1])
    assert {(r["init_scale"], r["seed"], r["sweep"]) for r in given} == {(1.0, 2, False), (0.1, 2, True)}


def test_plateau_of_the_median_ratio(tmp_path):
    steps = np.array([1, 10, 100, 1000, 2000, 5000])
    ratios = np.array([[0.5, 0.4], [0.005, 0.004], [0.002, 0.001], [0.008, 0.002], [0.05, 0.005],
                       [0.2, 0.03]])
    p = scales.plateau(steps, ratios)
    assert (p["start"], p["end"], p["sigma2_back"], p["sigma3_back"]) == (10, 1000, 2000, 5000)
    assert p["min"] == pytest.approx(0.002)
    assert scales.plateau(steps, np.full((6, 2), 0.3))["start"] is None
    r = synthetic(tmp_path, "ratio", [[1.25, 1.25 + 1e-6]])  # σ2/σ1 = 0.5 at the end, 0.5 at step 10
    got_steps, med = scales.ratio_curves([r, r], 0, top=3)
    np.testing.assert_array_equal(got_steps, [10, 100])
    np.testing.assert_allclose(med[:, 0], 0.5, rtol=1e-5)


def test_chapter_figures_state_seeds_status_and_the_off_axis_null(tmp_path):
    wide = {"d": 64}  # Δ's random null (rank 2·d_head = 32 of 64) has a stable rank far above the bars
    options = {1.0: wide, 0.1: {"shared": True, **wide}}
    runs = sweep(tmp_path, {1.0: 2.0, 0.1: 1.05}, {1.0: 3}, options=options)
    status = {1.0: "trained", 0.1: "collapsed"}
    fig = scale_figures.per_scale(runs, "fast", layers=(0, 1), status=status)
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["1\n3 seeds", "0.1\n1 seed\n(collapsed)"]
    labels = ax.get_legend_handles_labels()[1] + [t.get_text() for t in ax.get_legend().get_texts()]
    null = spectra_figures.null_rank(runs[1.0][0])["stable_rank_mean"]
    assert any(f"{null:.1f} (off the axis)" in x for x in labels)  # stated, not drawn
    assert ax.get_ylim()[1] < 3.5 < null  # the bars, not the null, set the axis
    evo = spectra_figures.delta_evolution_per_scale(runs, "fast", 0, 0, top=3, status=status)
    titles = [a.get_title() for a in evo.axes]
    assert sum("(collapsed)" in t for t in titles) == 2
    (legend,) = [a.get_legend() for a in evo.axes if a.get_legend()]
    assert [t.get_text() for t in legend.get_texts()] == [r"$\sigma_{2}/\sigma_1$", r"$\sigma_{3}/\sigma_1$"]


def spectra_run(tmp_path, name: str, r2, r3, seed: int = 0) -> Result:
    """A run whose every head's Δ has singular values ``[1, r2[t], r3[t]]`` at the tracked steps."""
    steps = np.array([0, 1, 10, 100, 1000, 10000])
    svals = np.stack([np.ones(6), np.r_[0, r2], np.r_[0, r3]], -1)  # step 0: Δ = 0 (σ1 set to 1: no 0/0)
    delta = np.broadcast_to(svals[:, None, None, :], (6, 2, 4, 3)).copy()
    arrays = {"step": steps, "delta_qk": delta, "delta_vo": delta}
    return Result(tmp_path / name, arrays, {"config": {"depth": 2, "heads": 4}})


def test_incremental_claim_needs_a_longer_stretch_at_smaller_scales_and_sigma2_first(tmp_path):
    flat = ([0.3] * 5, [0.2] * 5)
    dip = ([0.5, 0.002, 0.003, 0.05, 0.2], [0.4, 0.001, 0.001, 0.005, 0.05])  # σ2 back at 1000, σ3 at 10000
    status = {1.0: "trained", 0.1: "trained"}

    def sweep_of(default, small, seeds):
        return {1.0: [spectra_run(tmp_path, f"d{k}", *default) for k in range(seeds)],
                0.1: [spectra_run(tmp_path, f"s{k}", *small) for k in range(seeds)]}

    shown = scales.incremental_claim(sweep_of(flat, dip, 3), status)
    assert shown["points"]["qk"] == {1.0: 0, 0.1: 2} and shown["verdict"] == scales.SHOWN
    steps, med = scales.ratio_curves(sweep_of(flat, dip, 1)[0.1], 0)
    p = scales.plateau(steps, med)
    assert (p["start"], p["end"], p["sigma2_back"], p["sigma3_back"]) == (10, 100, 1000, 10000)
    assert scales.incremental_claim(sweep_of(flat, dip, 1), status)["verdict"] == scales.PARTLY
    together = (dip[0], [0.4, 0.001, 0.001, 0.02, 0.05])  # σ3 back at 1000 with σ2: not one at a time
    bad = scales.incremental_claim(sweep_of(flat, together, 3), status)
    assert bad["verdict"] == scales.NOT_SHOWN
    assert "Δqk at scale 0.1: σ2/σ1 and σ3/σ1 come back at the same step" in bad["reasons"]
    assert scales.incremental_claim(sweep_of(dip, flat, 3), status)["verdict"] == scales.CONTRADICTED
    collapsed = scales.incremental_claim(sweep_of(flat, dip, 3), {1.0: "trained", 0.1: "collapsed"})
    assert collapsed["verdict"] == scales.CANNOT

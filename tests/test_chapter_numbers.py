"""Chapters 04-07's figures and numbers on a tiny real ViT run (synthetic images, seconds on one core)."""

import matplotlib
import numpy as np
import pytest

from rankbook.analysis import claims, report, transient, trend
from rankbook.figures import spectra, stable_rank
from rankbook.store import results
from tests import tiny

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    tiny.train(root)
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    return results.load(folder)


def test_adam_step_of_the_transient_is_the_runs_recorded_first_step(run):
    """transient.first_step repeats the loop's first update: same model, batch, optimizer, learning rate."""
    measured = transient.first_step(tiny.task(), transient.first_lr(run))
    steps = list(run.arrays["step"])
    for kind in ("qk", "vo"):
        recorded = run.arrays[f"stable_rank_delta_{kind}"][steps.index(1)]
        np.testing.assert_allclose(measured["adam"][kind], recorded, rtol=1e-3)
    numbers = report.transient_numbers(transient.summary(measured), run)
    assert numbers["qk_adam"] == numbers["qk_recorded"]


def test_trend_figure_names_each_layers_verdicts_and_tables_cover_every_layer(run):
    fig = stable_rank.through_training([run, run], "fast", metric="test_loss")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    verdicts = trend.run_trends(run, "qk")
    assert titles[0].startswith("layer 1: qk " + verdicts[0].verdict)
    assert "2 seeds" in fig._suptitle.get_text()
    rows = stable_rank.trend_table(run).records()
    assert len(rows) == 2 * run.config["depth"] and {r["verdict"] for r in rows} <= set(trend.VERDICTS)
    html = stable_rank.trend_table(run)._repr_html_()  # the product typeset by MathJax, not raw "W_Q^T"
    assert html.count('class="math') == len(rows) and "\\Delta W_K W_Q^\\top" in html
    assert len(stable_rank.curve_table(run, "vo", count=3).records()) == run.config["depth"]
    seeds = stable_rank.seeds_table({"fast": [run, run], "paper": []}).records()
    assert len(seeds) == run.config["depth"] and seeds[0]["std over seeds"] == 0 and seeds[0]["seeds"] == 2
    table = stable_rank.stable_rank_table([run, run]).records()
    assert table[0]["Δqk std"] == pytest.approx(np.nanstd(run.arrays["stable_rank_delta_qk"][-1, 0]))


def test_pooling_refuses_runs_tracked_at_other_steps(run):
    other = results.Result(run.path, dict(run.arrays), run.manifest)
    other.arrays["step"] = run.arrays["step"] + 1
    with pytest.raises(ValueError, match="other steps"):
        trend.pooled([run, other], "qk")


def test_chapter_numbers_and_claim_rows(run):
    s = report.spectrum_numbers(run)
    assert s["heads"] == str(run.config["depth"] * run.config["heads"]) and s["share_delta_qk"].endswith("%")
    t = report.trend_numbers(run)
    assert t["qk_rises"].endswith(f"of {run.config['depth']} layers") and t["end_step"] == "12"
    rows = report.chapter_claims([run], "fast", {"reference": [], "paper": [run]}, "04_vit_spectra")
    assert [r["tier"] for r in rows] == ["fast", "fast", "paper", "paper"]
    assert all(set(claims.FIELDS) <= set(r) for r in rows)
    # 12 steps leave 2 tracked steps from step 10 on: the trend claim says the run cannot show it
    assert rows[1]["verdict"] == claims.CANNOT and "too few to judge" in rows[1]["measured"]
    assert rows[0]["claim"].startswith("ViT: ") and rows[0]["verdict"] in claims.VERDICTS
    assert report.stored_note({"reference": [], "paper": [run]}) == (
        "reference: not stored for this code/data; paper: 1 stored run(s)"
    )


def test_figures_build_for_spectra_scales_and_missing_tiers(run):
    heads = spectra.random_heads(run, [0, 1])
    assert sum(ax.axison for ax in spectra.spectra_over_training(run, "fast", heads).axes) == 4
    assert spectra.delta_vs_init(run, "fast", heads) is not None
    assert spectra.delta_evolution_per_scale({1.0: run, 0.5: run}, "fast", 0, 0) is not None
    fig = stable_rank.per_scale({1.0: [run], 0.1: [run]}, "fast", layers=(0, 1), status={0.1: "collapsed"})
    assert "collapsed" in " ".join(t.get_text() for t in fig.axes[0].get_xticklabels())
    assert "not stored" in stable_rank.stored_figure({"paper": []}, "paper", "x")._suptitle.get_text()
    own = stable_rank.stored_figure({"paper": []}, "reference", "x")
    assert "this page's run" in own._suptitle.get_text()


def test_lora_figures_mark_the_recovery_ranks(run):
    from rankbook.figures import lora as lora_figures

    sweep = {
        "rank": np.array([0, 1, 2, 4]),
        "truncated": np.array([0.2, 0.5, 0.59, 0.6]),
        "null": np.array([0.2, 0.25, 0.3, 0.35]),
        "null_std": np.zeros(4),
    }
    fig = lora_figures.rank_sweep(sweep, run, "fast", "test accuracy", "ViT")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "95% recovered: r=2" in labels and "99% recovered: r=4" in labels
    table = lora_figures.sweep_table("ViT", sweep, "test accuracy").records()
    assert [r["rank r"] for r in table] == [0, 1, 2, 4] and table[-1]["recovered, [Δ]_r"] == pytest.approx(
        1.0
    )


def test_window_context_reads_the_runs_own_lr_and_loss_where_the_window_opens(run):
    """The warmup diagnostic beside a verdict: lr share and loss where the window opens, from the arrays."""
    steps, lr, loss = (np.asarray(run.arrays[k], dtype=float) for k in ("step", "lr", "test_loss"))
    ctx = report.window_context(run, metric="test_loss")
    i0 = int(np.flatnonzero(steps >= trend.TRANSIENT_STEPS)[0])
    assert ctx["window_step"] == f"{int(steps[i0]):,}"
    assert ctx["lr_share"] == f"{lr[i0] / lr.max():.0%}"
    assert ctx["loss_start"] == f"{loss[i0]:.2f}" and ctx["loss_end"] == f"{loss[-1]:.2f}"
    assert ctx["warmup_end"] == f"{trend.warmup_steps(run):,}"
    with pytest.raises(KeyError):
        report.window_context(run, metric="no_such_metric")


def test_stored_trend_numbers_name_the_same_keys_stored_or_not(run):
    """A chapter glues these for a tier that may not be stored: every key exists either way."""
    found, missing = report.stored_trend_numbers([run], metric="test_loss"), report.stored_trend_numbers([])
    assert set(found) == set(missing) and set(missing.values()) == {"n/a"}
    assert found["ctx_window_step"] == report.window_context(run, "test_loss")["window_step"]
    assert found["qk_verdict"] == report.trend_numbers(run)["qk_verdict"]

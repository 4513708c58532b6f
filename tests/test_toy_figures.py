"""The toy chapters' figures follow the book's style: column width, no text under the minimum size."""
import numpy as np
import pytest
import torch

from rankbook.figures import style
from rankbook.figures import toy as toy_figures
from rankbook.theory import algorithm1, diagonal, flow, perturbations, stages


@pytest.fixture(scope="module")
def small():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(10, 4, 6, generator=gen, dtype=torch.float64)
    teacher = torch.zeros(12, dtype=torch.float64)
    teacher[[1, 7, 9]] = torch.tensor([1.5, 2.0, -1.2], dtype=torch.float64)
    y = diagonal.DiagonalAttentionHead(x, torch.zeros_like(x)).predict(teacher)
    net = diagonal.DiagonalAttentionHead(x, y)
    runs = {}
    for alpha in (1e-3, 1e-12):
        u0, v0 = alpha * np.random.default_rng(1).standard_normal((2, net.p))
        runs[alpha] = flow.log_flow(net, u0, v0, alpha, flow.record_times(alpha, 1.5, 60))
    return net, runs, algorithm1.algorithm1(net), np.array([1, 7, 9])


def _check(fig):
    assert fig.get_size_inches()[0] <= style.COLUMN_IN + 1e-9
    assert min(style.font_sizes(fig)) >= style.MIN_FONT_PT


def test_every_toy_figure_follows_the_style(small):
    net, runs, result, coords = small
    traj = runs[1e-12]
    _check(toy_figures.conservation(net, traj, "subtitle"))
    _check(toy_figures.algorithm1_overlay(net, result, runs, 1.5, "subtitle"))
    for what in ("loss", "qk", "vo"):
        _check(toy_figures.alpha_panels(net, runs, what, coords, "subtitle"))
    _check(toy_figures.separation(stages.separation_rows(runs), runs, "subtitle"))
    start = perturbations.at_saddle(net, result.stages[0].beta, 1e-12)
    kick = perturbations.kick_and_follow(net, start, 0, std=0.05, threshold=1e-5, duration=2.0,
                                         rng=np.random.default_rng(0), n_record=5)
    _check(toy_figures.saddle_decay([(1, kick)], "subtitle"))
    fig = toy_figures.perturbations(net, traj, [kick, kick], coords, "title", "subtitle")
    _check(fig)
    assert fig.legends and len(fig.legends[0].get_texts()) == coords.size  # the legend sits under the panels

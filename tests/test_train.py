"""Training: schedule, tracking points, resume after a kill (in-process and SIGKILL), NaN stop, results reuse."""
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from rankbook.data import images as data
from rankbook.settings import profiles
from rankbook.store import results
from rankbook.training import loop as train
from rankbook.settings.vit import PROFILES

TINY = train.RunConfig(dataset="cifar10", train_subset=0, test_subset=0, data_seed=0, image_size=8, patch_size=4,
                       d_model=8, depth=2, heads=2, d_head=4, mlp_dim=8, epochs=3, warmup_epochs=1, batch_size=8,
                       lr=3e-3, augment="crop_flip", init_scale=0.5, seed=1, track_per_decade=3)


def _synthetic(n, seed):
    """Real-shaped fake images (unit tests only): uint8 [n, 3, 8, 8], 3 classes with a class-dependent tint."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = torch.randint(0, 150, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    images[:, 0] += (50 * labels).to(torch.uint8).view(-1, 1, 1)
    return data.ImageData(images, labels, ["a", "b", "c"], "synthetic")


TRAIN, TEST = _synthetic(36, 0), _synthetic(12, 1)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _train(folder, **kw):
    return train.train(TINY, folder, TRAIN, TEST, checkpoint_every=3, eval_batch_size=5, progress=False, **kw)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k


def test_lr_schedule_values():
    lrs = [train.lr_at(s, 1.0, 4, 12) for s in range(12)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == 1.0  # the cosine starts at the peak
    assert lrs[8] == pytest.approx(0.5)
    assert lrs[11] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert train.lr_at(0, 2.0, 0, 10) == 2.0  # no warmup


def test_tracking_steps():
    assert train.tracking_steps(100, 3) == [0, 1, 2, 5, 10, 22, 46, 100]
    assert train.tracking_steps(12, 1) == [0, 1, 10, 12]


def test_tracked_arrays_shapes_and_iteration_zero(tmp_path):
    arrays, info = _train(tmp_path)
    steps = train.tracking_steps(12, 3)
    assert arrays["step"].tolist() == steps and info["total_steps"] == 12
    assert arrays["delta_qk"].shape == (len(steps), 2, 2, 8)  # [points, layers, heads, 2·d_head]
    assert arrays["init_qk"].shape == (2, 2, 4)
    assert (arrays["delta_qk"][0] == 0).all() and np.isnan(arrays["stable_rank_delta_qk"][0]).all()
    assert (arrays["delta_vo"][-1] > 0).any() and np.isfinite(arrays["test_acc"]).all()


def test_resume_after_interruption_is_bit_identical(tmp_path):
    whole, _ = _train(tmp_path / "whole")

    def crash(step):
        if step == 7:  # after the checkpoint at step 6, mid-epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "cut", on_step=crash)
    assert torch.load(tmp_path / "cut" / train.CHECKPOINT, weights_only=True)["step"] == 6
    resumed, info = _train(tmp_path / "cut")
    assert info["resumed_at_step"] == 6
    _assert_same(whole, resumed)
    a = torch.load(tmp_path / "whole" / train.CHECKPOINT, weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / train.CHECKPOINT, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_sigkill(tmp_path):
    torch.save({"train": TRAIN.__dict__, "test": TEST.__dict__}, tmp_path / "data.pt")
    script = textwrap.dedent(f"""
        import os, signal, torch
        from rankbook.data import images as data
        from rankbook.training import loop as train
        from tests.test_train import TINY
        d = torch.load({str(tmp_path / 'data.pt')!r}, weights_only=True)
        def kill(step):
            if step == 10:
                os.kill(os.getpid(), signal.SIGKILL)
        train.train(TINY, {str(tmp_path / 'run')!r}, data.ImageData(**d["train"]), data.ImageData(**d["test"]),
                    checkpoint_every=3, eval_batch_size=5, progress=False, on_step=kill)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert torch.load(tmp_path / "run" / train.CHECKPOINT, weights_only=True)["step"] == 9
    resumed, info = _train(tmp_path / "run")
    whole, _ = _train(tmp_path / "whole")
    assert info["resumed_at_step"] == 9
    _assert_same(whole, resumed)


@pytest.mark.parametrize("bad_update, message, last_good", [
    (6, r"the loss became nan at step 7 \(epoch 1\) of 12.*step 6\)", 6),  # NaN weights, then a NaN loss
    (4, r"weights became non-finite at step 5 \(epoch 1\) of 12.*step 3\)", 3),  # caught at a tracking point
])
def test_divergence_stops_naming_the_step_and_keeps_checkpoint(tmp_path, bad_update, message, last_good):
    orig = train.lr_at
    with pytest.MonkeyPatch.context() as mp:  # a NaN learning rate for one update poisons the weights
        mp.setattr(train, "lr_at", lambda s, *a: math.nan if s == bad_update else orig(s, *a))
        with pytest.raises(train.TrainingDiverged, match=message):
            _train(tmp_path)
    assert torch.load(tmp_path / train.CHECKPOINT, weights_only=True)["step"] == last_good


def test_run_reuses_a_matching_result_and_not_another(tmp_path, monkeypatch):
    settings = profiles.select(PROFILES, "fast", d_model=8, depth=2, heads=2, d_head=4, mlp_dim=8, epochs=1,
                               warmup_epochs=0, batch_size=8, image_size=8, patch_size=4, checkpoint_every=2)
    monkeypatch.setattr(train, "load_data", lambda s, d: (TRAIN, TEST))
    first = train.run(settings, "cifar10", 1.0, 0, root=tmp_path, progress=False)
    assert first.manifest["config"]["d_model"] == 8 and first.arrays["step"][-1] == 4
    monkeypatch.setattr(train, "train_loop", lambda *a, **k: pytest.fail("trained again"))
    again = train.run(settings, "cifar10", 1.0, 0, root=tmp_path, progress=False)
    assert again.path == first.path
    with pytest.raises(pytest.fail.Exception, match="trained again"):
        train.run(settings, "cifar10", 0.1, 0, root=tmp_path, progress=False)  # another config: trains


def test_profiles_validate():
    fast = profiles.select(PROFILES, "fast")
    assert fast.depth == 6 and fast.train_subset > 0
    paper = profiles.select(PROFILES, "paper")
    assert (paper.d_model, paper.heads, paper.d_head, paper.epochs, paper.warmup_epochs, paper.batch_size,
            paper.lr) == (512, 8, 128, 500, 15, 512, 1e-4)
    assert paper.datasets == ("cifar10", "cifar100")
    with pytest.raises(profiles.ProfileError, match="lr"):
        profiles.select(PROFILES, "fast", lr=-1.0)


def test_every_figure_renders_from_a_tiny_run(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from rankbook.figures import spectra as plots

    settings = profiles.select(PROFILES, "fast", d_model=8, depth=6, heads=2, d_head=4, mlp_dim=8, epochs=1,
                               warmup_epochs=0, batch_size=8, image_size=8, patch_size=4)
    monkeypatch.setattr(train, "load_data", lambda s, d: (TRAIN, TEST))
    r = train.run(settings, "cifar10", 1.0, 0, root=tmp_path, progress=False)
    heads = [(0, 1), (2, 0), (4, 1)]
    figs = [plots.spectra_over_training(r, "fast", heads), plots.delta_vs_init(r, "fast", heads),
            plots.stable_rank_through_training(r, "fast"),
            plots.delta_evolution_per_scale({1.0: r, 0.1: r}, "fast", 1, 0),
            plots.stable_rank_per_scale({1.0: r, 0.1: r}, "fast")]
    for fig in figs:
        assert "CIFAR10" in fig._suptitle.get_text() and "fast profile" in fig._suptitle.get_text()
        assert all(ax.get_xlabel() in ("iteration", "singular value index", "init scale (1 = default)")
                   for ax in fig.axes if ax.axison)
    assert len(plots.stable_rank_table(r).rows) == 6
    assert plots.run_summary(r)["final_iteration"] == 4

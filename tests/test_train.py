"""Training: schedule, tracking points, resume after a kill (in-process, SIGKILL), NaN stop, results reuse."""

import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tiny  # tests/ is on sys.path under pytest
import torch

from rankbook.settings import profiles
from rankbook.settings.vit import PROFILES
from rankbook.training import checkpoint, loop, run, schedule, vit

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k


def _step_of(root):
    return torch.load(tiny.checkpoint_in(root), weights_only=True)["step"]


def test_lr_schedule_values():
    lrs = [schedule.lr_at(s, 1.0, 4, 12) for s in range(12)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == 1.0  # the cosine starts at the peak
    assert lrs[8] == pytest.approx(0.5)
    assert lrs[11] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert schedule.lr_at(0, 2.0, 0, 10) == 2.0  # no warmup


def test_tracking_steps():
    assert schedule.tracking_steps(100, 3) == [0, 1, 2, 5, 10, 22, 46, 100]
    assert schedule.tracking_steps(12, 1) == [0, 1, 10, 12]


def test_a_batch_larger_than_the_subset_names_the_setting_to_change():
    with pytest.raises(ValueError, match="raise train_subset"):
        schedule.steps_per_epoch(100, 128)


def test_tracked_arrays_shapes_and_step_zero(tmp_path):
    arrays, info = tiny.train(tmp_path)
    steps = schedule.tracking_steps(12, 3)
    assert arrays["step"].tolist() == steps and info["total_steps"] == 12
    assert arrays["delta_qk"].shape == (len(steps), 2, 2, 8)  # [points, layers, heads, 2·d_head]
    assert arrays["init_qk"].shape == (2, 2, 4)
    assert (
        arrays["top_left_qk"].shape == arrays["top_right_vo"].shape == (2, 2, 8)
    )  # [layers, heads, d_model]
    np.testing.assert_allclose(np.linalg.norm(arrays["top_left_qk"], axis=-1), 1.0, rtol=1e-5)
    assert (arrays["delta_qk"][0] == 0).all() and np.isnan(arrays["stable_rank_delta_qk"][0]).all()
    assert (arrays["delta_vo"][-1] > 0).any() and np.isfinite(arrays["test_acc"]).all()
    assert info["config"]["data"].startswith("sha256:") and info["config"]["training_version"] == 2


def test_resume_after_interruption_is_bit_identical(tmp_path):
    whole, _ = tiny.train(tmp_path / "whole")

    def crash(step):
        if step == 7:  # after the checkpoint at step 6, mid-epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny.train(tmp_path / "cut", on_step=crash)
    assert _step_of(tmp_path / "cut") == 6
    resumed, info = tiny.train(tmp_path / "cut")
    assert info["resumed_at_step"] == 6
    _assert_same(whole, resumed)
    a = torch.load(tiny.checkpoint_in(tmp_path / "whole"), weights_only=True)["model"]
    b = torch.load(tiny.checkpoint_in(tmp_path / "cut"), weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_load_onto_the_cpu_whatever_device_wrote_them(tmp_path, monkeypatch):
    """A GPU run's checkpoint holds CUDA tensors; reading it must not put RNG states or records on a GPU."""
    tiny.train(tmp_path)
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    ckpt = checkpoint.load(tiny.checkpoint_in(tmp_path))
    assert seen["map_location"] == "cpu" and seen["weights_only"] is True
    assert ckpt["rng"]["torch"].device.type == "cpu" and ckpt["rng"]["torch"].dtype == torch.uint8
    assert set(ckpt["rng"]) == {"torch"}  # no per-GPU list: a run resumes on a machine with fewer GPUs
    assert all(r["delta_qk"].device.type == "cpu" for r in ckpt["records"] if "delta_qk" in r)


def test_resume_after_sigkill(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, "tests")
        import tiny
        def kill(step):
            if step == 10:
                os.kill(os.getpid(), signal.SIGKILL)
        tiny.train({str(tmp_path / "run")!r}, on_step=kill)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _step_of(tmp_path / "run") == 9
    resumed, info = tiny.train(tmp_path / "run")
    whole, _ = tiny.train(tmp_path / "whole")
    assert info["resumed_at_step"] == 9
    _assert_same(whole, resumed)


@pytest.mark.parametrize(
    "bad_update, message, last_good",
    [
        (6, r"the loss became nan at step 7 \(epoch 1\) of 12.*step 6\)", 6),  # NaN weights, then a NaN loss
        (
            4,
            r"weights became non-finite at step 5 \(epoch 1\) of 12.*step 3\)",
            3,
        ),  # caught at a tracking point
    ],
)
def test_divergence_stops_naming_the_step_and_keeps_checkpoint(tmp_path, bad_update, message, last_good):
    orig = run.lr_at
    with pytest.MonkeyPatch.context() as mp:  # a NaN learning rate for one update poisons the weights
        mp.setattr(run, "lr_at", lambda s, *a: math.nan if s == bad_update else orig(s, *a))
        with pytest.raises(run.TrainingDiverged, match=message):
            tiny.train(tmp_path)
    assert _step_of(tmp_path) == last_good


def test_fit_reuses_a_matching_result_and_not_another(tmp_path, monkeypatch):
    first, _ = tiny.train(tmp_path)
    monkeypatch.setattr(run.Run, "train", lambda *a, **k: pytest.fail("trained again"))
    again, _ = tiny.train(tmp_path)
    _assert_same(first, again)
    assert loop.fit(tiny.task(init_scale=0.1), root=tmp_path, train_missing=False) is None  # not stored: None
    with pytest.raises(pytest.fail.Exception, match="trained again"):
        tiny.train(tmp_path, lr=1e-3)  # another config: trains


def test_the_key_follows_the_data():
    a = loop.results_config(tiny.task(), loop.FitOptions(), 3)
    other = vit.ViTTask(tiny.SETTINGS, "cifar10", tiny.INIT_SCALE, tiny.SEED, data=(tiny.TEST, tiny.TRAIN))
    assert loop.results_config(other, loop.FitOptions(), 3)["data"] != a["data"]


def test_sweep_runs_use_the_sweep_sizes():
    s = tiny.SETTINGS.replace(train_subset=0, epochs=3, sweep_train_subset=12, sweep_epochs=2)
    cfg = vit.ViTTask(s, "cifar10", 1.0, 0, sweep=True, data=(tiny.TRAIN, tiny.TEST)).config_dict()
    assert (cfg["train_subset"], cfg["epochs"]) == (12, 2)
    assert "sweep" not in cfg  # the key holds what shaped the run, not how it was asked for


def test_slow_cpu_runs_are_refused_with_the_estimate(monkeypatch):
    monkeypatch.delenv("RANKBOOK_ALLOW_SLOW", raising=False)
    paper = vit.ViTTask(profiles.select(PROFILES, "paper"), "cifar10", 1.0, 0, data=(tiny.TRAIN, tiny.TEST))
    monkeypatch.setattr(paper, "total_steps", lambda: 48_500)  # 500 epochs of 97 steps
    with pytest.raises(loop.SlowRunRefused, match=r"about \d+\.\d h.*RANKBOOK_ALLOW_SLOW=1"):
        loop._refuse_if_slow(paper, torch.device("cpu"))
    loop._refuse_if_slow(paper, torch.device("cuda"))  # a GPU run is not refused


def test_profiles_validate():
    fast = profiles.select(PROFILES, "fast")
    assert fast.depth == 6 and fast.train_subset == 0 and fast.epochs * 390 >= 1900  # ~2,000 steps: the rise
    reference = profiles.select(PROFILES, "reference")
    assert reference.heads == 8 and reference.epochs >= 20 and reference.train_subset == 0
    paper = profiles.select(PROFILES, "paper")
    assert (
        paper.d_model,
        paper.heads,
        paper.d_head,
        paper.mlp_dim,
        paper.epochs,
        paper.warmup_epochs,
        paper.batch_size,
        paper.lr,
        paper.augment,
    ) == (512, 8, 128, 512, 500, 15, 512, 1e-4, "none")
    assert paper.datasets == ("cifar10", "cifar100") and not paper.scale_norms
    with pytest.raises(profiles.ProfileError, match="lr"):
        profiles.select(PROFILES, "fast", lr=-1.0)


def test_a_time_budget_stops_at_a_checkpoint_and_the_run_resumes(tmp_path, monkeypatch):
    whole, _ = tiny.train(tmp_path / "whole")
    monkeypatch.setenv("RANKBOOK_STOP_AFTER_S", "0")
    with pytest.raises(run.TimeBudgetReached, match=r"stopped at the checkpoint of step 3 of 12"):
        tiny.train(tmp_path / "sliced")
    with pytest.raises(run.TimeBudgetReached, match=r"step 6 of 12"):
        tiny.train(tmp_path / "sliced")
    monkeypatch.delenv("RANKBOOK_STOP_AFTER_S")
    resumed, info = tiny.train(tmp_path / "sliced")
    assert info["resumed_at_step"] == 6
    _assert_same(whole, resumed)


def test_a_run_stored_by_a_gpu_is_found_on_the_cpu(tmp_path):
    """precision="auto" is bf16 on CUDA and fp32 on the CPU: a CPU reader must find the GPU's stored run."""
    from rankbook.store import results

    task = tiny.task()
    gpu_cfg = loop.results_config(task, loop.FitOptions(precision="auto").resolved(torch.device("cuda")), 3)
    folder = results.run_dir(task.name, gpu_cfg, tmp_path)
    results.save(folder, gpu_cfg, {"step": np.arange(3)}, wall_s=1.0, device="cuda (test)")
    found = loop.fit(
        task,
        root=tmp_path,
        options=loop.FitOptions(precision="auto"),
        track_per_decade=3,
        train_missing=False,
    )
    assert found is not None and found.manifest["config"]["precision"] == "bf16"
    assert (
        loop.fit(task, root=tmp_path, track_per_decade=3, train_missing=False) is None
    )  # fp32 asked: not it


def test_looking_up_a_run_whose_data_is_missing_downloads_nothing_and_finds_nothing(tmp_path, monkeypatch):
    from rankbook.data import images

    asked = []

    def fingerprint(name, download=True, root=None):
        asked.append(download)
        raise images.DataNotFoundError(f"{name} is not here")

    monkeypatch.setattr(images, "fingerprint", fingerprint)
    settings = profiles.select(PROFILES, "reference")
    assert vit.run(settings, "cifar100", 1.0, 0, train_missing=False, root=tmp_path) is None
    assert asked == [False]  # looked without downloading
    with pytest.raises(images.DataNotFoundError, match="cifar100 is not here"):
        vit.run(settings.replace(datasets=("cifar100",)), "cifar100", 1.0, 0, root=tmp_path)

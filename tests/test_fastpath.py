"""The fast training path (bf16 autocast, device-side loss bookkeeping) against the plain fp32 loop on CPU.

Tolerances: bf16 keeps 8 bits of mantissa (relative rounding 2^-9 ≈ 0.2%)
in the forward pass only; weights, Adam and spectra stay fp32. Over the 12
updates of the tiny run the tracked losses agree to 1% (measured: 1e-4),
each tracking point's spectra (all heads, as one vector) to 10% in norm
(measured: 6% for ΔW_K W_Q^T at step 2, <1% for ΔW_V W_O^T: Adam's first
updates are ≈ lr·sign(g), so a gradient entry near zero whose sign bf16
flips moves by a full lr, and the tiny run's Q/K deltas are small), and
stable ranks to 0.5 (of at most 8; measured 0.22). The fp32 path without
per-step host syncs is bit-identical to the plain loop.
"""

import math

import numpy as np
import pytest
import tiny  # tests/ is on sys.path under pytest
import torch

from rankbook.training import loop, run
from rankbook.training.options import FitOptions

FAST = FitOptions(precision="bf16", sync_every_step=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _train(folder, options, **kw):
    return tiny.train(folder, options=options, **kw)


def test_fast_path_matches_plain_path_within_tolerance(tmp_path):
    plain, _ = _train(tmp_path / "plain", FitOptions())
    fast, info = _train(tmp_path / "fast", FAST)
    assert info["precision"] == "bf16"
    assert plain["step"].tolist() == fast["step"].tolist()
    np.testing.assert_allclose(fast["train_loss"][1:], plain["train_loss"][1:], rtol=1e-2)
    np.testing.assert_allclose(fast["test_loss"], plain["test_loss"], rtol=1e-2)
    for key in ("delta_qk", "delta_vo"):
        for a, b in zip(plain[key][1:], fast[key][1:]):
            assert np.linalg.norm(a - b) <= 0.10 * np.linalg.norm(a), key
        np.testing.assert_allclose(fast[f"stable_rank_{key}"][1:], plain[f"stable_rank_{key}"][1:], atol=0.5)
    assert not np.array_equal(plain["delta_vo"], fast["delta_vo"])  # bf16 really ran


def test_deferred_loss_checks_are_bit_identical_in_fp32(tmp_path):
    plain, _ = _train(tmp_path / "plain", FitOptions())
    deferred, _ = _train(tmp_path / "deferred", FitOptions(sync_every_step=False))
    for k in plain:
        assert np.array_equal(plain[k], deferred[k], equal_nan=True), k


def test_bf16_results_get_their_own_key():
    plain = loop.results_config(tiny.task(), FitOptions(), 3)
    fast = loop.results_config(tiny.task(), FAST, 3)
    assert "precision" not in plain and fast["precision"] == "bf16"


def test_deferred_check_still_names_the_first_bad_step(tmp_path):
    orig = run.lr_at
    with pytest.MonkeyPatch.context() as mp:  # NaN weights after update 6: loss NaN from step 7 on
        mp.setattr(run, "lr_at", lambda s, *a: math.nan if s == 6 else orig(s, *a))
        # without host syncs the check runs at the next tracking point or checkpoint (step 9), naming step 7
        with pytest.raises(
            run.TrainingDiverged, match=r"the loss became nan at step 7 \(epoch 1\) of 12.*step 6\)"
        ):
            _train(tmp_path, FAST)
    assert torch.load(tiny.checkpoint_in(tmp_path), weights_only=True)["step"] == 6


def test_auto_options_are_keyed_as_what_they_resolve_to():
    auto = FitOptions(precision="auto")
    assert auto.resolved(torch.device("cpu")).results_fields() == {}  # CPU: the plain fp32 loop, same keys
    assert auto.resolved(torch.device("cuda")).results_fields() == {
        "precision": "bf16"
    }  # fused Adam: not keyed
    with pytest.raises(ValueError, match="precision"):
        FitOptions(precision="fp16").resolved(torch.device("cpu"))

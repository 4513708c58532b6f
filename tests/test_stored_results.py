"""The runs committed under results/ are the ones the current code asks for: a stale one fails here.

Each stored folder must be a run that some profile's chapters request (same name, same results key, same
config, recomputed by the current code, data fingerprint included) and hold the arrays the figures read.
A change that alters results (settings, training, tracking, the data) changes the key: then rerun
``python -m rankbook.training --profile P vit`` (on a GPU for ``paper``) and commit the new folders,
deleting the old ones.
"""

import json
from pathlib import Path

import pytest
import torch

from rankbook.data import images
from rankbook.settings import profiles
from rankbook.settings.vit import PROFILES
from rankbook.store import paths, results
from rankbook.training import loop, vit
from rankbook.training.__main__ import vit_runs
from rankbook.training.options import FitOptions

STORED = sorted(p.parent for p in (paths.REPO_ROOT / "results").glob("*/manifest.json"))
NEEDED = (
    "step",
    "epoch",
    "test_acc",
    "train_loss",
    "delta_qk",
    "delta_vo",
    "stable_rank_delta_qk",
    "stable_rank_delta_vo",
    "init_qk",
    "init_vo",
    "top_left_qk",
    "top_right_qk",
)


def _expected() -> dict[str, tuple[str, dict]]:
    """{folder name: (profile, config)} of every ViT run the stored tiers' chapters ask for."""
    out = {}
    for profile in ("reference", "paper"):
        settings = profiles.select(PROFILES, profile)
        datasets = []
        for name in settings.datasets:
            try:
                images.fingerprint(name, download=False)
                datasets.append(name)
            except images.DataNotFoundError:
                continue  # a data set not here cannot have its runs checked (CIFAR-100 is not offline)
        for run in vit_runs(settings, datasets):
            task = vit.task(settings, **run)
            for device in ("cpu", "cuda"):
                options = FitOptions(settings.precision, settings.compile).resolved(torch.device(device))
                cfg = results.canonical(loop.results_config(task, options, settings.track_per_decade))
                out[results.run_dir(task.name, cfg, Path(".")).name] = (profile, cfg)
    return out


def test_results_folder_holds_runs():
    assert STORED, "results/ holds no stored run: the reference and paper chapters would show nothing"


@pytest.mark.parametrize("folder", STORED, ids=[p.name for p in STORED])
def test_stored_run_is_current(folder):
    try:
        images.fingerprint("cifar10", download=False)
    except images.DataNotFoundError:
        pytest.skip(
            "CIFAR-10 is not available here, so its fingerprint (part of every key) cannot be checked"
        )
    expected = _expected()
    assert folder.name in expected, (
        f"{folder} is stale: no profile's chapters ask for this run any more (its results key changed). "
        f"Rerun `python -m rankbook.training --profile reference vit` (or paper, on a GPU), commit the new "
        f"folders under results/ and delete this one."
    )
    profile, cfg = expected[folder.name]
    manifest = json.loads((folder / results.MANIFEST).read_text())
    assert manifest["config"] == cfg and manifest["key"] == results.config_key(cfg)
    stored = results.load(folder)
    missing = [k for k in NEEDED if k not in stored.arrays]
    assert not missing, f"{folder} lacks arrays {missing} that the figures read"
    assert stored.arrays["step"][-1] == manifest["total_steps"], "an unfinished run was committed"
    assert not (folder / "checkpoint.pt").exists(), (
        "commit only the arrays and the manifest, no training state"
    )

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

from rankbook.data import images, text
from rankbook.settings import lm as lm_settings
from rankbook.settings import profiles
from rankbook.settings.toy import PROFILES as TOY_PROFILES
from rankbook.settings.vit import PROFILES
from rankbook.store import paths, results
from rankbook.theory import tiers
from rankbook.training import lm, loop, vit
from rankbook.training.__main__ import vit_runs
from rankbook.training.options import FitOptions

STORED = sorted(p.parent for p in (paths.REPO_ROOT / "results").glob("*/manifest.json")
                if not p.parent.name.startswith(tiers.PREFIX))
#: the toy chapters' stored tiers (summaries, not training runs): checked by test_stored_toy_tier_is_current
TOY_STORED = sorted(p.parent for p in (paths.REPO_ROOT / "results").glob(f"{tiers.PREFIX}*/manifest.json"))
NEEDED = ("step", "train_loss", "delta_qk", "delta_vo", "stable_rank_delta_qk", "stable_rank_delta_vo",
          "init_qk", "init_vo", "top_left_qk", "top_right_qk")
NEEDED_BY_KIND = {"vit": ("epoch", "test_acc"), "gpt": ("eval_loss",)}


def _expected() -> dict[str, tuple[str, dict]]:
    """{folder name: (profile, config)} of every run the stored tiers' chapters ask for."""
    out = {}
    for profile in ("reference", "paper"):
        settings = profiles.select(lm_settings.PROFILES, profile)
        for seed in settings.seeds:
            for rank in (0, *settings.lora_ranks):
                try:
                    task = lm.task(settings, seed, lora_rank=rank, download=False)
                    task.config_dict()
                except text.TextDataNotFoundError:
                    continue  # WikiText-103 (the paper profile's) is not offline
                _add(out, profile, task, settings)
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
            _add(out, profile, vit.task(settings, **run), settings)
    return out


def _add(out: dict, profile: str, task, settings) -> None:
    """The task's folder name and config as a GPU (precision "auto" → bf16) or a CPU would key it."""
    for device in ("cpu", "cuda"):
        options = FitOptions(settings.precision, settings.compile).resolved(torch.device(device))
        cfg = results.canonical(loop.results_config(task, options, settings.track_per_decade))
        out[results.run_dir(task.name, cfg, Path(".")).name] = (profile, cfg)


def test_results_folder_holds_runs():
    assert STORED, "results/ holds no stored run: the reference and paper chapters would show nothing"


@pytest.mark.parametrize("folder", STORED, ids=[p.name for p in STORED])
def test_stored_run_is_current(folder):
    stored_cfg = json.loads((folder / results.MANIFEST).read_text())["config"]
    try:  # the data's fingerprint is part of every key: without the data here the key cannot be checked
        if stored_cfg["kind"] == "vit":
            images.fingerprint(stored_cfg["dataset"], download=False)
        else:
            for split in stored_cfg["data"]:
                text.fingerprint(stored_cfg["corpus"], split, download=False)
    except (images.DataNotFoundError, text.TextDataNotFoundError) as missing:
        pytest.skip(f"its data is not here, so its key cannot be recomputed: {missing}")
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
    missing = [k for k in NEEDED + NEEDED_BY_KIND[cfg["kind"]] if k not in stored.arrays]
    assert not missing, f"{folder} lacks arrays {missing} that the figures read"
    assert stored.arrays["step"][-1] == manifest["total_steps"], "an unfinished run was committed"
    assert not (folder / "checkpoint.pt").exists(), (
        "commit only the arrays and the manifest, no training state"
    )


@pytest.mark.parametrize("folder", TOY_STORED, ids=[p.name for p in TOY_STORED])
def test_stored_toy_tier_is_current(folder):
    expected = tiers.expected(TOY_PROFILES)
    manifest = json.loads((folder / results.MANIFEST).read_text())
    chapter, profile = manifest["config"]["chapter"], manifest["config"]["profile"]
    assert folder.name in expected, (
        f"{folder} is stale: the toy settings or rankbook.theory.tiers.VERSION changed since it was stored. "
        f"Rerun `python -m rankbook run {chapter[:2]} --profile {profile}`, copy the new "
        f"_build/results/{tiers.PREFIX}{chapter}-{profile}-* folder to results/ and delete this one."
    )
    assert manifest["config"] == expected[folder.name]
    assert manifest["key"] == results.config_key(manifest["config"])
    assert (folder / tiers.SUMMARY).is_file()
    assert tiers.load(chapter, profile, TOY_PROFILES[profile]) is not None


@pytest.mark.parametrize("folder", STORED, ids=[p.name for p in STORED])
def test_stored_run_carries_its_checksum_and_no_local_path(folder):
    """Each committed manifest names its arrays' sha256 (checked on every load) and no absolute local path.

    A run that lands without them (written by older code): ``python -m rankbook.store.migrate FOLDER``.
    """
    manifest = json.loads((folder / results.MANIFEST).read_text())
    assert manifest.get("sha256", {}).get(results.ARRAYS) == results.sha256_file(folder / results.ARRAYS), (
        f"{folder}: its manifest lacks the checksum of its arrays, or it does not match: run "
        f"`python -m rankbook.store.migrate {folder}` (on the run's own arrays) and commit the manifest")
    text_of_data = json.dumps(manifest.get("data", {}))
    assert "/work/" not in text_of_data and "/tmp/" not in text_of_data and "/home/" not in text_of_data, (
        f"{folder}: the manifest records local paths: {text_of_data}; run python -m rankbook.store.migrate")
    results.load(folder)  # checksum and finiteness verified

"""Results on disk: atomic arrays + manifest, reuse of a matching config, refusal of another."""
import json
import os

import damage
import numpy as np
import pytest

from rankbook.store import atomic, results

CONFIG = {"kind": "vit", "d_model": 8, "init_scales": (1.0, 0.1), "lr": 1e-3}


def _save(folder, config=CONFIG, **kw):
    return results.save(folder, config, {"x": np.arange(3.0), "y": np.ones((2, 2))}, wall_s=1.5, device="cpu",
                        **kw)


def test_key_is_stable_and_canonical():
    assert results.config_key(CONFIG) == results.config_key({**CONFIG, "init_scales": [1.0, 0.1]})
    assert results.config_key(CONFIG) != results.config_key({**CONFIG, "lr": 2e-3})
    assert len(results.config_key(CONFIG)) == 12


def test_save_writes_arrays_then_manifest_atomically(tmp_path):
    folder = results.run_dir("vit", CONFIG, tmp_path)
    saved = _save(folder, extra={"final_test_acc": 0.5})
    assert sorted(p.name for p in folder.iterdir()) == [results.ARRAYS, results.MANIFEST]  # no temp files
    manifest = json.loads((folder / results.MANIFEST).read_text())
    assert manifest["config"] == results.canonical(CONFIG) and manifest["key"] == results.config_key(CONFIG)
    for field in ("code_version", "device", "libraries", "wall_s", "created_utc"):
        assert field in manifest
    assert manifest["libraries"]["torch"] and manifest["final_test_acc"] == 0.5
    loaded = results.load(folder)
    assert np.array_equal(loaded.arrays["y"], np.ones((2, 2))) and saved.config == loaded.config


def test_a_failed_save_leaves_no_manifest(tmp_path, monkeypatch):
    folder = tmp_path / "run"

    def boom(path, obj):
        raise OSError("disk full")

    monkeypatch.setattr(results.atomic, "write_json", boom)
    with pytest.raises(OSError):
        _save(folder)
    assert not (folder / results.MANIFEST).exists()
    assert results.find("vit", CONFIG, [tmp_path]) is None


def test_find_reuses_a_matching_config_in_search_order(tmp_path):
    committed, built = tmp_path / "repo-results", tmp_path / "build-results"
    _save(results.run_dir("vit", CONFIG, built))
    assert results.find("vit", CONFIG, [committed, built]).path.parent == built
    _save(results.run_dir("vit", CONFIG, committed))
    assert results.find("vit", CONFIG, [committed, built]).path.parent == committed  # committed results first
    assert results.find("vit", {**CONFIG, "lr": 5.0}, [committed, built]) is None


def test_a_folder_of_another_config_is_never_reused_nor_overwritten(tmp_path):
    folder = results.run_dir("vit", CONFIG, tmp_path)
    _save(folder, config={**CONFIG, "lr": 9.0})  # e.g. a hand-copied folder under the wrong name
    with pytest.warns(UserWarning, match="different config"):
        assert results.find("vit", CONFIG, [tmp_path]) is None
    with pytest.raises(results.ResultMismatchError, match="refusing to overwrite"):
        _save(folder)


def test_code_version_is_a_commit_or_unknown():
    version = results.code_version()
    assert version == "unknown" or len(version.split("+")[0]) == 40


# ---------------------------------------------------------------- issue 14: damaged folders never block


@pytest.mark.parametrize("damage", ["manifest", "arrays", "empty arrays", "missing array"])
def test_a_damaged_run_is_skipped_with_a_warning_and_overwritten(tmp_path, damage):
    folder = results.run_dir("vit", CONFIG, tmp_path)
    _save(folder)
    if damage == "manifest":
        (folder / results.MANIFEST).write_text((folder / results.MANIFEST).read_text()[:40])
    elif damage == "arrays":
        (folder / results.ARRAYS).write_bytes((folder / results.ARRAYS).read_bytes()[:120])
    elif damage == "empty arrays":
        (folder / results.ARRAYS).write_bytes(b"")
    else:
        np.savez(folder / results.ARRAYS, x=np.arange(3.0))
    with pytest.warns(UserWarning, match=r"(manifest.json|arrays.npz) .*Treated as an unfinished run"):
        assert results.find("vit", CONFIG, [tmp_path]) is None
    with pytest.warns(UserWarning, match="will be overwritten") if damage == "manifest" else _no_warning():
        _save(folder)  # the run of this config trains again and replaces it
    assert np.array_equal(results.find("vit", CONFIG, [tmp_path]).arrays["y"], np.ones((2, 2)))


def _no_warning():
    import contextlib
    import warnings

    @contextlib.contextmanager
    def check():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield
    return check()


def test_the_data_fingerprint_travels_in_the_manifest(tmp_path):
    data = {"train": {"dataset": "cifar10", "fingerprint": "sha256:efac85c8ed52f4ea"}}
    folder = results.run_dir("vit", {**CONFIG, "data": "sha256:efac85c8ed52f4ea"}, tmp_path)
    results.save(folder, {**CONFIG, "data": "sha256:efac85c8ed52f4ea"}, {"x": np.zeros(1)}, wall_s=0.0,
                 device="cpu", extra={"data": data})
    assert results.load(folder).data == data
    assert results.config_key({**CONFIG, "data": "sha256:0000000000000000"}) != results.config_key(
        {**CONFIG, "data": "sha256:efac85c8ed52f4ea"})
    assert results.Result(folder, {}, {"config": {}}).data == {}  # runs saved before fingerprints


def test_saved_files_respect_the_umask_and_leave_no_temporaries(tmp_path):
    old = os.umask(0o027)
    try:
        folder = results.run_dir("vit", CONFIG, tmp_path)
        _save(folder)
    finally:
        os.umask(old)
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
        results.ARRAYS: 0o640, results.MANIFEST: 0o640}


def test_the_first_save_sweeps_temporaries_of_killed_runs_in_every_run_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_SWEPT", set())
    other = tmp_path / "vit-otherconfig"
    other.mkdir()
    litter = other / f".arrays.npz.{damage.dead_pid()}@{atomic._HOST}-0123abcd.tmp"
    litter.write_bytes(b"half of a killed run's arrays")
    _save(results.run_dir("vit", CONFIG, tmp_path))
    assert not litter.exists()

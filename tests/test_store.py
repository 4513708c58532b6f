"""The store's plumbing (issue 14): litter of killed runs, file permissions, absolute RANKBOOK_* paths."""
import os
import subprocess
import sys
import time

import damage
import pytest

from rankbook.store import atomic, errors, paths, results


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_files_and_folders_respect_the_umask(tmp_path, umask_027):
    assert atomic.umask() == 0o027
    path = atomic.write_text(tmp_path / "a.json", "{}")
    assert path.stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600
    os.umask(0o002)
    assert atomic.write_text(tmp_path / "b.json", "{}").stat().st_mode & 0o777 == 0o664


def test_temporaries_of_dead_processes_are_removed_at_the_next_write(tmp_path):
    dead, live = damage.dead_pid(), os.getppid()
    stale = tmp_path / f".arrays.npz.{dead}@{atomic._HOST}-0123abcd.tmp"
    running = tmp_path / f".arrays.npz.{live}@{atomic._HOST}-0123abcd.tmp"
    other_machine = tmp_path / f".arrays.npz.{dead}@ffffff-0123abcd.tmp"
    old_unmarked, new_unmarked = tmp_path / ".arrays.npz.k2j3h4.tmp", tmp_path / ".arrays.npz.z9y8x7.tmp"
    other_target = tmp_path / f".manifest.json.{dead}@{atomic._HOST}-0123abcd.tmp"
    for p in (stale, running, other_machine, old_unmarked, new_unmarked, other_target):
        p.write_bytes(b"half")
    day_ago = time.time() - 2 * atomic.LEGACY_MAX_AGE_S
    os.utime(old_unmarked, (day_ago, day_ago))
    atomic.write_text(tmp_path / "arrays.npz", "new")
    left = {p.name for p in tmp_path.iterdir()}
    assert stale.name not in left and old_unmarked.name not in left  # a killed run's litter
    assert {running.name, other_machine.name, new_unmarked.name} <= left  # may still be written
    assert other_target.name in left  # only the target being written is swept
    assert atomic.clean_stale(tmp_path) == [other_target]  # a sweep of the whole folder


def test_a_reused_pid_does_not_keep_litter_forever(tmp_path):
    litter = tmp_path / f".x.json.{os.getppid()}@{atomic._HOST}-0123abcd.tmp"
    litter.write_text("half")
    started = atomic._process_start(os.getppid())
    assert started is not None and started < time.time()
    os.utime(litter, (started - 60, started - 60))  # written before that process existed
    assert atomic.is_stale(litter)


def test_a_failed_write_leaves_nothing(tmp_path):
    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic.write_with(tmp_path / "x.pt", boom)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_places_name_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKBOOK_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    damage.read_only(monkeypatch, tmp_path / "cache")
    with pytest.raises(errors.StorageError, match=r"cannot write .*cache/t/x.json: .*cache is read-only.*"
                                                  r"set RANKBOOK_CACHE to a writable folder"):
        atomic.write_json(tmp_path / "cache" / "t" / "x.json", {})


def test_relative_paths_are_resolved_once_and_exported(tmp_path, monkeypatch):
    first, second = tmp_path / "caller", tmp_path / "notebooks"
    first.mkdir(), second.mkdir()
    monkeypatch.chdir(first)
    monkeypatch.setenv("RANKBOOK_BUILD", "out")
    monkeypatch.setenv("RANKBOOK_DATA", "~/somewhere")
    assert paths.build_root() == first / "out"
    assert os.environ["RANKBOOK_BUILD"] == str(first / "out")  # what a kernel started now inherits
    assert paths.data_root() == (paths.Path.home() / "somewhere").resolve()
    monkeypatch.chdir(second)  # a kernel runs in notebooks/: the same place
    assert paths.build_root() == first / "out"


def test_a_kernel_started_by_the_runner_sees_the_same_absolute_paths(tmp_path):
    """Importing rankbook.store.paths resolves the variables before anything can start a kernel."""
    caller, notebooks = tmp_path / "caller", tmp_path / "notebooks"
    caller.mkdir(), notebooks.mkdir()
    child = "import os; print(os.environ['RANKBOOK_CACHE'])"
    kernel = ("import subprocess, sys; import rankbook.store.paths; "
              f"print(subprocess.run([sys.executable, '-c', {child!r}], cwd={str(notebooks)!r}, "
              "capture_output=True, text=True).stdout.strip())")
    env = {**os.environ, "RANKBOOK_CACHE": "rel/cache", "PYTHONPATH": str(paths.REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", kernel], cwd=caller, env=env, capture_output=True, text=True)
    assert out.stdout.strip() == str(caller / "rel" / "cache"), out.stderr


def test_a_start_up_sweep_clears_the_litter_of_a_whole_tree(tmp_path):
    dead = damage.dead_pid()
    deep = tmp_path / "results" / "vit-abc"
    deep.mkdir(parents=True)
    litter = [deep / f".arrays.npz.{dead}@{atomic._HOST}-0123abcd.tmp",
              tmp_path / f".04_vit.running.ipynb.{dead}@{atomic._HOST}-0123abcd.tmp"]
    for p in litter:
        p.write_text("half")
    keep = deep / "arrays.npz"
    keep.write_text("whole")
    assert sorted(atomic.clean_stale_tree(tmp_path)) == sorted(litter)
    assert keep.exists() and not any(p.exists() for p in litter)


def test_no_home_directory_asks_for_rankbook_cache(monkeypatch):
    monkeypatch.delenv("RANKBOOK_CACHE", raising=False)

    def homeless():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(paths.Path, "home", staticmethod(homeless))
    with pytest.raises(paths.PathSettingError, match="no home directory .*set RANKBOOK_CACHE"):
        paths.cache_root()


# --------------------------------------------------------------------------- issue 22


def test_an_installed_wheel_writes_into_the_user_cache_not_site_packages(tmp_path, monkeypatch):
    """B98: without a clone around the package, outputs go to <cache>/build (~/.cache/rankbook/build)."""
    monkeypatch.delenv("RANKBOOK_BUILD", raising=False)
    monkeypatch.setenv("RANKBOOK_CACHE", str(tmp_path / "cache"))
    assert paths.build_root() == paths.REPO_ROOT / "_build"  # a clone: its own _build
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "site-packages")
    (tmp_path / "site-packages" / "rankbook").mkdir(parents=True)  # a wheel: the package, no pyproject.toml
    assert paths.build_root() == tmp_path / "cache" / "build"
    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "mine"))
    assert paths.build_root() == tmp_path / "mine"


def test_switches_and_seconds_are_read_or_refused(monkeypatch):
    for value, on in (("1", True), ("true", True), ("Yes", True), ("0", False), ("", False), ("off", False)):
        monkeypatch.setenv("RANKBOOK_ALLOW_SLOW", value)
        assert paths.env_flag("RANKBOOK_ALLOW_SLOW") is on, value  # B39: "true" was silently ignored
    monkeypatch.setenv("RANKBOOK_STOP_AFTER_S", "540")
    assert paths.env_seconds("RANKBOOK_STOP_AFTER_S") == 540.0
    monkeypatch.setenv("RANKBOOK_STOP_AFTER_S", "0")  # stop at the first checkpoint (test_train uses it)
    assert paths.env_seconds("RANKBOOK_STOP_AFTER_S") == 0.0
    for bad in ("10min", "-5", "nan"):
        monkeypatch.setenv("RANKBOOK_STOP_AFTER_S", bad)
        with pytest.raises(paths.SettingError, match="is not a number of seconds"):
            paths.env_seconds("RANKBOOK_STOP_AFTER_S")


def test_manifests_carry_checksum_source_hash_and_portable_paths(tmp_path, monkeypatch):
    import json

    import numpy as np

    from rankbook.store import results

    monkeypatch.setenv("RANKBOOK_DATA", str(tmp_path / "data"))
    data = {"train": f"wikitext-2 valid ({tmp_path}/data/wikitext-2/valid.txt, sha256:0123)",
            "test": "cifar10 test (all; from /elsewhere/cache/cifar10-jpeg, sha256:4567)"}
    saved = results.save(tmp_path / "run", {"lr": 1.0}, {"x": np.arange(3.0)}, wall_s=0.0, device="cpu",
                         extra={"data": data})
    manifest = json.loads((saved.path / results.MANIFEST).read_text())
    assert manifest["sha256"][results.ARRAYS] == results.sha256_file(saved.path / results.ARRAYS)
    assert manifest["source_sha256"] == results.source_hash() and len(manifest["source_sha256"]) == 64
    assert manifest["data"] == {
        "train": "wikitext-2 valid ($RANKBOOK_DATA/wikitext-2/valid.txt, sha256:0123)",
        "test": "cifar10 test (all; from …/cifar10-jpeg, sha256:4567)"}
    assert "code_version" in manifest  # git's commit stays beside it


def test_old_manifests_load_with_a_note_and_migrate_adds_the_checksum(tmp_path, capsys):
    import json
    import warnings

    import numpy as np

    from rankbook.store import migrate, results

    folder = results.save(tmp_path / "runs" / "old", {"lr": 1.0}, {"x": np.arange(3.0)}, wall_s=0.0,
                          device="cpu").path
    manifest = json.loads((folder / results.MANIFEST).read_text())
    del manifest["sha256"]  # as written before checksums
    (folder / results.MANIFEST).write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match=r"no checksum of arrays.npz .*python -m rankbook.store.migrate"):
        results.load(folder)
    assert migrate.main([str(tmp_path / "runs")]) == 0
    assert "old: sha256 of arrays.npz" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no note any more
        results.load(folder)
    assert migrate.main([str(folder)]) == 0 and "up to date" in capsys.readouterr().out
    np.savez(folder / results.ARRAYS, x=np.array([1.0, np.inf, 2.0]))
    with pytest.raises(results.DamagedResultError):
        results.load(folder)  # the checksum now guards the file
    assert migrate.main([str(tmp_path / "nowhere")]) == 2
    assert migrate.main([str(folder)]) == 1, "N16: a checksum no longer matching is reported, not rewritten"
    assert "not migrated" in capsys.readouterr().err


def test_a_find_that_skips_a_damaged_run_trains_again_rather_than_reusing_it(tmp_path):
    import numpy as np

    from rankbook.store import results

    cfg = {"lr": 1.0}
    folder = results.save(results.run_dir("demo", cfg, tmp_path), cfg, {"x": np.arange(3.0)}, wall_s=0.0,
                          device="cpu").path
    other = results.save(tmp_path / "b", {"lr": 2.0}, {"x": np.zeros(3)}, wall_s=0.0, device="cpu").path
    (other / results.ARRAYS).replace(folder / results.ARRAYS)
    with pytest.warns(UserWarning, match="is not the file manifest.json was written with"):
        assert results.find("demo", cfg, [tmp_path]) is None  # swapped arrays are never reused
    results.save(folder, cfg, {"x": np.arange(3.0)}, wall_s=0.0, device="cpu")  # and may be overwritten
    assert results.find("demo", cfg, [tmp_path]).arrays["x"].tolist() == [0.0, 1.0, 2.0]


def test_a_stored_run_touched_or_checked_out_again_leaves_pages_current(tmp_path):
    """N12: the staleness check compares stored runs' content, not their mtime (git checkout rewrites it)."""
    import os

    from rankbook.store import inputs

    path = tmp_path / "arrays.npz"
    path.write_bytes(b"same bytes")
    before = inputs.file_state(path)
    os.utime(path, (1, 1))
    assert inputs.file_state(path) == before
    path.write_bytes(b"other byte")
    assert inputs.file_state(path) != before and inputs.file_state(tmp_path / "gone") == "missing"


def test_portable_paths_are_idempotent(tmp_path, monkeypatch):
    """Migrating a committed manifest twice changes nothing (a second pass wrote '……/cifar10-jpeg')."""
    monkeypatch.setenv("RANKBOOK_DATA", str(tmp_path))
    once = results.portable("cifar10 train (all; from /other/machine/cifar10-jpeg, sha256:efac85c8)")
    assert once == "cifar10 train (all; from …/cifar10-jpeg, sha256:efac85c8)"
    assert results.portable(once) == once
    assert results.portable(f"{tmp_path}/wikitext-2/train.txt") == "$RANKBOOK_DATA/wikitext-2/train.txt"


def test_migrate_leaves_toy_summaries_alone(tmp_path):
    """A toy chapter's stored tier has summary.json and no arrays: up to date, never 'delete it'."""
    from rankbook.store import migrate

    folder = tmp_path / "toy-01_theory-reference-0123456789ab"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"key": "0123456789ab", "config": {}}')
    (folder / "summary.json").write_text("{}")
    before = (folder / "manifest.json").read_text()
    assert migrate.migrate(folder) == []
    assert migrate.main([str(tmp_path)]) == 0
    assert (folder / "manifest.json").read_text() == before

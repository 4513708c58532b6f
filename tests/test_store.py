"""The store's plumbing (issue 14): litter of killed runs, file permissions, absolute RANKBOOK_* paths."""
import os
import subprocess
import sys
import time

import damage
import pytest

from rankbook.store import atomic, errors, paths


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

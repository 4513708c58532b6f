"""The runner: profiles, parameters recorded, clear errors, no litter, one run per name, Ctrl-C, SIGTERM."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from rankbook.book import cli, location, runner, site
from rankbook.store import paths

HEADER = '''# %% tags=["parameters"]
profile: str = ""
scale: float = 1.0
'''


@pytest.fixture
def book(tmp_path, monkeypatch):
    """A book in tmp_path (``_toc.yml`` + ``notebooks/``) with its own build folder."""
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", nb_dir)
    monkeypatch.setattr(site, "BOOK_ROOT", tmp_path)
    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "_build"))
    return nb_dir


def _printed(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_executes_with_profile_and_records_code_hash(book):
    src = book / "01_good.py"
    src.write_text(HEADER + "# %%\nimport os\nprint('profile', profile, os.environ['RANKBOOK_PROFILE'])\n")
    outcome = runner.execute(src, "paper", progress=False)
    assert outcome.status == "ok"
    assert "profile paper paper" in _printed(outcome.output)
    meta = nbformat.read(outcome.output, as_version=4).metadata["rankbook"]
    assert meta["profile"] == "paper" and meta["parameters"] == {"profile": "paper"}
    assert outcome.output == paths.build_root() / "executed" / "paper" / "notebooks" / "01_good.ipynb"
    assert runner.is_current(src, "paper") and not runner.is_current(src, "fast")
    src.write_text(src.read_text() + "# %%\n1\n")
    assert not runner.is_current(src, "paper")


def test_a_copy_run_with_overridden_parameters_is_recorded_and_rerun_by_build(book, capsys):
    src = book / "01_good.py"
    src.write_text(HEADER + "# %%\nprint('scale', scale)\n")
    out = runner.execute(src, "fast", parameters={"scale": 0.5}, progress=False).output
    recorded = nbformat.read(out, as_version=4).metadata["rankbook"]["parameters"]
    assert recorded == {"profile": "fast", "scale": 0.5}
    assert "scale 0.5" in _printed(out)
    assert not runner.is_current(src, "fast"), "a run with overrides is not the profile's page"
    outcomes = runner.run_all([src], "fast", only_stale=True, progress=False)
    assert [o.status for o in outcomes] == ["ok"] and "scale 1.0" in _printed(out)
    assert runner.is_current(src, "fast")
    assert [o.status for o in runner.run_all([src], "fast", only_stale=True, progress=False)] == ["current"]


def test_truncated_executed_copy_is_stale_not_a_crash(book):
    src = book / "01_good.py"
    src.write_text(HEADER)
    out = runner.execute(src, "fast", progress=False).output
    out.write_text(out.read_text()[:50])
    assert not runner.is_current(src, "fast")


def test_broken_notebook_fails_with_cell_error(book, capsys):
    (book / "02_broken.py").write_text(HEADER + "# %%\nraise ValueError('boom from cell')\n")
    code = cli.main(["run", "--no-progress", "--book", str(book.parent), "02"])
    err = capsys.readouterr().err
    assert code == 1
    assert "ValueError: boom from cell" in err
    assert not runner.executed_path(book / "02_broken.py", "fast").exists()


def test_unknown_names_and_profiles_are_refused(book, capsys):
    (book / "01_good.py").write_text(HEADER)
    assert cli.main(["run", "--book", str(book.parent), "nope"]) == 2
    assert "unknown notebook 'nope'; valid notebooks: 01_good" in capsys.readouterr().err
    assert cli.main(["run", "--profile", "nonsense"]) == 2
    assert "valid profiles: fast, reference, paper" in capsys.readouterr().err


def test_a_notebook_named_twice_runs_once_and_a_folder_is_an_error(book, tmp_path):
    (book / "01_good.py").write_text(HEADER)
    (book / "02_other.py").write_text(HEADER)
    assert runner.select(["01", "01_good", "02", str(book / "01_good.py")]) == [book / "01_good.py",
                                                                             book / "02_other.py"]
    with pytest.raises(runner.RunnerError, match="is a folder; name notebooks instead"):
        runner.select([str(book)])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "01_good.py").write_text(HEADER)
    with pytest.raises(runner.RunnerError, match="is not in the book's notebooks folder"):
        runner.select([str(elsewhere / "01_good.py")])


def test_staging_files_of_dead_runs_are_removed_at_the_next_start(book):
    src = book / "01_good.py"
    src.write_text(HEADER)
    folder = runner.executed_dir("fast")
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    legacy, killed = folder / ".01_good.running.ipynb", folder / f".01_good.{dead.pid}.running.ipynb"
    alive = folder / f".02_other.{os.getppid()}.running.ipynb"  # a live process: another runner at work
    for p in (legacy, killed, alive):
        p.write_text("{}")
    runner.run_all([src], "fast", progress=False)
    assert not legacy.exists() and not killed.exists() and alive.exists()
    assert not list(folder.glob(f".*.{os.getpid()}.running.ipynb")), "a finished run leaves no staging file"


def test_book_is_found_from_the_working_directory_or_refused(tmp_path, book):
    (book / "01_good.py").write_text(HEADER)
    assert location.find(cwd=book) == book.parent
    assert location.find(str(book.parent)) == book.parent
    with pytest.raises(location.BookNotFound, match="is not a book"):
        location.find(str(tmp_path / "notebooks"))


def test_installed_without_a_book_refuses_clearly(tmp_path, monkeypatch):
    """A plain `pip install .` (no clone around): find() says what to do instead of running nothing."""
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "site-packages")
    with pytest.raises(location.BookNotFound, match="run from a clone of the repository"):
        location.find(cwd=tmp_path)


def test_cli_from_outside_any_book_exits_2_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "pkg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANKBOOK_BUILD", raising=False)
    assert cli.main(["build"]) == 2
    assert not list(tmp_path.iterdir())


def test_module_entry_point_exits_nonzero_for_unknown_profile():
    proc = subprocess.run([sys.executable, "-m", "rankbook", "run", "--profile", "nonsense"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "valid profiles:" in proc.stderr


def test_cell_timeout_is_a_failed_row_not_a_crash(book, monkeypatch):
    monkeypatch.setitem(runner.CELL_TIMEOUT_S, "fast", 2)
    src = book / "03_slow.py"
    src.write_text(HEADER + "# %%\nimport time\ntime.sleep(30)\n")
    outcome = runner.execute(src, "fast", progress=False)
    assert outcome.status == "failed" and "Timeout" in outcome.error
    assert outcome.output.name == "03_slow.failed.ipynb" and outcome.output.exists()


def test_log_output_shows_cell_output_live_without_kernel_or_papermill_chatter(book, capfd):
    src = book / "01_talk.py"
    src.write_text(HEADER + "# %%\nimport sys\nprint('step 10/20 loss 0.5')\n"
                   "print('warn', file=sys.stderr)\n")
    runner.run_all([src], "fast", progress=False, log_output=True)
    out, err = capfd.readouterr()
    assert "    | step 10/20 loss 0.5" in err and "    | warn" in err
    for chatter in ("without encryption", "Executing Cell", "Input Notebook", "Ending Cell"):
        assert chatter not in out + err


def _cli(book_root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "RANKBOOK_BUILD": str(book_root / "_build"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "rankbook", *args, "--book", str(book_root), "--no-progress"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _wait_for(predicate, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_ctrl_c_prints_one_line_and_exits_130(book):
    (book / "01_sleep.py").write_text(HEADER + "# %%\nimport time\ntime.sleep(60)\n")
    proc = _cli(book.parent, "run", "01")
    folder = book.parent / "_build" / "executed" / "fast" / "notebooks"
    _wait_for(lambda: list(folder.glob(".*.running.ipynb")))
    time.sleep(4)  # the kernel is up and in the sleeping cell
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["interrupted: stopped (notebooks that finished keep their executed copies)"], err
    assert "Traceback" not in out + err
    assert not list(folder.glob(".*.running.ipynb")), "an interrupted run leaves no staging file"


def test_sigterm_during_build_keeps_the_old_site_whole(book, tmp_path, monkeypatch):
    """A stand-in jupyter-book writes half a site then hangs; SIGTERM must leave the old site as it was."""
    (book / "01_good.py").write_text(HEADER)
    runner.execute(book / "01_good.py", "fast", progress=False)
    (book.parent / "_config.yml").write_text("title: t\nexecute: {}\n")
    (book.parent / "book").mkdir()
    old_html = site.html_dir("fast")
    old_html.mkdir(parents=True)
    (old_html / "index.html").write_text("old site")
    fake = tmp_path / "fake-jupyter-book"
    fake.write_text("#!/usr/bin/env python3\nimport sys, time, pathlib\n"
                    "out = pathlib.Path(sys.argv[sys.argv.index('--path-output') + 1]) / '_build' / 'html'\n"
                    "out.mkdir(parents=True); (out / 'index.html').write_text('half new')\n"
                    "if pathlib.Path(sys.argv[0] + '.hang').exists(): time.sleep(60)\n")
    Path(f"{fake}.hang").touch()
    fake.chmod(0o755)
    driver = (f"import sys; from rankbook.book import site, cli; "
              f"site.jupyter_book_command = lambda: [{str(fake)!r}]; sys.exit(cli.main(sys.argv[1:]))")
    env = {**os.environ, "RANKBOOK_BUILD": str(book.parent / "_build")}
    cmd = [sys.executable, "-c", driver, "build", "--book", str(book.parent), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(lambda: list(old_html.parents[2].glob(".fast.new-*/_build/html/index.html")))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert [line for line in err.splitlines() if line.strip()][-1].startswith("terminated: stopped")
    assert (old_html / "index.html").read_text() == "old site"
    assert not list(old_html.parents[2].glob(".fast.*")), "the half-built folder is removed"
    # the same stand-in, finishing: the new site replaces the old one
    Path(f"{fake}.hang").unlink()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (old_html / "index.html").read_text() == "half new"


def test_cli_parameters_are_passed_recorded_and_checked(book, capsys):
    src = book / "01_good.py"
    src.write_text(HEADER + "# %%\nprint('scale', scale, type(scale).__name__)\n")
    assert cli.main(["run", "--no-progress", "--book", str(book.parent), "-p", "scale", "0.25", "01"]) == 0
    out = runner.executed_path(src, "fast")
    assert "scale 0.25 float" in _printed(out)
    assert nbformat.read(out, as_version=4).metadata["rankbook"]["parameters"]["scale"] == 0.25
    assert not runner.is_current(src, "fast")
    assert cli.main(["run", "--book", str(book.parent), "-p", "profile", "paper", "01"]) == 2
    assert "use --profile" in capsys.readouterr().err
    assert cli.main(["run", "--book", str(book.parent), "-p", "2x", "1", "01"]) == 2
    assert "a parameter name is a Python identifier" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_during_a_run_shuts_the_kernel_down_and_leaves_no_staging_file(book, tmp_path):
    pid_file = tmp_path / "kernel.pid"
    (book / "01_sleep.py").write_text(HEADER + f"# %%\nimport os, time\nopen({str(pid_file)!r}, 'w')"
                                               ".write(str(os.getpid()))\ntime.sleep(60)\n")
    proc = _cli(book.parent, "run", "01")
    _wait_for(lambda: pid_file.exists() and pid_file.read_text())
    kernel = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)  # the runner alone, as a process manager would
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("terminated: stopped (notebooks that finished"), err
    _wait_for(lambda: not runner._alive(kernel), timeout=20)
    folder = book.parent / "_build" / "executed" / "fast" / "notebooks"
    assert not list(folder.glob(".*.running.ipynb"))


STORED_READER = HEADER + '''# %%
from rankbook.data import images
from rankbook.store import results
found = results.find("demo", {"lr": 1.0})
missed = results.find("demo", {"lr": 2.0})
print("found", found is not None, "missed", missed is None, images.fingerprint("cifar10", download=False))
'''


def _store_demo(lr: float):
    import numpy as np

    from rankbook.store import results

    cfg = {"lr": lr}
    return results.save(results.run_dir("demo", cfg), cfg, {"x": np.arange(3.0)}, wall_s=0.0, device="cpu")


def test_a_page_is_stale_when_a_stored_run_or_the_data_it_read_changes(book, tmp_path, monkeypatch):
    """B74/B75: what a chapter read (stored runs found or missed, data fingerprints) is re-checked."""
    import damage

    from rankbook.data import images

    data_dir, _ = damage.offline_dirs(tmp_path, monkeypatch)
    original = damage.write_archive(tmp_path, data_dir, value=0).read_bytes()
    src = book / "01_reader.py"
    src.write_text(STORED_READER)
    stored = _store_demo(1.0)
    out = runner.execute(src, "fast", progress=False).output
    assert f"found True missed True {images.fingerprint('cifar10')}" in _printed(out)
    recorded = nbformat.read(out, as_version=4).metadata["rankbook"]["inputs"]
    assert {r["kind"] for r in recorded["results"]} == {"result", "miss"}
    assert {d["kind"] for d in recorded["data"]} == {"images", "file"}
    assert runner.staleness(src, "fast") is None
    # B75: the stored run it showed is removed
    (stored.path / "arrays.npz").rename(tmp_path / "aside.npz")
    (stored.path / "manifest.json").rename(tmp_path / "aside.json")
    assert "the stored run" in runner.staleness(src, "fast") and "is gone" in runner.staleness(src, "fast")
    (tmp_path / "aside.npz").rename(stored.path / "arrays.npz")
    (tmp_path / "aside.json").rename(stored.path / "manifest.json")
    assert runner.staleness(src, "fast") is None, "put back as it was: current again"
    # ... its arrays replaced
    import numpy as np

    (stored.path / "arrays.npz").rename(tmp_path / "aside.npz")
    np.savez(stored.path / "arrays.npz", x=np.zeros(3))
    assert "arrays.npz changed since the chapter read it" in runner.staleness(src, "fast")
    (tmp_path / "aside.npz").rename(stored.path / "arrays.npz")
    assert runner.staleness(src, "fast") is None
    # a run the chapter looked for and did not find is stored now
    _store_demo(2.0)
    assert "exists now that the chapter did not find" in runner.staleness(src, "fast")
    assert [o.status for o in runner.run_all([src], "fast", only_stale=True, progress=False)] == ["ok"]
    assert runner.staleness(src, "fast") is None, "executed again, it found the run: current"
    # B74: the data edited, or RANKBOOK_DATA pointed at other data
    damage.write_archive(tmp_path, data_dir, value=7)
    assert "changed (sha256:" in runner.staleness(src, "fast")
    (data_dir / "cifar10-jpeg.tar.gz").write_bytes(original)  # the same bytes again
    assert runner.staleness(src, "fast") is None
    other = tmp_path / "other"
    other.mkdir()
    damage.write_archive(tmp_path / "o", other, value=3)
    monkeypatch.setenv("RANKBOOK_DATA", str(other))
    assert "changed" in runner.staleness(src, "fast")
    monkeypatch.setenv("RANKBOOK_DATA", str(tmp_path / "nothing"))
    assert "is not there any more" in runner.staleness(src, "fast")
    assert not list(runner.executed_dir("fast").glob(".*.inputs.jsonl")), "the kernel's log is cleaned up"


def test_a_copy_made_before_inputs_were_recorded_is_stale(book):
    src = book / "01_good.py"
    src.write_text(HEADER + "# %%\n1\n")
    out = runner.execute(src, "fast", progress=False).output
    nb = nbformat.read(out, as_version=4)
    del nb.metadata["rankbook"]["inputs"]
    nbformat.write(nb, out)
    assert "made before executed copies recorded" in runner.staleness(src, "fast")

"""The runner executes a notebook under a profile and reports a broken one with its error."""
import subprocess
import sys

import nbformat
import pytest

from rankbook.book import cli
from rankbook.store import paths
from rankbook.book import runner

HEADER = '''# %% tags=["parameters"]
profile: str = ""
'''


@pytest.fixture
def book(tmp_path, monkeypatch):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", nb_dir)
    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "_build"))
    return nb_dir


def test_executes_with_profile_and_records_code_hash(book):
    src = book / "01_good.py"
    src.write_text(HEADER + "# %%\nimport os\nprint('profile', profile, os.environ['RANKBOOK_PROFILE'])\n")
    outcome = runner.execute(src, "paper", progress=False)
    assert outcome.status == "ok"
    nb = nbformat.read(outcome.output, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "profile paper paper" in printed
    assert nb.metadata["rankbook"]["profile"] == "paper"
    assert outcome.output == paths.build_root() / "executed" / "paper" / "notebooks" / "01_good.ipynb"
    assert runner.is_current(src, "paper") and not runner.is_current(src, "fast")
    src.write_text(src.read_text() + "# %%\n1\n")
    assert not runner.is_current(src, "paper")


def test_broken_notebook_fails_with_cell_error(book, capsys):
    (book / "02_broken.py").write_text(HEADER + "# %%\nraise ValueError('boom from cell')\n")
    code = cli.main(["run", "--no-progress", "02"])
    err = capsys.readouterr().err
    assert code == 1
    assert "ValueError: boom from cell" in err
    assert not runner.executed_path(book / "02_broken.py", "fast").exists()


def test_unknown_names_and_profiles_are_refused(book, capsys):
    (book / "01_good.py").write_text(HEADER)
    assert cli.main(["run", "nope"]) == 2
    assert "unknown notebook 'nope'; valid notebooks: 01_good" in capsys.readouterr().err
    assert cli.main(["run", "--profile", "nonsense"]) == 2
    assert "valid profiles: fast, reference, paper" in capsys.readouterr().err


def test_module_entry_point_exits_nonzero_for_unknown_profile():
    proc = subprocess.run([sys.executable, "-m", "rankbook", "run", "--profile", "nonsense"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "valid profiles: fast, reference, paper" in proc.stderr


def test_cell_timeout_is_a_failed_row_not_a_crash(book, monkeypatch):
    monkeypatch.setitem(runner.CELL_TIMEOUT_S, "fast", 2)
    src = book / "03_slow.py"
    src.write_text(HEADER + "# %%\nimport time\ntime.sleep(30)\n")
    outcome = runner.execute(src, "fast", progress=False)
    assert outcome.status == "failed" and "Timeout" in outcome.error
    assert outcome.output.name == "03_slow.failed.ipynb" and outcome.output.exists()

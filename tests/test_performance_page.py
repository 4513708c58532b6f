"""The performance page reuses a current benchmark report (its own, or CI's) and measures again when stale."""
import json
import os

from rankbook.book import performance


def test_current_report_from_ci_is_reused_and_a_stale_one_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "_build"))
    ci = tmp_path / "_build" / "benchmarks" / "spectra.json"
    ci.parent.mkdir(parents=True)
    ci.write_text(json.dumps({"from": "ci"}))
    runs = []

    def fake_run(cmd, **kw):
        runs.append(cmd)
        out = cmd[cmd.index("--out") + 1]
        with open(out, "w") as f:
            json.dump({"from": "page"}, f)

    monkeypatch.setattr(performance.subprocess, "run", fake_run)
    page = tmp_path / "page"
    page.mkdir()
    assert performance.ensure("spectra", page) == {"from": "ci"} and not runs
    script = performance.BENCHMARKS_DIR / "spectra.py"
    old = script.stat().st_mtime - 100
    os.utime(ci, (old, old))  # older than the script: stale
    assert performance.ensure("spectra", page) == {"from": "page"} and len(runs) == 1
    assert "--quick" in runs[0]

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


def test_chapter_costs_come_from_the_executed_copies_and_stored_costs_from_manifests(tmp_path, monkeypatch):
    import nbformat

    from rankbook.book import runner
    from rankbook.store import results

    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "_build"))
    source = runner.available()[1]
    copy = runner.executed_path(source, "fast")
    copy.parent.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["rankbook"] = {"status": "ok", "wall_s": 125.4, "profile": "fast"}
    nbformat.write(nb, copy)
    t = performance.chapter_costs(["fast"])
    (row, total) = t.records()
    assert (row["chapter"], row["profile"], row["wall time"]) == (source.stem, "fast", "2.1 min")
    assert row["seconds"] == 125
    assert row["device"].startswith("this machine: ") and total["seconds"] == 125

    run = tmp_path / "results" / "vit-demo"
    run.mkdir(parents=True)
    from rankbook.settings import profiles
    from rankbook.settings.vit import PROFILES

    config = {"kind": "vit", **profiles.select(PROFILES, "reference").as_dict(), "seed": 3}
    config = {k: v for k, v in config.items() if not isinstance(v, tuple)}
    manifest = {"config": config, "device": "cuda (NVIDIA H100 80GB HBM3)", "total_steps": 7800,
                "wall_s": 270.0}
    (run / results.MANIFEST).write_text(json.dumps(manifest))
    (row,) = performance.stored_run_costs([tmp_path / "results"]).records()
    assert row == {"stored run": "vit-demo", "profile": "reference", "steps": 7800,
                   "device": "cuda (NVIDIA H100 80GB HBM3)", "training time": "4.5 min"}
    config["heads"] = 3  # no profile has 3 heads: the closest profile, with what differs
    assert performance.closest_profile(config).endswith("(heads differ)")


def test_setup_page_settings_have_descriptions_and_departures_are_highlighted():
    from rankbook.book import environment
    from rankbook.settings import profiles
    from rankbook.settings.toy import PROFILES

    t = environment.profile_comparison("toy model (chapters 01-03)", "fast")
    fast, paper = (profiles.select(PROFILES, n).as_dict() for n in ("fast", "paper"))
    for record, flagged in zip(t.records(), t.highlight):
        assert record["what it sets"], f"setting {record['setting']} has no help= description"
        assert flagged == (fast[record["setting"]] != paper[record["setting"]])
        assert (record["fast vs paper"] == "departs") == flagged
    assert any(t.highlight) and not all(t.highlight)


def test_toy_solver_report_is_read_row_by_row():
    """The performance page reads benchmarks/toy_solver.py's report (its shape as main() writes it); a report
    of another shape gets one row that says so, never a guess."""
    race = {"alpha": 1e-32, "target_max_rel_error": 1e-3, "flow": {"evaluations": 310, "rtol": 1e-5},
            "gd_evaluations": 4.1e5, "gd_extrapolated": True, "evaluation_ratio": 4.1e5 / 310}
    report = {"mode": "quick", "accuracy_race": {"1e-32": race},
              "cost_against_alpha": [{"alpha": a, "events_evaluations": n}
                                     for a, n in ((1e-4, 300), (1e-32, 330), (1e-64, 331))],
              "evaluation_cost_ms": {"diagonal_hand_ms": 0.5, "full_hand_ms": 0.9, "diagonal_speedup": 3.0,
                                     "full_speedup": 2.5},
              "solver_comparison": [{"method": "events", "rtol": 1e-5, "evaluations": 330, "wall_s": 0.2,
                                     "max_rel_error": 4e-4},
                                    {"method": "LSODA", "rtol": 1e-6, "failed": "x"}]}
    rows = performance.figures_table({"toy_solver": report}).records()
    text = " | ".join(f"{r['figure']}: {r['value']} ({r['ratio / target']})" for r in rows)
    assert "310 vs 410000" in text and "1323x fewer (GD extrapolated from its finest run)" in text
    assert "300 → 330" in text and "x1.10" in text  # the growth is over α = 1e-4 → 1e-32, not to 1e-64
    assert "solver LSODA (rtol 1e-06) at α = 1e-32: failed" in text and len(rows) == 5
    (odd,) = performance.figures_table({"toy_solver": {"races": []}}).records()
    assert odd["figure"] == "report in a format this page does not read" and odd["value"] == "keys: races"

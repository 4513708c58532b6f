"""``python -m rankbook run|build``: execute the book's notebooks and render the site."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys

from rankbook.book import location, runner
from rankbook.settings import profiles
from rankbook.store import errors, fingerprints, paths

INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C (128 + SIGINT)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rankbook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks with papermill")
    run.add_argument("notebooks", nargs="*", help="names, numbers (e.g. 01) or paths; default: all")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a notebook parameter (read as papermill -p reads it: True/False/None, "
                          "int, float such as 1e-3 or inf, else text; a list or mapping as YAML, e.g. "
                          "'[1.0, 0.1]'); the executed copy records it and `build` re-executes the notebook "
                          "with the profile's own values")
    run.add_argument("--stale-only", action="store_true",
                     help="skip notebooks executed from the current code with the profile's own parameters")
    build = sub.add_parser("build", help="execute what is stale, then render the website")
    build.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    for p in (run, build):
        names = ", ".join(profiles.PROFILE_NAMES)
        p.add_argument("--profile", default=None,
                       help=f"one of {names} (default: ${profiles.ENV_VAR}, else fast)")
        p.add_argument("--book", default=None,
                       help="the book's folder (holding _toc.yml and notebooks/); default: the working "
                            "directory or a parent of it")
        p.add_argument("--no-progress", action="store_true", help="hide papermill's per-cell progress bar")
        p.add_argument("--log-output", action=argparse.BooleanOptionalAction, default=None,
                       help="print the cells' output (training progress) as it comes; default: on for "
                            "profiles other than fast")
        p.add_argument("--verify-data", action="store_true",
                       help="hash every data file from its bytes instead of trusting a stored fingerprint "
                            "of the same size and mtime (sets RANKBOOK_VERIFY_DATA=1 for the kernels)")
    from rankbook.inspect import cli as inspect_cli  # the `inspect` command (rankbook/inspect/cli.py)

    inspect_cli.add_parser(sub)
    return parser


def parse_value(value: str, name: str = "VALUE"):
    """One ``-p`` value as papermill's ``-p`` reads it (``True``/``False``/``None``, int, float, else text),
    and, beyond papermill, a YAML list or mapping (``[1.0, 0.1]``) and YAML's ``true``/``false``/``null``."""
    import yaml

    if value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[value]
    for kind in (int, float):  # "1e-3", "inf", "-2": numbers, as papermill (YAML 1.1 reads 1e-3 as text)
        try:
            return kind(value)
        except ValueError:
            pass
    if value.strip()[:1] in ("[", "{") or value in ("true", "false", "null"):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError as exc:
            brief = str(exc).splitlines()[0]
            raise ValueError(f"-p {name} {value!r} is not a valid YAML list or mapping ({brief}); write a "
                             f"list as '[1.0, 0.1]' (quoted for the shell)") from exc
    return value


def _parameters(pairs: list[list[str]]) -> dict:
    """``-p NAME VALUE`` pairs read by :func:`parse_value`."""
    out = {}
    for name, value in pairs:
        if name == "profile":
            raise ValueError("-p profile: use --profile (the profile chooses the executed copies' folder)")
        if not name.isidentifier():
            raise ValueError(f"-p {name!r}: a parameter name is a Python identifier, e.g. -p epochs 2")
        if name in out:
            raise ValueError(f"-p {name} is given twice ({out[name]!r} and {value!r}); give it once")
        out[name] = parse_value(value, name)
    return out


def check_parameters(sources, parameters: dict, raw: dict | None = None) -> dict:
    """The parameters to pass, checked against every chapter's parameters cell (names and declared types).

    ValueError for a name a chapter lacks, a scalar where a list goes, a float where an int goes or text
    where a bool goes; a number given to a text parameter (``-p lora_ranks 4``) is passed as the text typed.
    """
    out = dict(parameters)
    for source in sources:
        declared = runner.notebook_parameters(source)
        unknown = sorted(set(parameters) - set(declared))
        if unknown:
            raise ValueError(f"-p {', '.join(unknown)}: {source.stem} has no such parameter; its parameters: "
                             f"{', '.join(n for n in declared if n != 'profile') or 'none but profile'} "
                             f"(see its parameters cell, or papermill --help-notebook)")
        for name, value in parameters.items():
            kind, where = declared[name], f"{source.stem}'s {name}"
            if value is None:
                continue
            if kind in ("list", "tuple") and isinstance(value, dict):
                raise ValueError(f"-p {name} {value!r}: {where} is a list, not a mapping; write it as a YAML "
                                 f"list, e.g. -p {name} '[1.0, 0.1]' (quoted for the shell)")
            if kind in ("list", "tuple") and not isinstance(value, list):
                raise ValueError(f"-p {name} {value!r}: {where} is a list; write it as YAML, "
                                 f"e.g. -p {name} '[{value}]' (quoted for the shell)")
            if kind in ("list", "tuple") and not value:
                raise ValueError(f"-p {name} []: {where} needs at least one value (the chapter would have "
                                 f"nothing to run); leave -p {name} out for the profile's own list")
            if kind == "int" and isinstance(value, float):
                whole = f"{int(value)}" if value.is_integer() else "a whole number"
                raise ValueError(f"-p {name} {value!r}: {where} is an int; write it as {whole} (no decimal "
                                 f"point or exponent)")
            if kind in ("int", "float") and isinstance(value, (str, list, dict, bool)):
                example = "an int: write a whole number, e.g. 3" if kind == "int" else \
                    "a float: write a number, e.g. 1e-3"
                raise ValueError(f"-p {name} {value!r}: {where} is {example}")
            if kind == "bool" and not isinstance(value, bool):
                raise ValueError(f"-p {name} {value!r}: {where} is True or False; write -p {name} True")
            if kind == "str" and not isinstance(value, str):
                out[name] = (raw or {}).get(name, str(value))
    return out


def _vit_trial(stem, profile, p):
    from rankbook.settings import vit

    if stem == "04_vit_spectra":
        settings = profiles.select(vit.PROFILES, profile, epochs=p.get("epochs"),
                                   train_subset=p.get("train_subset"), lr=p.get("lr"))
    else:  # 05_vit_init_scale
        settings = profiles.select(vit.PROFILES, profile, init_scales=p.get("init_scales"),
                                   scale_norms=p.get("scale_norms"))
    dataset = p.get("dataset") or settings.datasets[0]
    choices = vit.ViTSettings.__dataclass_fields__["datasets"].metadata.get("choices") or ()
    if choices and dataset not in choices:
        raise ValueError(f"-p dataset {dataset!r}: {stem} trains on one of {', '.join(choices)}")
    return settings, dataset


def _lm_trial(stem, profile, p):
    from rankbook.settings import lm

    if stem == "06_language":
        return profiles.select(lm.PROFILES, profile, steps=p.get("steps"), lr=p.get("lr"),
                               tokenizer=p.get("tokenizer") or None)
    return profiles.select(lm.PROFILES, profile, lora_ranks=p.get("lora_ranks") or None,  # 07_lora
                           null_seeds=p.get("null_seeds") or None)


def _toy_trial(stem, profile, p):
    from rankbook.settings import toy

    alphas = {"01_theory": "theory_alphas", "02_toy": "alphas", "03_assumptions": "perturb_alpha"}[stem]
    given = p.get("alpha" if stem == "03_assumptions" else "alphas")
    return profiles.select(toy.PROFILES, profile, **{alphas: given}, seed=p.get("seed"))


#: the chapters whose parameters override settings, built here as the chapter's settings cell builds them
TRIALS = {"01_theory": _toy_trial, "02_toy": _toy_trial, "03_assumptions": _toy_trial,
          "04_vit_spectra": _vit_trial, "05_vit_init_scale": _vit_trial, "06_language": _lm_trial,
          "07_lora": _lm_trial}


def _verdict_points(total: int, per_decade: int) -> list[int]:
    from rankbook.analysis import trend
    from rankbook.training import schedule

    steps = schedule.tracking_steps(total, per_decade)
    return [s for s in steps if s > 0 and s >= trend.TRANSIENT_STEPS]


def _fewest_steps(per_decade: int) -> int:
    """The shortest run whose tracked steps give the stable-rank verdicts (analysis.trend) their window."""
    from rankbook.analysis import trend

    total = 1
    while len(_verdict_points(total, per_decade)) < trend.MIN_POINTS:
        total += 1
    return total


def _too_short(stem: str, total: int, per_decade: int, what: str, fix: str) -> ValueError:
    from rankbook.analysis import trend
    from rankbook.training import schedule

    tracked = ", ".join(str(s) for s in schedule.tracking_steps(total, per_decade))
    return ValueError(f"{what}: {stem} would train {total:,} step(s), tracked at steps {tracked}; its "
                      f"stable-rank verdicts need {trend.MIN_POINTS} tracked steps from step "
                      f"{trend.TRANSIENT_STEPS} on (the end of Adam's first-step transient), so the run "
                      f"could not test the chapter's claims. Fix: {fix}")


def check_trial(sources, profile: str, parameters: dict) -> None:
    """ValueError, before any kernel starts, when ``-p`` overrides make a chapter's settings invalid or its
    run too short to judge (warmup longer than the run, fewer images than one batch, too few tracked steps);
    the message names the chapter's own parameter and the smallest value that works."""
    for source in sources:
        build = TRIALS.get(source.stem)
        given = {k: v for k, v in parameters.items() if k != "profile"}
        if build is None or not given:
            continue
        shown = " ".join(f"-p {k} {v}" for k, v in given.items())
        try:
            if source.stem == "06_language" and "steps" in given:
                _check_lm_steps(source.stem, profile, given)
            settings = build(source.stem, profile, given)
        except profiles.ProfileError as exc:
            raise ValueError(f"{shown}: {source.stem} ({profile} profile): {exc}") from exc
        if source.stem == "04_vit_spectra" and ({"epochs", "train_subset"} & set(given)):
            _check_vit_steps(source.stem, profile, given, *settings)


def _check_lm_steps(stem: str, profile: str, given: dict) -> None:
    from rankbook.settings import lm

    base = lm.PROFILES[profile]
    steps = given["steps"]
    if not isinstance(steps, int) or steps < 1:
        return  # the settings' own check says it
    smallest = max(base.warmup_steps + 1, _fewest_steps(base.track_per_decade))
    if steps >= smallest:
        return
    if steps <= base.warmup_steps:
        raise ValueError(f"-p steps {steps}: {stem}'s {profile} profile warms the learning rate up over "
                         f"its first {base.warmup_steps} steps (warmup_steps, not a parameter of the "
                         f"chapter), so the run must be longer. Fix: -p steps {smallest} or more")
    raise _too_short(stem, steps, base.track_per_decade, f"-p steps {steps}", f"-p steps {smallest} or more")


def _check_vit_steps(stem: str, profile: str, given: dict, settings, dataset: str) -> None:
    import math

    from rankbook.data import sources as data_sources

    layout = data_sources.LAYOUTS_KNOWN.get(dataset)
    full = layout.per_class["train"] * layout.num_classes if layout else None
    images = settings.train_subset or full
    shown = " ".join(f"-p {k} {v}" for k, v in given.items() if k in ("epochs", "train_subset"))
    batch = settings.batch_size
    if full is not None and settings.train_subset > full:
        raise ValueError(f"-p train_subset {settings.train_subset}: {dataset}'s train split has {full:,} "
                         f"images. Fix: -p train_subset {full} or less (0: the whole split)")
    if images is None:
        return  # a data set of unknown size (imagenet): its loader says what is wrong
    if images < batch:
        raise ValueError(f"{shown}: {stem}'s {profile} profile trains in batches of {batch} (batch_size, "
                         f"not a parameter of the chapter), more than the {images:,} training images. Fix: "
                         f"-p train_subset {batch} or more (0: the whole split)")
    per_epoch = images // batch
    total = per_epoch * settings.epochs
    fewest = _fewest_steps(settings.track_per_decade)
    if total >= fewest:
        return
    epochs = math.ceil(fewest / per_epoch)
    subset = batch * math.ceil(fewest / settings.epochs)
    fixes = [f"-p epochs {epochs} or more (at {images:,} images)"]
    if full is None or subset <= full:
        fixes.append(f"-p train_subset {subset} or more (at {settings.epochs} epoch(s))")
    what = f"{shown} ({settings.epochs} epoch(s) of {per_epoch} batch(es) of {batch})"
    raise _too_short(stem, total, settings.track_per_decade, what, ", or ".join(fixes))


#: modules each command needs beyond the package's own dependencies (the "book" extras)
NEEDS = {"run": ("yaml", "nbformat", "jupytext", "papermill"),
         "build": ("yaml", "nbformat", "jupytext", "papermill", "jupyter_book", "mathjax")}


def missing_modules(command: str) -> list[str]:
    import importlib.util

    return [m for m in NEEDS.get(command, ()) if importlib.util.find_spec(m) is None]


class Terminated(SystemExit):
    """SIGTERM: unwinds like an exit, so the kernel is shut down, the staging file and the site build's
    temporary folder are removed, and the old site is kept."""


def _terminate(signum, frame):
    raise Terminated(128 + signum)


def main(argv: list[str] | None = None) -> int:
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        logging.disable(logging.CRITICAL)  # no shutdown chatter from the kernel client after the line below
        print("interrupted: stopped (notebooks that finished keep their executed copies)", file=sys.stderr)
        return INTERRUPTED
    except Terminated as exc:
        logging.disable(logging.CRITICAL)
        print("terminated: stopped (notebooks that finished keep their executed copies; the old site is "
              "kept unless the new one was complete)", file=sys.stderr)
        return int(exc.code)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "inspect":
        from rankbook.inspect import cli as inspect_cli

        return inspect_cli.run(args)
    if args.command in ("run", "build"):  # no book here (a wheel, Colab): say so before naming missing tools
        try:
            location.find(args.book)
        except location.BookNotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    missing = missing_modules(args.command)
    if missing:
        print(f"error: `python -m rankbook {args.command}` needs the book's tools, and {', '.join(missing)} "
              f"{'is' if len(missing) == 1 else 'are'} not installed in {sys.executable}. Fix: pip install "
              f"-r requirements.txt (in a clone), or pip install 'rankbook[book]'", file=sys.stderr)
        return 2
    try:
        return _run(args)
    except (paths.PathSettingError, paths.SettingError, errors.StorageError,
            fingerprints.SymlinkLoopError, runner.RunnerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full or read-only disk under a library's write (nbformat, shutil): the file
        if exc.errno not in errors.FULL | errors.DENIED | errors.NOT_A_FOLDER:
            raise
        from pathlib import Path

        error = errors.storage_error(Path(exc.filename or paths.build_root()), exc)
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.verify_data:
        os.environ[fingerprints.VERIFY_VAR] = "1"
    try:
        profile = profiles.resolve(args.profile)
        location.use(location.find(args.book))
        sources = runner.select(getattr(args, "notebooks", ()))
        paths.build_root()  # RANKBOOK_BUILD naming a file: said here, before any work
        fingerprints.verify_data()
        if args.command == "build":
            from rankbook.book import site

            site.jupyter_book_command()  # no jupyter-book: said before the notebooks run, not after
        runner.check_kernel()
    except (profiles.ProfileError, runner.RunnerError, location.BookNotFound, paths.PathSettingError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale_only = args.command == "build" or args.stale_only
    log_output = args.log_output if args.log_output is not None else profile != "fast"
    try:
        pairs = getattr(args, "parameter", [])
        parameters = check_parameters(sources, _parameters(pairs), {n: v for n, v in pairs})
        check_trial(sources, profile, parameters)  # before any kernel starts: nothing trains for nothing
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outcomes = runner.run_all(sources, profile, parameters=parameters, only_stale=stale_only,
                              progress=not args.no_progress, log_output=log_output)
    print(runner.summary_table(outcomes))
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        for o in failed:
            print(f"error: {o.name} failed at {o.error.splitlines()[0]}\n  executed copy: {o.output}",
                  file=sys.stderr)
        return 1
    if args.command == "build":
        from rankbook.book import site

        try:
            html = site.build(profile, strict=not args.no_strict)
        except subprocess.CalledProcessError as exc:
            where = site.site_dir(profile).parent
            full = (f"; the disk holding {where} is full: free some space there, or set RANKBOOK_BUILD to a "
                    f"folder on another disk" if errors.disk_full(where) else "")
            print(f"error: jupyter-book build failed (exit {exc.returncode}){full}; the previous site is "
                  f"unchanged", file=sys.stderr)
            return 1
        print(f"site: {html / 'index.html'}")
    return 0

"""``python -m rankbook run|build``: execute the book's notebooks and render the site."""
from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys

from rankbook.book import location, runner
from rankbook.settings import profiles

INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C (128 + SIGINT)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rankbook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks with papermill")
    run.add_argument("notebooks", nargs="*", help="names, numbers (e.g. 01) or paths; default: all")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a notebook parameter (YAML value, as papermill -p); the executed copy "
                          "records it and `build` re-executes the notebook with the profile's own values")
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
    return parser


def _parameters(pairs: list[list[str]]) -> dict:
    """``-p NAME VALUE`` pairs as papermill reads them (VALUE as YAML: 3, 0.5, true, [1, 2], text)."""
    import yaml

    out = {}
    for name, value in pairs:
        if name == "profile":
            raise ValueError("-p profile: use --profile (the profile chooses the executed copies' folder)")
        if not name.isidentifier():
            raise ValueError(f"-p {name!r}: a parameter name is a Python identifier, e.g. -p epochs 2")
        try:
            out[name] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[name] = value
    return out


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
    try:
        profile = profiles.resolve(args.profile)
        location.use(location.find(args.book))
        sources = runner.select(getattr(args, "notebooks", ()))
    except (profiles.ProfileError, runner.RunnerError, location.BookNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale_only = args.command == "build" or args.stale_only
    log_output = args.log_output if args.log_output is not None else profile != "fast"
    try:
        parameters = _parameters(getattr(args, "parameter", []))
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
            print(f"error: jupyter-book build failed (exit {exc.returncode}); the previous site is unchanged",
                  file=sys.stderr)
            return 1
        print(f"site: {html / 'index.html'}")
    return 0

"""``python -m rankbook run|build``: execute the book's notebooks and render the site."""
from __future__ import annotations

import argparse
import subprocess
import sys

from rankbook.settings import profiles
from rankbook.book import runner


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rankbook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks with papermill")
    run.add_argument("notebooks", nargs="*", help="names, numbers (e.g. 01) or paths; default: all")
    run.add_argument("--stale-only", action="store_true", help="skip notebooks already executed from the current code")
    build = sub.add_parser("build", help="execute what is stale, then render the website")
    build.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    for p in (run, build):
        p.add_argument("--profile", default=None,
                       help=f"one of {', '.join(profiles.PROFILE_NAMES)} (default: ${profiles.ENV_VAR}, else fast)")
        p.add_argument("--no-progress", action="store_true", help="hide papermill's per-cell progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        profile = profiles.resolve(args.profile)
        sources = runner.select(getattr(args, "notebooks", ()))
    except (profiles.ProfileError, runner.RunnerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale_only = args.command == "build" or args.stale_only
    outcomes = runner.run_all(sources, profile, only_stale=stale_only, progress=not args.no_progress)
    print(runner.summary_table(outcomes))
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        for o in failed:
            print(f"error: {o.name} failed at {o.error.splitlines()[0]}\n  executed copy: {o.output}", file=sys.stderr)
        return 1
    if args.command == "build":
        from rankbook.book import site

        try:
            html = site.build(profile, strict=not args.no_strict)
        except subprocess.CalledProcessError as exc:
            print(f"error: jupyter-book build failed (exit {exc.returncode})", file=sys.stderr)
            return 1
        print(f"site: {html / 'index.html'}")
    return 0

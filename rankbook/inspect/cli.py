"""``python -m rankbook inspect BEFORE AFTER``: per-head spectra of the update from BEFORE to AFTER."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HELP = """BEFORE and AFTER: HF model folders (as save_pretrained writes them), model-hub names (online), or
state-dict files (.safetensors; .pt/.pth/.bin read with weights_only=True) with --arch naming the layout and
shape: rankbook-vit[:d_model=64,depth=4,...], rankbook-gpt[:...], hf:MODEL_TYPE[:k=v,...] or hf:CONFIG_PATH,
timm:MODEL_NAME[:k=v,...], torch-encoder:d_model=..,nhead=..,num_layers=.."""


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``inspect`` subcommand on the book's parser (``sub`` from ``add_subparsers``)."""
    p = sub.add_parser(
        "inspect",
        help="per-head spectra of the update between two checkpoints of a model",
        description=__doc__,
        epilog=HELP,
    )
    p.add_argument("before", metavar="BEFORE", help="the model before the update (e.g. pretrained)")
    p.add_argument("after", metavar="AFTER", help="the model after it (e.g. fine-tuned)")
    p.add_argument("--json", metavar="FILE", default=None, help="write every head's spectra as JSON")
    p.add_argument("--figure", metavar="FILE", default=None, help="write a figure (.png, .svg or .pdf)")
    p.add_argument(
        "--arch",
        metavar="NAME",
        default=None,
        help="layout and shape of state-dict files, e.g. rankbook-vit:d_model=64,depth=4",
    )
    return p


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def run(args) -> int:
    """Run the command from parsed ``args``; returns the exit status (2 for bad input, with one line)."""
    from rankbook.inspect import compare, layouts, load

    for option, target in (("--json", args.json), ("--figure", args.figure)):
        problem = target is not None and _unwritable(Path(target))
        if problem:
            print(f"error: {option} {target}: {problem}", file=sys.stderr)
            return 2
    inputs = {Path(x).resolve(): role for role, x in (("BEFORE", args.before), ("AFTER", args.after))}
    for option, target in (("--json", args.json), ("--figure", args.figure)):
        where = None if target is None else Path(target).resolve()
        inside = [r for p, r in inputs.items()
                  if where and where.exists() and p.is_dir() and p in where.parents]
        hit = inputs.get(where) or (inside[0] if inside else None)
        if hit:  # writing it would destroy what is being measured
            print(f"error: {option} {target} is {hit}'s model file: writing it would overwrite that model; "
                  f"choose another path", file=sys.stderr)
            return 2
    if args.json is not None and args.figure is not None and Path(args.json).resolve() == Path(
            args.figure).resolve():
        print(f"error: --json and --figure name the same file ({args.json}); give each its own",
              file=sys.stderr)
        return 2
    if args.figure is not None and Path(args.figure).suffix.lower() not in (".png", ".svg", ".pdf"):
        print(f"error: --figure {args.figure}: use a .png, .svg or .pdf name", file=sys.stderr)
        return 2
    try:
        before = load.load(args.before, args.arch, "BEFORE")
        after = load.load(args.after, args.arch, "AFTER")
        result = compare.compare(before, after, names=(f"BEFORE {args.before}", f"AFTER {args.after}"))
    except layouts.UnsupportedModelError as exc:  # both: compare refuses two different architectures first
        print(f"error: {args.before}: {exc}", file=sys.stderr)
        return 2
    except (load.InspectInputError, compare.ArchitectureMismatchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if Path(args.before).exists() and Path(args.before).resolve() == Path(args.after).resolve():
        # after loading, so a bad file or --arch is reported first; instead of a table of zeros, exit 0
        print(f"error: BEFORE and AFTER are the same {'folder' if Path(args.before).is_dir() else 'file'} "
              f"({args.before}): the update is zero in every head. Name the model before training and the "
              f"one after it", file=sys.stderr)
        return 2
    print(compare.format_table(result))
    ranks = [h.get("stable_rank") for h in result.heads]
    if not any(isinstance(r, float) and math.isfinite(r) for r in ranks):
        print(f"note: every head's update is zero: {args.before} and {args.after} hold the same attention "
              f"weights", file=sys.stderr)
    from rankbook.store import atomic, errors

    try:  # written whole or not at all: a full disk leaves no truncated JSON or figure behind
        if args.json is not None:
            payload = _json_safe({**result.to_json(), "before": args.before, "after": args.after})
            atomic.write_text(args.json, json.dumps(payload, indent=1, allow_nan=False) + "\n")
            print(f"json: {args.json}")
        if args.figure is not None:
            from rankbook.inspect import figure

            fig = figure.update_figure(result, f"{args.before} → {args.after}")
            kind = Path(args.figure).suffix.lower().lstrip(".")
            atomic.write_with(args.figure, lambda tmp: fig.savefig(tmp, dpi=150, format=kind))
            print(f"figure: {args.figure}")
    except OSError as exc:  # a full disk, or a folder made read-only since the check above
        error = exc if isinstance(exc, errors.StorageError) else errors.storage_error(
            Path(exc.filename or args.json or args.figure), exc)
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _unwritable(target: Path) -> str | None:
    """Why ``target`` cannot be written (checked before the models are loaded), or None."""
    import os

    if target.is_dir():
        return "is a folder; name a file in it"
    folder = target.resolve().parent
    if not folder.is_dir():
        return "its folder does not exist; create it or choose another path"
    if not os.access(folder, os.W_OK):
        return f"its folder {folder} is not writable; choose another path"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rankbook")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

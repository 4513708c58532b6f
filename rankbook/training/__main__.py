"""Train (or find stored) the runs a profile's chapters need, without Jupyter.

    python -m rankbook.training --profile paper vit --dataset cifar10 --seeds 0 --scales 1
    python -m rankbook.training --profile reference vit          # every run chapters 04 and 05 ask for
    python -m rankbook.training --profile reference lm
    python -m rankbook.training --profile paper vit --export DIR  # copy finished results (arrays + manifest)

The runs are the ones the notebooks call (same settings, same results keys), so a notebook executed later
finds them. With ``$RANKBOOK_STOP_AFTER_S`` a run stops at its first checkpoint past that many seconds
(exit 3) and the same command resumes it: for machines that grant commands of limited length.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rankbook.settings import lm as lm_settings
from rankbook.settings import profiles
from rankbook.settings import vit as vit_settings
from rankbook.store import results
from rankbook.training import lm, run, vit


def vit_runs(settings, datasets=None, seeds=None, scales=None) -> list[dict]:
    """Chapter 04's runs (every seed at ``init_scale``) and chapter 05's sweep (scales × ``sweep_seeds``).

    ``seeds``, when given, replaces both chapter 04's seeds and the sweep's.
    """
    out = []
    sweep_seeds = seeds if seeds is not None else getattr(settings, "sweep_seeds", None) or settings.seeds[:1]
    for dataset in datasets or settings.datasets:
        for seed in seeds if seeds is not None else settings.seeds:
            out.append(dict(dataset=dataset, init_scale=settings.init_scale, seed=seed, sweep=False))
        for scale in scales if scales is not None else settings.init_scales:
            for seed in sweep_seeds:
                out.append(dict(dataset=dataset, init_scale=scale, seed=seed, sweep=True))
    unique = {vit.task(settings, **r).name + str(r["sweep"]): r for r in out}
    return list(unique.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rankbook.training", description=__doc__.splitlines()[0])
    p.add_argument(
        "--profile", default=None, help="fast, reference or paper (default: $RANKBOOK_PROFILE, else fast)"
    )
    p.add_argument("part", choices=("vit", "lm"))
    p.add_argument("--dataset", action="append", help="ViT data set(s) (default: the profile's)")
    p.add_argument("--seeds", type=int, nargs="*", help="chapter 04 seeds (default: the profile's)")
    p.add_argument("--scales", type=float, nargs="*", help="chapter 05 init scales (default: the profile's)")
    p.add_argument(
        "--export", type=Path, help="copy each finished result's arrays and manifest into this folder"
    )
    p.add_argument("--verify-data", action="store_true",
                   help="hash the data from its bytes, not trusting a fingerprint of the same size and mtime")
    args = p.parse_args(argv)
    try:
        return _main(args)
    except KeyboardInterrupt:  # as the book's runner: one line, the shell's code for Ctrl-C
        _close_progress_bars()
        print("interrupted: stopped (a rerun of the same command resumes from the last checkpoint)",
              file=sys.stderr)
        return 130


def _main(args) -> int:
    from rankbook.data import images, text
    from rankbook.store import errors, paths
    from rankbook.training import loop

    if args.verify_data:
        import os

        os.environ["RANKBOOK_VERIFY_DATA"] = "1"
    for flag, given in (("--seeds", args.seeds), ("--scales", args.scales)):
        if given is not None and not given:
            print(f"error: {flag} needs at least one value (e.g. {flag} 0 1); leave it out for the profile's",
                  file=sys.stderr)
            return 2
    if args.export is not None and args.export.exists() and not args.export.is_dir():
        print(f"error: --export {args.export} is a file; name a folder (it is created if missing)",
              file=sys.stderr)
        return 2
    try:
        paths.env_seconds("RANKBOOK_STOP_AFTER_S"), paths.env_flag("RANKBOOK_ALLOW_SLOW"), paths.build_root()
        table = vit_settings.PROFILES if args.part == "vit" else lm_settings.PROFILES
        checked = profiles.select(table, args.profile)  # unknown profile: said before any work
        if args.part == "vit":  # every command-line value through the settings' own checks, before any work
            checked.replace(datasets=tuple(args.dataset) if args.dataset else None,
                            seeds=tuple(args.seeds) if args.seeds else None,
                            init_scales=tuple(args.scales) if args.scales else None)
        elif args.dataset or args.seeds or args.scales:
            raise profiles.ProfileError("--dataset, --seeds and --scales choose ViT runs; `lm` trains the "
                                        "profile's LM runs (drop them, or use `vit`)")
    except (profiles.ProfileError, paths.SettingError, paths.PathSettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _train(args)
    except (profiles.ProfileError, paths.SettingError, paths.PathSettingError, errors.StorageError,
            errors.DamagedFileError, images.DataNotFoundError, images.LayoutError, images.ClassListError,
            text.TextDataNotFoundError, loop.SlowRunRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _train(args) -> int:
    try:
        if args.part == "vit":
            settings = profiles.select(vit_settings.PROFILES, args.profile)
            if args.dataset:
                settings = settings.replace(datasets=tuple(args.dataset))
            vit.require_data(settings)  # every data set these runs use, named in one message, before any work
            found = [
                vit.run(settings, **r) for r in vit_runs(settings, args.dataset, args.seeds, args.scales)
            ]
        else:
            settings = profiles.select(lm_settings.PROFILES, args.profile)
            found = lm.profile_runs(settings)  # every seed, then the LoRA runs of chapter 07
    except run.TimeBudgetReached as stop:
        _close_progress_bars()
        print(f"{stop}", file=sys.stderr)
        return 3
    for result in found:
        print(f"{result.path.name}: {', '.join(f'{k}={v:.4g}' for k, v in _finals(result).items())}")
        if args.export:
            target = args.export / result.path.name
            if target.resolve() == result.path.resolve():
                print(f"    (--export: {target} is the run's own folder; nothing to copy)")
                continue
            try:
                target.mkdir(parents=True, exist_ok=True)
                for name in (results.ARRAYS, results.MANIFEST):
                    shutil.copy2(result.path / name, target / name)
            except OSError as exc:
                from rankbook.store import errors

                raise errors.storage_error(target, exc) from exc
    return 0


def _close_progress_bars() -> None:
    """End the training bar's line (left open by an interrupted loop), so a message after it is a line of its
    own and the bar is not drawn again below it at exit."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _finals(result: results.Result) -> dict[str, float]:
    return {
        k: float(result.arrays[k][-1]) for k in ("test_acc", "eval_loss", "train_loss") if k in result.arrays
    }


if __name__ == "__main__":
    sys.exit(main())

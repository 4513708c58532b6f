"""Bring stored runs' manifests up to date: ``python -m rankbook.store.migrate [FOLDER ...]``.

For each run folder (a folder holding ``manifest.json``; a folder of run
folders is searched one level down; default: ``<repo>/results`` and
``<build>/results``) whose manifest lacks them, it adds

* ``sha256``: the checksum of ``arrays.npz`` *as it is now*, after checking
  that the arrays load, are the ones the manifest lists and hold finite
  numbers (a run written before checksums were recorded: the checksum vouches
  for the file from now on, not for its past);
* portable data descriptions: absolute local paths in ``data`` rewritten
  relative to ``$RANKBOOK_DATA`` / ``$RANKBOOK_CACHE`` / ``~``.

A toy chapter's stored tier (``summary.json`` beside its manifest, no
arrays) has nothing to migrate and is reported up to date.

Nothing else changes: not the config, not the key, not the arrays, not the
folder's name. ``source_sha256`` is not invented for old runs (the source that
made them is not known). Runs finished by training jobs that still run older
code get the same treatment: rerun this command on their folder when they land.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from rankbook.store import atomic, results

#: rankbook.theory.tiers.SUMMARY (not imported: the store does not depend on the theory package)
TOY_SUMMARY = "summary.json"


def run_folders(roots: list[Path]) -> list[Path]:
    found = []
    for root in roots:
        root = Path(root)
        if (root / results.MANIFEST).is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(p.parent for p in root.glob(f"*/{results.MANIFEST}"))
    return found


def migrate(folder: Path) -> list[str]:
    """Add what :mod:`this module <rankbook.store.migrate>` adds to one run folder; return what changed."""
    folder = Path(folder)
    manifest = results.read_manifest(folder)
    changes = []
    toy = (folder / TOY_SUMMARY).is_file() and "arrays" not in manifest
    if toy and not (folder / results.ARRAYS).exists():
        return changes  # a toy chapter's stored tier (rankbook.theory.tiers): a summary, no arrays to check
    listed = manifest.get("arrays")
    if isinstance(manifest.get("sha256"), dict) and manifest["sha256"].get(results.ARRAYS):
        results.check_checksum(folder, manifest)  # a checksum that no longer matches is never rewritten
    else:
        arrays = results.read_arrays(folder, list(listed) if isinstance(listed, dict) else None)
        results.check_finite(folder, arrays)
        manifest["sha256"] = {results.ARRAYS: results.sha256_file(folder / results.ARRAYS)}
        changes.append(f"sha256 of {results.ARRAYS}")
    if "data" in manifest:
        portable = results.portable(manifest["data"])
        if portable != manifest["data"]:
            manifest["data"] = portable
            changes.append("data paths made relative")
    if changes:
        atomic.write_text(folder / results.MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return changes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    roots = [Path(a) for a in argv] or results.search_roots()
    missing = [r for r in roots if argv and not Path(r).exists()]
    if missing:
        print(f"error: {', '.join(map(str, missing))}: no such folder", file=sys.stderr)
        return 2
    status = 0
    for folder in run_folders(roots):
        try:
            changes = migrate(folder)
        except results.DamagedResultError as exc:
            print(f"{folder}: not migrated: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{folder}: {', '.join(changes) if changes else 'up to date'}")
    return status


if __name__ == "__main__":
    sys.exit(main())

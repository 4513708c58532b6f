"""What an executed chapter read: stored results (found or missed) and data fingerprints, for staleness.

The runner gives each kernel ``$RANKBOOK_INPUTS_LOG`` (a file in the
executed-copies folder). While it is set, :func:`rankbook.store.results.find`
appends one JSON line per lookup (the folder found, with the sha256 of its
manifest and arrays, or a miss), :func:`rankbook.store.results.save`
one per run written, and the data layer one per data fingerprint it computed
(image data sets by name, files by their path relative to ``$RANKBOOK_DATA`` or
``$RANKBOOK_CACHE``). The runner folds the log into the executed copy's
metadata (:func:`summarize`), and ``build``/``--stale-only`` re-check it
(:func:`changed`): a stored run removed, replaced or newly stored where the
chapter found none, data edited or ``RANKBOOK_DATA`` pointed elsewhere, each
makes the page stale. Re-checking costs hashing each stored run's files (a few
MB at most) and a cached fingerprint per data source (milliseconds).

Without the variable (a notebook run by hand, the tests) nothing is written.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

ENV_VAR = "RANKBOOK_INPUTS_LOG"


def record(entry: dict[str, Any]) -> None:
    """Append ``entry`` to the inputs log when one is set (never an error: it only costs a re-execution)."""
    log = os.environ.get(ENV_VAR)
    if not log:
        return
    with contextlib.suppress(OSError):
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True, default=str) + "\n")


def file_state(path: Path) -> str:
    """``"<size> <sha256 prefix>"`` of a stored run's file, or ``"missing"``.

    Content, not mtime: a ``git checkout`` or a copy that rewrites the same bytes leaves a page current.
    Stored runs' files are small (a manifest, arrays of at most a few MB): hashing them costs milliseconds.
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        size = Path(path).stat().st_size
    except OSError:
        return "missing"
    return f"{size} {h.hexdigest()[:16]}"




def read_log(log: Path) -> list[dict[str, Any]]:
    entries = []
    try:
        lines = Path(log).read_text(encoding="utf-8").splitlines()
    except OSError:
        return entries
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def summarize(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The log as the executed copy records it: the last state of each stored run, each data source."""
    runs: dict[str, dict] = {}
    data: dict[str, dict] = {}
    for e in entries:
        kind = e.get("kind")
        if kind in ("result", "miss", "saved"):
            if kind == "miss" and runs.get(e.get("folder_name"), {}).get("kind") in ("result", "saved"):
                continue  # another root (or device variant) missed after the run was found: the find wins
            runs[e.get("folder_name", "")] = e
        elif kind in ("images", "file"):
            data[json.dumps({k: v for k, v in e.items() if k != "fingerprint"}, sort_keys=True)] = e
    return {"results": list(runs.values()), "data": list(data.values())}


def changed(recorded: dict[str, Any]) -> str | None:
    """Why the inputs a chapter read are no longer what they were (None when all are unchanged)."""
    from rankbook.store import results

    for run in recorded.get("results", []):
        name, key = run.get("name"), run.get("key")
        now = results.locate_stored(name, key)
        if run.get("kind") == "miss":
            if now is not None:
                return f"a stored run {now} exists now that the chapter did not find"
            continue
        folder = Path(run.get("folder", ""))
        if now is None:
            return f"the stored run {folder} it read is gone"
        if now != folder:
            return f"the stored run it read ({folder}) is now found at {now}"
        if file_state(folder / results.MANIFEST) != run.get("manifest"):
            return f"{folder / results.MANIFEST} changed since the chapter read it"
        if file_state(folder / results.ARRAYS) != run.get("arrays"):
            return f"{folder / results.ARRAYS} changed since the chapter read it"
    for entry in recorded.get("data", []):
        why = _data_changed(entry)
        if why:
            return why
    return None


def _data_changed(entry: dict[str, Any]) -> str | None:
    from rankbook.store import fingerprints, paths

    try:
        if entry.get("kind") == "images":
            from rankbook.data import sources

            now = sources.fingerprint(entry["name"], download=False)
            what = f"data set {entry['name']}"
        else:
            roots = {"RANKBOOK_DATA": paths.data_root, "RANKBOOK_CACHE": paths.cache_root}
            root = roots.get(entry.get("root"))
            path = root() / entry["rel"] if root else Path(entry["path"])
            what = str(path)
            if not path.exists():
                return f"the data file {path} it read is not there any more"
            now = fingerprints.fingerprint(path)
    except Exception as exc:  # missing data, a damaged archive: the chapter cannot be current
        return f"its data can no longer be fingerprinted ({type(exc).__name__}: {exc})"
    if now != entry.get("fingerprint"):
        return f"{what} changed ({entry.get('fingerprint')} → {now})"
    return None


def relative_to_roots(path: Path) -> tuple[str | None, str]:
    """(variable, relative path) of ``path`` under RANKBOOK_DATA or RANKBOOK_CACHE, else (None, path)."""
    from rankbook.store import paths

    path = Path(path)
    for var, root in (("RANKBOOK_DATA", paths.data_root), ("RANKBOOK_CACHE", paths.cache_root)):
        with contextlib.suppress(OSError, ValueError, paths.PathSettingError):
            return var, path.relative_to(root().resolve()).as_posix()
    return None, str(path)

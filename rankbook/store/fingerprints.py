"""Content fingerprints of data sources, computed once and cached by size and modification time.

A fingerprint is ``"sha256:<first 16 hex digits>"`` of a source's content:

* a file (an archive, a text split): the sha256 of its bytes, so the same file
  on another machine has the same fingerprint (the offline CIFAR-10 archive's
  is ``sha256:efac85c8ed52f4ea``);
* a folder (an ImageFolder tree, torchvision's pickles): the sha256 of the
  lines ``<relative path> NUL <sha256 of the file>``, walked in name order;
  hidden files and folders (names starting with ``.``, e.g. our own unpack
  marker) are left out.

Hashing reads every byte once; the result is stored in
``cache_root()/fingerprints/`` under the resolved path, together with the
file's size and ``mtime_ns`` (for a folder: a hash of every file's relative
path, size and ``mtime_ns``). A later call whose stat signature matches
returns the stored value without reading the content: milliseconds for a
file, one ``stat`` per file for a folder (about 0.5 s for CIFAR-10's 60,000
JPEGs; prefer the archive, or torchvision's folder, for large data sets). An edit that keeps the
size and restores the mtime is therefore not noticed: that is the design
(``touch`` the file, or delete the cache entry, to force a re-hash), or set
``RANKBOOK_VERIFY_DATA=1`` (``--verify-data`` on the command lines): every
fingerprint is then computed from the bytes, ignoring the stored values.

A cache that cannot be written (read-only, full disk) only costs a re-hash
next time; it is never an error.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

from rankbook.store import atomic, errors, inputs, paths

PREFIX = "sha256:"
SHORT = 16  # hex digits kept: 64 bits, plenty to tell data versions apart
_CHUNK = 1 << 20


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _tree(top: str, rel: str = "") -> list[tuple[str, str, os.stat_result]]:
    """(relative path, path, stat) of every file under ``top`` outside hidden names, in name order.

    ``os.scandir`` rather than ``Path`` walking: the stat signature of a
    60,000-file tree is taken on every load, and this is about 5x faster.
    """
    return _walk(top, rel, set())


class SymlinkLoopError(errors.DamagedFileError):
    """A data folder holding a symbolic link to itself or to a folder above it."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def _walk(top: str, rel: str, seen: set) -> list[tuple[str, str, os.stat_result]]:
    st = os.stat(top)
    if (st.st_dev, st.st_ino) in seen:
        link = next((p for p in (Path(top), *Path(top).parents) if p.is_symlink()), Path(top))
        raise SymlinkLoopError(errno.ELOOP, f"{link} is a symbolic link into a folder that contains it "
                               f"(to {os.path.realpath(link)}): walking it would never end. Fix: remove the "
                               f"link (rm {link}) or replace it with a copy of what it should hold")
    seen = seen | {(st.st_dev, st.st_ino)}
    with os.scandir(top) as it:
        entries = sorted(it, key=lambda e: e.name)
    found = []
    for e in entries:
        if e.name.startswith("."):
            continue
        if e.is_dir():
            found += _walk(e.path, f"{rel}{e.name}/", seen)
        elif e.is_file():
            found.append((rel + e.name, e.path, e.stat()))
    return found


def signature(path: Path) -> str:
    """Size and mtime of a file, or of every file in a folder: what the cached value is keyed by.

    Renaming or moving a folder keeps it (relative paths, sizes and mtimes).
    """
    if path.is_file():
        st = path.stat()
        return f"file {st.st_size} {st.st_mtime_ns}"
    lines = "".join(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n" for rel, _, st in _tree(str(path)))
    return "tree " + hashlib.sha256(lines.encode()).hexdigest()


def _content_digest(path: Path) -> str:
    if path.is_file():
        return _sha256_file(path)
    h = hashlib.sha256()
    for rel, full, _ in _tree(str(path)):
        h.update(f"{rel}\0{_sha256_file(Path(full))}\n".encode())
    return h.hexdigest()


def _entry(path: Path) -> Path:
    name = hashlib.sha256(str(path).encode()).hexdigest()[:24]
    return paths.cache_root() / "fingerprints" / f"{name}.json"


def sha256(path: str | os.PathLike) -> str:
    """The full sha256 (64 hex digits) of a file's bytes or a folder's content, cached (module doc)."""
    path = Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"cannot fingerprint {path}: it does not exist")
    before = signature(path)
    entry = _entry(path)
    try:
        if verify_data():
            raise ValueError("hash for real")
        stored = json.loads(entry.read_text())
        if stored.get("path") == str(path) and stored.get("signature") == before:
            return stored["sha256"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no entry yet, or a damaged one: hash again and rewrite it
    digest = _content_digest(path)
    if signature(path) == before:  # unchanged while we read it: safe to remember
        try:
            atomic.write_json(entry, {"path": str(path), "signature": before, "sha256": digest})
        except OSError:
            pass  # a read-only or full cache: the fingerprint is still right, only not remembered
    return digest


VERIFY_VAR = "RANKBOOK_VERIFY_DATA"


def verify_data() -> bool:
    """Whether ``$RANKBOOK_VERIFY_DATA`` asks for fingerprints hashed from the bytes (not size and mtime)."""
    return paths.env_flag(VERIFY_VAR)


def fingerprint(path: str | os.PathLike) -> str:
    """``"sha256:<16 hex>"`` of a file's bytes or a folder's content (recorded for staleness checks)."""
    value = PREFIX + sha256(path)[:SHORT]
    root, rel = inputs.relative_to_roots(Path(path).resolve())
    inputs.record({"kind": "file", "root": root, "rel": rel, "path": str(Path(path).resolve()),
                   "fingerprint": value})
    return value


def remove_superseded(folder: Path, pattern: str, current: str) -> list[Path]:
    """Remove derived files in ``folder`` matching ``pattern`` except those named ``current*``.

    Called after a derived file of the current source version is written, so
    caches of earlier versions of an edited data set do not pile up.
    """
    removed = []
    for path in Path(folder).glob(pattern):
        if path.name.startswith(current):
            continue
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass  # read-only, or already gone
    return removed

"""Atomic file writes: a reader sees the old file or the new one, never half of one.

A write goes to a temporary sibling ``.<name>.<pid>@<host>-<random>.tmp`` and
is renamed over the target when complete. The name says which process made
it, so the litter of a killed run is recognised and removed by the next write
into that folder (:func:`clean_stale`); a temporary that a live process may
still own is never touched. The same naming serves folders being unpacked
(:func:`temp_name`).

Files and folders are created with the permissions the umask allows (as
``open`` would), not the private ``0600`` of :func:`tempfile.mkstemp`. A full
disk or an unwritable folder is a :class:`~rankbook.store.errors.StorageError`
naming the file and the fix.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from rankbook.store import errors

TMP_SUFFIX = ".tmp"
LEGACY_MAX_AGE_S = 24 * 3600  # an unmarked temporary (older naming) this old has no writer left
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_MARKED = re.compile(r"\.(?P<pid>\d+)@(?P<host>[0-9a-f]{6})-[0-9a-f]{8}\.tmp$")


def umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic read-and-restore
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have (0666/0777 less the umask)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def temp_name(name: str) -> str:
    """A temporary sibling name for ``name`` that records this process (see :func:`is_stale`)."""
    return f".{name}.{os.getpid()}@{_HOST}-{secrets.token_hex(4)}{TMP_SUFFIX}"


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from /proc; None where unknown."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def is_stale(path: str | os.PathLike) -> bool:
    """Whether a temporary file or folder was left by a process that no longer runs.

    Marked names (:func:`temp_name`) made on this machine are stale when their
    process is gone, or when the pid now belongs to a process started after
    the temporary was last written (a reused pid). Marks from another machine
    and unmarked ``.*.tmp`` names are stale only after a day.
    """
    path = Path(path)
    try:
        mtime = path.lstat().st_mtime
    except FileNotFoundError:
        return False
    mark = _MARKED.search(path.name)
    if not mark or mark["host"] != _HOST:
        return time.time() - mtime > LEGACY_MAX_AGE_S
    pid = int(mark["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started = _process_start(pid)
    return started is not None and started > mtime + 1.0


def clean_stale(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove stale temporaries (``.<name>.*.tmp``, any name when None) in ``folder``; return what went.

    With a ``name``, folders ``.<name>.<random>`` are removed too once a day
    old: the unpack folders of earlier versions (``tempfile.mkdtemp`` names).
    """
    folder = Path(folder)
    pattern = f".{glob_escape(name)}.*" if name else f".*{TMP_SUFFIX}"
    removed = []
    try:
        found = list(folder.glob(pattern))
    except OSError:
        return removed
    for path in found:
        legacy_folder = not path.name.endswith(TMP_SUFFIX) and path.is_dir() and not path.is_symlink()
        if not (path.name.endswith(TMP_SUFFIX) or legacy_folder) or not is_stale(path):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            pass  # read-only folder, or another process cleaning the same litter: harmless
    return removed


def clean_stale_tree(root: str | os.PathLike, max_depth: int = 6) -> list[Path]:
    """:func:`clean_stale` in ``root`` and every folder below it (to ``max_depth``), for a start-up sweep.

    Hidden folders are not entered (a stale one is removed whole instead).
    """
    root, removed = Path(root), []
    if not root.is_dir():
        return removed
    for folder, dirs, _ in os.walk(root):
        removed += clean_stale(folder)
        depth = len(Path(folder).relative_to(root).parts)
        dirs[:] = [] if depth >= max_depth else [d for d in dirs if not d.startswith(".")]
    return removed


_SWEPT: set[tuple[str, int]] = set()


def sweep_once(root: str | os.PathLike, max_depth: int = 1) -> list[Path]:
    """:func:`clean_stale_tree` of ``root``, the first time this process asks (a start-up sweep)."""
    key = (str(Path(root).resolve()), max_depth)
    if key in _SWEPT:
        return []
    _SWEPT.add(key)
    return clean_stale_tree(root, max_depth)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path.parent, path.name)
        tmp_path = path.parent / temp_name(path.name)
        tmp_path.touch(exist_ok=False)
    except OSError as exc:
        raise errors.storage_error(path, exc) from exc
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        apply_umask(tmp_path)
        os.replace(tmp_path, path)
    except OSError as exc:
        raise errors.storage_error(path, exc) from exc
    except Exception as exc:  # torch.save reports a full disk as a RuntimeError without errno
        if errors.disk_full(path.parent):
            raise errors.full_disk_error(path) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def write_with(path: str | os.PathLike, writer: Callable[[Path], Any]) -> Path:
    """Atomically write ``path`` by calling ``writer(tmp_path)`` (e.g. ``torch.save``, ``np.savez``)."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")

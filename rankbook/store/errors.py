"""The errors a damaged file or an unwritable folder gets: each names the file and the fix."""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from rankbook.store import paths

FULL = {errno.ENOSPC, errno.EDQUOT}
NEARLY_FULL_BYTES = 16 << 20  # less free space than this after a failed write: the disk was the cause
DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
NOT_A_FOLDER = {errno.EEXIST, errno.ENOTDIR}


class DamagedFileError(OSError):
    """A file that exists but cannot be read as what it should be (truncated, wrong format, bad encoding)."""


class StorageError(OSError):
    """A file that cannot be written: full disk, read-only or unwritable folder."""

    def __str__(self) -> str:  # the message already names the cause; no "[Errno 28]" in front
        return self.strerror or super().__str__()


def _setting_for(path: Path, where: str = "a folder on another disk") -> str:
    """The RANKBOOK_* variable that moves ``path`` elsewhere, for the advice in a message."""
    for var, root in (("RANKBOOK_BUILD", paths.build_root), ("RANKBOOK_CACHE", paths.cache_root)):
        try:
            if path.is_relative_to(root()):
                return f"set {var} to {where} (now {root()})"
        except (OSError, ValueError):
            continue
    return "write to another folder"


def storage_error(path: str | os.PathLike, exc: OSError) -> OSError:
    """``exc`` as a :class:`StorageError` naming ``path`` and the fix when it is a full or unwritable disk."""
    path = Path(path)
    where = path.parent
    while not where.is_dir() and where != where.parent:  # the folder that refused: the first one that exists
        where = where.parent
    if exc.errno in FULL:
        return StorageError(exc.errno, f"cannot write {path}: the disk is full ({os.strerror(exc.errno)}). "
                                       f"Free some space there, or {_setting_for(path)}.")
    if exc.errno in DENIED:
        return StorageError(exc.errno, f"cannot write {path}: {where} is read-only or not writable by "
                                       f"this user ({os.strerror(exc.errno)}). Make it writable, or "
                                       f"{_setting_for(path, 'a writable folder')}.")
    if exc.errno in NOT_A_FOLDER:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path.parent)
        fix = _setting_for(path, "another folder")
        return StorageError(exc.errno, f"cannot write {path}: {blocker} is a file where a folder is needed. "
                                       f"Move or remove that file, or {fix}.")
    return exc


def disk_full(folder: str | os.PathLike) -> bool:
    """Whether the disk holding ``folder`` is (nearly) full: to explain writers that hide the errno.

    ``torch.save`` on a full disk raises ``RuntimeError('[enforce fail at
    inline_container.cc:...] . unexpected pos ...')`` instead of ENOSPC.
    """
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def full_disk_error(path: str | os.PathLike) -> OSError:
    return storage_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

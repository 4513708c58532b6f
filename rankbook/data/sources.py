"""Where an image data set comes from: finding it, fingerprinting it, unpacking its archive.

Order of places (see :mod:`rankbook.data.images` for the whole story): the
offline data folder (an ImageFolder tree, its archive, torchvision's folder),
then the cache (an earlier unpack or download), then a torchvision download.

An archive is unpacked once into the cache; the unpacked folder records the
archive's fingerprint and the tree's listing signature (every file's relative
path, size and mtime) in ``.rankbook-source``, so an archive that changed is
unpacked again instead of its old contents being reused, and so is an unpacked
copy whose files were deleted, added or edited since (the fingerprint of the
archive is never used for a tree that no longer is its copy).

A data set with a known layout (:data:`LAYOUTS`: CIFAR-10 has exactly its 10
classes, 5,000 training and 1,000 test images each; CIFAR-100 its 100 classes,
500 and 100) is checked when a split is read (:func:`check_layout`): a class
missing, an extra class folder or a missing image is a :class:`LayoutError`
naming the folder and the fix, never a run on 9 or 11 classes stored as
``cifar10``. A half-unpacked
folder left by a killed run is a marked temporary that the next unpack
removes (:func:`rankbook.store.atomic.clean_stale`).
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import socket
import tarfile
import warnings
import zlib
from pathlib import Path

from rankbook.store import atomic, errors, fingerprints, inputs, paths

MARKER = ".rankbook-source"


@dataclasses.dataclass(frozen=True)
class Spec:
    """How to find one data set."""

    name: str
    num_classes: int
    folder: str | None  # unpacked ImageFolder tree in the data folder or cache
    archive: str | None  # tarball of that tree in the data folder
    torchvision_class: str | None  # torchvision.datasets class that can download it
    torchvision_folder: str | None  # what that class unpacks to


SPECS = {
    "cifar10": Spec("cifar10", 10, "cifar10-jpeg", "cifar10-jpeg.tar.gz", "CIFAR10", "cifar-10-batches-py"),
    "cifar100": Spec("cifar100", 100, "cifar100-jpeg", "cifar100-jpeg.tar.gz", "CIFAR100",
                     "cifar-100-python"),
    "imagenet": Spec("imagenet", 1000, "imagenet", None, None, None),
}


class DataNotFoundError(FileNotFoundError):
    """A data set that is neither on disk nor downloadable from here."""


class LayoutError(ValueError):
    """A data set whose classes or image counts are not the ones it is known to have."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """What a complete copy of a data set holds: class names (None: only their number), images per class."""

    classes: tuple[str, ...] | None
    num_classes: int
    per_class: dict  # split -> images per class


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: the known layouts checked at load (tests of tiny trees replace this table)
LAYOUTS = {
    "cifar10": Layout(CIFAR10_CLASSES, 10, {"train": 5000, "test": 1000}),
    "cifar100": Layout(None, 100, {"train": 500, "test": 100}),
}
LAYOUTS_KNOWN = dict(LAYOUTS)  # the same, for tests that replace LAYOUTS and check the real one


def check_layout(name: str, split: str, classes: list[str], labels, where: Path) -> None:
    """:class:`LayoutError` when split ``split`` of ``name`` (read from ``where``) is not complete.

    ``labels`` holds the label of every image of the split (None: classes only, e.g. a cached subset).
    """
    layout = LAYOUTS.get(name)
    if layout is None:
        return
    fix = (f"Fix: restore {where} to a complete copy (copy the archive {spec(name).archive} or torchvision's "
           f"{spec(name).torchvision_folder}/ again, or delete the folder if it is in the cache: it is "
           f"unpacked or downloaded again); a different or reduced data set cannot be used under the name "
           f"{name!r}")
    problems = []
    if layout.classes is not None and tuple(sorted(classes)) != tuple(sorted(layout.classes)):
        missing = sorted(set(layout.classes) - set(classes))
        extra = sorted(set(classes) - set(layout.classes))
        problems.append(f"{len(classes)} classes instead of its {layout.num_classes}"
                        + (f"; missing: {', '.join(missing)}" if missing else "")
                        + (f"; not one of its classes: {', '.join(extra[:10])}" if extra else ""))
    elif len(classes) != layout.num_classes:
        problems.append(f"{len(classes)} classes instead of its {layout.num_classes}")
    if labels is not None and not problems and split in layout.per_class:
        import numpy as np

        counts = np.bincount(np.asarray(labels), minlength=len(classes))
        want = layout.per_class[split]
        wrong = [f"{classes[i]} {int(n)}" for i, n in enumerate(counts) if n != want]
        if wrong:
            total = int(counts.sum())
            problems.append(f"{total:,} {split} images instead of {want * len(classes):,} "
                            f"({want:,} per class; classes with another count: {', '.join(wrong[:10])})")
    if problems:
        raise LayoutError(f"{name} {split} split in {where} is not a complete {name}: {'; '.join(problems)}. "
                          f"{fix}.")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a data set was found: ``kind`` is ``"imagefolder"`` or ``"torchvision"``."""

    kind: str
    path: Path
    status: str  # "found offline" | "cached" | "downloaded"
    fingerprint: str = ""  # of what was found (the archive, not its unpacked copy)


def spec(name: str) -> Spec:
    if name not in SPECS:
        raise ValueError(f"unknown data set {name!r}; valid: {', '.join(SPECS)}")
    return SPECS[name]


def is_imagefolder(path: Path) -> bool:
    return (path / "train").is_dir() and ((path / "test").is_dir() or (path / "val").is_dir())


def candidates(sp: Spec, root: Path | None = None) -> list[tuple[str, Path, str]]:
    """(kind, path, status) places to look, in order."""
    if sp.name == "imagenet":
        return [("imagefolder", Path(root) if root else paths.imagenet_root(), "found offline")]
    data, cache = paths.data_root(), paths.cache_root()
    return [("imagefolder", data / sp.folder, "found offline"),
            ("archive", data / sp.archive, "found offline"),
            ("torchvision", data / sp.torchvision_folder, "found offline"),
            ("imagefolder", cache / sp.folder, "cached"),
            ("torchvision", cache / sp.torchvision_folder, "cached")]


def present(kind: str, path: Path) -> bool:
    if kind == "imagefolder":
        return is_imagefolder(path)
    if kind == "archive":
        return path.is_file()
    return path.is_dir()


def first_present(sp: Spec, root: Path | None = None) -> tuple[str, Path, str] | None:
    return next(((k, p, s) for k, p, s in candidates(sp, root) if present(k, p)), None)


def fingerprint(name: str, download: bool = True, root: Path | None = None) -> str:
    """``"sha256:<16 hex>"`` of the source :func:`locate` would use for data set ``name``.

    The source is the offline archive file (the sha256 of its bytes), an
    ImageFolder tree, or torchvision's folder of pickles, hashed without
    unpacking or decoding anything, once; later calls are served from the
    cache by size and mtime (:mod:`rankbook.store.fingerprints`). A data set
    found nowhere is downloaded when allowed, else :class:`DataNotFoundError`.

    A tree unpacked from an archive keeps the archive's fingerprint while it
    is unchanged since unpacking, so the same data has the same fingerprint
    whether or not the archive is still in the data folder.
    """
    found = first_present(spec(name), root)
    if not found:
        return locate(name, download=download, root=root).fingerprint
    value = source_fingerprint(found[0], found[1])
    if root is None:
        inputs.record({"kind": "images", "name": name, "fingerprint": value})
    return value


def source_fingerprint(kind: str, path: Path) -> str:
    """The fingerprint of what was found at ``path`` (see :func:`fingerprint`)."""
    if kind == "imagefolder":
        marker = read_marker(path)
        if marker.get("fingerprint") and marker.get("signature") == fingerprints.signature(path):
            return marker["fingerprint"]  # our unpacked copy, untouched since: the archive's identity
    return fingerprints.fingerprint(path)


def locate(name: str, download: bool = True, root: Path | None = None) -> Source:
    """Find data set ``name`` (see the module doc for the order); unpack or download if needed."""
    sp = spec(name)
    found = first_present(sp, root)
    if found:
        kind, path, status = found
        fp = source_fingerprint(kind, path)
        if root is None:
            inputs.record({"kind": "images", "name": name, "fingerprint": fp})
        if kind == "archive":
            return Source("imagefolder", unpack_archive(path, paths.cache_root() / sp.folder, fp), status, fp)
        return Source(kind, path, status, fp)
    looked = candidates(sp, root)
    if download and sp.torchvision_class:
        cache = paths.cache_root()
        try:
            _torchvision_dataset(sp, cache, train=True, download=True)
            _torchvision_dataset(sp, cache, train=False, download=True)
        except Exception as exc:  # no network, a proxy, a half download: all end in the same advice
            raise DataNotFoundError(missing_message(sp, looked, f"the download failed: {exc}")) from exc
        folder = cache / sp.torchvision_folder
        return Source("torchvision", folder, "downloaded", fingerprints.fingerprint(folder))
    raise DataNotFoundError(missing_message(sp, looked, "downloading is off" if sp.torchvision_class
                                            else "it cannot be downloaded automatically"))


def missing_message(sp: Spec, looked, why: str) -> str:
    where = "\n".join(f"  - {p}{_partial(k, p)}" for k, p, _ in looked)
    if sp.name == "imagenet":
        fix = ("Put ImageNet in the ImageFolder layout root/{train,val}/<class>/* and pass its path, "
               "or set RANKBOOK_IMAGENET to it.")
    else:
        fix = (f"Fix it either way: (1) set RANKBOOK_DATA to a folder holding an offline copy "
               f"({sp.folder}/ as root/{{train,test}}/<class>/*, {sp.archive}, or torchvision's "
               f"{sp.torchvision_folder}/); or (2) run on a machine with internet access so that "
               f"torchvision.datasets.{sp.torchvision_class} can download it into {paths.cache_root()}.")
    return f"data set {sp.name!r} not found ({why}). Looked in:\n{where}\n{fix}"


def _partial(kind: str, path: Path) -> str:
    """What a place holding part of a data set lacks (`` (has train/ but no test/ or val/)``), or ``""``."""
    if kind != "imagefolder" or not path.is_dir():
        return ""
    has = [n for n in ("train", "test", "val") if (path / n).is_dir()]
    if not has:
        return " (exists, but has no train/ or test/ folder)"
    if "train" not in has:
        return f" (has {'/, '.join(has)}/ but no train/)"
    return " (has train/ but no test/ or val/)"


def read_marker(folder: Path) -> dict:
    """What an unpacked tree records about its archive: archive, fingerprint, signature (``{}`` if none)."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
        return marker if isinstance(marker, dict) else {}
    except (OSError, ValueError):
        return {}


def _marker_fingerprint(folder: Path) -> str | None:
    return read_marker(folder).get("fingerprint")


def unpack_archive(archive: Path, target: Path, fp: str | None = None) -> Path:
    """Unpack ``archive`` (top folder ``target.name``) to ``target``, once per archive content, atomically.

    ``target`` is reused only when its marker holds the archive's fingerprint
    ``fp`` (computed when not given); otherwise it is replaced.
    """
    archive, target = Path(archive), Path(target)
    fp = fp or fingerprints.fingerprint(archive)
    if is_imagefolder(target) and _marker_fingerprint(target) == fp:
        _add_signature(target)
        if read_marker(target).get("signature") in (None, fingerprints.signature(target)):
            return target  # (None: a read-only cache whose old marker could not be given a signature)
        # files deleted, added or edited in the unpacked copy since it was unpacked: it is derived, redo it
        warnings.warn(f"{target} has files deleted, added or changed since it was unpacked from {archive}; "
                      f"unpacking it again", stacklevel=3)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic.clean_stale(target.parent, target.name)  # half-unpacked folders of killed runs
        tmp = target.parent / atomic.temp_name(target.name)
        tmp.mkdir()
    except OSError as exc:
        error = errors.storage_error(target, exc)
        if target.exists() and isinstance(error, errors.StorageError):
            why = f"{target} was not unpacked from this version of {archive} ({fp}), so it must be redone"
            if _marker_fingerprint(target) == fp:
                why = (f"{target} (unpacked from {archive}, {fp}) has files deleted, added or changed since "
                       f"it was unpacked, so it must be redone")
            raise errors.StorageError(exc.errno, f"{why}, but {error.strerror}") from exc
        raise error from exc
    try:
        inner = _extract(archive, tmp, target.name)
        marker = {"archive": str(archive), "fingerprint": fp, "signature": fingerprints.signature(inner)}
        (inner / MARKER).write_text(json.dumps(marker) + "\n")
        atomic.apply_umask(inner, directory=True)
        _swap_in(inner, target, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _add_signature(target: Path) -> None:
    """Give a marker written before markers held the tree's signature one (once; best effort)."""
    marker = read_marker(target)
    if "signature" in marker:
        return
    try:
        atomic.write_json(target / MARKER, {**marker, "signature": fingerprints.signature(target)})
    except OSError:
        pass  # read-only cache: the fingerprint then falls back to hashing the tree's content


def _extract(archive: Path, tmp: Path, top: str) -> Path:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
    except OSError as exc:
        if isinstance(exc, gzip.BadGzipFile) or exc.errno is None:
            raise errors.DamagedFileError(damaged_archive_message(archive, exc)) from exc
        raise errors.storage_error(tmp.parent / top, exc) from exc
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise errors.DamagedFileError(damaged_archive_message(archive, exc)) from exc
    inner = tmp / top
    if not is_imagefolder(inner):
        raise DataNotFoundError(f"{archive} does not hold {top}/{{train,test}}/<class>/*. Fix: re-create it "
                                f"with that layout (tar czf {archive.name} {top}), or put the unpacked "
                                f"tree {top}/ next to it instead")
    return inner


def damaged_archive_message(archive: Path, exc: BaseException) -> str:
    with open(archive, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK"):
        what = "a zip file, not a .tar.gz"
        fix = (f"unzip it so that {archive.parent / archive.name.split('.')[0]}/{{train,test}}/<class>/* "
               f"exists (that tree is read directly), or re-pack it with tar czf")
    else:
        what = "damaged or truncated (an interrupted copy or download?)"
        fix = "copy it again from its source and compare its sha256 with the one published there"
    brief = (str(exc).splitlines() or [""])[0].rstrip(":")
    return f"the archive {archive} is {what} ({type(exc).__name__}: {brief}). Fix: {fix}."


def _swap_in(inner: Path, target: Path, tmp: Path) -> None:
    """Put ``inner`` at ``target``; an older tree there is moved aside (into ``tmp``) and removed."""
    try:
        if _intact_copy(target, _marker_fingerprint(inner)):
            return  # another process unpacked the same archive meanwhile: keep the tree it may be reading
        if target.exists():
            os.replace(target, tmp / "stale")
        os.replace(inner, target)  # one rename: a reader never sees half a tree
    except OSError as exc:
        if _intact_copy(target, _marker_fingerprint(inner)):
            return  # another process unpacked the same archive first: fine
        raise errors.storage_error(target, exc) from exc


def _intact_copy(target: Path, fp: str | None) -> bool:
    """Whether ``target`` is an unpacked copy of the archive ``fp``, untouched since it was unpacked."""
    if not (is_imagefolder(target) and fp and _marker_fingerprint(target) == fp):
        return False
    return read_marker(target).get("signature") in (None, fingerprints.signature(target))


def _online(host: str = "www.cs.toronto.edu", timeout: float = 1.5) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def describe_available() -> list[dict[str, str]]:
    """Status of each data set for the setup chapter: dataset, status, location."""
    rows, online = [], None
    for sp in SPECS.values():
        found = first_present(sp)
        if found:
            rows.append({"dataset": sp.name, "status": found[2], "location": str(found[1])})
            continue
        if sp.torchvision_class:
            online = _online() if online is None else online
            status = "will download" if online else "missing"
            where = f"torchvision.datasets.{sp.torchvision_class} → {paths.cache_root()}"
        else:
            status, where = "missing", "an ImageFolder path you provide (RANKBOOK_IMAGENET)"
        rows.append({"dataset": sp.name, "status": status, "location": where})
    return rows


def _torchvision_dataset(sp: Spec, parent: Path, train: bool, download: bool):
    import torchvision.datasets

    cls = getattr(torchvision.datasets, sp.torchvision_class)
    return cls(str(parent), train=train, download=download)

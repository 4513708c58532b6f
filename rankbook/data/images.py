"""Image data sets as in-memory uint8 tensors: CIFAR-10/100 (online or offline) and ImageFolder trees.

Where a data set comes from, in order:

1. the offline data folder :func:`rankbook.store.paths.data_root` (``$RANKBOOK_DATA``):
   an unpacked ImageFolder tree (``cifar10-jpeg/{train,test}/<class>/*``),
   its archive (``cifar10-jpeg.tar.gz``, unpacked once into the cache), or
   torchvision's own folder (``cifar-10-batches-py``);
2. the cache :func:`rankbook.store.paths.cache_root` (an earlier unpack or download);
3. a torchvision download into the cache, when the machine is online.

Nothing found and no network: :class:`DataNotFoundError` says where it looked
and how to fix it. ImageNet is read from an ImageFolder path the user gives
(``root/{train,val}/<class>/*``); it is never downloaded.

A split (optionally a class-stratified, seeded subset) is decoded once into a
``uint8`` tensor ``[N, 3, H, W]`` and cached on disk, keyed by data set,
source, split, subset size and seed. Training then works on tensors already
on the device: :func:`augment` (random crop with 4-pixel zero padding and
horizontal flip, the usual CIFAR augmentation) and :func:`normalize` are tensor
ops, so no per-step PIL or DataLoader work.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rankbook.store import atomic, fingerprints, paths

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


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
    "cifar100": Spec("cifar100", 100, "cifar100-jpeg", "cifar100-jpeg.tar.gz", "CIFAR100", "cifar-100-python"),
    "imagenet": Spec("imagenet", 1000, "imagenet", None, None, None),
}


class DataNotFoundError(FileNotFoundError):
    """A data set that is neither on disk nor downloadable from here."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a data set was found: ``kind`` is ``"imagefolder"`` or ``"torchvision"``."""

    kind: str
    path: Path
    status: str  # "found offline" | "cached" | "downloaded"


@dataclasses.dataclass
class ImageData:
    """One split in memory: ``images`` uint8 ``[N, 3, H, W]``, ``labels`` int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    description: str

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "ImageData":
        return dataclasses.replace(self, images=self.images.to(device), labels=self.labels.to(device))


# --------------------------------------------------------------------------- finding


def _spec(name: str) -> Spec:
    if name not in SPECS:
        raise ValueError(f"unknown data set {name!r}; valid: {', '.join(SPECS)}")
    return SPECS[name]


def _is_imagefolder(path: Path) -> bool:
    return (path / "train").is_dir() and ((path / "test").is_dir() or (path / "val").is_dir())


def _candidates(spec: Spec, root: Path | None = None) -> list[tuple[str, Path, str]]:
    """(kind, path, status) places to look, in order."""
    if spec.name == "imagenet":
        given = root or Path(os.environ.get("RANKBOOK_IMAGENET", paths.data_root() / "imagenet"))
        return [("imagefolder", Path(given), "found offline")]
    data, cache = paths.data_root(), paths.cache_root()
    return [("imagefolder", data / spec.folder, "found offline"),
            ("archive", data / spec.archive, "found offline"),
            ("torchvision", data / spec.torchvision_folder, "found offline"),
            ("imagefolder", cache / spec.folder, "cached"),
            ("torchvision", cache / spec.torchvision_folder, "cached")]


def _present(kind: str, path: Path) -> bool:
    if kind == "imagefolder":
        return _is_imagefolder(path)
    if kind == "archive":
        return path.is_file()
    return path.is_dir()


def _first_present(spec: Spec, root: Path | None = None) -> tuple[str, Path, str] | None:
    return next(((k, p, s) for k, p, s in _candidates(spec, root) if _present(k, p)), None)


def fingerprint(name: str, download: bool = True, root: Path | None = None) -> str:
    """``"sha256:<16 hex>"`` of the source :func:`locate` would use for data set ``name``.

    The source is the offline archive file (the sha256 of its bytes), an
    ImageFolder tree, or torchvision's folder of pickles, hashed without
    unpacking or decoding anything, once; later calls are served from the
    cache by size and mtime (:mod:`rankbook.store.fingerprints`). A data set
    found nowhere is downloaded when allowed, else :class:`DataNotFoundError`.
    """
    spec = _spec(name)
    found = _first_present(spec, root)
    path = found[1] if found else locate(name, download=download, root=root).path
    return fingerprints.fingerprint(path)


def locate(name: str, download: bool = True, root: Path | None = None) -> Source:
    """Find data set ``name`` (see the module doc for the order); unpack or download if needed."""
    spec = _spec(name)
    candidates = _candidates(spec, root)
    for kind, path, status in candidates:
        if not _present(kind, path):
            continue
        if kind == "archive":
            return Source("imagefolder", unpack_archive(path, paths.cache_root() / spec.folder), status)
        return Source(kind, path, status)
    if download and spec.torchvision_class:
        try:
            _torchvision_dataset(spec, paths.cache_root(), train=True, download=True)
            _torchvision_dataset(spec, paths.cache_root(), train=False, download=True)
            return Source("torchvision", paths.cache_root() / spec.torchvision_folder, "downloaded")
        except Exception as exc:  # no network, a proxy, a half download: all end in the same advice
            raise DataNotFoundError(_missing_message(spec, candidates, f"the download failed: {exc}")) from exc
    raise DataNotFoundError(_missing_message(spec, candidates, "downloading is off" if spec.torchvision_class
                                             else "it cannot be downloaded automatically"))


def _missing_message(spec: Spec, candidates, why: str) -> str:
    looked = "\n".join(f"  - {p}" for _, p, _ in candidates)
    if spec.name == "imagenet":
        fix = ("Put ImageNet in the ImageFolder layout root/{train,val}/<class>/* and pass its path, "
               "or set RANKBOOK_IMAGENET to it.")
    else:
        fix = (f"Fix it either way: (1) set RANKBOOK_DATA to a folder holding an offline copy "
               f"({spec.folder}/ as root/{{train,test}}/<class>/*, {spec.archive}, or torchvision's "
               f"{spec.torchvision_folder}/); or (2) run on a machine with internet access so that "
               f"torchvision.datasets.{spec.torchvision_class} can download it into {paths.cache_root()}.")
    return f"data set {spec.name!r} not found ({why}). Looked in:\n{looked}\n{fix}"


def unpack_archive(archive: Path, target: Path) -> Path:
    """Unpack ``archive`` (whose top folder is ``target.name``) to ``target`` once, atomically."""
    if _is_imagefolder(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        inner = tmp / target.name
        if not _is_imagefolder(inner):
            raise DataNotFoundError(f"{archive} does not hold {target.name}/{{train,test}}/<class>/*")
        try:
            os.replace(inner, target)  # one rename: a reader never sees half a tree
        except OSError:
            if not _is_imagefolder(target):  # another process won the race: fine; anything else: raise
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _online(host: str = "www.cs.toronto.edu", timeout: float = 1.5) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def describe_available() -> list[dict[str, str]]:
    """Status of each data set for the setup chapter: dataset, status, location."""
    rows, online = [], None
    for spec in SPECS.values():
        found = [(k, p, s) for k, p, s in _candidates(spec) if _present(k, p)]
        if found:
            kind, path, status = found[0]
            rows.append({"dataset": spec.name, "status": status, "location": str(path)})
            continue
        if spec.torchvision_class:
            online = _online() if online is None else online
            status = "will download" if online else "missing"
            where = f"torchvision.datasets.{spec.torchvision_class} → {paths.cache_root()}"
        else:
            status, where = "missing", "an ImageFolder path you provide (RANKBOOK_IMAGENET)"
        rows.append({"dataset": spec.name, "status": status, "location": where})
    return rows


# --------------------------------------------------------------------------- reading


def _torchvision_dataset(spec: Spec, parent: Path, train: bool, download: bool):
    import torchvision.datasets

    cls = getattr(torchvision.datasets, spec.torchvision_class)
    return cls(str(parent), train=train, download=download)


def _list_imagefolder(split_dir: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    if not classes:
        raise DataNotFoundError(f"{split_dir} has no class folders")
    files, labels = [], []
    for i, c in enumerate(classes):
        found = sorted(p for p in (split_dir / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [i] * len(found)
    return files, np.asarray(labels, dtype=np.int64), classes


def stratified_subset(labels: np.ndarray, count: int | None, seed: int) -> np.ndarray:
    """Indices of ``count`` examples, as equal per class as possible, chosen by ``seed``; all when None."""
    labels = np.asarray(labels)
    if count is None or count == len(labels):
        return np.arange(len(labels))
    if count <= 0:
        raise ValueError(f"subset size must be positive, got {count}")
    if count > len(labels):
        raise ValueError(f"a subset of {count} examples was requested but the split has only {len(labels)}; "
                         f"ask for at most {len(labels)}, or 0 in the settings for the whole split")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = np.full(len(classes), count // len(classes))
    per_class[rng.permutation(len(classes))[: count % len(classes)]] += 1  # spread the remainder
    chosen = []
    for c, k in zip(classes, per_class):
        members = np.flatnonzero(labels == c)
        if k > len(members):
            raise ValueError(f"class {c} has only {len(members)} examples, {k} requested")
        chosen.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen))


def _decode(files: list[Path], image_size: int) -> torch.Tensor:
    from PIL import Image

    out = torch.empty(len(files), 3, image_size, image_size, dtype=torch.uint8)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            im = im.convert("RGB")
            if im.size != (image_size, image_size):
                im = im.resize((image_size, image_size), Image.BILINEAR)
            out[i] = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
    return out


def _read_split(source: Source, spec: Spec, split: str, subset: int | None, seed: int, image_size: int
                ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if source.kind == "torchvision":
        ds = _torchvision_dataset(spec, source.path.parent, train=split == "train", download=False)
        labels = np.asarray(ds.targets, dtype=np.int64)
        idx = stratified_subset(labels, subset, seed)
        images = torch.from_numpy(ds.data[idx]).permute(0, 3, 1, 2).contiguous()
        return images, torch.from_numpy(labels[idx]), list(ds.classes)
    split_dir = source.path / split
    if split == "test" and not split_dir.is_dir():
        split_dir = source.path / "val"  # ImageNet names its held-out split "val"
    files, labels, classes = _list_imagefolder(split_dir)
    idx = stratified_subset(labels, subset, seed)
    return _decode([files[i] for i in idx], image_size), torch.from_numpy(labels[idx]), classes


def load_split(name: str, split: str, subset: int | None = None, seed: int = 0, image_size: int = 32,
               download: bool = True, root: Path | None = None) -> ImageData:
    """Split ``"train"`` or ``"test"`` of data set ``name`` as uint8 tensors, decoded once and cached."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    spec = _spec(name)
    source = locate(name, download=download, root=root)
    key = hashlib.sha256(f"{name}|{source.kind}|{source.path}|{split}|{subset}|{seed}|{image_size}".encode()
                         ).hexdigest()[:16]
    cached = paths.cache_root() / "tensors" / f"{name}-{split}-{subset or 'all'}-{key}.pt"
    desc = f"{name} {split} ({'all' if subset is None else f'{subset}, stratified, seed {seed}'}; from {source.path})"
    if cached.exists():
        blob = torch.load(cached, weights_only=True)
        return ImageData(blob["images"], blob["labels"], blob["classes"], desc)
    images, labels, classes = _read_split(source, spec, split, subset, seed, image_size)
    atomic.write_with(cached, lambda tmp: torch.save({"images": images, "labels": labels, "classes": classes}, tmp))
    return ImageData(images, labels, classes, desc)


# --------------------------------------------------------------------------- on-device transforms


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images ``[N, 3, H, W]`` in [0, 1] units."""
    x = images.float().div_(255)
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` → float, standardized per channel."""
    x = images.float().div_(255)
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def augment(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop after ``padding`` zero pixels each side, then a random horizontal flip (tensor ops only)."""
    b, c, h, w = images.shape
    dev = images.device
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=dev)
    rows = offsets[0, :, None] + torch.arange(h, device=dev)  # [B, H]
    cols = offsets[1, :, None] + torch.arange(w, device=dev)  # [B, W]
    batch = torch.arange(b, device=dev)[:, None, None]
    crops = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    flip = torch.rand(b, generator=generator, device=dev) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), crops.flip(-1), crops)


AUGMENTATIONS: dict[str, Callable | None] = {"none": None, "crop_flip": augment}

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
the source's content fingerprint, split, subset size and seed (an edited
source is never served from an old cache). A cache file that is damaged is
decoded again, an unpacked copy that fails to decode is unpacked again; a
cache that cannot be written (read-only, full disk) only costs decoding next
time. The train and test splits of an ImageFolder tree
must hold the same class folders (labels are indices into the sorted list).

Training then works on tensors already on the device: :func:`augment`
(random crop with 4-pixel zero padding and horizontal flip, the usual CIFAR
augmentation) and :func:`normalize` are tensor ops, so no per-step PIL or
DataLoader work.
"""
from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rankbook.data import sources
from rankbook.data.sources import (  # noqa: F401 (public here)
    SPECS,
    DataNotFoundError,
    LayoutError,
    Source,
    Spec,
    _online,
    describe_available,
    fingerprint,
    locate,
    unpack_archive,
)
from rankbook.store import atomic, errors, fingerprints, paths

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DamagedFileError = errors.DamagedFileError


class ClassListError(ValueError):
    """Train and test splits of an ImageFolder tree with different class folders."""


@dataclasses.dataclass
class ImageData:
    """One split in memory: ``images`` uint8 ``[N, 3, H, W]``, ``labels`` int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    description: str
    fingerprint: str = ""  # of the data set's source (:func:`fingerprint`), for results manifests

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "ImageData":
        return dataclasses.replace(self, images=self.images.to(device), labels=self.labels.to(device))


_spec = sources.spec  # older private names, kept for callers that used them
_is_imagefolder = sources.is_imagefolder


# --------------------------------------------------------------------------- reading


def _split_dir(root: Path, split: str) -> Path:
    if split == "test" and not (root / "test").is_dir():
        return root / "val"  # ImageNet names its held-out split "val"
    return root / split


def _class_names(split_dir: Path) -> list[str]:
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def check_classes(root: Path) -> list[str]:
    """The class list of an ImageFolder tree; an error when its train and test splits disagree."""
    train_dir, test_dir = _split_dir(root, "train"), _split_dir(root, "test")
    train, test = _class_names(train_dir), _class_names(test_dir)
    if train != test:
        only_train = sorted(set(train) - set(test)) or ["none"]
        only_test = sorted(set(test) - set(train)) or ["none"]
        raise ClassListError(
            f"the class folders of {train_dir} ({len(train)}) and {test_dir} ({len(test)}) differ; "
            f"only in train: {', '.join(only_train[:10])}; "
            f"only in {test_dir.name}: {', '.join(only_test[:10])}. "
            f"Labels are positions in the sorted class list, so a missing class would shift every label. "
            f"Fix: give both splits the same class folders (copy the missing ones, with their images).")
    return train


def _list_imagefolder(split_dir: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    if not split_dir.is_dir():
        raise DataNotFoundError(f"{split_dir} does not exist; an ImageFolder tree needs "
                                f"{split_dir.parent}/{{train,test}}/<class>/*")
    classes = _class_names(split_dir)
    if not classes:
        raise DataNotFoundError(f"{split_dir} has no class folders")
    files, labels = [], []
    for i, c in enumerate(classes):
        found = sorted(p for p in (split_dir / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataNotFoundError(f"the class folder {split_dir / c} holds no images "
                                    f"({', '.join(IMAGE_SUFFIXES)}); put its images there or remove the "
                                    f"class from both splits")
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


def _decode(files: list[Path], image_size: int, origin: str) -> torch.Tensor:
    from PIL import Image

    out = torch.empty(len(files), 3, image_size, image_size, dtype=torch.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("RGB")
                if im.size != (image_size, image_size):
                    im = im.resize((image_size, image_size), Image.BILINEAR)
                out[i] = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise DamagedFileError(f"{f} cannot be decoded as an image ({type(exc).__name__}: {exc}). "
                                   f"Fix: {origin}") from exc
    return out


def _damaged_image_fix(source: Source) -> str:
    marker = source.path / sources.MARKER
    if marker.is_file():  # unpacked from an archive: the damage is in the archive
        return ("the archive it was unpacked from is damaged; copy the archive again from its source "
                f"(it will be unpacked again), or delete {source.path}")
    return "replace that file with an intact copy, or delete it"


def _read_split(source: Source, spec: Spec, split: str, subset: int | None, seed: int, image_size: int
                ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if source.kind == "torchvision":
        try:
            ds = sources._torchvision_dataset(spec, source.path.parent, split == "train", download=False)
        except Exception as exc:  # torchvision checks the files' md5 sums: a damaged or partial copy
            raise DamagedFileError(
                f"torchvision's folder {source.path} is damaged or incomplete ({type(exc).__name__}: {exc}). "
                f"Fix: delete it (it is downloaded again when online), or copy it again from a complete "
                f"download") from exc
        labels = np.asarray(ds.targets, dtype=np.int64)
        sources.check_layout(spec.name, split, list(ds.classes), labels, source.path)
        idx = stratified_subset(labels, subset, seed)
        images = torch.from_numpy(ds.data[idx]).permute(0, 3, 1, 2).contiguous()
        return images, torch.from_numpy(labels[idx]), list(ds.classes)
    check_classes(source.path)
    files, labels, classes = _list_imagefolder(_split_dir(source.path, split))
    sources.check_layout(spec.name, split, classes, labels, _split_dir(source.path, split))
    idx = stratified_subset(labels, subset, seed)
    images = _decode([files[i] for i in idx], image_size, _damaged_image_fix(source))
    return images, torch.from_numpy(labels[idx]), classes


def _portable(path: Path) -> str:
    """``path`` relative to ``$RANKBOOK_DATA`` / ``$RANKBOOK_CACHE`` where it lies there (for manifests)."""
    from rankbook.store import inputs

    var, rel = inputs.relative_to_roots(Path(path).resolve())
    return f"${var}/{rel}" if var else str(path)


def _read_cache(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]] | None:
    """A decoded split from the tensor cache; None (and the file removed) when missing or damaged."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        images, labels, classes = blob["images"], blob["labels"], list(blob["classes"])
        ok = (images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1] == 3
              and labels.shape == (len(images),) and all(isinstance(c, str) for c in classes))
        if ok:
            return images, labels, classes
        problem = "unexpected contents"
    except Exception as exc:  # truncated, or not a tensor file at all: it is derived, so decode again
        problem = f"{type(exc).__name__}: {exc}"
    warnings.warn(f"the decoded-image cache {path} is damaged ({problem}); decoding the images again",
                  stacklevel=3)
    try:
        path.unlink()
    except OSError:
        pass  # read-only cache: it is simply not used
    return None


def _write_cache(path: Path, images: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> bool:
    try:
        atomic.write_with(path, lambda tmp: torch.save({"images": images, "labels": labels,
                                                        "classes": classes}, tmp))
        return True
    except OSError as exc:  # full disk, read-only cache: the data is in memory; only caching is lost
        warnings.warn(f"{exc}; the decoded images are not cached, so they will be decoded again next time",
                      stacklevel=3)
        return False


def load_split(name: str, split: str, subset: int | None = None, seed: int = 0, image_size: int = 32,
               download: bool = True, root: Path | None = None) -> ImageData:
    """Split ``"train"`` or ``"test"`` of data set ``name`` as uint8 tensors, decoded once and cached."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    spec = sources.spec(name)
    atomic.sweep_once(paths.cache_root())  # temporaries of runs killed earlier
    source = locate(name, download=download, root=root)
    key = hashlib.sha256(f"{name}|{source.kind}|{source.fingerprint}|{split}|{subset}|{seed}|{image_size}"
                         .encode()).hexdigest()[:16]
    version = f"{name}-{source.fingerprint[len(fingerprints.PREFIX):]}-"
    cached = paths.cache_root() / "tensors" / f"{version}{split}-{subset or 'all'}-{key}.pt"
    desc = (f"{name} {split} ({'all' if subset is None else f'{subset}, stratified, seed {seed}'}; "
            f"from {_portable(source.path)}, {source.fingerprint})")
    found = _read_cache(cached)
    if found is not None:  # decoded before layouts were checked? then read the source again (it is named)
        try:
            sources.check_layout(name, split, found[2], found[1].numpy() if subset is None else None, cached)
        except sources.LayoutError:
            found = None
    if found is None:
        try:
            found = _read_split(source, spec, split, subset, seed, image_size)
        except (DamagedFileError, DataNotFoundError, ClassListError, sources.LayoutError) as exc:
            if not (source.path / sources.MARKER).is_file():
                raise  # the user's own files: only the user can fix them
            # an unpacked copy is derived data: unpack it again (a second failure blames the archive)
            warnings.warn(f"{exc}\n{source.path} was unpacked from an archive: unpacking it again",
                          stacklevel=2)
            (source.path / sources.MARKER).unlink()
            source = locate(name, download=download, root=root)
            found = _read_split(source, spec, split, subset, seed, image_size)
        if _write_cache(cached, *found):  # decoded tensors of earlier versions of the data set go
            fingerprints.remove_superseded(cached.parent, f"{name}-*.pt", version)
    return ImageData(*found, desc, source.fingerprint)


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
    """Random crop after ``padding`` zero pixels each side, then a random horizontal flip (tensor ops)."""
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

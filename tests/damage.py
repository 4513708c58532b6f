"""Ways to damage files and folders, for the bad-input table: each returns what the user's call returns.

Every helper takes ``(tmp_path, monkeypatch)`` and does what a user (or a
killed run, a full disk, a bad copy) would do, then the call the user makes.
"""
from __future__ import annotations

import errno
import io
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
from PIL import Image

from rankbook.data import images, text
from rankbook.store import paths, results

CLASSES = ("cat", "dog", "frog")


def dead_pid() -> int:
    """The pid of a process that has exited (a killed run's)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def offline_dirs(tmp_path, monkeypatch):
    data_dir, cache = tmp_path / "data", tmp_path / "cache"
    data_dir.mkdir(exist_ok=True)
    monkeypatch.setenv("RANKBOOK_DATA", str(data_dir))
    monkeypatch.setenv("RANKBOOK_CACHE", str(cache))
    tiny_layouts(monkeypatch)
    return data_dir, cache


def tiny_layouts(monkeypatch, layouts=None):
    """Tiny trees stand in for CIFAR-10: check them against ``layouts`` (default: no known layout)."""
    from rankbook.data import sources

    monkeypatch.setattr(sources, "LAYOUTS", layouts or {})


def write_tree(root, per_class=(2, 1), classes=CLASSES, value=0):
    """A tiny ImageFolder tree of 8x8 PNGs (pixel value ``value`` plus the class index)."""
    for split, n in zip(("train", "test"), per_class):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.full((8, 8, 3), value + c, dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i:04d}.png")
    return root


def write_archive(tmp_path, data_dir, value=0):
    src = write_tree(tmp_path / f"src{value}" / "cifar10-jpeg", value=value)
    archive = data_dir / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar10-jpeg")
    return archive


def truncated_archive(tmp_path, monkeypatch):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    archive = write_archive(tmp_path, data_dir)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return images.locate("cifar10", download=False)


def zip_renamed_tar_gz(tmp_path, monkeypatch):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("cifar10-jpeg/train/cat/0000.png", b"not really")
    (data_dir / "cifar10-jpeg.tar.gz").write_bytes(buffer.getvalue())
    return images.locate("cifar10", download=False)


def archive_of_another_layout(tmp_path, monkeypatch):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    src = write_tree(tmp_path / "src" / "images")
    with tarfile.open(data_dir / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="images")
    return images.locate("cifar10", download=False)


def corrupt_jpeg(tmp_path, monkeypatch):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    tree = write_tree(data_dir / "cifar10-jpeg")
    good = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good, format="JPEG")
    (tree / "train" / "dog" / "0001.jpg").write_bytes(good.getvalue()[:40])  # header only: truncated
    return images.load_split("cifar10", "train", download=False)


def split_missing_a_class(tmp_path, monkeypatch):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    tree = write_tree(data_dir / "cifar10-jpeg")
    for f in (tree / "test" / "frog").iterdir():
        f.unlink()
    (tree / "test" / "frog").rmdir()
    return images.load_split("cifar10", "test", download=False)


def empty_class_folder(tmp_path, monkeypatch):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    tree = write_tree(data_dir / "cifar10-jpeg")
    for f in (tree / "train" / "dog").iterdir():
        f.unlink()
    return images.load_split("cifar10", "train", download=False)


def _text_file(tmp_path, monkeypatch, content: bytes):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    (data_dir / "wikitext-2").mkdir()
    (data_dir / "wikitext-2" / "valid.txt").write_bytes(content)
    return text.load_tokens("wikitext-2", "valid", "bytes")


def latin1_text(tmp_path, monkeypatch):
    return _text_file(tmp_path, monkeypatch, " = Pokémon Red = \n".encode("latin-1"))


def empty_text(tmp_path, monkeypatch):
    return _text_file(tmp_path, monkeypatch, b"\n \n")


def data_setting_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "data.tar.gz").write_bytes(b"x")
    monkeypatch.setenv("RANKBOOK_DATA", str(tmp_path / "data.tar.gz"))
    return paths.data_root()


def _saved(tmp_path):
    folder = tmp_path / "run"
    results.save(folder, {"lr": 1.0}, {"x": np.arange(3.0), "y": np.ones(2)}, wall_s=0.0, device="cpu")
    return folder


def truncated_manifest(tmp_path, monkeypatch):
    folder = _saved(tmp_path)
    manifest = folder / results.MANIFEST
    manifest.write_text(manifest.read_text()[:50])
    return results.load(folder)


def manifest_without_config(tmp_path, monkeypatch):
    folder = _saved(tmp_path)
    (folder / results.MANIFEST).write_text("[]")
    return results.load(folder)


def truncated_arrays(tmp_path, monkeypatch):
    folder = _saved(tmp_path)
    arrays = folder / results.ARRAYS
    arrays.write_bytes(arrays.read_bytes()[:100])
    return results.load(folder)


def empty_arrays(tmp_path, monkeypatch):
    folder = _saved(tmp_path)
    (folder / results.ARRAYS).write_bytes(b"")
    return results.load(folder)


def array_missing_from_file(tmp_path, monkeypatch):
    folder = _saved(tmp_path)
    np.savez(folder / results.ARRAYS, x=np.arange(3.0))  # "y" is listed in the manifest but gone
    return results.load(folder)


def array_never_saved(tmp_path, monkeypatch):
    return results.load(_saved(tmp_path)).arrays["stable_rank"]


def disk_full(tmp_path, monkeypatch):
    def no_space(tmp, arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "_savez", no_space)
    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "build"))
    return results.save(results.run_dir("vit", {"lr": 1.0}), {"lr": 1.0}, {"x": np.zeros(2)}, wall_s=0.0,
                        device="cpu")


def read_only(monkeypatch, folder):
    """Make writes under ``folder`` fail as on a read-only file system (chmod does not stop root)."""
    folder = pathlib.Path(folder).resolve()

    def guard(original):
        def call(path, *args, **kwargs):
            if pathlib.Path(path).resolve().is_relative_to(folder):
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return original(path, *args, **kwargs)
        return call

    for name in ("mkdir", "touch", "unlink", "write_text", "write_bytes"):
        monkeypatch.setattr(pathlib.Path, name, guard(getattr(pathlib.Path, name)))
    import os
    import shutil
    monkeypatch.setattr(os, "replace", guard(os.replace))
    monkeypatch.setattr(shutil, "rmtree", guard(shutil.rmtree))


def read_only_build(tmp_path, monkeypatch):
    build = tmp_path / "build"
    build.mkdir()
    monkeypatch.setenv("RANKBOOK_BUILD", str(build))
    read_only(monkeypatch, build)
    return paths.output_dir("fast", "04_vit_spectra")


def unpack_into_read_only_cache(tmp_path, monkeypatch):
    data_dir, cache = offline_dirs(tmp_path, monkeypatch)
    write_archive(tmp_path, data_dir)
    cache.mkdir()
    read_only(monkeypatch, cache)
    return images.locate("cifar10", download=False)


def stale_unpack_in_read_only_cache(tmp_path, monkeypatch):
    data_dir, cache = offline_dirs(tmp_path, monkeypatch)
    write_archive(tmp_path, data_dir, value=0)
    images.locate("cifar10", download=False)  # unpacked, marked with this archive's fingerprint
    write_archive(tmp_path, data_dir, value=5)  # the archive changed since
    read_only(monkeypatch, cache)
    return images.locate("cifar10", download=False)


def disk_full_under_torch_save(tmp_path, monkeypatch):
    import collections
    import shutil

    import torch

    def torch_on_a_full_disk(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", torch_on_a_full_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9, 0))
    from rankbook.training import checkpoint

    return checkpoint.save(tmp_path / "run" / "checkpoint.pt", {"config": {}})


def damaged_torchvision_folder(tmp_path, monkeypatch):
    _, cache = offline_dirs(tmp_path, monkeypatch)
    folder = cache / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "data_batch_1").write_bytes(b"half a pickle")
    return images.load_split("cifar10", "train", download=False)


def arrays_deleted(tmp_path, monkeypatch):
    folder = _saved(tmp_path)
    (folder / results.ARRAYS).unlink()
    return results.load(folder)


def results_root_is_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "build"))
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "results").write_text("I am a file")
    return results.save(results.run_dir("vit", {"lr": 1.0}), {"lr": 1.0}, {"x": np.zeros(2)}, wall_s=0.0,
                        device="cpu")


def damaged_wikitext103_download(tmp_path, monkeypatch):
    offline_dirs(tmp_path, monkeypatch)

    def truncated_download(url, dest):
        dest.write_bytes(b"PK\x03\x04 and then the connection dropped")

    monkeypatch.setattr(text, "_fetch", truncated_download)
    return text.locate("wikitext-103", "train")

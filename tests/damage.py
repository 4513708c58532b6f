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


# --------------------------------------------------------------------------- issue 22


class CommandFailed(Exception):
    """A command line that exited non-zero: its stderr and exit code (a traceback in it fails the row)."""


def command(main, argv):
    """Run a ``main(argv)`` as the shell would; CommandFailed(stderr + exit code) when it exits non-zero."""
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    text_err = err.getvalue()
    assert "Traceback" not in text_err, text_err
    if code:
        raise CommandFailed(f"{text_err.strip()} (exit {code})")
    return code


def rankbook_cli(*argv):
    from rankbook.book import cli

    return command(cli.main, list(argv))


def trainer(*argv):
    from rankbook.training import __main__ as training_main

    return command(training_main.main, list(argv))


def tiny_cifar10_layout(monkeypatch, per_class=(2, 1)):
    """A known layout for the tiny trees: classes cat, dog, frog; 2 training and 1 test image each."""
    from rankbook.data import sources

    tiny_layouts(monkeypatch, {"cifar10": sources.Layout(CLASSES, len(CLASSES),
                                                        {"train": per_class[0], "test": per_class[1]})})


def cifar10_missing_a_class(tmp_path, monkeypatch):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    tiny_cifar10_layout(monkeypatch)
    write_tree(data_dir / "cifar10-jpeg", classes=CLASSES[:2])  # frog gone from both splits
    return images.load_split("cifar10", "train", download=False)


def cifar10_with_an_extra_class(tmp_path, monkeypatch):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    tiny_cifar10_layout(monkeypatch)
    write_tree(data_dir / "cifar10-jpeg", classes=(*CLASSES, "zebra"))
    return images.load_split("cifar10", "test", download=False)


def cifar10_missing_an_image(tmp_path, monkeypatch):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    tiny_cifar10_layout(monkeypatch)
    tree = write_tree(data_dir / "cifar10-jpeg")
    (tree / "train" / "dog" / "0001.png").unlink()
    return images.load_split("cifar10", "train", download=False)


def real_cifar10_layout_of_a_tiny_tree(tmp_path, monkeypatch):
    """The table's real layout (10 classes, 5,000/1,000 per class) against a 3-class tree."""
    from rankbook.data import sources

    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    monkeypatch.setattr(sources, "LAYOUTS", {"cifar10": sources.LAYOUTS_KNOWN["cifar10"]})
    write_tree(data_dir / "cifar10-jpeg", classes=("cat", "dog", "frog"))
    return images.load_split("cifar10", "test", download=False)


def train_without_test(tmp_path, monkeypatch):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    tree = write_tree(data_dir / "cifar10-jpeg")
    import shutil

    shutil.rmtree(tree / "test")
    return images.load_split("cifar10", "train", download=False)


def symlink_loop_in_the_data(tmp_path, monkeypatch):
    data_dir, _ = offline_dirs(tmp_path, monkeypatch)
    tree = write_tree(data_dir / "cifar10-jpeg")
    (tree / "train" / "cat" / "again").symlink_to(tree / "train")
    return images.fingerprint("cifar10", download=False)


def arrays_swapped_between_runs(tmp_path, monkeypatch):
    a = results.save(tmp_path / "run", {"lr": 1.0}, {"x": np.arange(3.0)}, wall_s=0.0, device="cpu")
    b = results.save(tmp_path / "other", {"lr": 2.0}, {"x": np.arange(3.0) + 1}, wall_s=0.0, device="cpu")
    (b.path / results.ARRAYS).replace(a.path / results.ARRAYS)
    return results.load(a.path)


def nan_in_stored_arrays(tmp_path, monkeypatch):
    steps = np.arange(4)
    loss = np.array([np.nan, 2.0, 1.0, 0.5])  # NaN at step 0 is normal (no loss yet)
    folder = results.save(tmp_path / "run", {"lr": 1.0}, {"step": steps, "train_loss": loss},
                          wall_s=0.0, device="cpu").path
    loss[2] = np.nan
    np.savez(folder / results.ARRAYS, step=steps, train_loss=loss)
    manifest = results.read_manifest(folder)
    manifest["sha256"] = {results.ARRAYS: results.sha256_file(folder / results.ARRAYS)}  # an honest checksum
    (folder / results.MANIFEST).write_text(__import__("json").dumps(manifest))
    return results.load(folder)


def read_only_build_under_run(tmp_path, monkeypatch):
    build = tmp_path / "build"
    build.mkdir()
    monkeypatch.setenv("RANKBOOK_BUILD", str(build))
    read_only(monkeypatch, build)
    return rankbook_cli("run", "--no-progress", "00_setup")


def build_setting_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "build").write_text("a file")
    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "build"))
    return rankbook_cli("run", "--no-progress", "00_setup")


def run_without_the_book_tools(tmp_path, monkeypatch):
    from rankbook.book import cli

    monkeypatch.setitem(cli.NEEDS, "run", ("yaml", "rankbook_no_such_module"))
    return rankbook_cli("run", "00_setup")


def build_without_jupyter_book(tmp_path, monkeypatch):
    from rankbook.book import site

    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return site.jupyter_book_command()


def foreign_python3_kernel(tmp_path, monkeypatch):
    import json

    from rankbook.book import runner

    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["/opt/other/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")  # the user's folder first (the default outside a venv)
    return runner.check_kernel()


def full_disk_under_run(tmp_path, monkeypatch):
    import nbformat

    def no_space(nb, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "build"))
    monkeypatch.setattr(nbformat, "write", no_space)
    return rankbook_cli("run", "--no-progress", "00_setup")


# --------------------------------------------------------------------------- issue 22: further faults found


def arrays_of_another_shape_in_an_old_manifest(tmp_path, monkeypatch):
    """Another run's arrays under a manifest written before checksums: the listed shapes still tell."""
    import json

    folder = _saved(tmp_path)
    manifest = json.loads((folder / results.MANIFEST).read_text())
    del manifest["sha256"]
    (folder / results.MANIFEST).write_text(json.dumps(manifest))
    np.savez(folder / results.ARRAYS, x=np.arange(5.0), y=np.ones(2))
    return results.load(folder)


def lfs_pointer_arrays(tmp_path, monkeypatch):
    folder = _saved(tmp_path)
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n"
    (folder / results.ARRAYS).write_text(pointer)
    return results.load(folder)


def manifest_with_a_bad_checksum_field(tmp_path, monkeypatch):
    import json

    folder = _saved(tmp_path)
    manifest = json.loads((folder / results.MANIFEST).read_text())
    manifest["sha256"] = "yes"
    (folder / results.MANIFEST).write_text(json.dumps(manifest))
    return results.load(folder)


def export_onto_the_results_folder(tmp_path, monkeypatch):
    """--export naming the folder the runs are in: a copy onto itself (shutil.SameFileError before)."""
    from rankbook.training import __main__ as training_main

    folder = results.save(tmp_path / "results" / "demo-abc", {"lr": 1.0}, {"x": np.arange(3.0)}, wall_s=0.0,
                          device="cpu")
    monkeypatch.setattr(training_main, "vit_runs", lambda *a, **k: [{}])
    monkeypatch.setattr(training_main.vit, "run", lambda settings, **r: folder)
    return trainer("vit", "--export", str(tmp_path / "results"))

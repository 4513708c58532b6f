"""The table of bad inputs a reader can give the book, and the clear error each one gets.

Each row: what the reader does, the call, the exception type, and a pattern the
message must match (it must say what is wrong and, where there is a choice,
what the valid choices are or how to fix it).
"""
from __future__ import annotations

import damage
import numpy as np
import pytest

from rankbook.book import cli, runner
from rankbook.data import images as data
from rankbook.data import text
from rankbook.models import vit
from rankbook.settings import profiles
from rankbook.settings import toy as toy_settings
from rankbook.settings import vit as vit_profiles
from rankbook.store import errors, paths, results
from rankbook.training import checkpoint, loop, schedule


def _select_vit(**overrides):
    return profiles.select(vit_profiles.PROFILES, "fast", **overrides)


def _select_toy(**overrides):
    return profiles.select(toy_settings.PROFILES, "fast", **overrides)


def _lm_run(profile: str, **overrides):
    from rankbook.settings import lm as lm_settings
    from rankbook.training import lm

    return lm.run(profiles.select(lm_settings.PROFILES, profile, **overrides), 0, progress=False)


def _tiny_wikitext(tmp_path, monkeypatch):
    damage._text_file(tmp_path, monkeypatch, b" = A = \n" * 300)
    for split in ("train", "test"):
        (tmp_path / "data" / "wikitext-2" / f"{split}.txt").write_bytes(b" = A = \n" * 300)


def _bpe_missing(tmp_path, monkeypatch):
    _tiny_wikitext(tmp_path, monkeypatch)

    def offline():
        raise OSError("no network")

    monkeypatch.setattr(text, "_bpe_from_hub", offline)
    return _lm_run("reference")


def _missing_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKBOOK_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("RANKBOOK_CACHE", str(tmp_path / "cache"))
    return data.locate("cifar100", download=False)


def _different_config(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    results.save(folder, {"lr": 1e-4}, {"x": np.zeros(2)}, wall_s=0.0, device="cpu")
    return results.save(folder, {"lr": 1e-3}, {"x": np.ones(2)}, wall_s=0.0, device="cpu")


def _truncated_checkpoint(tmp_path, monkeypatch):
    import torch

    path = tmp_path / "checkpoint.pt"
    torch.save({"config": {"lr": 1.0}, "model": {"w": torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    return checkpoint.load(path)


def _foreign_checkpoint(tmp_path, monkeypatch):
    import torch

    path = tmp_path / "checkpoint.pt"
    torch.save([1, 2, 3], path)
    return checkpoint.load(path)


def _pickled_object_checkpoint(tmp_path, monkeypatch):
    import pickle

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"config": {}, "model": _Payload()}))
    return checkpoint.load(path)


class _Payload:  # an arbitrary object: weights_only loading must refuse to unpickle it
    pass


# ----------------------------------------------------------------- issue 22, round 3 (B21, B83, B99, ...)


def _paper_vit_on_a_cpu_without(missing, monkeypatch, found=None):
    """Chapter 04's call under ``paper`` on a CPU, with the data sets in ``missing`` absent (no download)."""
    from rankbook.training import vit as vit_training

    asked = [] if found is None else found

    def fingerprint(name, download=True):
        asked.append(name)
        if name in missing:
            raise data.DataNotFoundError(f"data set {name!r} not found")
        return "sha256:0123456789abcdef"

    monkeypatch.setattr(data, "fingerprint", fingerprint)
    monkeypatch.delenv("RANKBOOK_ALLOW_SLOW", raising=False)
    monkeypatch.setattr(loop, "fit", lambda task, **kw: ("fit", task.dataset))
    settings = profiles.select(vit_profiles.PROFILES, "paper").replace(device="cpu")
    return vit_training.run(settings, "cifar10", 1.0, 0)


def _setup_cell_unreachable(tmp_path, monkeypatch):
    """B99: the chapters' setup cell (as rankbook.book.colab writes it) where rankbook is missing and the
    repository cannot be reached (pip offline, a git address nobody answers)."""
    import os
    import subprocess
    import sys

    from rankbook.book import colab

    cell = colab.setup_cell().replace('find_spec("rankbook")', 'find_spec("rankbook_not_installed_here")')
    script = tmp_path / "cell.py"
    script.write_text(cell)
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", GIT_TERMINAL_PROMPT="0",
               RANKBOOK_INSTALL="rankbook @ git+https://127.0.0.1:9/nobody/rankbook.git@main")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    raise damage.CommandFailed(done.stderr.strip().splitlines()[-1])


def _full_disk_between_cells(tmp_path, monkeypatch):
    """A20 (seen live on a 256 KiB tmpfs): papermill saving the notebook between cells hits a full disk."""
    import errno

    import papermill

    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "build"))

    def execute_notebook(path, *args, **kwargs):
        with open(path, "w") as fh:
            fh.write('{"cells": [')  # what a full disk leaves: the start of the JSON
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    try:
        return runner.execute(runner.select(["00"])[0], "fast", progress=False)
    finally:
        left = sorted(p.name for p in (tmp_path / "build").rglob("*") if p.is_file())
        assert left == [], f"left behind: {left}"


def _tiny_vit(seed: int):
    import torch

    torch.manual_seed(seed)
    return vit.ViT(vit.ViTConfig(**_TINY_VIT))


_TINY_VIT = dict(image_size=8, patch_size=4, d_model=16, depth=1, heads=2, d_head=8, mlp_dim=16,
                 num_classes=3)
_TINY_ARCH = "rankbook-vit:" + ",".join(f"{k}={v}" for k, v in _TINY_VIT.items())


def _two_checkpoints(tmp_path):
    import torch

    for seed, name in ((0, "before.pt"), (1, "after.pt")):
        torch.save(_tiny_vit(seed).state_dict(), tmp_path / name)
    return str(tmp_path / "before.pt"), str(tmp_path / "after.pt")


def _inspect(tmp_path, *extra, before=None, after=None):
    b, a = _two_checkpoints(tmp_path)
    return damage.rankbook_cli("inspect", before or b, after or a, "--arch", _TINY_ARCH, *extra)


def _inspect_onto_a_full_disk(tmp_path, monkeypatch):
    import errno
    import pathlib

    def full(self, *args, **kwargs):
        with open(self, "w") as fh:
            fh.write("{")
        raise OSError(errno.ENOSPC, "No space left on device")

    b, a = _two_checkpoints(tmp_path)
    monkeypatch.setattr(pathlib.Path, "write_text", full)
    try:
        return damage.rankbook_cli("inspect", b, a, "--arch", _TINY_ARCH, "--json", str(tmp_path / "s.json"))
    finally:
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == ["after.pt", "before.pt"], f"a partial file was left: {left}"


def _damaged_committed_run(tmp_path, monkeypatch):
    """N35: a damaged run in a stored folder (results/): the warning said training 'overwrites it', but
    training writes under the build folder, so the damaged committed run stayed, warning at each look-up."""
    import warnings

    monkeypatch.setenv("RANKBOOK_BUILD", str(tmp_path / "build"))
    config = {"lr": 1e-3}
    folder = results.run_dir("run", config, tmp_path / "results")
    folder.mkdir(parents=True)
    (folder / results.MANIFEST).write_text('{"config": {"lr"')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return results.find("run", config, roots=[tmp_path / "results"])


def _inspect_keeping_the_model(tmp_path, option):
    before, after = _two_checkpoints(tmp_path)
    kept = open(before, "rb").read()
    try:
        return damage.rankbook_cli("inspect", before, after, "--arch", _TINY_ARCH, option, before)
    finally:
        assert open(before, "rb").read() == kept, "the BEFORE checkpoint was overwritten"


BAD_INPUTS = [
    ("unknown profile", lambda *_: profiles.resolve("nonsense"),
     profiles.ProfileError, r"unknown profile 'nonsense'.*valid profiles: fast, reference, paper"),
    ("profile from a bad $RANKBOOK_PROFILE",
     lambda tmp, mp: (mp.setenv(profiles.ENV_VAR, "gpu"), profiles.resolve(""))[1],
     profiles.ProfileError, r"unknown profile 'gpu' \(from \$RANKBOOK_PROFILE\).*fast, reference, paper"),
    ("negative epochs", lambda *_: _select_vit(epochs=-1),
     profiles.ProfileError, r"epochs=-1 is out of range: it must be >= 1"),
    ("epochs given as text", lambda *_: _select_vit(epochs="10"),
     profiles.ProfileError, r"epochs must be int, got '10'"),
    ("init scale 0", lambda *_: _select_vit(init_scale=0.0),
     profiles.ProfileError, r"init_scale=0.0 is out of range: it must be > 0"),
    ("init scale 0 in the sweep", lambda *_: _select_vit(init_scales=[1.0, 0.0]),
     profiles.ProfileError, r"init_scales=0.0 is out of range"),
    ("init scale 0 on the model", lambda *_: vit.ViTConfig(init_scale=0.0),
     ValueError, r"init_scale must be a positive finite number"),
    ("alpha >= 1", lambda *_: _select_toy(alphas=[0.1, 1.0]),
     profiles.ProfileError, r"alphas=1.0 is out of range: it must be < 1"),
    ("alpha <= 0", lambda *_: _select_toy(perturb_alpha=0.0),
     profiles.ProfileError, r"perturb_alpha=0.0 is out of range: it must be > 0"),
    ("unknown data set name in settings", lambda *_: _select_vit(datasets=["mnist"]),
     profiles.ProfileError, r"datasets='mnist' is not one of the valid choices: 'cifar10', 'cifar100'"),
    ("misspelled setting", lambda *_: _select_vit(epoch=3),
     profiles.ProfileError, r"unknown setting\(s\) epoch for ViTSettings; valid settings: .*epochs"),
    ("patch does not divide image size", lambda *_: vit.ViTConfig(image_size=32, patch_size=5),
     ValueError, r"patch_size=5 does not divide image_size=32"),
    ("zero heads", lambda *_: vit.ViTConfig(heads=0),
     ValueError, r"heads must be a positive integer"),
    ("batch larger than the training set", lambda *_: schedule.steps_per_epoch(100, 512),
     ValueError, r"batch_size=512 exceeds the 100 training images"),
    ("unknown data set name", lambda *_: data.locate("mnist", download=False),
     ValueError, r"unknown data set 'mnist'; valid: cifar10, cifar100"),
    ("data set missing offline", _missing_offline,
     data.DataNotFoundError,
     r"(?s)data set 'cifar100' not found.*Looked in:.*empty.*RANKBOOK_DATA.*internet access"),
    ("bad split name", lambda *_: data.load_split("cifar10", "validation"),
     ValueError, r"split must be 'train' or 'test', got 'validation'"),
    ("subset larger than the split", lambda *_: data.stratified_subset(np.repeat(np.arange(2), 5), 40, 0),
     ValueError, r"a subset of 40 examples was requested but the split has only 10"),
    ("subset larger than a class", lambda *_: data.stratified_subset(np.repeat([0, 1], [2, 18]), 10, 0),
     ValueError, r"class 0 has only 2 examples, 5 requested"),
    ("empty subset", lambda *_: data.stratified_subset(np.arange(10), 0, 0),
     ValueError, r"subset size must be positive"),
    ("results folder of a different config", _different_config,
     results.ResultMismatchError, r"already holds a result of a different config; refusing to overwrite"),
    ("truncated checkpoint", _truncated_checkpoint,
     checkpoint.CorruptCheckpoint,
     r"checkpoint .*checkpoint.pt is corrupt or truncated.*Delete it to train this run"),
    ("checkpoint of something else", _foreign_checkpoint,
     checkpoint.CorruptCheckpoint, r"is not a rankbook checkpoint"),
    ("checkpoint holding an arbitrary pickled object", _pickled_object_checkpoint,
     checkpoint.CorruptCheckpoint, r"corrupt or truncated"),
    ("unknown notebook name", lambda *_: runner.select(["99_nope"]),
     runner.RunnerError, r"unknown notebook '99_nope'; valid notebooks: 00_setup"),
    # issue 14, point 7: damaged files name the file and the fix
    ("truncated data archive", damage.truncated_archive, errors.DamagedFileError,
     r"archive .*cifar10-jpeg.tar.gz is damaged or truncated.*Fix: copy it again from its source"),
    ("zip file renamed .tar.gz", damage.zip_renamed_tar_gz, errors.DamagedFileError,
     r"cifar10-jpeg.tar.gz is a zip file, not a .tar.gz.*Fix: unzip it so that .*cifar10-jpeg/"),
    ("corrupt JPEG in the data", damage.corrupt_jpeg, errors.DamagedFileError,
     r"dog/0001.jpg cannot be decoded as an image .*Fix: replace that file"),
    ("Latin-1 text instead of UTF-8", damage.latin1_text, errors.DamagedFileError,
     r"valid.txt is not UTF-8 text: byte 0xe9 at offset 6.*Fix: copy the original.*iconv -f <encoding>"),
    ("full disk while saving results", damage.disk_full, errors.StorageError,
     r"cannot write .*arrays.npz: the disk is full.*Free some space there, or set RANKBOOK_BUILD"),
    ("full disk under torch.save (a RuntimeError without errno)", damage.disk_full_under_torch_save,
     errors.StorageError, r"cannot write .*run/checkpoint.pt: the disk is full.*Free some space there"),
    ("read-only build folder", damage.read_only_build, errors.StorageError,
     r"cannot write .*outputs/fast/04_vit_spectra: .*build is read-only.*set RANKBOOK_BUILD to a writable"),
    ("truncated manifest.json", damage.truncated_manifest, results.DamagedResultError,
     r"manifest.json is damaged or truncated \(JSONDecodeError.*Fix: delete .*run and train again"),
    ("truncated arrays.npz", damage.truncated_arrays, results.DamagedResultError,
     r"arrays.npz is damaged, truncated or empty.*Fix: delete .*run and train again"),
    ("empty arrays.npz", damage.empty_arrays, results.DamagedResultError,
     r"arrays.npz is damaged, truncated or empty"),
    ("array listed in the manifest but not in arrays.npz", damage.array_missing_from_file,
     results.DamagedResultError, r"arrays.npz lacks the array\(s\) y that manifest.json lists"),
    ("asking a result for an array it never saved", damage.array_never_saved, results.MissingArrayError,
     r"has no array 'stable_rank' \(it holds: x, y\); .*delete .*run to compute it again"),
    # issue 14, point 2: train and test with different classes
    ("test split missing a class", damage.split_missing_a_class, data.ClassListError,
     r"class folders of .*train \(3\) and .*test \(2\) differ; only in train: frog; only in test: none"),
    # breakage cases beyond the issue
    ("empty class folder", damage.empty_class_folder, data.DataNotFoundError,
     r"class folder .*train/dog holds no images"),
    ("archive with another layout inside", damage.archive_of_another_layout, data.DataNotFoundError,
     r"cifar10-jpeg.tar.gz does not hold cifar10-jpeg/\{train,test\}/<class>/\*. Fix: re-create it"),
    ("empty text split", damage.empty_text, errors.DamagedFileError,
     r"valid.txt is empty \(or only whitespace\): not text\. Fix: copy the original \(UTF-8\) file"),
    ("manifest.json holding no config", damage.manifest_without_config, results.DamagedResultError,
     r"manifest.json is damaged or truncated \(it holds no config\)"),
    ("RANKBOOK_DATA naming a file", damage.data_setting_is_a_file, paths.PathSettingError,
     r"RANKBOOK_DATA=.*data.tar.gz is a file, not a folder.*set RANKBOOK_DATA to a folder"),
    ("read-only cache that must unpack an archive", damage.unpack_into_read_only_cache, errors.StorageError,
     r"cannot write .*cache/cifar10-jpeg: .*cache is read-only.*set RANKBOOK_CACHE"),
    ("old unpacked copy in a read-only cache", damage.stale_unpack_in_read_only_cache, errors.StorageError,
     r"cache/cifar10-jpeg was not unpacked from this version of .*cifar10-jpeg.tar.gz "
     r"\(sha256:[0-9a-f]{16}\), so it must be redone, but cannot write .*set RANKBOOK_CACHE"),
    ("damaged torchvision folder", damage.damaged_torchvision_folder, errors.DamagedFileError,
     r"torchvision's folder .*cifar-10-batches-py is damaged or incomplete.*Fix: delete it"),
    ("arrays.npz deleted from a finished run", damage.arrays_deleted, results.DamagedResultError,
     r"arrays.npz is missing.*Fix: delete .*run and train again"),
    ("a file where the results folder should be", damage.results_root_is_a_file, errors.StorageError,
     r"cannot write .*arrays.npz: .*build/results is a file where a folder is needed. Move or remove"),
    ("damaged WikiText-103 download", damage.damaged_wikitext103_download, text.TextDataNotFoundError,
     r"the download failed \(the download .*wikitext-103-raw-v1.zip is damaged .*it was deleted: run again"),
    ("unknown text corpus", lambda *_: text.fingerprint("ptb", "test"),
     ValueError, r"unknown corpus 'ptb'; valid: wikitext-2, wikitext-103"),
    # issue 22, WikiText rows (the language model's data)
    ("B46: a WikiText file of NUL bytes", lambda t, m: damage._text_file(t, m, b"\x00" * 5000),
     errors.DamagedFileError, r"valid.txt is only NUL bytes: not text\. Fix: copy the original"),
    ("B47: WikiText half text, half NULs",
     lambda t, m: damage._text_file(t, m, b" = A = \n" * 300 + b"\x00" * 2400),
     errors.DamagedFileError, r"valid.txt holds 2,400 NUL bytes from offset 2,400 of 4,800 \(what a crash"),
    ("B49: a UTF-16 WikiText", lambda t, m: damage._text_file(t, m, " = A = \n".encode("utf-16") * 50),
     errors.DamagedFileError,
     r"valid.txt is UTF-16, not UTF-8\. Fix: `iconv -f utf-16 -t utf-8 .*not -f latin1"),
    ("B49: a UTF-16 WikiText after `iconv -f latin1`",
     lambda t, m: damage._text_file(t, m, " = A = \n".encode("utf-16").decode("latin-1").encode() * 50),
     errors.DamagedFileError, r"valid.txt is a UTF-16 file converted as if it were Latin-1"),
    ("B50: WikiText too short for the context",
     lambda t, m: text.train_batch(damage._text_file(t, m, b" = A = \n" * 10), 0, 0, 4, 128),
     text.TextTooShortError, r"valid.txt is too short: 80 bytes tokens.*Fixes: \(1\) copy the complete split "
                             r"file again \(the complete WikiText-2 valid split has 3,760 lines.*\(2\) lower "
                             r"context=128"),
    ("B51/B91: WikiText missing (every split named)",
     lambda t, m: (m.setenv("RANKBOOK_DATA", str(t / "none")), m.setenv("RANKBOOK_CACHE", str(t / "c")),
                   _lm_run("fast")),
     text.TextDataNotFoundError, r"wikitext-2 \(train, valid, test splits\) not found; .*none/wikitext-2/"
                                 r"train.txt.*valid.txt.*test.txt.*Fixes: \(1\) put WikiText-2"),
    ("a BPE profile without GPT-2's tokenizer files", lambda t, m: _bpe_missing(t, m),
     text.TokenizerNotFoundError, r"tokenizer 'gpt2' \(GPT-2's BPE\) not found: looked for .*gpt2-tokenizer/"
                                  r"vocab.json.*merges.txt.*never replaced by bytes"),
    ("B20: chapter 06 with -p steps 100000000",
     lambda t, m: (_tiny_wikitext(t, m), _lm_run("fast", steps=10**8)),
     loop.SlowRunRefused, r"training on the CPU would take about [0-9,.]+ h .*RANKBOOK_ALLOW_SLOW=1"),
    ("fingerprint of an unknown data set", lambda *_: data.fingerprint("mnist"),
     ValueError, r"unknown data set 'mnist'; valid: cifar10, cifar100, imagenet"),
    # issue 22: silent and wrong before
    ("B40: CIFAR-10 with a class missing from both splits", damage.cifar10_missing_a_class, data.LayoutError,
     r"cifar10 train split in .*cifar10-jpeg/train is not a complete cifar10: 2 classes instead of its 3; "
     r"missing: frog\. Fix: restore .* a different or reduced data set cannot be used under the name"),
    ("B41: CIFAR-10 with an extra class folder", damage.cifar10_with_an_extra_class, data.LayoutError,
     r"4 classes instead of its 3; not one of its classes: zebra"),
    ("B41: CIFAR-10 missing one image", damage.cifar10_missing_an_image, data.LayoutError,
     r"5 train images instead of 6 \(2 per class; classes with another count: dog 1\)"),
    ("B40: a 3-class tree against the real CIFAR-10 layout", damage.real_cifar10_layout_of_a_tiny_tree,
     data.LayoutError, r"3 classes instead of its 10; missing: airplane, automobile, bird, deer, horse, "
                       r"ship, truck"),
    ("B59: arrays.npz swapped between two stored runs", damage.arrays_swapped_between_runs,
     results.DamagedResultError, r"run/arrays.npz is not the file manifest.json was written with \(sha256 "
                                 r"[0-9a-f]{16}…, the manifest says [0-9a-f]{16}…\).*replaced.*Fix: put the "
                                 r"run's own arrays.npz back, or delete"),
    ("B60: NaN in a stored run's arrays (past step 0)", damage.nan_in_stored_arrays,
     results.DamagedResultError,
     r"run/arrays.npz: array 'train_loss' holds nan at index \[2\] \(1 non-finite value\(s\)\).*Fix: "
     r"delete .*run and train again"),
    ("B88: trainer --seeds -1", lambda *_: damage.trainer("vit", "--seeds", "-1"), damage.CommandFailed,
     r"^error: seeds=-1 is out of range: it must be >= 0 \(exit 2\)$"),
    # issue 22: raw tracebacks before
    ("A19: read-only build folder under `rankbook run`", damage.read_only_build_under_run,
     damage.CommandFailed,
     r"^error: cannot write .*build/executed/fast/notebooks/.*: .*build is read-only .*set RANKBOOK_BUILD to "
     r"a writable folder.*\(exit 2\)$"),
    ("B37: RANKBOOK_STOP_AFTER_S=10min",
     lambda tmp, mp: (mp.setenv("RANKBOOK_STOP_AFTER_S", "10min"), damage.trainer("vit"))[1],
     damage.CommandFailed, r"RANKBOOK_STOP_AFTER_S='10min' is not a number of seconds: write it in "
                           r"seconds, e.g. RANKBOOK_STOP_AFTER_S=600"),
    ("B90: --export naming a file",
     lambda tmp, mp: ((tmp / "out").write_text("x"), damage.trainer("vit", "--export", str(tmp / "out")))[1],
     damage.CommandFailed,
     r"--export .*out is a file; name a folder \(it is created if missing\) \(exit 2\)"),
    ("B96: `rankbook run` without the book's tools", damage.run_without_the_book_tools, damage.CommandFailed,
     r"needs the book's tools, and rankbook_no_such_module is not installed in .*Fix: pip install -r "
     r"requirements.txt .*rankbook\[book\]"),
    ("B100: `build` with no jupyter-book beside the Python", damage.build_without_jupyter_book,
     runner.RunnerError, r"no jupyter-book executable beside .*bin/python or on PATH.*pip install -r "
                         r"requirements.txt"),
    # issue 22: partly clear before
    ("A20: a full build disk under `rankbook run`", damage.full_disk_under_run, damage.CommandFailed,
     r"^error: cannot write .*build/executed/fast/notebooks/\..*00_setup.*running.ipynb: the disk is full "
     r"\(No space left on device\). Free some space there, or set RANKBOOK_BUILD to a folder on another "
     r"disk"),
    ("B1: -p lr 1e-3 (papermill reads a float)",
     lambda *_: _type_of(cli.parse_value("1e-3")), TypeError, r"^float 0.001$"),
    ("B2: -p lr inf (a float, refused by the settings as not finite)",
     lambda *_: _select_vit(lr=cli.parse_value("inf")), profiles.ProfileError,
     r"lr=inf is not a finite number"),
    ("B6: a scalar where a list goes (-p init_scales 0.1)",
     lambda *_: cli.check_parameters(runner.select(["05"]), {"init_scales": 0.1}), ValueError,
     r"-p init_scales 0.1: 05_vit_init_scale's init_scales is a list; write it as YAML, e.g. "
     r"-p init_scales '\[0.1\]'"),
    ("B7: a scalar where a list goes, in the settings", lambda *_: _select_vit(init_scales=0.1),
     profiles.ProfileError, r"init_scales must be tuple\[float, ...\], got 0.1 \(float\); give a list, e.g. "
                            r"\[1.0, 0.1"),
    ("A11: lora_ranks 'a,b'", lambda *_: _select_lm(lora_ranks="a,b"), profiles.ProfileError,
     r"lora_ranks must be tuple\[int, ...\], got 'a,b' \(str\); give a list, e.g. \[.*as text: \"1, 4"),
    ("B17: a misspelt parameter name", lambda *_: cli.check_parameters(runner.select(["04"]), {"epoch": 3}),
     ValueError, r"-p epoch: 04_vit_spectra has no such parameter; its parameters: dataset, epochs, "
                 r"train_subset, lr"),
    ("B26: RANKBOOK_BUILD naming a file", damage.build_setting_is_a_file, damage.CommandFailed,
     r"^error: RANKBOOK_BUILD=.*build is a file, not a folder .*set RANKBOOK_BUILD to a folder.*\(exit 2\)$"),
    ("B86: trainer's unknown profile", lambda *_: damage.trainer("--profile", "gpu", "vit"),
     damage.CommandFailed, r"^error: unknown profile 'gpu' \(from argument\); valid profiles: fast, "
                           r"reference, paper.*\(exit 2\)$"),
    ("B87: trainer's unknown data set", lambda *_: damage.trainer("vit", "--dataset", "mnist"),
     damage.CommandFailed,
     r"^error: datasets='mnist' is not one of the valid choices: 'cifar10', 'cifar100'"),
    ("B89: trainer's scale 0", lambda *_: damage.trainer("vit", "--scales", "0"),
     damage.CommandFailed, r"^error: init_scales=0.0 is out of range: it must be > 0 \(exit 2\)$"),
    ("B39: RANKBOOK_ALLOW_SLOW=maybe",
     lambda tmp, mp: (mp.setenv("RANKBOOK_ALLOW_SLOW", "maybe"), paths.env_flag("RANKBOOK_ALLOW_SLOW"))[1],
     paths.SettingError, r"RANKBOOK_ALLOW_SLOW='maybe' is not understood: set it to 1 \(or true, yes, on\)"),
    ("B44: a symlink loop in the data", damage.symlink_loop_in_the_data, errors.DamagedFileError,
     r"^.*train/cat/again is a symbolic link into a folder that contains it \(to .*train\).*Fix: remove the "
     r"link \(rm .*again\)"),
    ("B45: a tree with train/ but no test/", damage.train_without_test, data.DataNotFoundError,
     r"(?s)Looked in:.*cifar10-jpeg \(has train/ but no test/ or val/\)"),
    # issue 22: further faults of the same kinds, found while fixing the rows above
    ("N1: another run's arrays under an old manifest (no checksum)",
     damage.arrays_of_another_shape_in_an_old_manifest, results.DamagedResultError,
     r"arrays.npz: array 'x' has shape \[5\], but manifest.json lists \[3\]: the arrays belong to another "
     r"run"),
    ("N2: arrays.npz a Git LFS pointer (a clone without git-lfs)", damage.lfs_pointer_arrays,
     results.DamagedResultError,
     r"arrays.npz is a Git LFS pointer.*Fix: install git-lfs and run `git lfs pull`"),
    ("N3: a manifest whose sha256 entry is not a checksum", damage.manifest_with_a_bad_checksum_field,
     results.DamagedResultError, r"manifest.json: its sha256 entry 'yes' is not a checksum of arrays.npz"),
    ("N4: -p given twice", lambda *_: cli._parameters([["lr", "1"], ["lr", "2"]]), ValueError,
     r"-p lr is given twice \(1 and '2'\); give it once"),
    ("N5: -p steps 1e3 for an int parameter",
     lambda *_: cli.check_parameters(runner.select(["06"]), {"steps": 1000.0}), ValueError,
     r"-p steps 1000.0: 06_language's steps is an int; write it as 1000"),
    ("N6: -p scale_norms yes for a bool parameter",
     lambda *_: cli.check_parameters(runner.select(["05"]), {"scale_norms": "yes"}), ValueError,
     r"-p scale_norms 'yes': 05_vit_init_scale's scale_norms is True or False; write -p scale_norms True"),
    ("N7: trainer --seeds with no value", lambda *_: damage.trainer("vit", "--seeds"), damage.CommandFailed,
     r"^error: --seeds needs at least one value \(e.g. --seeds 0 1\); leave it out for the profile's"),
    ("N8: RANKBOOK_VERIFY_DATA=maybe under `rankbook run`",
     lambda tmp, mp: (mp.setenv("RANKBOOK_VERIFY_DATA", "maybe"), damage.rankbook_cli("run", "00"))[1],
     damage.CommandFailed, r"^error: RANKBOOK_VERIFY_DATA='maybe' is not understood.*\(exit 2\)$"),
    ("N9: lm given ViT options", lambda *_: damage.trainer("lm", "--seeds", "1"), damage.CommandFailed,
     r"^error: --dataset, --seeds and --scales choose ViT runs; `lm` trains the profile's LM runs"),
    ("B73: a user python3 kernelspec running another interpreter", damage.foreign_python3_kernel,
     runner.RunnerError, r"the Jupyter kernel 'python3' \(.*kernel.json\) runs /opt/other/bin/python, not "
                         r"this Python .*Fix: remove that kernelspec \(jupyter kernelspec remove python3\)"),
    # issue 22, round 3: the rows left open (B21, B83, B99, A20 live) and further faults (N20-N37)
    ("B21: chapter 06 with -p steps 20 (shorter than the profile's warmup)",
     lambda *_: damage.rankbook_cli("run", "06", "-p", "steps", "20"), damage.CommandFailed,
     r"^error: -p steps 20: 06_language's fast profile warms the learning rate up over its first 100 steps "
     r"\(warmup_steps, not a parameter of the chapter\).*Fix: -p steps 101 or more \(exit 2\)$"),
    ("B21: chapter 06 with -p steps too few for the verdicts",
     lambda *_: cli.check_trial(runner.select(["06"]), "reference", {"steps": 12}), ValueError,
     r"warms the learning rate up over its first 300 steps.*Fix: -p steps 301 or more"),
    ("B21: chapter 04 with -p epochs 1 -p train_subset 128 (one step)",
     lambda *_: damage.rankbook_cli("run", "04", "-p", "epochs", "1", "-p", "train_subset", "128"),
     damage.CommandFailed,
     r"^error: -p epochs 1 -p train_subset 128 \(1 epoch\(s\) of 1 batch\(es\) of 128\): 04_vit_spectra "
     r"would train 1 step\(s\), tracked at steps 0, 1; its stable-rank verdicts need 3 tracked steps from "
     r"step 10 on "
     r".*Fix: -p epochs 16 or more \(at 128 images\), or -p train_subset 2048 or more \(at 1 epoch\(s\)\) "
     r"\(exit 2\)$"),
    ("B83: paper chapter 04 on a CPU with CIFAR-10 only (CIFAR-100 is never asked for)",
     lambda t, m: _paper_vit_on_a_cpu_without({"cifar100"}, m) and _type_of(("asked", "cifar10")),
     TypeError, r"^tuple \('asked', 'cifar10'\)$"),
    ("B83: paper chapter 04 on a CPU without CIFAR-10: its data set, then the CPU refusal",
     lambda t, m: _paper_vit_on_a_cpu_without({"cifar10", "cifar100"}, m), data.DataNotFoundError,
     r"(?s)^data set 'cifar10' not found\n\nNote: with the data, training would still be refused on this CPU "
     r"\(about [0-9,]+ h estimated.*run this profile on a GPU, or set RANKBOOK_ALLOW_SLOW=1"),
    ("B99: the setup cell when the repository cannot be reached", _setup_cell_unreachable,
     damage.CommandFailed,
     r"^RuntimeError: pip could not install rankbook from 'rankbook @ git\+https://127.0.0.1:9/.*' \(pip's "
     r"error is above\)\. If that address cannot be reached .*set RANKBOOK_INSTALL to what pip should "
     r"install instead.*_config.yml repository.url and branch"),
    ("A20: a full disk while papermill saves between cells (no truncated copy left)",
     _full_disk_between_cells,
     errors.StorageError, r"cannot write .*/\.00_setup\.[0-9]+\.running\.ipynb: the disk is full \(No space "
                          r"left on device\)\. Free some space there, or set RANKBOOK_BUILD"),
    ("N20: -p train_subset below one batch", lambda *_: damage.rankbook_cli("run", "04", "-p", "train_subset",
                                                                              "100"), damage.CommandFailed,
     r"^error: -p train_subset 100: 04_vit_spectra's fast profile trains in batches of 128 \(batch_size, "
     r"not a parameter of the chapter\), more than the 100 training images\. Fix: -p train_subset 128 or "
     r"more"),
    ("N21: -p train_subset above the split", lambda *_: cli.check_trial(runner.select(["04"]), "fast",
                                                                          {"train_subset": 60000}),
     ValueError, r"-p train_subset 60000: cifar10's train split has 50,000 images\. Fix: -p train_subset "
                 r"50000 or less"),
    ("N22: -p dataset mnist (was an error inside the kernel)",
     lambda *_: cli.check_trial(runner.select(["04"]), "fast", {"dataset": "mnist"}), ValueError,
     r"-p dataset 'mnist': 04_vit_spectra trains on one of cifar10, cifar100, imagenet"),
    ("N23: -p epochs 0 said before any kernel starts",
     lambda *_: damage.rankbook_cli("run", "04", "-p", "epochs", "0"), damage.CommandFailed,
     r"^error: -p epochs 0: 04_vit_spectra \(fast profile\): epochs=0 is out of range: it must be >= 1 "
     r"\(exit 2\)$"),
    ("N24: -p init_scales '[]' (an empty sweep)",
     lambda *_: cli.check_parameters(runner.select(["05"]), {"init_scales": []}), ValueError,
     r"-p init_scales \[\]: 05_vit_init_scale's init_scales needs at least one value"),
    ("N25: -p init_scales '{a: 1}' (a mapping for a list)",
     lambda *_: cli.check_parameters(runner.select(["05"]), {"init_scales": {"a": 1}}), ValueError,
     r"init_scales is a list, not a mapping; write it as a YAML list, e\.g\. -p init_scales "
     r"'\[1\.0, 0\.1\]'"),
    ("N26: chapter 07's -p null_seeds -1 before the kernel",
     lambda *_: damage.rankbook_cli("run", "07", "-p", "null_seeds", "-1"), damage.CommandFailed,
     r"^error: -p null_seeds -1: 07_lora \(fast profile\): null_seeds=-1 is out of range: it must be >= 1"),
    ("N27: inspect --json naming a folder (was IsADirectoryError after the work)",
     lambda t, m: (t.joinpath("out").mkdir(), _inspect(t, "--json", str(t / "out")))[1], damage.CommandFailed,
     r"^error: --json .*out: is a folder; name a file in it \(exit 2\)$"),
    ("N28: inspect --figure naming a folder",
     lambda t, m: (t.joinpath("f.png").mkdir(), _inspect(t, "--figure", str(t / "f.png")))[1],
     damage.CommandFailed, r"^error: --figure .*f.png: is a folder; name a file in it \(exit 2\)$"),
    ("N29: inspect with BEFORE and AFTER the same file (was exit 0 and an empty table)",
     lambda t, m: _inspect(t, after=str(t / "before.pt")), damage.CommandFailed,
     r"^error: BEFORE and AFTER are the same file \(.*before.pt\): the update is zero in every head"),
    ("N30: inspect --json onto a full disk (was a traceback and a truncated file)", _inspect_onto_a_full_disk,
     damage.CommandFailed, r"^error: cannot write .*s.json: the disk is full \(No space left on device\)"),
    ("N33: -p epochs ten (text for an int: was refused inside the kernel)",
     lambda *_: damage.rankbook_cli("run", "04", "-p", "epochs", "ten"), damage.CommandFailed,
     r"^error: -p epochs 'ten': 04_vit_spectra's epochs is an int: write a whole number, e\.g\. 3 "
     r"\(exit 2\)$"),
    ("N34: toy chapter 02 with -p alphas '[0.1, 2]', before the kernel",
     lambda *_: damage.rankbook_cli("run", "02", "-p", "alphas", "[0.1, 2]"), damage.CommandFailed,
     r"^error: -p alphas \[0.1, 2\]: 02_toy \(fast profile\): alphas=2 is out of range: it must be < 1.0"),
    ("N35: a damaged run in results/ (not the build folder) says training leaves it there",
     _damaged_committed_run, UserWarning,
     r"manifest.json is damaged or truncated.*training this config writes a new run under .*build/results "
     r"and leaves this one as it is \(restore it, e\.g\. git checkout -- .*results/run-[0-9a-f]+, or "
     r"delete it\)"),
    ("N36: inspect --json naming the BEFORE checkpoint (it was overwritten with the JSON)",
     lambda t, m: _inspect_keeping_the_model(t, "--json"), damage.CommandFailed,
     r"^error: --json .*before.pt is BEFORE's model file: writing it would overwrite that model; choose "
     r"another path \(exit 2\)$"),
    ("N37: inspect --json and --figure naming one file (the figure overwrote the JSON)",
     lambda t, m: _inspect(t, "--json", str(t / "s.png"), "--figure", str(t / "s.png")), damage.CommandFailed,
     r"^error: --json and --figure name the same file \(.*s.png\); give each its own \(exit 2\)$"),
    ("N32: inspect --arch with a misspelt key lists the keys",
     lambda t, m: _inspect(t).__class__ and damage.rankbook_cli(
         "inspect", *_two_checkpoints(t), "--arch", _TINY_ARCH + ",colour=red"), damage.CommandFailed,
     r"unexpected keyword argument 'colour'; rankbook-vit takes: image_size, patch_size, .*d_head, mlp_dim"),
]


def test_a_number_given_to_a_text_parameter_is_passed_as_typed():
    """N10: -p lora_ranks 4 (chapter 07's text parameter) reached the chapter as the int 4."""
    chosen = runner.select(["07"])
    assert cli.check_parameters(chosen, {"lora_ranks": 4}, {"lora_ranks": "4"}) == {"lora_ranks": "4"}
    assert cli.check_parameters(chosen, {"lora_ranks": "1,4"}) == {"lora_ranks": "1,4"}


def test_export_onto_the_runs_own_folder_copies_nothing_and_succeeds(tmp_path, monkeypatch):
    """N11: --export naming the results folder itself was a raw shutil.SameFileError."""
    assert damage.export_onto_the_results_folder(tmp_path, monkeypatch) == 0


def _select_lm(**overrides):
    from rankbook.settings import lm as lm_profiles

    return profiles.select(lm_profiles.PROFILES, "fast", **overrides)


def _type_of(value):
    """Rows that check a parsed value raise it as the message (so the table shows what was read)."""
    raise TypeError(f"{type(value).__name__} {value}")


@pytest.mark.parametrize("what, call, error, message", BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_gets_clear_error(what, call, error, message, tmp_path, monkeypatch):
    with pytest.raises(error, match=message):
        call(tmp_path, monkeypatch)


def test_the_table_is_long_enough():
    assert len(BAD_INPUTS) >= 15


def test_ctrl_c_of_the_trainer_is_one_line_and_exit_130(monkeypatch, capsys):
    """B71: as the book's runner (a rerun resumes from the last checkpoint). Tried live once: SIGINT to
    ``python -m rankbook.training --profile fast vit`` at step 3 gave exit 130 and this line, but glued to the
    end of the training bar, which tqdm then drew again below it; the bar is now closed first."""
    import sys

    from tqdm import tqdm

    from rankbook.training import __main__ as training_main

    def interrupted(args):
        bar = tqdm(total=10, desc="vit-run", file=sys.stderr, mininterval=0)  # as Run.train leaves it
        bar.update(3)
        raise KeyboardInterrupt

    monkeypatch.setattr(training_main, "_train", interrupted)
    assert training_main.main(["vit"]) == 130
    err = capsys.readouterr().err
    lines = err.replace("\r", "\n").strip().splitlines()
    assert lines[-1] == "interrupted: stopped (a rerun of the same command resumes from the last checkpoint)"
    assert all(line.startswith("vit-run") for line in lines[:-1]) and err.endswith("checkpoint)\n")
    assert not list(getattr(tqdm, "_instances", ())), "the bar was left open (drawn again at exit)"


def test_trial_checks_build_the_settings_the_chapters_build():
    """B21: cli.TRIALS repeats each chapter's settings line; this fails when a chapter's line changes."""
    lines = {
        "01_theory": ["from rankbook.settings.toy import PROFILES",
                      "profiles.select(PROFILES, profile, theory_alphas=alphas, seed=seed)"],
        "02_toy": ["from rankbook.settings.toy import PROFILES",
                   "profiles.select(PROFILES, profile, alphas=alphas, seed=seed)"],
        "03_assumptions": ["from rankbook.settings.toy import PROFILES",
                           "profiles.select(PROFILES, profile, perturb_alpha=alpha, seed=seed)"],
        "04_vit_spectra": ["profiles.select(PROFILES, profile, epochs=epochs, train_subset=train_subset, "
                           "lr=lr)", "dataset = dataset or settings.datasets[0]"],
        "05_vit_init_scale": ["profiles.select(PROFILES, profile, init_scales=init_scales, "
                              "scale_norms=scale_norms)", "dataset = dataset or settings.datasets[0]"],
        "06_language": ["profiles.select(PROFILES, profile, steps=steps, lr=lr, "
                        "tokenizer=tokenizer or None)"],
        "07_lora": ["profiles.select(lm_settings_table.PROFILES, profile, lora_ranks=lora_ranks or None,",
                    "null_seeds=null_seeds or None)"],
    }
    assert set(lines) == set(cli.TRIALS)
    for stem, wanted in lines.items():
        source = runner.select([stem])[0].read_text()
        assert all(w in source for w in wanted), f"{stem}: its settings line changed; update cli.TRIALS"


def test_the_smallest_trial_the_message_names_works_and_one_less_does_not():
    """B21: the values the refusals name are the smallest the verdicts (analysis.trend) can judge."""
    from rankbook.analysis import trend

    fewest = cli._fewest_steps(6)
    judged = [s for s in schedule.tracking_steps(fewest, 6) if s >= trend.TRANSIENT_STEPS]
    short = [s for s in schedule.tracking_steps(fewest - 1, 6) if s >= trend.TRANSIENT_STEPS]
    assert len(judged) >= trend.MIN_POINTS > len(short)
    ch04, ch06 = runner.select(["04"]), runner.select(["06"])
    cli.check_trial(ch04, "fast", {"epochs": 16, "train_subset": 128})  # the two fixes the B21 row names
    cli.check_trial(ch04, "fast", {"epochs": 1, "train_subset": 2048})
    with pytest.raises(ValueError, match="would train 15 step"):
        cli.check_trial(ch04, "fast", {"epochs": 15, "train_subset": 128})
    cli.check_trial(ch06, "fast", {"steps": 101})
    cli.check_trial(ch06, "fast", {"lr": 1e-3})  # no steps given: the profile's own length
    with pytest.raises(ValueError, match=r"-p steps 100: .*Fix: -p steps 101 or more"):
        cli.check_trial(ch06, "fast", {"steps": 100})


def test_inspect_of_two_files_with_the_same_weights_says_so(tmp_path, capsys):
    """N29 (the other half): two different files holding the same weights gave an empty table, silently."""
    import shutil

    from rankbook.inspect import cli as inspect_cli

    before, _ = _two_checkpoints(tmp_path)
    shutil.copy(before, tmp_path / "copy.pt")
    assert inspect_cli.main(["inspect", before, str(tmp_path / "copy.pt"), "--arch", _TINY_ARCH]) == 0
    assert "note: every head's update is zero" in capsys.readouterr().err
    assert inspect_cli.main(["inspect", *_two_checkpoints(tmp_path), "--arch", _TINY_ARCH]) == 0
    assert "update is zero" not in capsys.readouterr().err


def test_p_values_are_read_as_papermill_reads_them():
    """B1/B2: numbers as papermill's -p (1e-3 and inf are floats), lists as YAML, text stays text."""
    read = cli.parse_value
    assert read("1e-3") == 0.001 and read("inf") == float("inf") and read("3") == 3 and read("-2") == -2
    assert read("True") is True and read("false") is False and read("None") is None
    assert read("[1.0, 0.1]") == [1.0, 0.1] and read("cifar10") == "cifar10" and read("1,4") == "1,4"
    with pytest.raises(ValueError, match=r"-p VALUE '\[1, 2' is not a valid YAML list"):
        read("[1, 2")


def test_every_chapter_s_parameters_cell_is_found():
    """-p names are checked against this reading: a cell it misses would refuse every override."""
    for source in runner.available():
        assert runner._PARAMETERS_CELL.search(source.read_text()), f"{source}: no parameters cell found"

"""Data: ImageFolder trees, the offline archive, stratified subsets, the missing-data error, augmentation.

Also (issue 14) that no derived data outlives its source: edited archives and
trees are unpacked and decoded again, damaged caches rebuilt, read-only
caches read, and litter of killed runs removed.
"""
import os
import tarfile

import damage
import numpy as np
import pytest
import torch
from PIL import Image

from rankbook.data import images as data
from rankbook.store import atomic

CLASSES = ["cat", "dog", "frog"]


def _write_tree(root, per_class=(4, 2)):
    """A tiny ImageFolder tree of PNGs whose pixel (0, 0) encodes class and index."""
    for split, n in zip(("train", "test"), per_class):
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = np.full((32, 32, 3), 10 * i, dtype=np.uint8)
                pixels[0, 0] = (c, i, 200)
                Image.fromarray(pixels).save(root / split / name / f"{i:04d}.png")



def test_imagefolder_tree(dirs):
    data_dir, cache = dirs
    _write_tree(data_dir / "cifar10-jpeg")
    train = data.load_split("cifar10", "train")
    assert train.images.shape == (12, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.classes == CLASSES
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert train.images[:, :, 0, 0].tolist()[5] == [1, 1, 200]  # dog 0001.png, channels first
    assert len(list((cache / "tensors").glob("*.pt"))) == 1  # decoded once, cached
    again = data.load_split("cifar10", "train")
    assert torch.equal(again.images, train.images)
    assert len(data.load_split("cifar10", "test")) == 6


def test_archive_is_unpacked_once_into_the_cache(dirs, tmp_path, monkeypatch):
    data_dir, cache = dirs
    _write_tree(tmp_path / "src" / "cifar10-jpeg")
    with tarfile.open(data_dir / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar10-jpeg", arcname="cifar10-jpeg")
    source = data.locate("cifar10")
    assert source.path == cache / "cifar10-jpeg" and source.kind == "imagefolder"
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp dir left behind
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: pytest.fail("unpacked twice"))
    assert len(data.load_split("cifar10", "test", subset=3)) == 3


def test_stratified_subset_is_balanced_and_seeded():
    labels = np.repeat(np.arange(10), 50)
    idx = data.stratified_subset(labels, 95, seed=3)
    counts = np.bincount(labels[idx], minlength=10)
    assert len(idx) == 95 and len(set(idx)) == 95 and counts.min() == 9 and counts.max() == 10
    assert np.array_equal(idx, data.stratified_subset(labels, 95, seed=3))
    assert not np.array_equal(idx, data.stratified_subset(labels, 95, seed=4))
    assert len(data.stratified_subset(labels, None, seed=0)) == 500


def test_subset_of_a_tree_and_its_own_cache_entry(dirs):
    data_dir, cache = dirs
    _write_tree(data_dir / "cifar10-jpeg")
    sub = data.load_split("cifar10", "train", subset=6, seed=1)
    assert sub.labels.bincount().tolist() == [2, 2, 2]
    data.load_split("cifar10", "train", subset=6, seed=2)
    assert len(list((cache / "tensors").glob("*.pt"))) == 2


def test_missing_data_names_dataset_places_and_fixes(dirs, monkeypatch):
    data_dir, cache = dirs

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(data.sources, "_torchvision_dataset", offline)
    with pytest.raises(data.DataNotFoundError) as err:
        data.load_split("cifar100", "train")
    msg = str(err.value)
    for needle in ("'cifar100'", str(data_dir / "cifar100-jpeg"), str(cache / "cifar-100-python"),
                   "RANKBOOK_DATA", "internet", "Name or service not known"):
        assert needle in msg, needle


def test_describe_available(dirs, monkeypatch):
    data_dir, _ = dirs
    _write_tree(data_dir / "cifar10-jpeg")
    monkeypatch.setattr(data.sources, "_online", lambda *a, **k: False)
    rows = {r["dataset"]: r for r in data.describe_available()}
    assert rows["cifar10"]["status"] == "found offline"
    assert rows["cifar100"]["status"] == "missing"
    assert all(set(r) == {"dataset", "status", "location"} for r in rows.values())


def test_augment_crops_windows_of_the_padded_image_and_flips():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = data.augment(images, torch.Generator().manual_seed(0), padding=2)
    assert out.shape == images.shape and out.dtype == torch.uint8
    again = data.augment(images, torch.Generator().manual_seed(0), padding=2)
    assert torch.equal(out, again)
    padded = torch.nn.functional.pad(images, (2,) * 4)
    windows = {(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)}
    flips = 0
    for i in range(64):
        hits = [(dy, dx, f) for dy, dx, f in windows
                if torch.equal(out[i], (lambda w: w.flip(-1) if f else w)(
                    padded[i, :, dy:dy + 8, dx:dx + 8]))]
        assert hits, f"image {i} is not a (flipped) window of the padded image"
        flips += hits[0][2]
    assert 10 < flips < 54  # both flipped and unflipped occur


def test_normalize_standardizes():
    images = torch.randint(0, 256, (100, 3, 4, 4), dtype=torch.uint8)
    mean, std = data.channel_stats(images)
    x = data.normalize(images, mean, std)
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- issue 14: no stale derived data


def _archive(tmp_path, data_dir, value):
    src = tmp_path / f"src{value}" / "cifar10-jpeg"
    _write_tree(src)
    for f in src.rglob("*.png"):  # every pixel shifted by value: another version of the data set
        Image.fromarray(np.asarray(Image.open(f)) // 2 + value).save(f)
    with tarfile.open(data_dir / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="cifar10-jpeg")


def test_an_edited_archive_is_unpacked_and_decoded_again(dirs, tmp_path):
    data_dir, cache = dirs
    _archive(tmp_path, data_dir, 1)
    old = data.load_split("cifar10", "train")
    _archive(tmp_path, data_dir, 2)
    new = data.load_split("cifar10", "train")
    assert torch.equal(new.images, old.images + 1)  # not the old unpacked tree nor the old tensor cache
    assert new.fingerprint != old.fingerprint and new.fingerprint in new.description
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # the old tree went
    assert len(list((cache / "tensors").glob("*.pt"))) == 1  # the old version's tensors went


def test_an_edited_image_in_a_tree_is_decoded_again(dirs):
    data_dir, _ = dirs
    _write_tree(data_dir / "cifar10-jpeg")
    first = data.load_split("cifar10", "test")
    f = data_dir / "cifar10-jpeg" / "test" / "cat" / "0000.png"
    Image.fromarray(np.full((32, 32, 3), 77, dtype=np.uint8)).save(f)
    os.utime(f, ns=(0, f.stat().st_mtime_ns + 10**9))
    second = data.load_split("cifar10", "test")
    assert int(first.images[0, 0, 5, 5]) == 0 and int(second.images[0, 0, 5, 5]) == 77


def test_a_truncated_tensor_cache_is_rebuilt_not_an_error(dirs):
    data_dir, cache = dirs
    _write_tree(data_dir / "cifar10-jpeg")
    first = data.load_split("cifar10", "train")
    (blob,) = (cache / "tensors").glob("*.pt")
    blob.write_bytes(blob.read_bytes()[:200])
    with pytest.warns(UserWarning, match=r"image cache .*\.pt is damaged .*decoding the images again"):
        again = data.load_split("cifar10", "train")
    assert torch.equal(again.images, first.images)
    assert torch.load(blob, weights_only=True)["images"].shape == first.images.shape  # rewritten whole


def test_a_read_only_cache_is_still_read(dirs, tmp_path, monkeypatch):
    data_dir, cache = dirs
    _archive(tmp_path, data_dir, 1)
    first = data.load_split("cifar10", "test")
    damage.read_only(monkeypatch, cache)
    decode = data._decode
    monkeypatch.setattr(data, "_decode", lambda *a: pytest.fail("decoded again"))
    again = data.load_split("cifar10", "test")  # tree, fingerprint and tensors: all read from the cache
    assert torch.equal(again.images, first.images)
    monkeypatch.setattr(data, "_decode", decode)
    with pytest.warns(UserWarning, match=r"read-only.*not cached, so they will be decoded again"):
        sub = data.load_split("cifar10", "test", subset=3)  # a new subset: decoded, just not cached
    assert len(sub) == 3


def test_half_unpacked_folders_of_killed_runs_are_removed_at_the_next_unpack(dirs, tmp_path):
    data_dir, cache = dirs
    _archive(tmp_path, data_dir, 1)
    cache.mkdir()
    dead = damage.dead_pid()
    litter = cache / f".cifar10-jpeg.{dead}@{atomic._HOST}-0123abcd.tmp"
    (litter / "cifar10-jpeg" / "train").mkdir(parents=True)
    live = cache / atomic.temp_name("cifar10-jpeg").replace(str(os.getpid()), str(os.getppid()))
    live.mkdir()  # a concurrent unpack by a live process: left alone
    old_style, recent_old_style = cache / ".cifar10-jpeg.k2_x9a0q", cache / ".cifar10-jpeg.p0p0p0p0"
    for folder in (old_style, recent_old_style):  # tempfile.mkdtemp names of earlier versions
        (folder / "cifar10-jpeg").mkdir(parents=True)
    os.utime(old_style, (0, 0))
    data.locate("cifar10")
    assert not litter.exists() and live.exists()
    assert not old_style.exists() and recent_old_style.exists()
    assert (cache / "cifar10-jpeg").stat().st_mode & 0o777 == 0o777 & ~atomic.umask()


def test_train_and_test_must_have_the_same_classes(dirs):
    data_dir, _ = dirs
    _write_tree(data_dir / "cifar10-jpeg")
    (data_dir / "cifar10-jpeg" / "test" / "emu").mkdir()
    with pytest.raises(data.ClassListError, match=r"only in train: none; only in test: emu"):
        data.load_split("cifar10", "train")


def test_decoded_tensors_of_an_earlier_version_do_not_pile_up(dirs, tmp_path):
    data_dir, cache = dirs
    _archive(tmp_path, data_dir, 1)
    data.load_split("cifar10", "test")
    data.load_split("cifar10", "test", subset=3)
    (cache / "tensors" / "cifar100-x.pt").write_bytes(b"another data set's")
    _archive(tmp_path, data_dir, 2)
    new = data.load_split("cifar10", "test")
    names = {p.name for p in (cache / "tensors").iterdir()}
    assert "cifar100-x.pt" in names  # another data set's cache is not touched
    kept = sorted(names - {"cifar100-x.pt"})
    assert len(kept) == 1 and kept[0].startswith(f"cifar10-{new.fingerprint[7:]}-test-all-")


def test_a_damaged_unpacked_copy_is_unpacked_again(dirs, tmp_path):
    data_dir, cache = dirs
    _archive(tmp_path, data_dir, 1)
    first = data.load_split("cifar10", "test")
    for f in (cache / "tensors").iterdir():
        f.unlink()
    (cache / "cifar10-jpeg" / "test" / "dog" / "0001.png").write_bytes(b"\x89PNG truncated")
    with pytest.warns(UserWarning, match=r"cifar10-jpeg has files deleted, added or changed since it was "
                                         r"unpacked from .*cifar10-jpeg.tar.gz; unpacking it again"):
        again = data.load_split("cifar10", "test")
    assert torch.equal(again.images, first.images)


def test_a_damaged_unpacked_copy_with_its_old_signature_is_unpacked_again_after_decoding(dirs, tmp_path):
    """Damage the stat signature cannot see (same size, old mtime): decoding fails, the copy is redone."""
    import os

    data_dir, cache = dirs
    _archive(tmp_path, data_dir, 1)
    first = data.load_split("cifar10", "test")
    for f in (cache / "tensors").iterdir():
        f.unlink()
    image = cache / "cifar10-jpeg" / "test" / "dog" / "0001.png"
    st = image.stat()
    image.write_bytes(b"\x89PNG" + b"\0" * (st.st_size - 4))
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.warns(UserWarning, match=r"0001.png cannot be decoded(?s:.*)unpacking it again"):
        again = data.load_split("cifar10", "test")
    assert torch.equal(again.images, first.images)


def test_an_image_deleted_from_the_unpacked_copy_is_noticed_and_the_copy_redone(dirs, tmp_path):
    """B52: the cached tree is checked against its listing signature, not trusted by its marker alone."""
    data_dir, cache = dirs
    _archive(tmp_path, data_dir, 1)
    first = data.load_split("cifar10", "train")
    for f in (cache / "tensors").iterdir():
        f.unlink()
    (cache / "cifar10-jpeg" / "train" / "dog" / "0002.png").unlink()
    with pytest.warns(UserWarning, match="has files deleted, added or changed since it was unpacked"):
        again = data.load_split("cifar10", "train")
    assert torch.equal(again.images, first.images) and again.fingerprint == first.fingerprint
    assert (cache / "cifar10-jpeg" / "train" / "dog" / "0002.png").is_file()

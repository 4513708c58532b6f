"""Data fingerprints: content hashes of the sources the loaders use, cached by size and mtime."""
import hashlib
import json
import os
import tarfile

import pytest

from rankbook.data import images, text
from rankbook.store import fingerprints


def _archive(data_dir, tmp_path, payload=b"pixels"):
    src = tmp_path / "src" / "cifar10-jpeg"
    for split in ("train", "test"):
        (src / split / "cat").mkdir(parents=True, exist_ok=True)
        (src / split / "cat" / "0000.jpg").write_bytes(payload)
    path = data_dir / "cifar10-jpeg.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="cifar10-jpeg")
    return path


def test_archive_fingerprint_is_the_sha256_of_its_bytes_and_unpacks_nothing(dirs, tmp_path):
    data_dir, cache = dirs
    path = _archive(data_dir, tmp_path)
    fp = images.fingerprint("cifar10", download=False)
    assert fp == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert not (cache / "cifar10-jpeg").exists()  # nothing unpacked
    copy = tmp_path / "elsewhere" / "same.tar.gz"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    assert fingerprints.fingerprint(copy) == fp  # same bytes, same fingerprint, wherever they are


def test_cached_value_is_reused_without_reading_the_file(dirs, tmp_path, monkeypatch):
    data_dir, _ = dirs
    _archive(data_dir, tmp_path)
    first = images.fingerprint("cifar10", download=False)
    monkeypatch.setattr(fingerprints, "_sha256_file", lambda p: pytest.fail(f"{p} was read again"))
    assert images.fingerprint("cifar10", download=False) == first


def test_an_edit_that_changes_mtime_changes_the_fingerprint(dirs, tmp_path):
    data_dir, _ = dirs
    (data_dir / "wikitext-2").mkdir()
    split = data_dir / "wikitext-2" / "valid.txt"
    split.write_text("hello world\n")
    before = text.fingerprint("wikitext-2", "valid")
    assert before == "sha256:" + hashlib.sha256(b"hello world\n").hexdigest()[:16]
    st = split.stat()
    split.write_text("jello world\n")  # same size
    os.utime(split, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    after = text.fingerprint("wikitext-2", "valid")
    assert after == "sha256:" + hashlib.sha256(b"jello world\n").hexdigest()[:16] != before


def test_imagefolder_tree_fingerprint_follows_content_and_ignores_hidden_files(dirs):
    data_dir, _ = dirs
    tree = data_dir / "cifar10-jpeg"
    for split in ("train", "test"):
        (tree / split / "cat").mkdir(parents=True)
        (tree / split / "cat" / "a.png").write_bytes(b"1")
    first = images.fingerprint("cifar10", download=False)
    (tree / ".marker").write_text("ours")
    assert images.fingerprint("cifar10", download=False) == first
    (tree / "test" / "cat" / "b.png").write_bytes(b"2")
    assert images.fingerprint("cifar10", download=False) != first


def test_missing_data_set_raises_the_clear_error(dirs):
    with pytest.raises(images.DataNotFoundError, match="data set 'cifar100' not found"):
        images.fingerprint("cifar100", download=False)
    with pytest.raises(text.TextDataNotFoundError, match="wikitext-2 \\(test split\\) not found"):
        text.fingerprint("wikitext-2", "test")


def test_a_read_only_or_damaged_cache_entry_is_not_an_error(dirs, tmp_path, monkeypatch):
    data_dir, cache = dirs
    path = _archive(data_dir, tmp_path)
    fp = images.fingerprint("cifar10", download=False)
    for entry in (cache / "fingerprints").iterdir():
        entry.write_text("{trunc")
    assert images.fingerprint("cifar10", download=False) == fp  # re-hashed and rewritten
    monkeypatch.setattr(fingerprints.atomic, "write_json", _raise_readonly)
    os.utime(path, ns=(0, 10**18))
    assert images.fingerprint("cifar10", download=False) == fp


def _raise_readonly(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


def test_real_offline_archive_if_present(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKBOOK_CACHE", str(tmp_path / "cache"))
    path = images.paths.data_root() / "cifar10-jpeg.tar.gz"
    if not path.is_file():
        pytest.skip("no offline CIFAR-10 archive in $RANKBOOK_DATA")
    assert images.fingerprint("cifar10", download=False) == "sha256:efac85c8ed52f4ea"


def test_an_unpacked_copy_keeps_the_archive_fingerprint_until_it_is_touched(dirs, tmp_path):
    data_dir, cache = dirs
    archive = _archive(data_dir, tmp_path)
    fp = images.fingerprint("cifar10", download=False)
    images.locate("cifar10", download=False)  # unpacked into the cache
    archive.unlink()  # e.g. another machine, or RANKBOOK_DATA unset: only the cache has the data
    source = images.locate("cifar10", download=False)
    assert source.status == "cached" and source.fingerprint == fp == images.fingerprint("cifar10")
    f = cache / "cifar10-jpeg" / "test" / "cat" / "0000.jpg"
    f.write_bytes(b"edited")
    os.utime(f, ns=(0, f.stat().st_mtime_ns + 10**9))
    assert images.fingerprint("cifar10") not in (fp, "")  # now the tree's own content hash


def test_a_marker_without_signature_gets_one_when_the_archive_is_used(dirs, tmp_path):
    data_dir, cache = dirs
    _archive(data_dir, tmp_path)
    fp = images.locate("cifar10", download=False).fingerprint
    marker = cache / "cifar10-jpeg" / images.sources.MARKER
    marker.write_text(json.dumps({"fingerprint": fp}))  # as written by the first version of markers
    images.locate("cifar10", download=False)
    assert json.loads(marker.read_text())["signature"].startswith("tree ")


def test_an_in_place_edit_keeping_size_and_mtime_is_found_by_verify_data(dirs, monkeypatch):
    """B101: the documented trade-off (size + mtime), and RANKBOOK_VERIFY_DATA=1 / --verify-data."""
    data_dir, _ = dirs
    (data_dir / "wikitext-2").mkdir()
    split = data_dir / "wikitext-2" / "valid.txt"
    split.write_text("hello world\n")
    before = text.fingerprint("wikitext-2", "valid")
    st = split.stat()
    split.write_text("jello world\n")
    os.utime(split, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    assert text.fingerprint("wikitext-2", "valid") == before  # the trade-off, as documented
    monkeypatch.setenv(fingerprints.VERIFY_VAR, "1")
    verified = text.fingerprint("wikitext-2", "valid")
    assert verified == "sha256:" + hashlib.sha256(b"jello world\n").hexdigest()[:16]
    monkeypatch.delenv(fingerprints.VERIFY_VAR)
    assert text.fingerprint("wikitext-2", "valid") != before, "the verified value is remembered"


def test_fingerprint_values_are_unchanged_by_the_loop_guard_and_layout_checks(dirs, tmp_path):
    """The results keys of stored runs hash these values: a tree's fingerprint is still its content hash."""
    data_dir, _ = dirs
    tree = data_dir / "cifar10-jpeg"
    (tree / "train" / "cat").mkdir(parents=True)
    (tree / "test" / "cat").mkdir(parents=True)
    (tree / "train" / "cat" / "a.jpg").write_bytes(b"A")
    (tree / "test" / "cat" / "b.jpg").write_bytes(b"B")
    lines = "".join(f"{rel}\0{hashlib.sha256(b).hexdigest()}\n" for rel, b in
                    (("test/cat/b.jpg", b"B"), ("train/cat/a.jpg", b"A")))
    assert images.fingerprint("cifar10", download=False) == (
        "sha256:" + hashlib.sha256(lines.encode()).hexdigest()[:16])
    (tree / "train" / "cat" / "link").symlink_to(tree / "test" / "cat" / "b.jpg")  # a link to a file: fine
    assert images.fingerprint("cifar10", download=False).startswith("sha256:")


def test_the_real_cifar10_passes_the_layout_check_if_unpacked_here():
    """The offline CIFAR-10 has exactly the known layout (listing 60,000 files, no decoding: ~1 s)."""
    from rankbook.data import sources
    from rankbook.store import paths

    tree = paths.cache_root() / "cifar10-jpeg"
    if not sources.is_imagefolder(tree):
        pytest.skip(f"no unpacked CIFAR-10 in {tree} (a chapter run unpacks it)")
    for split in ("train", "test"):
        files, labels, classes = images._list_imagefolder(tree / split)
        sources.check_layout("cifar10", split, classes, labels, tree / split)  # raises if incomplete
        assert len(files) == {"train": 50_000, "test": 10_000}[split]

"""A cache another user prepared, read-only to us (issue 14, point 10), tried for real as user ``nobody``.

The other tests simulate a read-only file system by making writes fail; this
one drops privileges with ``setpriv`` (root alone ignores file modes), so it
runs where the tests run as root and ``setpriv`` exists, and is skipped
elsewhere.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import damage
import pytest

from rankbook.data import images, text
from rankbook.store import paths

NOBODY = 65534
READ_AS_NOBODY = """
import warnings
warnings.simplefilter("always")
from rankbook.data import images, sources, text
sources.LAYOUTS.clear()  # a tiny tree stands in for CIFAR-10: its known layout is not checked here
test = images.load_split("cifar10", "test")
tokens = text.load_tokens("wikitext-2", "valid", "bytes")
with warnings.catch_warnings(record=True) as caught:
    sub = images.load_split("cifar10", "test", subset=3)  # not cached: decoded, with a warning
print(images.fingerprint("cifar10"), int(test.images.sum()), len(tokens), len(sub),
      any("not cached" in str(w.message) for w in caught))
"""


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to act as another user")
def test_a_cache_that_is_read_only_to_us_is_still_read(monkeypatch):
    top = Path(tempfile.mkdtemp(prefix="rankbook-ro-"))
    try:
        top.chmod(0o755)
        data_dir, cache = damage.offline_dirs(top, monkeypatch)
        damage.write_archive(top, data_dir)
        (data_dir / "wikitext-2").mkdir()
        (data_dir / "wikitext-2" / "valid.txt").write_text(" = Title = \n text \n" * 20, encoding="utf-8")
        test = images.load_split("cifar10", "test")  # prepared by its owner
        tokens = text.load_tokens("wikitext-2", "valid", "bytes")
        for folder in [cache, *[p for p in cache.rglob("*") if p.is_dir()]]:
            folder.chmod(0o555)  # readable by all, writable by nobody
        env = {**os.environ, "PYTHONPATH": str(paths.REPO_ROOT), "HOME": str(top)}
        out = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                              sys.executable, "-c", READ_AS_NOBODY],
                             cwd=top, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        fp, total, count, subset, warned = out.stdout.split()
        assert fp == images.fingerprint("cifar10") and int(total) == int(test.images.sum())
        assert int(count) == len(tokens) and int(subset) == 3 and warned == "True"
    finally:
        for folder in [top, *[p for p in top.rglob("*") if p.is_dir()]]:
            folder.chmod(0o755)
        shutil.rmtree(top)

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine: one thread avoids OpenMP spin-waiting (10-100x slowdowns)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """Empty offline-data and cache folders for this test (RANKBOOK_DATA, RANKBOOK_CACHE point there)."""
    data_dir, cache = tmp_path / "data", tmp_path / "cache"
    data_dir.mkdir()
    monkeypatch.setenv("RANKBOOK_DATA", str(data_dir))
    monkeypatch.setenv("RANKBOOK_CACHE", str(cache))
    from rankbook.data import sources

    monkeypatch.setattr(sources, "LAYOUTS", {})  # tiny trees stand in for CIFAR-10 (tests/damage.py)
    return data_dir, cache

"""Offline WikiText, byte tokens, deterministic batches, the missing-data error, and LM settings checks."""
import os

import damage
import pytest
import torch

from rankbook.data import text
from rankbook.settings import lm as lm_profiles
from rankbook.settings import profiles

SAMPLE = " = Valkyria Chronicles III = \n\n Senjō no Valkyria 3 is a tactical role @-@ playing game . \n" * 40


@pytest.fixture
def offline(tmp_path, monkeypatch):
    data, cache = tmp_path / "data", tmp_path / "cache"
    (data / "wikitext-2").mkdir(parents=True)
    (data / "wikitext-2" / "valid.txt").write_text(SAMPLE, encoding="utf-8")
    monkeypatch.setenv("RANKBOOK_DATA", str(data))
    monkeypatch.setenv("RANKBOOK_CACHE", str(cache))
    return data


def test_offline_bytes_round_trip(offline):
    t = text.load_tokens("wikitext-2", "valid", "bytes")
    assert t.vocab_size == 256 and len(t) == len(SAMPLE.encode("utf-8"))
    assert text.BYTES.decode(t.tokens[:30].tolist()) == SAMPLE.encode("utf-8")[:30].decode()
    assert "wikitext-2 valid" in t.description
    assert len(text.load_tokens("wikitext-2", "valid", "bytes", max_tokens=100)) == 100  # from the cache


def test_missing_text_names_dataset_places_and_fixes(offline):
    with pytest.raises(text.TextDataNotFoundError) as err:
        text.load_tokens("wikitext-2", "test", "bytes")
    msg = str(err.value)
    assert "wikitext-2 (test split)" in msg and str(offline / "wikitext-2" / "test.txt") in msg
    assert "(1)" in msg and "(2)" in msg and "RANKBOOK_DATA" in msg and "wikitext-103" in msg
    with pytest.raises(text.TextDataNotFoundError, match="downloading is off"):
        text.locate("wikitext-103", "train", download=False)


def test_gpt2_tokenizer_falls_back_to_bytes_with_a_message(monkeypatch):
    monkeypatch.setattr(text, "_gpt2_bpe", lambda: None)
    with pytest.warns(UserWarning, match="byte-level"):
        assert text.tokenizer("gpt2") is text.BYTES
    with pytest.raises(RuntimeError, match="tiktoken"):
        text.tokenizer("gpt2", strict=True)


def test_batches_are_deterministic_by_seed_and_step(offline):
    t = text.load_tokens("wikitext-2", "valid", "bytes")
    a = text.train_batch(t, step=7, seed=1, batch_size=4, seq_len=16)
    assert a.shape == (4, 17) and a.dtype == torch.int64
    torch.testing.assert_close(a, text.train_batch(t, step=7, seed=1, batch_size=4, seq_len=16))
    assert not torch.equal(a, text.train_batch(t, step=8, seed=1, batch_size=4, seq_len=16))
    assert not torch.equal(a, text.train_batch(t, step=7, seed=2, batch_size=4, seq_len=16))
    # every row is a contiguous window of the text
    starts = [int(torch.nonzero((t.tokens.unfold(0, 17, 1) == row).all(1))[0]) for row in a]
    assert all(s >= 0 for s in starts)
    w = text.eval_windows(t, seq_len=16, max_windows=3)
    torch.testing.assert_close(w[1, 0], t.tokens[16]) and torch.testing.assert_close(w[0], t.tokens[:17])


def test_real_offline_wikitext_if_present():
    try:
        t = text.load_tokens("wikitext-2", "test", "bytes", max_tokens=1000)
    except text.TextDataNotFoundError:
        pytest.skip("no offline WikiText-2 in $RANKBOOK_DATA")
    assert len(t) == 1000 and int(t.tokens.max()) < 256


@pytest.mark.parametrize("bad, match", [
    (dict(train_split="train"), "wikitext-2 has only the splits"),
    (dict(warmup_steps=10**6), "below steps"),
    (dict(layers_shown=(1, 9)), "exceed depth"),
    (dict(tokenizer="words"), "valid choices"),
    (dict(context=1), "out of range"),
    (dict(lr="fast"), "must be float"),
])
def test_settings_validation(bad, match):
    with pytest.raises(profiles.ProfileError, match=match):
        lm_profiles.PROFILES["fast"].replace(**bad)


def test_profiles_table():
    fast = profiles.select(lm_profiles.PROFILES, "fast")
    paper = profiles.select(lm_profiles.PROFILES, "paper")
    assert (paper.depth, paper.heads, paper.d_model, paper.d_head, paper.context) == (12, 12, 768, 64, 1024)
    assert (fast.corpus, fast.train_split, fast.eval_split, fast.tokenizer) == (
        "wikitext-2", "valid", "test", "bytes")


def test_an_edit_of_the_same_size_is_tokenized_again(offline):
    first = text.load_tokens("wikitext-2", "valid", "bytes")
    path = offline / "wikitext-2" / "valid.txt"
    edited = SAMPLE.replace("Valkyria", "Walkyria", 1)
    assert len(edited.encode()) == len(SAMPLE.encode())
    path.write_text(edited, encoding="utf-8")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))
    second = text.load_tokens("wikitext-2", "valid", "bytes")
    assert second.fingerprint != first.fingerprint and second.fingerprint in second.description
    assert text.BYTES.decode(second.tokens[:20].tolist()) == edited[:20] != SAMPLE[:20]


def test_a_damaged_token_cache_is_rebuilt(offline, tmp_path):
    first = text.load_tokens("wikitext-2", "valid", "bytes")
    (cache,) = (tmp_path / "cache" / "tokens").glob("*.npy")
    cache.write_bytes(cache.read_bytes()[:90])
    with pytest.warns(UserWarning, match=r"token cache .*\.npy is damaged .*tokenizing the text again"):
        again = text.load_tokens("wikitext-2", "valid", "bytes")
    assert torch.equal(again.tokens, first.tokens)


def test_a_read_only_token_cache_is_read_and_a_new_entry_costs_a_warning(offline, tmp_path, monkeypatch):
    first = text.load_tokens("wikitext-2", "valid", "bytes")
    damage.read_only(monkeypatch, tmp_path / "cache")
    monkeypatch.setattr(text, "read_text", lambda p: pytest.fail("tokenized again"))
    assert torch.equal(text.load_tokens("wikitext-2", "valid", "bytes").tokens, first.tokens)
    (offline / "wikitext-2" / "test.txt").write_text(SAMPLE[:500], encoding="utf-8")
    monkeypatch.setattr(text, "read_text", lambda p: p.read_text(encoding="utf-8"))
    with pytest.warns(UserWarning, match="read-only.*tokenized again next time"):
        assert len(text.load_tokens("wikitext-2", "test", "bytes")) == len(SAMPLE[:500].encode())


def test_tokens_of_an_earlier_version_do_not_pile_up(offline, tmp_path):
    text.load_tokens("wikitext-2", "valid", "bytes")
    path = offline / "wikitext-2" / "valid.txt"
    path.write_text(SAMPLE + "more\n", encoding="utf-8")
    new = text.load_tokens("wikitext-2", "valid", "bytes")
    (cache,) = (tmp_path / "cache" / "tokens").iterdir()
    assert new.fingerprint[7:] in cache.name

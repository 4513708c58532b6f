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


def test_a_bpe_profile_never_falls_back_to_bytes(offline, monkeypatch):
    """Without GPT-2's files (and offline) asking for the BPE is an error naming the files and the fix."""
    with pytest.raises(text.TokenizerNotFoundError) as err:
        text.tokenizer("gpt2", download=False)
    msg = str(err.value)
    assert str(offline / "gpt2-tokenizer" / "vocab.json") in msg and "merges.txt" in msg
    assert "RANKBOOK_DATA" in msg and "tokenizer='bytes'" in msg
    # the reference profile asks for the BPE: training stops before any work, naming the files
    from rankbook.training import lm

    for split in ("train", "test"):
        (offline / "wikitext-2" / f"{split}.txt").write_text(SAMPLE, encoding="utf-8")
    reference = lm_profiles.PROFILES["reference"]
    assert reference.tokenizer == "gpt2"
    task = lm.task(reference, 0, download=False)
    with pytest.raises(text.TokenizerNotFoundError, match="vocab.json"):
        task.check()
    with pytest.raises(text.TokenizerNotFoundError):
        task.model_config()


def test_gpt2_bpe_from_the_offline_files_is_gpt2s_tokenizer():
    """The real files (if here): 50,257 tokens, GPT-2's known ids, exact round trip, never bytes."""
    if not (text.gpt2_candidates()[0] / "vocab.json").is_file():
        pytest.skip("no GPT-2 tokenizer files in $RANKBOOK_DATA")
    tok = text.tokenizer("gpt2", download=False)
    assert tok is not text.BYTES and tok.name == "gpt2" and tok.vocab_size == 50257
    assert tok.fingerprint.startswith("sha256:")
    # GPT-2's published ids: "Hello" 15496, " world" 995; " <unk>" is three tokens
    assert list(tok.encode("Hello world")) == [15496, 995]
    sample = " = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : <unk> Chronicles \n"
    ids = list(tok.encode(sample))
    assert tok.decode(ids) == sample and max(ids) >= 256


def test_word_count_is_wikitexts():
    assert text.word_count(" = A b = \n \n c , d \n") == 5 + 2 + 3
    path = text.candidates("wikitext-2", "test")[0]
    if not path.is_file():
        pytest.skip("no offline WikiText-2")
    assert text.word_count(text.read_text(path)) == text.WIKITEXT2_SIZES["test"][1] == 245569


def test_all_windows_cover_every_token_but_the_first(offline):
    t = text.load_tokens("wikitext-2", "valid", "bytes", max_tokens=1000)
    windows = text.all_windows(t, seq_len=64)
    assert sum(len(w) - 1 for w in windows) == len(t) - 1
    assert torch.equal(torch.cat([windows[0][:1]] + [w[1:] for w in windows]), t.tokens)


@pytest.mark.parametrize("content, match", [
    (b"\x00" * 4000, r"valid.txt is only NUL bytes: not text\. Fix: copy the original"),
    (SAMPLE.encode() + b"\x00" * 5000, r"valid.txt holds 5,000 NUL bytes from offset 3,680 .*crash"),
    (SAMPLE.encode("utf-16"), r"valid.txt is UTF-16, not UTF-8\. Fix: `iconv -f utf-16 -t utf-8"),
    ("ÿþ".encode() + SAMPLE.encode("utf-16-le").decode("latin-1").encode(),
     r"UTF-16 file converted as if it were Latin-1 .*iconv -f utf-16"),
    (SAMPLE.encode().decode("latin-1").encode() * 3, r"looks garbled: .* pairs such as 'Å\\x8d'"),
    (SAMPLE.replace("III", "III\x07").encode(), r"control characters \(U\+0007"),
])
def test_damaged_text_is_refused_with_the_fix(offline, content, match):
    (offline / "wikitext-2" / "valid.txt").write_bytes(content)
    with pytest.raises(text.DamagedFileError, match=match):
        text.load_tokens("wikitext-2", "valid", "bytes")


def test_a_missing_wikitext_names_every_missing_split(offline):
    with pytest.raises(text.TextDataNotFoundError) as err:
        text.require("wikitext-2", ("train", "valid", "test"))
    msg = str(err.value)
    assert "wikitext-2 (train, test splits) not found" in msg
    assert all(str(offline / "wikitext-2" / f"{split}.txt") in msg for split in ("train", "test"))
    from rankbook.training import lm

    with pytest.raises(text.TextDataNotFoundError, match=r"train, test splits"):
        lm.run(lm_profiles.PROFILES["fast"], 0)


def test_too_short_text_names_the_file_and_the_fixes(offline):
    t = text.load_tokens("wikitext-2", "valid", "bytes", max_tokens=100)
    with pytest.raises(text.TextTooShortError, match=r"valid.txt is too short: 100 bytes tokens.*complete "
                       r"WikiText-2 valid split has 3,760 lines.*lower context=128"):
        text.train_batch(t, 0, 0, 4, 128)
    with pytest.raises(text.TextTooShortError, match=r"eval_windows=64"):
        text.eval_windows(t, 16, 64)


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
    (dict(corpus="wikitext-103", train_split="dev"), "valid choices"),
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
    reference = profiles.select(lm_profiles.PROFILES, "reference")
    for p in (fast, reference, paper):  # train on train, select on valid, report on test, at every tier
        splits = (p.corpus, p.train_split, p.eval_split, p.test_split)
        assert splits == ("wikitext-2", "train", "valid", "test")
    assert fast.tokenizer == "bytes" and reference.tokenizer == paper.tokenizer == "gpt2"
    assert reference.depth >= 6 and reference.heads >= 8
    assert (paper.precision, paper.compile) == ("auto", True)


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
    (cache,) = (tmp_path / "cache" / "tokens").glob("*.npy")
    assert len(list((tmp_path / "cache" / "tokens").iterdir())) == 2  # the tokens and their word count
    assert new.fingerprint[7:] in cache.name

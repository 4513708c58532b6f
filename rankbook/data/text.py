"""Text for the language-model chapter: WikiText, tokenized, and deterministic batches.

Corpora
-------
``wikitext-103`` (the paper-profile corpus; Merity et al., 2016): the raw
zip ``wikitext-103-raw-v1.zip`` is downloaded with ``urllib`` from its usual
place (:data:`WIKITEXT103_URLS`) into ``cache_root()/wikitext-103-raw/`` once,
when a network is there; it is also found if already unpacked in
``data_root()`` or the cache. The ``datasets`` library is not used (not a
dependency of the book).

``wikitext-2`` (offline): only the raw *validation* and *test* splits are
kept in ``data_root()/wikitext-2/{valid,test}.txt`` (the train split is not).
The fast profile therefore **trains on WikiText-2 valid and evaluates on
WikiText-2 test**; the chapter says so on the page.

Tokenizers
----------
``bytes``: UTF-8 bytes, vocabulary 256; works everywhere (fast profile).
``gpt2``: GPT-2's BPE (vocabulary 50,257), loaded from the optional
``tiktoken`` package or, failing that, ``transformers``; neither is a
dependency. When neither loads, :func:`tokenizer` falls back to bytes and
says so with a warning (pass ``strict=True`` to get an error instead).

Batches
-------
:func:`train_batch` draws ``batch_size`` windows of ``seq_len + 1`` tokens at
offsets chosen by a generator seeded from ``(seed, step)`` alone, so any
step's batch is reproducible without state (resuming needs nothing).
:func:`eval_windows` cuts the evaluation text into consecutive
non-overlapping windows, the same every time.

Caches and damaged files
------------------------
Tokens are cached in ``cache_root()/tokens/`` under the split file's content
fingerprint (:func:`fingerprint`), so an edited file is tokenized again even
when its size did not change. A damaged token cache is rebuilt; a cache that
cannot be written only costs tokenizing again. A split file that is not
UTF-8 (e.g. Latin-1) or is empty is an error naming the file and the fix.
"""
from __future__ import annotations

import dataclasses
import shutil
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rankbook.store import atomic, errors, fingerprints, paths

CORPORA = ("wikitext-2", "wikitext-103")
TOKENIZERS = ("bytes", "gpt2")
#: where WikiText-103 (raw) is usually downloaded from (the original S3 bucket, then its mirror)
WIKITEXT103_URLS = ("https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip",
                    "https://wikitext.smerity.com/wikitext-103-raw-v1.zip")
#: file names of each corpus' splits, relative to the corpus folder
SPLIT_FILES = {"wikitext-2": {"valid": "valid.txt", "test": "test.txt"},
               "wikitext-103": {"train": "wiki.train.raw", "valid": "wiki.valid.raw",
                                "test": "wiki.test.raw"}}
FOLDERS = {"wikitext-2": "wikitext-2", "wikitext-103": "wikitext-103-raw"}


DamagedFileError = errors.DamagedFileError


class TextDataNotFoundError(FileNotFoundError):
    """A corpus split neither on disk nor downloadable; the message names where it looked and the fixes."""


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    """A name, a vocabulary size, and ``encode: str -> list[int]``."""

    name: str
    vocab_size: int
    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]


BYTES = Tokenizer("bytes", 256, lambda s: list(s.encode("utf-8")),
                  lambda ids: bytes(int(i) for i in ids).decode("utf-8", errors="replace"))


def _gpt2_bpe() -> Tokenizer | None:
    try:
        import tiktoken

        enc = tiktoken.get_encoding("gpt2")
        return Tokenizer("gpt2", enc.n_vocab, lambda s: enc.encode_ordinary(s), enc.decode)
    except Exception:  # not installed, or its vocabulary file cannot be fetched offline
        pass
    try:
        from transformers import GPT2TokenizerFast

        tok = GPT2TokenizerFast.from_pretrained("gpt2")
        return Tokenizer("gpt2", tok.vocab_size, lambda s: tok(s)["input_ids"], tok.decode)
    except Exception:
        return None


def tokenizer(name: str, strict: bool = False) -> Tokenizer:
    """The tokenizer ``name`` (``bytes`` or ``gpt2``); ``gpt2`` falls back to bytes when no BPE loads."""
    if name == "bytes":
        return BYTES
    if name != "gpt2":
        raise ValueError(f"unknown tokenizer {name!r}; valid: {', '.join(TOKENIZERS)}")
    bpe = _gpt2_bpe()
    if bpe is not None:
        return bpe
    msg = ("GPT-2's BPE could not be loaded (install `tiktoken` or `transformers` and let it fetch the gpt2 "
           "vocabulary once); using byte-level tokens (vocabulary 256) instead")
    if strict:
        raise RuntimeError(msg)
    warnings.warn(msg, stacklevel=2)
    return BYTES


# --------------------------------------------------------------------------- locating the text


def candidates(corpus: str, split: str) -> list[Path]:
    """Where ``corpus``'s ``split`` is looked for, in order: the offline data folder, then the cache."""
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; valid: {', '.join(CORPORA)}")
    files = SPLIT_FILES[corpus]
    if split not in files:
        raise ValueError(f"{corpus} has no split {split!r} here; available: {', '.join(files)}")
    folder = FOLDERS[corpus]
    return [root / folder / files[split] for root in (paths.data_root(), paths.cache_root())]


def locate(corpus: str, split: str, download: bool = True) -> Path:
    """The path of a corpus split; downloads WikiText-103 into the cache when allowed and online."""
    looked = candidates(corpus, split)
    for path in looked:
        if path.is_file():
            return path
    why = "downloading is off"
    if download and corpus == "wikitext-103":
        try:
            _download_wikitext103(paths.cache_root())
            return locate(corpus, split, download=False)
        except OSError as exc:
            why = f"the download failed ({exc})"
    elif corpus == "wikitext-2":
        why = "the book does not download WikiText-2"
    raise TextDataNotFoundError(_missing_message(corpus, split, looked, why))


def fingerprint(corpus: str, split: str, download: bool = True) -> str:
    """``"sha256:<16 hex>"`` of the bytes of the split file :func:`locate` finds (cached by size, mtime)."""
    return fingerprints.fingerprint(locate(corpus, split, download=download))


def _missing_message(corpus: str, split: str, looked: list[Path], why: str) -> str:
    where = "; ".join(str(p) for p in looked)
    return (f"{corpus} ({split} split) not found; looked in: {where}; {why}. Fixes: (1) put the raw text at "
            f"{looked[0]} (e.g. set RANKBOOK_DATA to a folder holding {FOLDERS[corpus]}/"
            f"{SPLIT_FILES[corpus][split]}); or (2) run online with corpus='wikitext-103', which downloads "
            f"{WIKITEXT103_URLS[0]} into {paths.cache_root()}.")


def _download_wikitext103(cache: Path) -> None:
    target = cache / FOLDERS["wikitext-103"]
    if target.is_dir():
        return
    archive = cache / "wikitext-103-raw-v1.zip"
    last: OSError | None = None
    for url in WIKITEXT103_URLS:
        try:
            atomic.write_with(archive, lambda tmp: _fetch(url, tmp))
            break
        except OSError as exc:
            last = exc
    else:
        raise last or OSError("no URL")
    atomic.clean_stale(cache, target.name)  # half-unpacked folders of killed runs
    staging = cache / atomic.temp_name(target.name)
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(staging)
        except (zipfile.BadZipFile, EOFError) as exc:
            archive.unlink(missing_ok=True)  # a download is derived: the next run fetches it again
            raise DamagedFileError(f"the download {archive} is damaged ({exc}); it was deleted: run again "
                                   f"to download it again") from exc
        (staging / target.name).rename(target)  # one rename: readers never see half a folder
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=30) as response, open(dest, "wb") as fh:
        shutil.copyfileobj(response, fh)


# --------------------------------------------------------------------------- tokens and batches


@dataclasses.dataclass(frozen=True)
class TokenText:
    """One tokenized split: ``tokens`` (int64, 1-D) and where they came from."""

    tokens: torch.Tensor
    vocab_size: int
    tokenizer: str
    description: str
    fingerprint: str = ""  # of the split file (:func:`fingerprint`), for results manifests

    def __len__(self) -> int:
        return len(self.tokens)


def load_tokens(corpus: str, split: str, tokenizer_name: str = "bytes", max_tokens: int = 0,
                download: bool = True) -> TokenText:
    """Tokenize ``corpus``'s ``split`` (its first ``max_tokens`` tokens when > 0); cached (module doc)."""
    path = locate(corpus, split, download=download)
    atomic.sweep_once(paths.cache_root())  # temporaries of runs killed earlier
    tok = tokenizer(tokenizer_name)
    fp = fingerprints.fingerprint(path)
    stem = f"{FOLDERS[corpus]}-{split}-{tok.name}-"
    cache = paths.cache_root() / "tokens" / f"{stem}{fp[len(fingerprints.PREFIX):]}.npy"
    ids = _read_token_cache(cache, tok.vocab_size)
    if ids is None:
        ids = np.asarray(tok.encode(read_text(path)), dtype=np.int32)
        try:
            atomic.write_with(cache, lambda tmp: _save_npy(tmp, ids))
            fingerprints.remove_superseded(cache.parent, f"{stem}*.npy", cache.name)  # earlier versions
        except OSError as exc:  # full disk, read-only cache: only the caching is lost
            warnings.warn(f"{exc}; the tokens are not cached, so the text is tokenized again next time",
                          stacklevel=2)
    if max_tokens:
        ids = ids[:max_tokens]
    desc = (f"{corpus} {split} ({path}, {fp}), {len(ids):,} {tok.name} tokens"
            + (f" (first {max_tokens:,})" if max_tokens else ""))
    return TokenText(torch.from_numpy(ids.astype(np.int64)), tok.vocab_size, tok.name, desc, fp)


def read_text(path: Path) -> str:
    """The UTF-8 text of a split file; an error naming the file and the fix when it is not UTF-8 or empty."""
    raw = Path(path).read_bytes()
    if not raw or raw.isspace():
        raise DamagedFileError(f"{path} is empty; put the raw corpus text there (copy it again from its "
                               f"source)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedFileError(
            f"{path} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} ({exc.reason}); "
            f"perhaps Latin-1 or another encoding. Fix: convert it, e.g. `iconv -f latin1 -t utf-8 {path} "
            f"> {Path(path).name}.utf8 && mv {Path(path).name}.utf8 {path}`, or copy the original "
            f"(UTF-8) file again") from exc


def _read_token_cache(path: Path, vocab_size: int) -> np.ndarray | None:
    """Cached token ids; None (and the file removed) when missing or damaged: they are simply rebuilt."""
    if not path.is_file():
        return None
    try:
        ids = np.load(path, allow_pickle=False)
        if ids.ndim == 1 and ids.dtype == np.int32 and len(ids) and 0 <= ids.min() and ids.max() < vocab_size:
            return ids
        problem = "unexpected contents"
    except (OSError, ValueError, EOFError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    warnings.warn(f"the token cache {path} is damaged ({problem}); tokenizing the text again", stacklevel=3)
    try:
        path.unlink()
    except OSError:
        pass  # read-only cache
    return None


def _save_npy(tmp: Path, ids: np.ndarray) -> None:
    with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to a bare path
        np.save(fh, ids)


def train_batch(text: TokenText, step: int, seed: int, batch_size: int, seq_len: int) -> torch.Tensor:
    """Batch ``step``: ``[batch_size, seq_len + 1]`` windows at offsets drawn from ``(seed, step)`` alone."""
    span = len(text) - seq_len - 1
    if span < 1:
        raise ValueError(f"{text.description} is too short for windows of {seq_len + 1} tokens")
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, span + 1, (batch_size,), generator=gen)
    return text.tokens[starts[:, None] + torch.arange(seq_len + 1)]


def eval_windows(text: TokenText, seq_len: int, max_windows: int = 0) -> torch.Tensor:
    """Consecutive non-overlapping ``[windows, seq_len + 1]`` slices of the text (first ``max_windows``)."""
    count = (len(text) - 1) // seq_len
    if count < 1:
        raise ValueError(f"{text.description} is too short for windows of {seq_len + 1} tokens")
    if max_windows:
        count = min(count, max_windows)
    starts = torch.arange(count) * seq_len
    return text.tokens[starts[:, None] + torch.arange(seq_len + 1)]

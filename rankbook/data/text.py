"""Text for the language-model chapters: WikiText, tokenized, checked, and deterministic batches.

Corpora
-------
``wikitext-2`` (offline; Merity et al., 2016): version 1 as tokenized by its
authors (``wiki.{train,valid,test}.tokens``: rare words already replaced by
``<unk>``, numbers split as ``@,@``), kept in
``data_root()/wikitext-2/{train,valid,test}.txt``. Every profile **trains on
train, selects on valid and reports on test**. The book does not download it.

``wikitext-103`` (raw, online only): the zip ``wikitext-103-raw-v1.zip`` is
downloaded with ``urllib`` from its usual place (:data:`WIKITEXT103_URLS`) into
``cache_root()/wikitext-103-raw/`` once; no profile uses it (not available
offline).

Tokenizers
----------
``bytes``: UTF-8 bytes, vocabulary 256; an explicit setting (the fast profile).
``gpt2``: GPT-2's byte-level BPE (Radford et al., 2019; 50,257 tokens) through
HF ``tokenizers``, from ``data_root()/gpt2-tokenizer/{vocab.json,merges.txt}``
(or the cache) offline, else from the model hub (``gpt2``) online. There is
**no fallback**: a BPE that cannot be loaded is a :class:`TokenizerNotFoundError`
naming the files looked for and the fix, raised before any work.

Checks of the text
------------------
:func:`read_text` refuses, naming the file and the fix: an empty file; NUL
bytes (all NULs, or text followed by NULs, what a crash leaves); UTF-16 (a
BOM or every other byte NUL); bytes that are not UTF-8; and control
characters or Latin-1 mojibake (``Ã©`` for ``é``, what decoding UTF-8 or
UTF-16 as Latin-1 produces). :func:`require` checks every split a run needs
at once, so a missing corpus names every missing file. A split too short
for the windows asked for is an error naming the file, the lengths and the
fixes.

Batches
-------
:func:`train_batch` draws ``batch_size`` windows of ``seq_len + 1`` tokens at
offsets chosen by a generator seeded from ``(seed, step)`` alone, so any
step's batch is reproducible without state (resuming needs nothing).
:func:`eval_windows` cuts the evaluation text into consecutive
non-overlapping windows, the same every time; :func:`all_windows` covers
every token of a split (the last window shorter), for the per-word
perplexity of a whole split (:func:`word_count`).

Caches
------
Tokens are cached in ``cache_root()/tokens/`` under the split file's content
fingerprint and the tokenizer's (its files' fingerprint), so a split is
tokenized once, and again only when the text or the tokenizer changes. A
damaged token cache is rebuilt; a cache that cannot be written only costs
tokenizing again.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from rankbook.store import atomic, errors, fingerprints, paths

CORPORA = ("wikitext-2", "wikitext-103")
TOKENIZERS = ("bytes", "gpt2")
#: where WikiText-103 (raw) is usually downloaded from (the original S3 bucket, then its mirror)
WIKITEXT103_URLS = ("https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip",
                    "https://wikitext.smerity.com/wikitext-103-raw-v1.zip")
#: file names of each corpus' splits, relative to the corpus folder
SPLIT_FILES = {"wikitext-2": {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"},
               "wikitext-103": {"train": "wiki.train.raw", "valid": "wiki.valid.raw",
                                "test": "wiki.test.raw"}}
FOLDERS = {"wikitext-2": "wikitext-2", "wikitext-103": "wikitext-103-raw"}
#: lines and words (one end-of-line token per line) of the complete WikiText-2 v1 splits (data README)
WIKITEXT2_SIZES = {"train": (36718, 2088628), "valid": (3760, 217646), "test": (4358, 245569)}
#: GPT-2's BPE files, looked for in ``data_root()/GPT2_FOLDER`` then the cache; the hub's name for it
GPT2_FOLDER, GPT2_FILES, GPT2_HUB = "gpt2-tokenizer", ("vocab.json", "merges.txt"), "gpt2"
GPT2_VOCAB = 50257


DamagedFileError = errors.DamagedFileError


class TextDataNotFoundError(FileNotFoundError):
    """A corpus split neither on disk nor downloadable; the message names where it looked and the fixes."""


class TokenizerNotFoundError(FileNotFoundError):
    """GPT-2's BPE asked for but neither on disk nor on the hub; the message names the files and the fix."""


class TextTooShortError(ValueError):
    """A split shorter than the windows asked of it; the message names the file, the lengths and fixes."""


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    """A name, a vocabulary size, ``encode: str -> list[int]``, and where it came from (``fingerprint``)."""

    name: str
    vocab_size: int
    encode: Callable[[str], "list[int] | np.ndarray"]
    decode: Callable[[list[int]], str]
    fingerprint: str = ""  # of its files (sha256:...), or "hub:<name>"; keys the token cache


BYTES = Tokenizer("bytes", 256, lambda s: np.frombuffer(s.encode("utf-8"), dtype=np.uint8),
                  lambda ids: bytes(int(i) for i in ids).decode("utf-8", errors="replace"), "bytes")


def gpt2_candidates() -> list[Path]:
    """Folders where GPT-2's ``vocab.json`` and ``merges.txt`` are looked for: the data folder, the cache."""
    return [root / GPT2_FOLDER for root in (paths.data_root(), paths.cache_root())]


def _bpe_from_files(folder: Path) -> Tokenizer:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    vocab, merges = (folder / name for name in GPT2_FILES)
    try:
        model = models.BPE.from_file(str(vocab), str(merges))
    except Exception as exc:  # tokenizers raises its own Exception type for unreadable files
        raise DamagedFileError(f"GPT-2's BPE files in {folder} cannot be read ({exc}); copy {vocab.name} and "
                               f"{merges.name} again (data README lists their sha256)") from exc
    hf = HFTokenizer(model)
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's regex and byte map
    hf.decoder = decoders.ByteLevel()
    size = hf.get_vocab_size()
    if size != GPT2_VOCAB:
        raise DamagedFileError(f"{vocab} holds {size:,} tokens, GPT-2's BPE has {GPT2_VOCAB:,}: it is not "
                               f"GPT-2's vocabulary; copy vocab.json and merges.txt again")
    fp = "+".join(fingerprints.fingerprint(p) for p in (vocab, merges))
    return Tokenizer("gpt2", size, lambda s: hf.encode(s).ids, hf.decode, fp)


def _bpe_from_hub() -> Tokenizer:
    from tokenizers import Tokenizer as HFTokenizer

    hf = HFTokenizer.from_pretrained(GPT2_HUB)
    size = hf.get_vocab_size()
    return Tokenizer("gpt2", size, lambda s: hf.encode(s, add_special_tokens=False).ids, hf.decode,
                     f"hub:{GPT2_HUB}")


_LOADED: dict[tuple[str, ...], Tokenizer] = {}


def tokenizer(name: str, download: bool = True) -> Tokenizer:
    """The tokenizer ``name``: ``bytes``, or ``gpt2`` (GPT-2's BPE; never replaced by another).

    ``gpt2`` is read from the first of :func:`gpt2_candidates` holding both files, else (``download``)
    fetched from the hub; otherwise a :class:`TokenizerNotFoundError` naming the files and the fix.
    """
    if name == "bytes":
        return BYTES
    if name != "gpt2":
        raise ValueError(f"unknown tokenizer {name!r}; valid: {', '.join(TOKENIZERS)}")
    try:
        import tokenizers  # noqa: F401
    except ImportError as exc:
        raise TokenizerNotFoundError(
            "tokenizer 'gpt2' (GPT-2's BPE) needs the package `tokenizers`, which is not installed. Fix: "
            "`pip install tokenizers` (it is in requirements.txt), or choose tokenizer='bytes' explicitly"
        ) from exc
    looked = gpt2_candidates()
    for folder in looked:
        if all((folder / f).is_file() for f in GPT2_FILES):
            key = (str(folder), *(fingerprints.fingerprint(folder / f) for f in GPT2_FILES))
            if key not in _LOADED:
                _LOADED[key] = _bpe_from_files(folder)
            return _LOADED[key]
    why = "downloading is off"
    if download:
        try:
            if ("hub",) not in _LOADED:
                _LOADED[("hub",)] = _bpe_from_hub()
            return _LOADED[("hub",)]
        except Exception as exc:  # offline: the hub client raises several types
            why = f"the model hub could not be reached ({type(exc).__name__})"
    files = "; ".join(str(folder / f) for folder in looked for f in GPT2_FILES)
    raise TokenizerNotFoundError(
        f"tokenizer 'gpt2' (GPT-2's BPE) not found: looked for {files}; {why}. Fix: put GPT-2's vocab.json "
        f"and merges.txt in {looked[0]} (set RANKBOOK_DATA to a folder holding {GPT2_FOLDER}/), or run "
        f"online once (the hub's '{GPT2_HUB}' tokenizer), or choose tokenizer='bytes' explicitly. The BPE is "
        f"never replaced by bytes silently."
    )


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


def require(corpus: str, splits: Iterable[str], download: bool = True) -> dict[str, Path]:
    """The path of each split a run needs; one error naming **every** missing split when any is missing."""
    found, missing = {}, []
    for split in dict.fromkeys(splits):
        try:
            found[split] = locate(corpus, split, download=download)
        except TextDataNotFoundError:
            missing.append(split)
    if missing:
        looked = {split: candidates(corpus, split) for split in missing}
        why = ("the book does not download WikiText-2" if corpus == "wikitext-2"
               else "downloading is off" if not download else "the download failed")
        raise TextDataNotFoundError(_missing_message(corpus, missing, looked, why))
    return found


def fingerprint(corpus: str, split: str, download: bool = True) -> str:
    """``"sha256:<16 hex>"`` of the bytes of the split file :func:`locate` finds (cached by size, mtime)."""
    return fingerprints.fingerprint(locate(corpus, split, download=download))


def _missing_message(corpus: str, splits: list[str] | str, looked: dict[str, list[Path]] | list[Path],
                     why: str) -> str:
    if isinstance(splits, str):
        splits, looked = [splits], {splits: looked}
    where = "; ".join(str(p) for split in splits for p in looked[split])
    names = ", ".join(SPLIT_FILES[corpus][split] for split in splits)
    folder = looked[splits[0]][0].parent
    which = f"{', '.join(splits)} split{'s' if len(splits) > 1 else ''}"
    if corpus == "wikitext-2":
        fixes = (f"Fixes: (1) put WikiText-2 (v1, tokenized: wiki.{{train,valid,test}}.tokens renamed "
                 f"{{train,valid,test}}.txt) in {folder}, or set RANKBOOK_DATA to a folder holding "
                 f"wikitext-2/{{{names}}}; or (2) run online with corpus='wikitext-103', which downloads "
                 f"{WIKITEXT103_URLS[0]} into {paths.cache_root()}.")
    else:
        fixes = (f"Fixes: (1) put the raw text at {folder} (files {names}); or (2) run online, which "
                 f"downloads {WIKITEXT103_URLS[0]} into {paths.cache_root()}.")
    return f"{corpus} ({which}) not found; looked in: {where}; {why}. {fixes}"


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
    path: str = ""  # the split file, for error messages
    words: int = 0  # WikiText words of the whole split (one end-of-line token per line), :func:`word_count`

    def __len__(self) -> int:
        return len(self.tokens)


def data_label(corpus: str, split: str, path: Path) -> str:
    """``wikitext-2 train (wikitext-2/train.txt)``: the path relative to the data (or cache) folder."""
    path = Path(path)
    for root in (paths.data_root(), paths.cache_root()):
        try:
            return f"{corpus} {split} ({path.resolve().relative_to(root.resolve())})"
        except ValueError:
            continue
    return f"{corpus} {split} ({path.name})"


def load_tokens(corpus: str, split: str, tokenizer_name: str = "bytes", max_tokens: int = 0,
                download: bool = True) -> TokenText:
    """Tokenize ``corpus``'s ``split`` (its first ``max_tokens`` tokens when > 0); cached (module doc)."""
    path = locate(corpus, split, download=download)
    atomic.sweep_once(paths.cache_root())  # temporaries of runs killed earlier
    tok = tokenizer(tokenizer_name, download=download)
    fp = fingerprints.fingerprint(path)
    stem = f"{FOLDERS[corpus]}-{split}-{tok.name}-"
    tok_key = tok.fingerprint.replace(fingerprints.PREFIX, "").replace(":", "-").replace("+", "-")
    cache = paths.cache_root() / "tokens" / f"{stem}{fp[len(fingerprints.PREFIX):]}-{tok_key}.npy"
    meta = cache.with_suffix(".json")
    ids = _read_token_cache(cache, tok.vocab_size)
    words = _read_words(meta)
    if ids is None or words is None:
        raw = read_text(path)
        words = word_count(raw)
        ids = np.asarray(tok.encode(raw), dtype=np.int32)
        try:
            atomic.write_with(cache, lambda tmp: _save_npy(tmp, ids))
            atomic.write_json(meta, {"words": words, "tokens": int(len(ids))})
            fingerprints.remove_superseded(cache.parent, f"{stem}*", cache.stem)  # earlier versions
        except OSError as exc:  # full disk, read-only cache: only the caching is lost
            warnings.warn(f"{exc}; the tokens are not cached, so the text is tokenized again next time",
                          stacklevel=2)
    if max_tokens:
        ids = ids[:max_tokens]
    desc = (f"{data_label(corpus, split, path)}, {fp}, {len(ids):,} {tok.name} tokens"
            + (f" (first {max_tokens:,})" if max_tokens else ""))
    return TokenText(torch.from_numpy(ids.astype(np.int64)), tok.vocab_size, tok.name, desc, fp, str(path),
                     words)


def word_count(raw: str) -> int:
    """WikiText's word count of a text: whitespace-separated tokens plus one end-of-line token per line.

    This is how WikiText-2's published sizes count (245,569 words in the test split), so
    ``exp(total nats / word_count)`` is the per-word perplexity of the published word-level numbers.
    """
    return len(raw.split()) + raw.count("\n")


def _read_words(meta: Path) -> int | None:
    try:
        return int(json.loads(meta.read_text())["words"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


#: Latin-1 mojibake: a UTF-8 lead byte read as Latin-1 (Ã, Â, ...) followed by a continuation byte as one
_MOJIBAKE = re.compile("[\u00c2-\u00f4][\u0080-\u00bf]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def read_text(path: Path) -> str:
    """The UTF-8 text of a split file; an error naming the file and the fix for every damage listed above."""
    path = Path(path)
    raw = path.read_bytes()
    again = f"copy the original (UTF-8) file to {path} again"
    if not raw.strip(b"\x00 \t\r\n"):
        what = "only NUL bytes" if b"\x00" in raw else "empty (or only whitespace)"
        raise DamagedFileError(f"{path} is {what}: not text. Fix: {again}")
    if raw[:4] in ("ÿþ".encode(), "þÿ".encode()):
        raise DamagedFileError(
            f"{path} is a UTF-16 file converted as if it were Latin-1 (it starts with 'ÿþ', UTF-16's "
            f"byte-order mark read as Latin-1, and keeps its NUL bytes): garbage. Fix: convert the original "
            f"UTF-16 file with `iconv -f utf-16 -t utf-8`, or {again}")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or raw[1:200:2].count(0) > 90 or raw[0:200:2].count(0) > 90:
        raise DamagedFileError(
            f"{path} is UTF-16, not UTF-8. Fix: `iconv -f utf-16 -t utf-8 {path} > {path.name}.utf8 && mv "
            f"{path.name}.utf8 {path}` (not -f latin1, which keeps the NUL bytes), or {again}")
    nul = raw.find(b"\x00")
    if nul >= 0:
        count = raw.count(b"\x00")
        raise DamagedFileError(
            f"{path} holds {count:,} NUL bytes from offset {nul:,} of {len(raw):,} (what a crash or an "
            f"interrupted copy leaves behind): the text is damaged. Fix: {again}")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedFileError(
            f"{path} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} ({exc.reason}). "
            f"Fix: {again}; if you know its encoding, convert it, e.g. `iconv -f <encoding> -t utf-8 {path} "
            f"> {path.name}.utf8 && mv {path.name}.utf8 {path}`") from exc
    bad = _CONTROL.search(decoded)
    if bad:
        raise DamagedFileError(
            f"{path} holds control characters (U+{ord(bad.group()):04X} at character {bad.start():,}): not "
            f"WikiText. Fix: {again}")
    garbled = len(_MOJIBAKE.findall(decoded))
    if garbled > max(10, len(decoded) // 10000):
        raise DamagedFileError(
            f"{path} looks garbled: {garbled:,} pairs such as {_MOJIBAKE.search(decoded).group()!r}, what "
            f"UTF-8 or UTF-16 read as Latin-1 gives (e.g. after `iconv -f latin1`). Fix: {again}")
    return decoded


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


def _too_short(text: TokenText, need: int, what: str, setting: str) -> TextTooShortError:
    where = text.path or text.description
    size = ""
    name = Path(text.path).name if text.path else ""
    split = name.split(".")[0]
    if split in WIKITEXT2_SIZES and "wikitext-2" in text.description:
        lines, words = WIKITEXT2_SIZES[split]
        size = f" (the complete WikiText-2 {split} split has {lines:,} lines, {words:,} words)"
    return TextTooShortError(
        f"{where} is too short: {len(text):,} {text.tokenizer} tokens, and {what} needs {need:,}. Fixes: "
        f"(1) copy the complete split file again{size}; or (2) lower {setting}")


def train_batch(text: TokenText, step: int, seed: int, batch_size: int, seq_len: int) -> torch.Tensor:
    """Batch ``step``: ``[batch_size, seq_len + 1]`` windows at offsets drawn from ``(seed, step)`` alone."""
    span = len(text) - seq_len - 1
    if span < 1:
        raise _too_short(text, seq_len + 2, f"a training window of {seq_len + 1} tokens",
                         f"context={seq_len}")
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, span + 1, (batch_size,), generator=gen)
    return text.tokens[starts[:, None] + torch.arange(seq_len + 1)]


def eval_windows(text: TokenText, seq_len: int, max_windows: int = 0) -> torch.Tensor:
    """Consecutive non-overlapping ``[windows, seq_len + 1]`` slices of the text (first ``max_windows``)."""
    count = (len(text) - 1) // seq_len
    if count < 1 or (max_windows and count < max_windows):
        need = seq_len * max(max_windows, 1) + 1
        raise _too_short(text, need, f"{max(max_windows, 1)} evaluation window(s) of {seq_len + 1} tokens",
                         f"context={seq_len} or eval_windows={max_windows}")
    if max_windows:
        count = min(count, max_windows)
    starts = torch.arange(count) * seq_len
    return text.tokens[starts[:, None] + torch.arange(seq_len + 1)]


def all_windows(text: TokenText, seq_len: int) -> list[torch.Tensor]:
    """Every token of the split in windows of ``seq_len + 1`` (overlapping by one token; the last shorter).

    Window ``i`` predicts tokens ``i·seq_len + 1 … (i+1)·seq_len``: together every token but the first.
    """
    n = len(text)
    if n < 2:
        raise _too_short(text, 2, "evaluation", "nothing: the split must hold 2 tokens")
    return [text.tokens[i : i + seq_len + 1] for i in range(0, n - 1, seq_len)]

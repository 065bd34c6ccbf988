"""Real text, offline and the same on every machine: the Python source of PyTorch's own ``torch.nn``. Lesson 13.

The course pins ``torch==2.13.0``, so every machine that installs ``requirements.txt`` holds the very same files:
136 modules, about 1.9 MB of code, comments and English docstrings. ``load_corpus()`` reads them in path order,
checks their SHA-256 against ``CORPUS_SHA256`` (a changed pin is caught there, with a message that says so) and
splits them **by file**: every ``VALIDATION_EVERY``-th module is held out, so that no validation text was seen, even
in part, in training. ``CharTokenizer`` makes characters the tokens; ``train_bpe`` learns byte-pair merges on the
training text (200 merges: about 4 s on one thread) and ``BPETokenizer`` applies them (0.53 tokens per character
on the validation text with 200 merges).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib.validation import require_int

CORPUS_TORCH = "2.13.0"  # the pinned version whose torch/nn the checksum below describes
CORPUS_SHA256 = "d10de2122998534dd5bd571313c9fede23befe7cd301bd6d854cf7fd9d176714"
VALIDATION_EVERY = 10  # module 9, 19, 29, ... (in path order) is held out: about a tenth of the text
FILE_SEPARATOR = "\n\n"  # between two modules in the joined text


def corpus_root() -> Path:
    """The folder ``torch/nn`` of the installed PyTorch."""
    return Path(torch.__file__).resolve().parent / "nn"


def corpus_files(root: Path | None = None) -> list[tuple[str, str]]:
    """Every ``.py`` file under ``root`` (``torch/nn`` by default) as ``(path relative to root, text)``, in path
    order: the same order on every machine."""
    root = corpus_root() if root is None else Path(root)
    files = sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix())
    return [(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8")) for p in files]


def corpus_checksum(files: list[tuple[str, str]]) -> str:
    """SHA-256 over every file's path and bytes, in order."""
    digest = hashlib.sha256()
    for path, text in files:
        digest.update(path.encode())
        digest.update(b"\0")
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class Corpus:
    """The training and validation text, split by file, and the files each holds."""

    train: str
    validation: str
    train_files: tuple[str, ...]
    validation_files: tuple[str, ...]

    def __repr__(self) -> str:
        return (f"Corpus(train: {len(self.train):,} characters from {len(self.train_files)} files, validation: "
                f"{len(self.validation):,} characters from {len(self.validation_files)} files)")


def load_corpus(verify: bool = True, root: Path | None = None) -> Corpus:
    """The course's real text (see the module's docstring). With ``verify`` a ValueError when the files are not
    the ones the course was written for (another PyTorch version, or edited files)."""
    files = corpus_files(root)
    if verify:
        found = corpus_checksum(files)
        if found != CORPUS_SHA256:
            raise ValueError(f"the text of torch/nn differs from the course's (torch {torch.__version__} installed, the "
                             f"course pins {CORPUS_TORCH}; checksum {found[:12]}… instead of {CORPUS_SHA256[:12]}…): "
                             f"install requirements.txt, or pass verify=False to use it anyway")
    held_out = [i % VALIDATION_EVERY == VALIDATION_EVERY - 1 for i in range(len(files))]
    train = [(path, text) for (path, text), out in zip(files, held_out) if not out]
    validation = [(path, text) for (path, text), out in zip(files, held_out) if out]
    return Corpus(FILE_SEPARATOR.join(text for _, text in train), FILE_SEPARATOR.join(text for _, text in validation),
                  tuple(path for path, _ in train), tuple(path for path, _ in validation))


def _decode(tokens: list[str], ids) -> str:
    """The text of ``ids`` (a sequence or a 1-D tensor), each an index into ``tokens``."""
    ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    for i in ids:
        require_int(i, "a token id", minimum=0)
        if i >= len(tokens):
            raise ValueError(f"token id {i} is out of range: this tokenizer has {len(tokens)} ids")
    return "".join(tokens[i] for i in ids)


class CharTokenizer:
    """Characters as tokens: id 0 is ``UNKNOWN`` (a character the training text never had), then every character
    of ``text`` in code-point order. ``encode(str) -> (n,) long``, ``decode(ids) -> str``."""

    UNKNOWN = "\ufffd"  # shown for id 0 when decoding

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError(f"CharTokenizer needs a non-empty str to take its characters from, got {text!r:.40}")
        self.chars = [self.UNKNOWN] + sorted(set(text) - {self.UNKNOWN})
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """``(len(text),)`` long ids; a character the tokenizer never saw becomes id 0."""
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        return torch.tensor([self.index.get(c, 0) for c in text], dtype=torch.long)

    def unknown_share(self, text: str) -> float:
        """The share of ``text``'s characters that encode to the unknown id."""
        return sum(c not in self.index for c in text) / max(1, len(text))

    def decode(self, ids) -> str:
        """The text of ``ids`` (a sequence or a 1-D tensor of ids in ``[0, vocab_size)``)."""
        return _decode(self.chars, ids)

    def __repr__(self) -> str:
        return f"CharTokenizer({self.vocab_size} ids: the unknown character and {self.vocab_size - 1} characters)"


# --- byte-pair encoding ----------------------------------------------------------------------------------------

CHUNK = None  # compiled on first use: a run of letters/digits/underscores, a run of spaces, or any other character


def _chunks(text: str) -> list[str]:
    """The pieces merges never cross (as GPT-2's tokenizer does with words): identifiers, runs of spaces, and
    single other characters, so that a token never joins the end of one word to the start of the next."""
    import re

    global CHUNK
    if CHUNK is None:
        CHUNK = re.compile(r"[A-Za-z0-9_]+| +|[^A-Za-z0-9_ ]")
    return CHUNK.findall(text)


def train_bpe(text: str, n_merges: int) -> list[tuple[str, str]]:
    """Byte-pair encoding's merges, learned on ``text``: start from characters and, ``n_merges`` times, join the
    most frequent neighbouring pair of tokens into one (ties go to the pair that comes first in code-point order,
    so the result is the same on every machine). Pairs are counted inside chunks (``_chunks``) only. Returns the
    merges in the order learned."""
    from collections import Counter

    n_merges = require_int(n_merges, "n_merges", minimum=0)
    if not isinstance(text, str) or not text:
        raise ValueError("train_bpe needs a non-empty str to count pairs in")
    words = Counter(_chunks(text))  # each distinct chunk once, with how often it occurs
    pieces = {word: list(word) for word in words}
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for word, count in words.items():
            symbols = pieces[word]
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        joined = best[0] + best[1]
        for word in words:
            symbols = pieces[word]
            if len(symbols) < 2 or best[0] not in symbols:
                continue
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == best[0] and symbols[i + 1] == best[1]:
                    merged.append(joined)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            pieces[word] = merged
    return merges


class BPETokenizer:
    """Tokens from ``merges`` (``train_bpe``) on top of a ``CharTokenizer``'s characters: id 0 the unknown
    character, then the characters, then one id per merge. ``encode(str) -> (n,) long``, ``decode(ids) -> str``."""

    def __init__(self, chars: CharTokenizer, merges: list[tuple[str, str]]):
        self.chars = chars
        self.merges = [tuple(m) for m in merges]
        self.tokens = list(chars.chars) + [a + b for a, b in self.merges]
        self.rank = {pair: i for i, pair in enumerate(self.merges)}
        self.index = {}
        for i, token in enumerate(self.tokens):
            self.index.setdefault(token, i)
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def _encode_chunk(self, chunk: str) -> list[int]:
        if chunk in self._cache:
            return self._cache[chunk]
        symbols = [c if c in self.chars.index else CharTokenizer.UNKNOWN for c in chunk]
        while len(symbols) > 1:  # apply the earliest-learned merge present, as training did
            ranked = [(self.rank.get(pair, len(self.rank)), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
            best, i = min(ranked)
            if best == len(self.rank):
                break
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
        ids = [self.index[s] for s in symbols]
        self._cache[chunk] = ids
        return ids

    def encode(self, text: str) -> torch.Tensor:
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        return torch.tensor([i for chunk in _chunks(text) for i in self._encode_chunk(chunk)], dtype=torch.long)

    def decode(self, ids) -> str:
        """The text of ``ids`` (a sequence or a 1-D tensor of ids in ``[0, vocab_size)``)."""
        return _decode(self.tokens, ids)

    def __repr__(self) -> str:
        return f"BPETokenizer({self.vocab_size} ids: {self.chars.vocab_size} characters and {len(self.merges)} merges)"


# --- baselines ---------------------------------------------------------------------------------------------------

def ngram_bits_per_character(train_ids: torch.Tensor, valid_ids: torch.Tensor, vocab_size: int, order: int) -> float:
    """The validation loss, in bits per token, of predicting each token from counts on the training ids alone:
    ``order=1`` its frequency (unigram), ``order=2`` its frequency after the token before (bigram). Counts start
    at 1 (add-one smoothing), so an unseen pair costs bits but never infinity. With characters as tokens this is
    bits per character, the yardstick for a model of the same text."""
    order = require_int(order, "order", minimum=1)
    if order > 2:
        raise ValueError(f"order must be 1 (unigram) or 2 (bigram), got {order}")
    vocab_size = require_int(vocab_size, "vocab_size", minimum=1)
    for name, ids in (("train_ids", train_ids), ("valid_ids", valid_ids)):
        if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or len(ids) < 2 or ids.dtype != torch.long:
            raise ValueError(f"{name} must be a 1-D long tensor of at least 2 token ids")
        if int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
            raise ValueError(f"{name} holds ids outside [0, {vocab_size})")
    if order == 1:
        counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1  # (V,)
        return float(-torch.log2(counts / counts.sum())[valid_ids].mean())
    pairs = torch.ones(vocab_size, vocab_size, dtype=torch.float64)  # (previous, next), add-one
    pairs.index_put_((train_ids[:-1], train_ids[1:]), torch.ones(len(train_ids) - 1, dtype=torch.float64),
                     accumulate=True)
    probabilities = pairs / pairs.sum(dim=1, keepdim=True)
    return float(-torch.log2(probabilities[valid_ids[:-1], valid_ids[1:]]).mean())

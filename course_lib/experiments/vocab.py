"""Words become ids: a word-level vocabulary, and batches of sentences padded to one length.

Lesson 01.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Sequence

import torch

PAD, BOS, UNK = "<pad>", "<bos>", "<unk>"


def tokenize(text: str) -> list[str]:
    """Lower-case words and punctuation marks: ``"The dog runs."`` -> ``["the", "dog", "runs", "."]``."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    return re.findall(r"<[a-z]+>|[a-z0-9']+|[^\sa-z0-9']", text.lower())


class Vocabulary:
    """A word <-> id table. Ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<unk>``; unknown words map to ``<unk>``."""

    def __init__(self, words: Iterable[str]):
        if isinstance(words, (str, bytes)):
            raise TypeError(f"words must be a list of words (strings), got the {type(words).__name__} {words!r}, "
                            f"which would become one word per character; pass tokenize(text) for a text")
        if not isinstance(words, Iterable):
            raise TypeError(f"words must be a list of words (strings), got {type(words).__name__}")
        self.id_to_word: list[str] = [PAD, BOS, UNK]
        for word in words:
            if not isinstance(word, str) or not word:
                raise TypeError(f"vocabulary words must be non-empty strings, got {word!r}")
            if word not in self.id_to_word:
                self.id_to_word.append(word)
        self.word_to_id: dict[str, int] = {w: i for i, w in enumerate(self.id_to_word)}

    pad_id, bos_id, unk_id = 0, 1, 2

    def __len__(self) -> int:
        return len(self.id_to_word)

    def __contains__(self, word: str) -> bool:
        return word in self.word_to_id

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words)"

    def encode(self, words: str | Sequence[str], add_bos: bool = False) -> list[int]:
        """Words (or a text, tokenized first) -> ids; an unknown word becomes ``<unk>``'s id."""
        if isinstance(words, str):
            words = tokenize(words)
        elif not isinstance(words, Iterable) or isinstance(words, bytes):
            raise TypeError(f"words must be a text or a list of words, got {type(words).__name__}")
        if not isinstance(add_bos, bool):
            raise TypeError(f"add_bos must be True or False, got {type(add_bos).__name__} {add_bos!r}")
        ids = [self.word_to_id.get(w, self.unk_id) for w in words]
        return [self.bos_id, *ids] if add_bos else ids

    def decode(self, ids: Iterable[int] | torch.Tensor, skip_pad: bool = True) -> list[str]:
        """Ids -> words. Raises ValueError for an id outside the vocabulary."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        words = []
        for i in ids:
            if isinstance(i, bool):
                raise TypeError(f"token ids must be integers, got the bool {i!r}")
            try:
                i = operator.index(i)  # int, numpy integer or 0-d integer tensor
            except TypeError:
                raise TypeError(f"token ids must be integers, got {type(i).__name__} {i!r}") from None
            if not 0 <= i < len(self):
                raise ValueError(f"token id {i} is outside this vocabulary [0, {len(self)})")
            if not (skip_pad and i == self.pad_id):
                words.append(self.id_to_word[i])
        return words


def _is_int(value) -> bool:
    """An int, numpy integer or 0-d integer tensor; not a bool, a float or a str."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Id lists of different lengths -> ``(ids (batch, time) long, lengths (batch,) long)``, padded at the end."""
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError(f"sequences must be a list of id lists, got {type(sequences).__name__} {sequences!r}")
    if not _is_int(pad_id):
        raise TypeError(f"pad_id must be an integer, got {type(pad_id).__name__} {pad_id!r}")
    pad_id = operator.index(pad_id)
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence, got an empty list")
    for row, seq in enumerate(sequences):
        if isinstance(seq, (str, bytes)) or not all(_is_int(i) for i in seq):
            raise TypeError(f"sequences[{row}] must be a list of integer ids, got {seq!r}; "
                            f"turn words into ids with Vocabulary.encode first")
    lengths = torch.tensor([len(s) for s in sequences])
    if int(lengths.min()) == 0:
        raise ValueError("pad_batch got an empty sequence; every sequence needs at least one token")
    ids = torch.full((len(sequences), int(lengths.max())), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
    return ids, lengths

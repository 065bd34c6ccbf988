"""The agreement grammar: English-like sentences where the verb must agree in number with its subject.

Lessons 05, 08-09. Between subject and verb stand prepositional phrases and relative clauses whose
nouns may have the other number (attractors), as in Linzen et al. (2016):

    the dog near the cats that the child sees runs .
        ^subject     ^attractor                ^verb (singular, like "dog")

Every sentence carries its annotations, so you can score attention heads against the truth.
Token 0 of every sentence is ``<bos>``: annotation indices are positions in the model's input.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from .vocab import BOS, Vocabulary, pad_batch

# (singular, plural)
NOUNS = [("dog", "dogs"), ("cat", "cats"), ("child", "children"), ("bird", "birds"), ("teacher", "teachers"),
         ("farmer", "farmers"), ("doctor", "doctors"), ("student", "students"), ("horse", "horses"),
         ("singer", "singers"), ("pilot", "pilots"), ("baker", "bakers")]
INTRANSITIVE = [("runs", "run"), ("sleeps", "sleep"), ("sings", "sing"), ("waits", "wait"),
                ("smiles", "smile"), ("laughs", "laugh"), ("swims", "swim"), ("falls", "fall")]
TRANSITIVE = [("sees", "see"), ("likes", "like"), ("follows", "follow"), ("knows", "know"),
              ("helps", "help"), ("watches", "watch")]
PREPOSITIONS = ["near", "behind", "beside", "with", "under"]
ADJECTIVES = ["old", "small", "happy", "tall", "quiet"]
FUNCTION_WORDS = ["the", "that", "."]

SINGULAR, PLURAL = "singular", "plural"


def agreement_vocabulary() -> Vocabulary:
    """The fixed vocabulary of the grammar (same ids on every machine)."""
    words = list(FUNCTION_WORDS) + PREPOSITIONS + ADJECTIVES
    for pairs in (NOUNS, INTRANSITIVE, TRANSITIVE):
        for singular, plural in pairs:
            words += [singular, plural]
    return Vocabulary(words)


@dataclass(frozen=True)
class Sentence:
    """One generated sentence and its ground truth.

    tokens: words, starting with ``<bos>`` and ending with ``.``.
    subject / verb: positions of the subject noun and of its main verb.
    attractors: positions of nouns between them with the other number.
    number: the subject's number, ``"singular"`` or ``"plural"``.
    wrong_verb: the main verb in the other number (what an agreement error would produce).
    """

    tokens: tuple[str, ...]
    subject: int
    verb: int
    attractors: tuple[int, ...]
    number: str
    wrong_verb: str
    nouns: tuple[int, ...] = field(default=())

    @property
    def distance(self) -> int:
        """How many positions the verb stands after its subject."""
        return self.verb - self.subject

    @property
    def text(self) -> str:
        return " ".join(self.tokens[1:])

    def __str__(self) -> str:
        return self.text


class AgreementGrammar:
    """A seeded sentence generator. Same seed -> same sentences, on every machine.

    ``max_modifiers``: how many phrases/clauses may stand between subject and verb (0-3).
    ``attractor_rate``: the chance that a modifier's noun takes the other number than the subject.
    """

    def __init__(self, seed: int = 0, max_modifiers: int = 2, attractor_rate: float = 0.5):
        if not 0 <= max_modifiers <= 3:
            raise ValueError(f"max_modifiers must be between 0 and 3, got {max_modifiers}")
        self.rng = random.Random(seed)
        self.max_modifiers = max_modifiers
        self.attractor_rate = attractor_rate

    def _noun_phrase(self, words: list[str], number: str, adjective_rate: float = 0.3) -> int:
        words.append("the")
        if self.rng.random() < adjective_rate:
            words.append(self.rng.choice(ADJECTIVES))
        singular, plural = self.rng.choice(NOUNS)
        words.append(singular if number == SINGULAR else plural)
        return len(words) - 1

    def _other(self, number: str) -> str:
        return PLURAL if number == SINGULAR else SINGULAR

    def sentence(self, min_attractors: int = 0) -> Sentence:
        """One sentence with at least ``min_attractors`` attractors (requires enough modifiers)."""
        if min_attractors > self.max_modifiers:
            raise ValueError(f"min_attractors={min_attractors} needs max_modifiers >= {min_attractors}")
        while True:
            s = self._sentence()
            if len(s.attractors) >= min_attractors:
                return s

    def _sentence(self) -> Sentence:
        rng = self.rng
        words = [BOS]
        number = rng.choice([SINGULAR, PLURAL])
        # The subject stands at position 2 in every sentence: "<bos> the dog ...".
        subject = self._noun_phrase(words, number, adjective_rate=0.0)
        nouns, attractors = [subject], []
        for _ in range(rng.randint(0, self.max_modifiers)):
            noun_number = self._other(number) if rng.random() < self.attractor_rate else number
            if rng.random() < 0.5:  # prepositional phrase: "near the cats"
                words.append(rng.choice(PREPOSITIONS))
                noun = self._noun_phrase(words, noun_number)
            else:  # object relative clause: "that the child sees" (its verb agrees with its own noun)
                words.append("that")
                noun = self._noun_phrase(words, noun_number)
                singular, plural = rng.choice(TRANSITIVE)
                words.append(singular if noun_number == SINGULAR else plural)
            nouns.append(noun)
            if noun_number != number:
                attractors.append(noun)
        if rng.random() < 0.5:
            singular, plural = rng.choice(INTRANSITIVE)
        else:
            singular, plural = rng.choice(TRANSITIVE)
        verb = len(words)
        words.append(singular if number == SINGULAR else plural)
        wrong = plural if number == SINGULAR else singular
        if (singular, plural) in TRANSITIVE:
            nouns.append(self._noun_phrase(words, rng.choice([SINGULAR, PLURAL])))
        words.append(".")
        return Sentence(tuple(words), subject, verb, tuple(attractors), number, wrong, tuple(nouns))

    def sentences(self, n: int, min_attractors: int = 0) -> list[Sentence]:
        return [self.sentence(min_attractors) for _ in range(n)]


def agreement_corpus(n_train: int, n_test: int, seed: int = 0, test_min_attractors: int = 1,
                     max_modifiers: int = 2) -> tuple[list[Sentence], list[Sentence]]:
    """Training sentences and held-out test sentences (none of whose texts occur in training).

    Test sentences have at least ``test_min_attractors`` attractors: the hard cases.
    """
    train = AgreementGrammar(seed, max_modifiers).sentences(n_train)
    seen = {s.text for s in train}
    test_grammar = AgreementGrammar(seed + 1_000_003, max_modifiers)
    test: list[Sentence] = []
    while len(test) < n_test:
        s = test_grammar.sentence(test_min_attractors)
        if s.text not in seen:
            seen.add(s.text)
            test.append(s)
    return train, test


def encode_sentences(sentences: list[Sentence], vocab: Vocabulary) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentences -> ``(ids (batch, time), lengths (batch,))``, padded with ``<pad>``."""
    return pad_batch([vocab.encode(s.tokens) for s in sentences], vocab.pad_id)


def verb_ids(sentences: list[Sentence], vocab: Vocabulary) -> tuple[torch.Tensor, torch.Tensor]:
    """The ids of each sentence's correct verb and of its wrong-number form: two ``(batch,)`` tensors."""
    right = torch.tensor([vocab.word_to_id[s.tokens[s.verb]] for s in sentences])
    wrong = torch.tensor([vocab.word_to_id[s.wrong_verb] for s in sentences])
    return right, wrong

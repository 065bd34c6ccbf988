"""The agreement grammar: English-like sentences where the verb must agree in number with its subject.

Lessons 05, 08-09. Nouns of the other number (attractors) stand between subject and verb, in
prepositional phrases and relative clauses, as in Linzen et al. (2016), and also *before* the subject,
in an introductory phrase. Sentence-initial material (an adverb, an introductory phrase, adjectives)
moves the subject to many different positions, so nothing but the sentence's structure says which
noun is the subject:

    <bos> later , near the cats , the old dog that the child sees runs .
                           ^attractor   ^subject          ^attractor  ^verb (singular, like "dog")

A second, local relation: each preposition takes its noun from its own small set ("near the dog",
"under the nurse"), so the word *after* "the" is predicted by the word just *before* "the". A head
that looks at the previous word solves it; the grammar annotates these pairs as ``neighbours``.
And each subject noun has its own verb ("dogs run", "cats sleep"): the verb depends on which noun the
subject is, and its form on the subject's number.

Every sentence carries its annotations, so you can score attention heads against the truth.
Token 0 of every sentence is ``<bos>``: annotation indices are positions in the model's input.
``parse`` reads a sentence back (one a model generated, lesson 08): the ``Sentence`` with its annotations
if the grammar can make it, else None; ``is_grammatical`` says which.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import torch

from course_lib.validation import require_int
from course_lib.experiments.vocab import BOS, Vocabulary, pad_batch, tokenize

# (singular, plural)
NOUNS = [("dog", "dogs"), ("cat", "cats"), ("child", "children"), ("bird", "birds"), ("teacher", "teachers"),
         ("farmer", "farmers"), ("doctor", "doctors"), ("student", "students"), ("horse", "horses"),
         ("singer", "singers"), ("pilot", "pilots"), ("baker", "bakers"), ("nurse", "nurses"),
         ("painter", "painters"), ("driver", "drivers")]
INTRANSITIVE = [("runs", "run"), ("sleeps", "sleep"), ("sings", "sing"), ("waits", "wait"),
                ("smiles", "smile"), ("laughs", "laugh"), ("swims", "swim"), ("falls", "fall")]
TRANSITIVE = [("sees", "see"), ("likes", "like"), ("follows", "follow"), ("knows", "know"),
              ("helps", "help"), ("watches", "watch")]
# Each preposition takes its noun from its own three: the word before "the" predicts the word after it.
PREPOSITION_NOUNS = {"near": ("dog", "cat", "horse"), "behind": ("teacher", "student", "child"),
                     "beside": ("farmer", "baker", "pilot"), "with": ("singer", "doctor", "bird"),
                     "under": ("nurse", "painter", "driver")}
PREPOSITIONS = list(PREPOSITION_NOUNS)
# Each subject noun has its own verb ("dogs run", "singers smile"): to predict the verb a model needs to
# know *which* noun is the subject, whatever its number, not only whether it is plural.
SUBJECT_VERB = {"dog": "runs", "cat": "sleeps", "child": "laughs", "bird": "sings", "teacher": "helps",
                "farmer": "sees", "doctor": "knows", "student": "likes", "horse": "falls", "singer": "smiles",
                "pilot": "waits", "baker": "watches", "nurse": "follows", "painter": "swims", "driver": "waits"}
ADVERBS = ["later", "today", "often", "sometimes", "suddenly"]
ADJECTIVES = ["old", "small", "happy", "tall", "quiet"]
FUNCTION_WORDS = ["the", "that", ",", "."]

SINGULAR, PLURAL = "singular", "plural"
_PLURAL_OF = dict(NOUNS)
_SINGULAR_OF = {plural: singular for singular, plural in NOUNS}
_VERB_PAIR = {singular: (singular, plural) for singular, plural in INTRANSITIVE + TRANSITIVE}


def agreement_vocabulary() -> Vocabulary:
    """The fixed vocabulary of the grammar (same ids on every machine)."""
    words = list(FUNCTION_WORDS) + PREPOSITIONS + ADVERBS + ADJECTIVES
    for pairs in (NOUNS, INTRANSITIVE, TRANSITIVE):
        for singular, plural in pairs:
            words += [singular, plural]
    return Vocabulary(words)


@dataclass(frozen=True)
class Sentence:
    """One generated sentence and its ground truth (every index is a position in ``tokens``).

    tokens: words, starting with ``<bos>`` and ending with ``.``.
    subject / verb: positions of the subject noun and of its main verb.
    attractors: nouns between subject and verb with the other number (the hard cases).
    early_attractors: nouns before the subject with the other number (in an introductory phrase).
    number: the subject's number, ``"singular"`` or ``"plural"``.
    wrong_verb: the main verb in the other number (what an agreement error would produce).
    nouns: every noun, in order.
    neighbours: ``(query, key)`` pairs with ``key == query - 1`` where the next word depends on the
        previous one: the query is a "the" after a preposition, the key that preposition.
    """

    tokens: tuple[str, ...]
    subject: int
    verb: int
    attractors: tuple[int, ...]
    number: str
    wrong_verb: str
    nouns: tuple[int, ...] = field(default=())
    early_attractors: tuple[int, ...] = field(default=())
    neighbours: tuple[tuple[int, int], ...] = field(default=())

    @property
    def distance(self) -> int:
        """How many positions the verb stands after its subject."""
        return self.verb - self.subject

    @property
    def text(self) -> str:
        return " ".join(self.tokens[1:])

    def __str__(self) -> str:
        return self.text


def _rate(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")
    return float(value)


class AgreementGrammar:
    """A seeded sentence generator. Same seed -> same sentences, on every machine.

    ``max_modifiers``: how many phrases/clauses may stand between subject and verb (0-3).
    ``attractor_rate``: the chance that another noun takes the other number than the subject.
    ``adverb_rate`` / ``intro_rate``: the chance that a sentence opens with an adverb ("later ,") /
    with an introductory prepositional phrase ("near the cats ,"). Set both to 0 for sentences whose
    subject always stands at position 2 or 3.
    ``adjective_rate``: the chance that the subject (and a relative clause's or object's noun) has an
    adjective.
    """

    def __init__(self, seed: int = 0, max_modifiers: int = 2, attractor_rate: float = 0.5,
                 adverb_rate: float = 0.4, intro_rate: float = 0.6, adjective_rate: float = 0.5):
        if isinstance(max_modifiers, bool) or not isinstance(max_modifiers, int) or not 0 <= max_modifiers <= 3:
            raise ValueError(f"max_modifiers must be an int between 0 and 3, got {max_modifiers!r}")
        self.rng = random.Random(seed)
        self.max_modifiers = max_modifiers
        self.attractor_rate = _rate("attractor_rate", attractor_rate)
        self.adverb_rate = _rate("adverb_rate", adverb_rate)
        self.intro_rate = _rate("intro_rate", intro_rate)
        self.adjective_rate = _rate("adjective_rate", adjective_rate)

    # ---------------------------------------------------------------- pieces

    def _noun(self, words: list[str], number: str, choices=None) -> int:
        singular = self.rng.choice(choices) if choices else self.rng.choice(NOUNS)[0]
        words.append(singular if number == SINGULAR else _PLURAL_OF[singular])
        return len(words) - 1

    def _noun_phrase(self, words: list[str], number: str) -> int:
        """"the (adjective) noun"; returns the noun's position."""
        words.append("the")
        if self.rng.random() < self.adjective_rate:
            words.append(self.rng.choice(ADJECTIVES))
        return self._noun(words, number)

    def _prepositional_phrase(self, words: list[str], number: str, neighbours: list) -> int:
        """"near the dogs": no adjective, so the preposition stands right before "the"."""
        preposition = self.rng.choice(PREPOSITIONS)
        words += [preposition, "the"]
        neighbours.append((len(words) - 1, len(words) - 2))
        return self._noun(words, number, PREPOSITION_NOUNS[preposition])

    def _other_number(self, number: str) -> str:
        if self.rng.random() < self.attractor_rate:
            return PLURAL if number == SINGULAR else SINGULAR
        return number

    # ---------------------------------------------------------------- sentences

    def sentence(self, min_attractors: int = 0) -> Sentence:
        """One sentence with at least ``min_attractors`` attractors between subject and verb."""
        if isinstance(min_attractors, bool) or not isinstance(min_attractors, int) or min_attractors < 0:
            raise ValueError(f"min_attractors must be an int >= 0, got {min_attractors!r}")
        if min_attractors > self.max_modifiers:
            raise ValueError(f"min_attractors={min_attractors} needs max_modifiers >= {min_attractors}")
        if min_attractors > 0 and self.attractor_rate == 0:
            raise ValueError(f"min_attractors={min_attractors} needs attractor_rate > 0: with attractor_rate=0 "
                             f"no noun ever takes the other number")
        while True:
            s = self._sentence(min_modifiers=min_attractors)
            if len(s.attractors) >= min_attractors:
                return s

    def _sentence(self, min_modifiers: int = 0) -> Sentence:
        rng = self.rng
        words, neighbours, nouns, early = [BOS], [], [], []
        number = rng.choice([SINGULAR, PLURAL])
        if rng.random() < self.adverb_rate:
            words += [rng.choice(ADVERBS), ","]
        if rng.random() < self.intro_rate:
            noun_number = self._other_number(number)
            nouns.append(self._prepositional_phrase(words, noun_number, neighbours))
            words.append(",")
            if noun_number != number:
                early.append(nouns[-1])
        subject = self._noun_phrase(words, number)
        nouns.append(subject)
        attractors = []
        for _ in range(rng.randint(min_modifiers, self.max_modifiers)):
            noun_number = self._other_number(number)
            if rng.random() < 0.5:  # prepositional phrase: "near the cats"
                noun = self._prepositional_phrase(words, noun_number, neighbours)
            else:  # object relative clause: "that the child sees" (its verb agrees with its own noun)
                words.append("that")
                noun = self._noun_phrase(words, noun_number)
                singular, plural = rng.choice(TRANSITIVE)
                words.append(singular if noun_number == SINGULAR else plural)
            nouns.append(noun)
            if noun_number != number:
                attractors.append(noun)
        subject_word = words[subject]
        singular, plural = _VERB_PAIR[SUBJECT_VERB[_SINGULAR_OF.get(subject_word, subject_word)]]
        verb = len(words)
        words.append(singular if number == SINGULAR else plural)
        wrong = plural if number == SINGULAR else singular
        if (singular, plural) in TRANSITIVE:
            nouns.append(self._noun_phrase(words, rng.choice([SINGULAR, PLURAL])))
        words.append(".")
        return Sentence(tuple(words), subject, verb, tuple(attractors), number, wrong, tuple(nouns),
                        tuple(early), tuple(neighbours))

    def sentences(self, n: int, min_attractors: int = 0) -> list[Sentence]:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        return [self.sentence(min_attractors) for _ in range(n)]


def agreement_corpus(n_train: int, n_test: int, seed: int = 0, test_min_attractors: int = 1,
                     max_modifiers: int = 2, **grammar_options) -> tuple[list[Sentence], list[Sentence]]:
    """Training sentences and held-out test sentences (none of whose texts occur in training).

    Test sentences have at least ``test_min_attractors`` attractors between subject and verb: the hard
    cases. ``grammar_options`` go to ``AgreementGrammar`` (rates of adverbs, introductions, ...).
    Raises ValueError if the grammar cannot produce ``n_test`` distinct new sentences.
    """
    train = AgreementGrammar(seed, max_modifiers, **grammar_options).sentences(n_train)
    seen = {s.text for s in train}
    test_grammar = AgreementGrammar(seed + 1_000_003, max_modifiers, **grammar_options)
    test: list[Sentence] = []
    misses_in_a_row = 0
    while len(test) < n_test:
        s = test_grammar.sentence(test_min_attractors)
        if s.text in seen:
            misses_in_a_row += 1
            # Thousands of repeats in a row: the grammar has run out of new sentences. Stop, don't loop.
            if misses_in_a_row > 5000:
                raise ValueError(f"found only {len(test)} of n_test={n_test} test sentences that differ from the "
                                 f"training set and each other: the grammar has too few distinct sentences; "
                                 f"ask for fewer, or allow more modifiers")
            continue
        misses_in_a_row = 0
        seen.add(s.text)
        test.append(s)
    return train, test


# ---------------------------------------------------------------- parsing

_ALL_NOUNS = {word for pair in NOUNS for word in pair}
_TRANSITIVE_NUMBER = {singular: SINGULAR for singular, _ in TRANSITIVE} | {plural: PLURAL for _, plural in TRANSITIVE}


def _number_of(noun: str) -> str:
    return SINGULAR if noun in _PLURAL_OF else PLURAL


def _words(tokens) -> list[str]:
    """A text or a sequence of words -> a list of words that starts with ``<bos>``."""
    if isinstance(tokens, str):
        words = tokenize(tokens)
    elif isinstance(tokens, Sentence):
        words = list(tokens.tokens)
    else:
        if isinstance(tokens, bytes) or not hasattr(tokens, "__iter__"):
            raise TypeError(f"tokens must be a text or a sequence of words, got {type(tokens).__name__}")
        words = list(tokens)
        bad = next((w for w in words if not isinstance(w, str)), None)
        if bad is not None:
            raise TypeError(f"tokens must be words (str); got {type(bad).__name__} {bad!r}: decode ids with "
                            f"vocab.decode(ids) first")
    return words if words[:1] == [BOS] else [BOS, *words]


def parse(tokens, max_modifiers: int = 3) -> Sentence | None:
    """The ``Sentence`` (with all its annotations) if ``tokens`` is a sentence of the agreement grammar with
    at most ``max_modifiers`` phrases between subject and verb; else None.

    ``tokens``: words (``<bos>`` first or left out) or a text. Exact: it accepts every sentence
    ``AgreementGrammar(max_modifiers=...)`` generates, with the same annotations, and nothing else: a verb
    in the wrong number or not the subject's own verb, a preposition with a noun outside its set, a
    relative clause whose verb disagrees with its noun, a missing or extra object, a missing ``.``, or
    anything after it, each gives None.
    """
    if isinstance(max_modifiers, bool) or not isinstance(max_modifiers, int) or not 0 <= max_modifiers <= 3:
        raise ValueError(f"max_modifiers must be an int between 0 and 3, got {max_modifiers!r}")
    words = _words(tokens)
    position = 1

    def at(index: int) -> str | None:
        return words[index] if index < len(words) else None

    def noun_phrase(index: int) -> int | None:
        """"the (adjective) noun" starting at index; returns the noun's position."""
        if at(index) != "the":
            return None
        index += 1 + (at(index + 1) in ADJECTIVES)
        return index if at(index) in _ALL_NOUNS else None

    def prepositional_phrase(index: int) -> int | None:
        """"near the dogs" starting at index (no adjective); returns the noun's position."""
        preposition, noun = at(index), at(index + 2)
        if preposition not in PREPOSITION_NOUNS or at(index + 1) != "the" or noun not in _ALL_NOUNS:
            return None
        return index + 2 if _SINGULAR_OF.get(noun, noun) in PREPOSITION_NOUNS[preposition] else None

    neighbours, nouns = [], []
    if at(position) in ADVERBS:
        if at(position + 1) != ",":
            return None
        position += 2
    intro = None
    if at(position) in PREPOSITION_NOUNS:
        intro = prepositional_phrase(position)
        if intro is None or at(intro + 1) != ",":
            return None
        neighbours.append((intro - 1, intro - 2))
        nouns.append(intro)
        position = intro + 2
    subject = noun_phrase(position)
    if subject is None:
        return None
    number = _number_of(words[subject])
    nouns.append(subject)
    early = [intro] if intro is not None and _number_of(words[intro]) != number else []
    attractors = []
    position = subject + 1
    for _ in range(max_modifiers + 1):
        if at(position) in PREPOSITION_NOUNS:
            noun = prepositional_phrase(position)
            if noun is None:
                return None
            neighbours.append((noun - 1, noun - 2))
            position = noun + 1
        elif at(position) == "that":
            noun = noun_phrase(position + 1)
            if noun is None or _TRANSITIVE_NUMBER.get(at(noun + 1)) != _number_of(words[noun]):
                return None
            position = noun + 2
        else:
            break
        nouns.append(noun)
        if _number_of(words[noun]) != number:
            attractors.append(noun)
    if len(nouns) - 1 - (intro is not None) > max_modifiers:
        return None
    singular, plural = _VERB_PAIR[SUBJECT_VERB[_SINGULAR_OF.get(words[subject], words[subject])]]
    right, wrong = (singular, plural) if number == SINGULAR else (plural, singular)
    verb = position
    if at(verb) != right:
        return None
    position = verb + 1
    if (singular, plural) in TRANSITIVE:
        obj = noun_phrase(position)
        if obj is None:
            return None
        nouns.append(obj)
        position = obj + 1
    if at(position) != "." or position + 1 != len(words):
        return None
    return Sentence(tuple(words), subject, verb, tuple(attractors), number, wrong, tuple(nouns), tuple(early),
                    tuple(neighbours))


def is_grammatical(tokens, max_modifiers: int = 3) -> bool:
    """True if ``tokens`` (words or a text) is a sentence of the agreement grammar: ``parse`` finds it."""
    return parse(tokens, max_modifiers) is not None


HOW_TO_GET_SENTENCES = ("make them with AgreementGrammar(seed).sentences(n) or agreement_corpus(n_train, n_test), "
                        "or read a text with parse(text)")


def require_sentences(sentences, caller: str) -> list[Sentence]:
    """``sentences`` as a non-empty list of ``Sentence`` (one ``Sentence`` is a list of one; any iterable is read
    once); otherwise a clear error naming ``caller``: a TypeError for anything but Sentence objects (a text, a list
    of words), saying how to get them, a ValueError for none. Every public function that takes the grammar's
    sentences checks them here."""
    if isinstance(sentences, Sentence):
        return [sentences]
    if isinstance(sentences, (str, bytes)):  # one text, not a list of sentences
        bad = sentences
    else:
        try:
            sentences = list(sentences)
        except TypeError:
            raise TypeError(f"{caller} takes a list of Sentence objects, got {type(sentences).__name__} "
                            f"{_short(sentences)}; {HOW_TO_GET_SENTENCES}") from None
        if not sentences:
            raise ValueError(f"{caller} needs at least one sentence, got none")
        bad = next((s for s in sentences if not isinstance(s, Sentence)), None)
    if bad is not None:
        raise TypeError(f"{caller} takes Sentence objects, got {type(bad).__name__} {_short(bad)}; "
                        f"{HOW_TO_GET_SENTENCES}")
    return sentences


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def encode_sentences(sentences: list[Sentence], vocab: Vocabulary) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentences -> ``(ids (batch, time), lengths (batch,))``, padded with ``<pad>``."""
    sentences = require_sentences(sentences, "encode_sentences")
    return pad_batch([vocab.encode(s.tokens) for s in sentences], vocab.pad_id)


def verb_ids(sentences: list[Sentence], vocab: Vocabulary) -> tuple[torch.Tensor, torch.Tensor]:
    """The ids of each sentence's correct verb and of its wrong-number form: two ``(batch,)`` tensors."""
    sentences = require_sentences(sentences, "verb_ids")
    right = torch.tensor([vocab.word_to_id[s.tokens[s.verb]] for s in sentences])
    wrong = torch.tensor([vocab.word_to_id[s.wrong_verb] for s in sentences])
    return right, wrong


# ---------------------------------------------------------------- baselines

BASELINE_RULES = {
    "most_common_position": "the noun at the most common subject position",
    "first_noun": "the first noun",
    "second_noun": "the second noun",
    "nearest_noun_before_verb": "the nearest noun before the verb",
    "after_last_comma": "the first noun after the last comma before the verb (else the first noun)",
}


def _after_last_comma(s: Sentence) -> int:
    commas = [i for i, word in enumerate(s.tokens[:s.verb]) if word == ","]
    after = [n for n in s.nouns if commas and commas[-1] < n < s.verb]
    return after[0] if after else s.nouns[0]


def subject_baselines(sentences: list[Sentence], reference: list[Sentence] | None = None) -> dict[str, float]:
    """How often rules that need no understanding of the sentence pick out the true subject: a fraction each
    (``BASELINE_RULES`` says each in words).

    ``most_common_position``: the noun at the position where subjects stand most often (counted in
    ``reference``, e.g. the training set; ``sentences`` themselves if None).
    ``first_noun`` / ``second_noun``: the sentence's first / second noun.
    ``nearest_noun_before_verb``: the last noun before the main verb.
    ``after_last_comma``: the first noun after the last comma before the verb, else the first noun. In the
    generated sentences every opening phrase ends with a comma, so this rule always finds the subject there:
    ``shortcut_free_sentences`` are sentences where it does not.
    A head that finds the subject far more often than every rule has learned the relation, not a shortcut.
    """
    sentences = require_sentences(sentences, "subject_baselines")
    reference = require_sentences(reference, "subject_baselines") if reference else sentences  # None, []: sentences
    counts = Counter(s.subject for s in reference)
    common = counts.most_common(1)[0][0]
    n = len(sentences)
    return {
        "most_common_position": sum(s.subject == common for s in sentences) / n,
        "first_noun": sum(s.nouns[0] == s.subject for s in sentences) / n,
        "second_noun": sum(s.nouns[1:2] == (s.subject,) for s in sentences) / n,
        "nearest_noun_before_verb": sum(max(i for i in s.nouns if i < s.verb) == s.subject for s in sentences) / n,
        "after_last_comma": sum(_after_last_comma(s) == s.subject for s in sentences) / n,
    }


# ---------------------------------------------------------------- sentences no shortcut explains

def _edit(s: Sentence, drop: set[int] = frozenset(), commas_before: set[int] = frozenset()) -> Sentence:
    """``s`` with the words at ``drop`` left out and a comma put before each position in ``commas_before``;
    every annotation moved with its word."""
    words, moved = [], {}
    for i, word in enumerate(s.tokens):
        if i in commas_before:
            words.append(",")
        if i not in drop:
            moved[i] = len(words)
            words.append(word)
    at = moved.__getitem__
    return Sentence(tuple(words), at(s.subject), at(s.verb), tuple(map(at, s.attractors)), s.number, s.wrong_verb,
                    tuple(map(at, s.nouns)), tuple(map(at, s.early_attractors)),
                    tuple((at(q), at(k)) for q, k in s.neighbours))


def _has_opening_phrase(s: Sentence) -> bool:
    return s.nouns[0] != s.subject


def shortcut_free_sentences(n: int, seed: int = 0) -> list[Sentence]:
    """``n`` English sentences on which no rule of ``subject_baselines`` finds the subject in more than about
    half: every rule there is a shortcut the generated sentences allow.

    Half open with a prepositional phrase *without* its comma ("near the cats the old dog runs ."): the
    subject is the second noun, and no comma marks where it starts. The other half have no opening phrase
    ("later , the dog near the cats runs ."): the subject is the first noun. Every sentence has at least one
    attractor between subject and verb. A model trained on ``agreement_corpus`` never saw an opening phrase
    without its comma.
    """
    n = require_int(n, "n", minimum=1)
    grammar = AgreementGrammar(seed + 2_000_003)
    opening, plain = [], []
    while len(opening) < n - n // 2 or len(plain) < n // 2:
        s = grammar.sentence(min_attractors=1)
        if _has_opening_phrase(s):
            if len(opening) < n - n // 2:
                opening.append(_edit(s, drop={s.nouns[0] + 1}))  # the comma right after the opening phrase's noun
        elif len(plain) < n // 2:
            plain.append(s)
    mixed = []
    for first, second in zip(opening, plain):
        mixed += [first, second]
    return mixed + opening[len(plain):]


def comma_after_subject_sentences(n: int, seed: int = 0) -> list[Sentence]:
    """``n`` English sentences where the prepositional phrase right after the subject stands between commas,
    with no opening phrase ("later , the dogs , near the cat , run ."). The subject is the first noun, as
    ``first_noun`` says; but the training sentences never have a comma after their subject: here a comma does
    not mean "the subject comes next". Every sentence has at least one attractor between subject and verb.
    """
    n = require_int(n, "n", minimum=1)
    grammar = AgreementGrammar(seed + 3_000_017)
    found = []
    while len(found) < n:
        s = grammar.sentence(min_attractors=1)
        after = s.subject + 1
        if not _has_opening_phrase(s) and s.tokens[after] in PREPOSITION_NOUNS:
            found.append(_edit(s, commas_before={after, after + 3}))  # "dogs , near the cat , run"
    return found

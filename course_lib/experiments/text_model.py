"""Lesson 13's GPT on real text: the settings, the batches, the loss in bits per character, and one run.

``TEXT_GPT`` is the lesson's recipe: a ``TransformerLM`` of width 64 with 2 layers of 4 heads and a context of 64
tokens, trained for ``steps`` steps of 32 random windows of the training text (``course_lib.experiments.text``),
once with characters as tokens and once with byte-pair tokens (``merges`` merges). Both are scored on the whole
validation text in **bits per character**: a token's loss in bits, summed, over the characters the tokens cover.
So the two tokenizers, and the unigram and bigram baselines, are measured on one scale.

``text_gpt_run(seed)`` is one run at the current thread count; ``python -m course_lib record text-gpt`` keeps it
for seeds 0-9 at 1, 2 and 4 threads in ``course_lib/data/lesson13_text_gpt.json``, which the lesson reads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from course_lib.experiments.text import (BPETokenizer, CharTokenizer, Corpus, load_corpus, ngram_bits_per_character,
                                         train_bpe)
from course_lib.experiments.training import TrainingHistory, fit
from course_lib.models.language_model import TransformerLM
from course_lib.validation import require_int

TEXT_GPT = {"d_model": 64, "n_heads": 4, "n_layers": 2, "context": 64, "batch_size": 32, "lr": 5e-3, "warmup": 50,
            "steps": 500, "merges": 200}
# What lesson 13 checks, in every recorded run (seeds 0-9 x 1, 2, 4 threads).
TEXT_GPT_THRESHOLDS = {"max_char_bits": 3.0, "min_gain_over_bigram": 0.5, "bpe_ahead_by": 0.2}
# Exercise 13-4: the same model with a short and a long context, the same tokens per step.
CONTEXT_EXPERIMENT = {"contexts": [8, 64], "tokens_per_batch": 2048, "steps": 300}  # a list: as JSON keeps it
CONTEXT_THRESHOLDS = {"short_ahead_by": 0.05}
RECORDED_TEXT_GPT = Path(__file__).resolve().parent.parent / "data" / "lesson13_text_gpt.json"


def windows(ids: torch.Tensor, starts: torch.Tensor, context: int) -> torch.Tensor:
    """The ``context + 1`` tokens of ``ids`` ``(n,)`` from each of ``starts`` ``(batch,)``: ``(batch, context + 1)``.
    A window's first ``context`` tokens are the input, its last ``context`` the targets."""
    return ids[starts[:, None] + torch.arange(context + 1)]  # (B, 1) + (context + 1,) -> (B, context + 1)


def text_batches(ids: torch.Tensor, context: int, batch_size: int, seed: int = 0,
                 make_windows: Callable = windows) -> Callable[[int], tuple]:
    """A ``make_batch`` for ``fit``: ``batch_size`` windows of ``context + 1`` tokens from random places of ``ids``
    ``(n,)``, seeded: ``(windows (batch, context + 1),)``, cut by ``make_windows(ids, starts, context)``."""
    context, batch_size = require_int(context, "context", minimum=1), require_int(batch_size, "batch_size", minimum=1)
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or len(ids) <= context + 1:
        raise ValueError(f"ids must be a 1-D tensor of more than context + 1 = {context + 1} token ids")
    generator = torch.Generator().manual_seed(require_int(seed, "seed"))

    def make_batch(step: int) -> tuple:
        starts = torch.randint(0, len(ids) - context, (batch_size,), generator=generator)  # (B,)
        return (make_windows(ids, starts, context),)  # (B, context + 1)

    return make_batch


def next_token_loss(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
    """Cross-entropy (nats per token) of predicting each window's tokens 1.. from the ones before them."""
    windows = batch[0]  # (B, context + 1)
    logits = model(windows[:, :-1])  # (B, context, vocab)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


@torch.no_grad()
def bits_per_character(model: TransformerLM, ids: torch.Tensor, characters: int, context: int | None = None,
                       batch_size: int = 256) -> float:
    """The loss on ``ids`` ``(n,)`` in bits per character: the text cut into windows of ``context`` tokens (the
    model's ``max_len`` by default), each predicted from its own start, the bits summed and divided by
    ``characters``, the number of characters the predicted tokens cover (``len(text)`` for characters as tokens)."""
    context = model.max_len if context is None else require_int(context, "context", minimum=1)
    n_windows = (len(ids) - 1) // context
    if n_windows < 1:
        raise ValueError(f"ids needs more than context = {context} tokens")
    inputs = ids[:n_windows * context].reshape(n_windows, context)  # (N, context)
    targets = ids[1:n_windows * context + 1].reshape(n_windows, context)
    was_training = model.training
    model.eval()
    nats = 0.0
    for i in range(0, n_windows, batch_size):
        logits = model(inputs[i:i + batch_size])  # (b, context, vocab)
        nats += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[i:i + batch_size].reshape(-1),
                                reduction="sum").item()
    model.train(was_training)
    return nats / math.log(2) / characters


def covered_characters(tokenizer, ids: torch.Tensor, context: int) -> int:
    """How many characters the tokens that ``bits_per_character`` predicts cover (windows of ``context``)."""
    n_windows = (len(ids) - 1) // context
    return len(tokenizer.decode(ids[1:n_windows * context + 1]))


def text_model(vocab_size: int, settings: dict = TEXT_GPT, seed: int = 0) -> TransformerLM:
    """The lesson's untrained GPT for a vocabulary of ``vocab_size`` tokens, its weights drawn from ``seed``."""
    torch.manual_seed(require_int(seed, "seed"))
    return TransformerLM(vocab_size, settings["d_model"], settings["n_heads"], settings["n_layers"],
                         settings["context"])


def exercise_weights(model: TransformerLM) -> dict:
    """``model``'s weights under the names exercise 13-1 gives your GPT: ``positions.weight`` for the position table,
    ``blocks.*`` and ``ln_f.*`` without the ``stack.`` in front; the rest as they are. ``yours.load_state_dict`` takes
    them."""
    renamed = {}
    for name, value in model.state_dict().items():
        name = name.replace("positions.table.", "positions.", 1) if name.startswith("positions.table.") else name
        renamed[name[len("stack."):] if name.startswith("stack.") else name] = value
    return renamed


def train_text_model(model: TransformerLM, train_ids: torch.Tensor, settings: dict = TEXT_GPT, seed: int = 0,
                     progress: bool = False, evaluate: Callable | None = None, eval_every: int = 100) -> TrainingHistory:
    """Train ``model`` on ``train_ids`` with the lesson's recipe (``settings``); batches drawn from ``seed``.
    ``evaluate(model) -> dict`` runs every ``eval_every`` steps and at the end, as in ``fit``."""
    return fit(model, text_batches(train_ids, model.max_len, settings["batch_size"], seed), next_token_loss,
               steps=settings["steps"], lr=settings["lr"], warmup=settings["warmup"], progress=progress,
               evaluate=evaluate, eval_every=eval_every)


def text_gpt_run(seed: int = 0, corpus: Corpus | None = None, settings: dict = TEXT_GPT) -> dict:
    """Lesson 13's two trainings for one seed at the current thread count, scored in bits per character, with
    the baselines and whether every threshold of ``TEXT_GPT_THRESHOLDS`` held."""
    corpus = load_corpus() if corpus is None else corpus
    chars = CharTokenizer(corpus.train)
    tokenizers = {"characters": chars, "bpe": BPETokenizer(chars, train_bpe(corpus.train, settings["merges"]))}
    run = {"seed": seed, "threads": torch.get_num_threads()}
    for name, tokenizer in tokenizers.items():
        train_ids, valid_ids = tokenizer.encode(corpus.train), tokenizer.encode(corpus.validation)
        model = text_model(tokenizer.vocab_size, settings, seed)
        history = train_text_model(model, train_ids, settings, seed)
        run[name] = {"bits_per_character": round(bits_per_character(
                         model, valid_ids, covered_characters(tokenizer, valid_ids, model.max_len)), 4),
                     "last_loss": round(sum(history.losses[-50:]) / 50, 4), "seconds": round(history.seconds, 1)}
        if name == "bpe":
            run["generation"] = generation_facts(model, tokenizer)
    char_ids = (chars.encode(corpus.train), chars.encode(corpus.validation))
    run["bigram"] = round(ngram_bits_per_character(*char_ids, chars.vocab_size, 2), 4)
    run["unigram"] = round(ngram_bits_per_character(*char_ids, chars.vocab_size, 1), 4)
    run["holds"] = text_gpt_holds(run)
    return run


def text_gpt_runs(seed: int = 0, corpus: Corpus | None = None) -> dict:
    """What ``record text-gpt`` keeps for one seed at the current thread count: the lesson's two trainings and
    exercise 13-4's context experiment (with its right answer, ``windows``)."""
    corpus = load_corpus() if corpus is None else corpus
    lesson, context = text_gpt_run(seed, corpus), context_experiment(windows, seed, corpus)
    return {**lesson, "context": {k: v for k, v in context.items() if k not in ("seed", "threads")},
            "holds": lesson["holds"] and context["holds"]}


def context_experiment(make_windows: Callable = windows, seed: int = 0, corpus: Corpus | None = None,
                       settings: dict = CONTEXT_EXPERIMENT) -> dict:
    """Exercise 13-4: the lesson's GPT (characters as tokens) trained with each context of ``settings`` for the same
    steps on the same number of tokens per step, its batches cut by ``make_windows(ids, starts, context)``; scored
    in bits per character on the validation text, each window read from its own start."""
    corpus = load_corpus() if corpus is None else corpus
    chars = CharTokenizer(corpus.train)
    train_ids, valid_ids = chars.encode(corpus.train), chars.encode(corpus.validation)
    run = {"seed": seed, "threads": torch.get_num_threads(), "bits_per_character": {}}
    for context in settings["contexts"]:
        model = text_model(chars.vocab_size, {**TEXT_GPT, "context": context}, seed)
        fit(model, text_batches(train_ids, context, settings["tokens_per_batch"] // context, seed, make_windows),
            next_token_loss, steps=settings["steps"], lr=TEXT_GPT["lr"], warmup=TEXT_GPT["warmup"], progress=False)
        run["bits_per_character"][str(context)] = round(bits_per_character(model, valid_ids, len(corpus.validation)), 4)
    run["bigram"] = round(ngram_bits_per_character(train_ids, valid_ids, chars.vocab_size, 2), 4)
    short, long = (run["bits_per_character"][str(c)] for c in settings["contexts"])
    run["holds"] = short_ahead(run)
    return run


def short_ahead(run: dict, thresholds: dict = CONTEXT_THRESHOLDS) -> bool:
    """Whether, in one context experiment, the short context's loss is below the long one's by the threshold (after
    the same steps on the same tokens, the short context learns faster) and both beat the bigram baseline."""
    short, long = run["bits_per_character"].values()
    return short <= long - thresholds["short_ahead_by"] and max(short, long) < run["bigram"]


PROMPT = "    def forward(self, input: Tensor) -> Tensor:\n"  # where the lesson's samples start


@torch.no_grad()
def sample_surprise(model: TransformerLM, prompt_ids: torch.Tensor, temperature: float, k: int | None = None,
                    samples: int = 20, new_tokens: int = 40, seed: int = 1) -> float:
    """The model's own mean loss, in bits per token, on ``samples`` continuations of ``prompt_ids`` ``(1, n)`` that
    it generated itself at ``temperature`` (top-``k``): how surprising its samples are to it."""
    from course_lib.experiments.generation import generate
    n = prompt_ids.shape[1]
    out = generate(model, prompt_ids.repeat(samples, 1), new_tokens, temperature, k, torch.Generator().manual_seed(seed))
    logits = model(out[:, :-1])[:, n - 1:]  # (samples, new_tokens, vocab): the scores that chose each new token
    return F.cross_entropy(logits.transpose(1, 2), out[:, n:]).item() / math.log(2)


def generation_facts(model: TransformerLM, tokenizer) -> dict:
    """What lesson 13 measures about generating from a trained model: the model's surprise at its own samples at
    temperatures 0 (greedy), 0.5, 1 and 1.5, and with the 5 likeliest tokens at temperature 1; and whether the
    key-value cache gave the same 60 tokens as no cache, greedy and sampled."""
    from course_lib.experiments.generation import generate
    prompt = tokenizer.encode(PROMPT)[None]  # (1, n)
    surprise = {str(tau): round(sample_surprise(model, prompt, tau), 4) for tau in (0.0, 0.5, 1.0, 1.5)}
    same = []
    for temperature, k in ((0.0, None), (1.0, 10)):
        runs = [generate(model, prompt, 60, temperature, k, torch.Generator().manual_seed(2), cache=cache)
                for cache in (False, True)]
        same.append(bool(torch.equal(*runs)))
    return {"surprise": surprise, "top_5_surprise": round(sample_surprise(model, prompt, 1.0, k=5), 4),
            "cache_same_tokens": all(same)}


def surprise_claims(surprise: dict, top_5_surprise: float) -> dict:
    """Lesson 13's claims about ``generation_facts``' surprise (keys "0.0", "0.5", "1.0", "1.5"): it rises from
    temperature 0.5 to 1 to 1.5; greedy text is less surprising than temperature 1's; so is top-5's."""
    return {"rises_from_half": surprise["0.5"] < surprise["1.0"] < surprise["1.5"],
            "greedy_below_one": surprise["0.0"] < surprise["1.0"], "top_5_below_one": top_5_surprise < surprise["1.0"],
            "greedy_least": surprise["0.0"] == min(surprise.values())}


def text_gpt_holds(run: dict, thresholds: dict = TEXT_GPT_THRESHOLDS) -> bool:
    """Whether one run meets every threshold the lesson checks."""
    char_bits, bpe_bits = run["characters"]["bits_per_character"], run["bpe"]["bits_per_character"]
    generation = run["generation"]
    claims = surprise_claims(generation["surprise"], generation["top_5_surprise"])
    return (char_bits <= thresholds["max_char_bits"] and run["bigram"] - char_bits >= thresholds["min_gain_over_bigram"]
            and char_bits - bpe_bits >= thresholds["bpe_ahead_by"] and claims["rises_from_half"]
            and claims["greedy_below_one"] and claims["top_5_below_one"] and generation["cache_same_tokens"])


def recorded_text_gpt(path: Path | None = None) -> list[dict]:
    """The recorded runs (seeds 0-9 at 1, 2 and 4 threads); a ValueError if they were made with other settings or
    thresholds."""
    from course_lib.experiments.records import recorded_runs
    return recorded_runs(RECORDED_TEXT_GPT if path is None else path, RECORD_SETTINGS, RECORD_THRESHOLDS)


RECORD_SETTINGS = {"lesson": TEXT_GPT, "context": CONTEXT_EXPERIMENT}
RECORD_THRESHOLDS = {"lesson": TEXT_GPT_THRESHOLDS, "context": CONTEXT_THRESHOLDS}


def context_agrees_with_record(run: dict, path: Path | None = None) -> bool:
    """Whether a ``context_experiment`` run equals the record's run of the same seed at the same thread count; True
    when the record has no such run (another thread count). A notebook that prints this fails its test when the
    record is stale."""
    recorded = [r["context"] for r in recorded_text_gpt(path) if (r["seed"], r["threads"]) == (run["seed"], run["threads"])]
    return all(r["bits_per_character"] == run["bits_per_character"] for r in recorded)

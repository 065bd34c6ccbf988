"""Heads in the wild: previous-token, induction and bracket heads in GPTs trained on real text. Lesson 14.

Two models, both of lesson 13's size (width 64, 2 layers of 4 heads, a context of 64 characters):

* ``plain_model(seed)``: lesson 13's GPT with characters as tokens (``TEXT_GPT``: 500 steps of plain text).
* ``repeats_model(seed)``: the same width without MLPs (attention only, as in Olsson et al. 2022), trained for
  ``HEADS_GPT["steps"]`` steps on text in which half the windows repeat a piece of themselves
  (``repeating_windows``). Real text repeats too (a name, a line copied), but too rarely for 40 s of training to pay
  for copying: lesson 14 measures that the plain model forms no induction head.

Every head is scored against a relation with exact ground truth, each score a mean attention weight on the key
the relation names (``relation_score``):

* previous token: key ``t - 1`` (``previous_token_score``);
* induction, on random characters repeated with a period: key ``t - period + 1``, the character *after* the earlier
  occurrence of the current one (``induction_score``);
* bracket: the innermost bracket still open at ``t``; quote: the quote that opened the string ``t`` is in. Python's
  own tokenizer finds both (``relation_targets``), so brackets and quotes in comments and strings do not count.

``heads_run(seed)`` measures everything the lesson prints for one seed at the current thread count; ``python -m
course_lib record text-heads`` keeps it for seeds 0-9 at 1, 2 and 4 threads in
``course_lib/data/lesson14_heads.json``, and ``heads_claims`` says which of the lesson's claims each run supports.
"""

from __future__ import annotations

import io
import tokenize
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from course_lib.experiments import cache as _cache
from course_lib.experiments.analysis import capture
from course_lib.experiments.head_report import HeadScores
from course_lib.experiments.text import CharTokenizer, Corpus, corpus_files, load_corpus, FILE_SEPARATOR
from course_lib.experiments.text_model import TEXT_GPT, next_token_loss, text_batches, text_model
from course_lib.experiments.training import TrainingHistory, fit
from course_lib.models.language_model import TransformerLM
from course_lib.validation import require_int

# The attention-only model of lesson 14 and the text it is trained on.
HEADS_GPT = {"d_model": 64, "n_heads": 4, "n_layers": 2, "context": 64, "batch_size": 32, "lr": 5e-3, "warmup": 50,
             "steps": 1500, "repeat_share": 0.5, "shortest_piece": 8, "eval_every": 100}
PERIODS = [16, 32]  # the random test: characters repeated with each period (a list: as JSON keeps it)
TEST = {"sequences": 100, "seed": 1234, "min_count": 200, "windows": 1000}  # how the heads are measured
# What lesson 14 claims, each checked in every recorded run (seeds 0-9 x 1, 2, 4 threads): see heads_claims.
HEADS_THRESHOLDS = {"previous_token": 0.2, "no_induction_below": 0.1, "induction": 0.2, "copy_gain": 1.0,
                    "silenced_rise": 1.0, "composition_below": 0.1, "bracket_over_offset": 2.0}
RECORDED_HEADS = Path(__file__).resolve().parent.parent / "data" / "lesson14_heads.json"
RELATIONS = ("bracket", "quote")
OPENERS, CLOSERS = "([{", ")]}"


# ---------------------------------------------------------------- text that repeats

def repeating_windows(ids: torch.Tensor, starts: torch.Tensor, context: int, pieces: torch.Tensor) -> torch.Tensor:
    """Windows of ``context + 1`` tokens that repeat a piece of the text: window i is the ``pieces[i]`` tokens of
    ``ids`` ``(n,)`` from ``starts[i]``, again and again. ``starts`` and ``pieces`` are ``(batch,)``."""
    offsets = torch.arange(context + 1)[None] % pieces[:, None]  # (B, context + 1): 0, 1, ..., piece - 1, 0, 1, ...
    return ids[starts[:, None] + offsets]


def repeating_batches(ids: torch.Tensor, settings: dict = HEADS_GPT, seed: int = 0) -> Callable[[int], tuple]:
    """A ``make_batch`` for ``fit``: ``batch_size`` windows of ``ids`` as ``text_batches`` cuts them, of which the
    first ``repeat_share`` repeat a piece of text (``repeating_windows``) of ``shortest_piece`` to ``context // 2``
    tokens, a length drawn for each window. Seeded: the same batches every run."""
    context, batch_size = settings["context"], settings["batch_size"]
    plain = text_batches(ids, context, batch_size, seed)
    generator = torch.Generator().manual_seed(require_int(seed, "seed") + 1)
    n_repeating = round(settings["repeat_share"] * batch_size)

    def make_batch(step: int) -> tuple:
        windows = plain(step)[0].clone()  # (B, context + 1)
        if n_repeating:
            starts = torch.randint(0, len(ids) - context, (n_repeating,), generator=generator)
            pieces = torch.randint(settings["shortest_piece"], context // 2 + 1, (n_repeating,), generator=generator)
            windows[:n_repeating] = repeating_windows(ids, starts, context, pieces)
        return (windows,)

    return make_batch


def common_tokens(train_ids: torch.Tensor, vocab_size: int, min_count: int = TEST["min_count"]) -> torch.Tensor:
    """The ids that occur at least ``min_count`` times in ``train_ids``: the random test draws from these, so that
    every character it shows the model is one the model has learned something about."""
    return torch.nonzero(torch.bincount(train_ids, minlength=vocab_size) >= min_count).flatten()


def random_repeats(tokens: torch.Tensor, n: int, period: int, length: int, seed: int = 0) -> torch.Tensor:
    """``n`` sequences of ``length`` tokens: ``period`` tokens drawn uniformly from ``tokens``, repeated until the
    sequence is full. ``(n, length)`` long."""
    generator = torch.Generator().manual_seed(seed)
    piece = tokens[torch.randint(0, len(tokens), (n, period), generator=generator)]  # (n, period)
    return piece.repeat(1, length // period + 1)[:, :length]


# ---------------------------------------------------------------- scores: one number per head

def previous_token_score(weights: torch.Tensor) -> torch.Tensor:
    """Mean weight from each position to the one before it: ``weights`` ``(batch, layers, heads, T, T)`` ->
    ``(layers, heads)``."""
    t = torch.arange(1, weights.shape[-1])
    return weights[..., t, t - 1].mean(dim=(0, -1))


def induction_score(weights: torch.Tensor, period: int) -> torch.Tensor:
    """The reference of exercise 14-1: on tokens repeated with ``period``, the mean weight from each query ``t`` of a
    later copy (``t >= period``) to key ``t - period + 1``, the token after the current token's previous occurrence.
    ``weights`` ``(batch, layers, heads, T, T)`` -> ``(layers, heads)``."""
    t = torch.arange(period, weights.shape[-1])
    return weights[..., t, t - period + 1].mean(dim=(0, -1))


def relation_score(weights: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The reference of exercise 14-2: the mean weight from each query to the key a relation names: ``targets`` ``(batch, T)`` holds that key's index,
    or -1 where the relation names none (those queries do not count). ``weights`` ``(batch, layers, heads, T, T)``
    -> ``(layers, heads)``."""
    counted = targets >= 0  # (B, T)
    keys = targets.clamp(min=0)[:, None, None, :, None].expand(*weights.shape[:-1], 1)  # (B, L, H, T, 1)
    on_target = weights.gather(-1, keys).squeeze(-1)  # (B, L, H, T)
    return (on_target * counted[:, None, None]).sum(dim=(0, -1)) / counted.sum()


@torch.no_grad()
def _silenced_forward(model: torch.nn.Module, ids: torch.Tensor, silence, attention: bool = False):
    """``(logits (batch, T, vocab), record)``: ``model`` in eval mode on ``ids`` with the heads of ``silence`` silenced
    (``record.attention`` holds the weights when ``attention``); the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with capture(model, attention=attention, silence=list(silence)) as record:
            logits = model(ids)  # (B, T, vocab)
    finally:
        model.train(was_training)
    return logits, record


def _token_losses(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The loss in nats of predicting each next token: ``(batch, T - 1)``, column t for token t + 1."""
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")


def silenced_loss(model: torch.nn.Module, ids: torch.Tensor, heads) -> float:
    """The reference of exercise 14-3: the mean loss (nats per token) of the language model ``model`` predicting each
    next token of ``ids`` ``(batch, T)`` with the heads of ``heads`` (``(layer, head)`` pairs) silenced."""
    logits, _ = _silenced_forward(model, ids, heads)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).item()


def relation_baselines(targets: torch.Tensor) -> dict:
    """What a head that needs no understanding scores on the same queries: ``uniform`` (equal weight on every key
    it may see) and ``best_offset`` (all weight on one fixed offset back, the best one), with that ``offset``."""
    counted = targets >= 0
    query = torch.arange(targets.shape[1]).expand_as(targets)
    offsets = (query - targets)[counted]
    counts = torch.bincount(offsets)
    return {"uniform": (1.0 / (query[counted] + 1)).mean().item(), "best_offset": counts.max().item() / len(offsets),
            "offset": int(counts.argmax())}


def _relation_targets_of_file(text: str) -> dict[str, list[int]]:
    """For each character of one Python file: ``bracket``, the index of the innermost bracket still open after
    reading it, and ``quote``, of the quote that opened the string it is inside (-1: none); ``closes_bracket`` and
    ``closes_quote``, 1 where it closes one (else 0). Brackets and quotes come from Python's tokenizer, so those in
    comments and strings do not count."""
    line_starts = [0]
    for line in text.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    brackets = {}  # index -> "(" ... "}"
    found = {"bracket": [], "quote": [-1] * len(text), "closes_bracket": [0] * len(text),
             "closes_quote": [0] * len(text)}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        start = line_starts[token.start[0] - 1] + token.start[1]
        end = line_starts[token.end[0] - 1] + token.end[1]
        if token.type == tokenize.OP and token.string in OPENERS + CLOSERS:
            brackets[start] = token.string  # one character
        elif token.type == tokenize.STRING:  # prefixes (r, f, b) come before the quote; triple quotes close with 3
            opening = start + min(i for i in (token.string.find("'"), token.string.find('"')) if i >= 0)
            closing = end - (3 if token.string.endswith(('"""', "\'\'\'")) else 1)
            found["quote"][opening + 1:closing] = [opening] * (closing - opening - 1)
            found["closes_quote"][closing] = 1
    open_now = []
    for i in range(len(text)):
        kind = brackets.get(i)
        if kind is not None and kind in OPENERS:
            open_now.append(i)
        elif kind is not None:  # a closer
            open_now.pop()
            found["closes_bracket"][i] = 1
        found["bracket"].append(open_now[-1] if open_now else -1)
    return found


def relation_targets(corpus: Corpus | None = None) -> dict[str, torch.Tensor]:
    """What ``_relation_targets_of_file`` finds, for the whole validation text (``n`` characters): ``bracket`` and
    ``quote``, ``(n,)`` long, the index each character's relation names or -1; ``closes_bracket`` and
    ``closes_quote``, ``(n,)`` bool."""
    corpus = load_corpus() if corpus is None else corpus
    texts = dict(corpus_files())
    joined = {}
    for i, path in enumerate(corpus.validation_files):
        base = len(joined.get("bracket", []))  # where this file starts in the joined text
        for name, values in _relation_targets_of_file(texts[path]).items():
            if name in RELATIONS:
                values = [j + base if j >= 0 else -1 for j in values]
            gap = [-1 if name in RELATIONS else 0] * (len(FILE_SEPARATOR) if i < len(corpus.validation_files) - 1 else 0)
            joined.setdefault(name, []).extend(values + gap)
    result = {name: torch.tensor(values) if name in RELATIONS else torch.tensor(values, dtype=torch.bool)
              for name, values in joined.items()}
    if len(result["bracket"]) != len(corpus.validation):
        raise ValueError("the relations' targets do not line up with the validation text")
    return result


def window_targets(targets: torch.Tensor, n_windows: int, context: int) -> torch.Tensor:
    """The first ``n_windows`` windows of ``context`` characters of the text, with ``targets`` made relative to each
    window's start: ``(n_windows, context)``, -1 where the target is outside the window, at the query itself, or
    missing."""
    position = torch.arange(n_windows * context).reshape(n_windows, context)  # (N, context)
    target = targets[position]
    relative = target - position[:, :1]
    keep = (target >= 0) & (relative >= 0) & (target < position)
    return torch.where(keep, relative, torch.full_like(relative, -1))


# ---------------------------------------------------------------- the models

def repeats_model(vocab_size: int, settings: dict = HEADS_GPT, seed: int = 0) -> TransformerLM:
    """Lesson 14's untrained attention-only GPT, its weights drawn from ``seed``."""
    torch.manual_seed(require_int(seed, "seed"))
    return TransformerLM(vocab_size, settings["d_model"], settings["n_heads"], settings["n_layers"],
                         settings["context"], mlp=False)


_SOURCES = ("models/attention.py", "models/block.py", "models/language_model.py", "models/positions.py",
            "experiments/text.py", "experiments/text_model.py", "experiments/text_heads.py", "experiments/training.py")


def _cached(name: str, settings: dict, seed: int, build: Callable, train: Callable) -> tuple[TransformerLM, TrainingHistory]:
    """``build()`` trained by ``train(model) -> history``, kept in the model cache (``course_lib.experiments.cache``)
    so that the exercises, and the lesson run again, load it instead of training it again."""
    path = _cache.entry_path(f"{name}-seed{seed}", _SOURCES, (settings, seed))
    with _cache.lock(f"{name}-seed{seed}"):
        saved = _cache.load(path)
        model = build()
        if saved is not None:
            model.load_state_dict(saved["state"])
            return model.eval(), TrainingHistory(losses=list(saved["losses"]), seconds=float(saved["seconds"]),
                                                 evals=list(saved["evals"]), eval_steps=list(saved["eval_steps"]))
        history = train(model)
        _cache.save(path, {"state": model.state_dict(), "losses": history.losses, "seconds": history.seconds,
                           "evals": history.evals, "eval_steps": history.eval_steps})
        return model.eval(), history


def plain_model(seed: int = 0, corpus: Corpus | None = None, progress: bool = False) -> tuple[TransformerLM, TrainingHistory]:
    """Lesson 13's GPT with characters as tokens, trained as lesson 13 trains it (``TEXT_GPT``), from the cache when
    it is there: ``(model in eval mode, history)``. About 17 s on one thread the first time."""
    seed = require_int(seed, "seed", minimum=0)
    corpus = load_corpus() if corpus is None else corpus
    chars = CharTokenizer(corpus.train)

    def train(model):
        return fit(model, text_batches(chars.encode(corpus.train), model.max_len, TEXT_GPT["batch_size"], seed),
                   next_token_loss, steps=TEXT_GPT["steps"], lr=TEXT_GPT["lr"], warmup=TEXT_GPT["warmup"],
                   progress=progress)

    return _cached("text-gpt-characters", TEXT_GPT, seed, lambda: text_model(chars.vocab_size, TEXT_GPT, seed), train)


def repeats_model_trained(seed: int = 0, corpus: Corpus | None = None, progress: bool = False,
                          settings: dict = HEADS_GPT) -> tuple[TransformerLM, TrainingHistory]:
    """The attention-only GPT trained on text that repeats (``HEADS_GPT``), from the cache when it is there:
    ``(model in eval mode, history)``; ``history.evals`` holds ``formation`` measured every ``eval_every`` steps.
    About 26 s on one thread the first time."""
    seed = require_int(seed, "seed", minimum=0)
    corpus = load_corpus() if corpus is None else corpus
    chars = CharTokenizer(corpus.train)
    train_ids = chars.encode(corpus.train)
    test = repeat_test(train_ids, chars.vocab_size, settings["context"])

    def train(model):
        return fit(model, repeating_batches(train_ids, settings, seed), next_token_loss, steps=settings["steps"],
                   lr=settings["lr"], warmup=settings["warmup"], progress=progress,
                   evaluate=lambda m: formation(m, test), eval_every=settings["eval_every"])

    return _cached("text-heads-repeats", settings, seed, lambda: repeats_model(chars.vocab_size, settings, seed), train)


# ---------------------------------------------------------------- measurements

def repeat_test(train_ids: torch.Tensor, vocab_size: int, context: int = HEADS_GPT["context"]) -> dict[int, torch.Tensor]:
    """The random test, the same on every machine: for each period of ``PERIODS``, ``TEST["sequences"]`` sequences
    of ``context`` common characters repeated with that period."""
    tokens = common_tokens(train_ids, vocab_size)
    return {period: random_repeats(tokens, TEST["sequences"], period, context, TEST["seed"] + period)
            for period in PERIODS}


def attention_and_loss(model: TransformerLM, ids: torch.Tensor, silence=()) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights (batch, layers, heads, T, T), loss (batch, T - 1))``: the model's attention on ``ids`` ``(batch,
    T)`` and its loss in nats on each next token, with the heads of ``silence`` (``(layer, head)`` pairs) silenced."""
    logits, record = _silenced_forward(model, ids, silence, attention=True)
    return record.attention, _token_losses(logits, ids)


def copy_losses(loss: torch.Tensor, period: int) -> dict:
    """Mean loss (nats) on the first copy's next tokens and on every later copy's: ``loss`` ``(batch, T - 1)``, where
    column t is the loss of predicting token t + 1."""
    return {"first": loss[:, :period - 1].mean().item(), "later": loss[:, period - 1:].mean().item()}


def formation(model: TransformerLM, test: dict[int, torch.Tensor]) -> dict:
    """What ``repeats_model_trained`` measures while it trains: the best head's induction score at the test's longest
    period, and the loss on its later copies."""
    period = max(test)
    weights, loss = attention_and_loss(model, test[period])
    return {"induction": round(induction_score(weights, period).max().item(), 4),
            "later_copies_loss": round(copy_losses(loss, period)["later"], 4)}


def _rounded(values: torch.Tensor) -> list:
    return [[round(float(v), 4) for v in row] for row in values]


@torch.no_grad()
def head_facts(model: TransformerLM, test: dict[int, torch.Tensor], text_windows: torch.Tensor,
               relations: dict[str, torch.Tensor]) -> dict:
    """Every head's scores, as ``(layers, heads)`` lists: previous token on the text windows, induction at each period
    of the random test, and each relation of ``relations`` (targets as ``window_targets`` gives them); the copies'
    losses; and the loss at each position of the text windows."""
    facts = {"induction": {}, "copies": {}}
    for period, ids in test.items():
        weights, loss = attention_and_loss(model, ids)
        facts["induction"][str(period)] = _rounded(induction_score(weights, period))
        facts["copies"][str(period)] = {k: round(v, 4) for k, v in copy_losses(loss, period).items()}
    sums = {name: 0.0 for name in ("previous_token", *relations)}
    counts = {name: 0 for name in relations}
    position_loss = torch.zeros(text_windows.shape[1] - 1)
    for start in range(0, len(text_windows), 250):  # in batches: all windows' weights at once would take 400 MB
        ids = text_windows[start:start + 250]
        weights, loss = attention_and_loss(model, ids)
        sums["previous_token"] = sums["previous_token"] + previous_token_score(weights) * len(ids)
        for name, targets in relations.items():
            counted = (targets[start:start + 250] >= 0).sum().item()
            sums[name] = sums[name] + relation_score(weights, targets[start:start + 250]) * counted
            counts[name] += counted
        position_loss += loss.sum(dim=0)
    facts["previous_token"] = _rounded(sums["previous_token"] / len(text_windows))
    for name in relations:
        facts[name] = _rounded(sums[name] / counts[name])
    facts["loss_by_position"] = [round(v, 4) for v in (position_loss / len(text_windows)).tolist()]
    return facts


def best_score(scores: list, layer: int | None = None) -> float:
    """The highest score in a ``(layers, heads)`` list, within ``layer`` if given."""
    return max(max(row) for row in (scores if layer is None else [scores[layer]]))


def best_head(scores: list, layer: int | None = None) -> tuple[int, int]:
    """``(layer, head)`` of the highest score in a ``(layers, heads)`` list, within ``layer`` if given."""
    values = torch.tensor(scores)
    if layer is not None:
        return layer, int(values[layer].argmax())
    index = int(values.argmax())
    return index // values.shape[1], index % values.shape[1]


@torch.no_grad()
def closing_loss(model: TransformerLM, text_windows: torch.Tensor, closing: torch.Tensor, silence=()) -> dict:
    """Mean loss (nats) on the characters that close a bracket (or a string), and on all the others, predicted from
    the text windows ``(N, T)``; ``closing`` ``(N, T)`` is True where the window's character closes one."""
    total = {"closing": 0.0, "other": 0.0}
    count = {"closing": 0, "other": 0}
    for start in range(0, len(text_windows), 250):
        ids = text_windows[start:start + 250]
        loss = _token_losses(_silenced_forward(model, ids, silence)[0], ids)  # (b, T - 1)
        is_closing = closing[start:start + 250, 1:]
        total["closing"] += loss[is_closing].sum().item()
        total["other"] += loss[~is_closing].sum().item()
        count["closing"] += int(is_closing.sum())
        count["other"] += int((~is_closing).sum())
    return {k: round(total[k] / count[k], 4) for k in total}


def measurement_set(corpus: Corpus | None = None) -> dict:
    """What ``heads_run`` and the lesson measure the heads on: the random test, the first ``TEST["windows"]`` windows
    of the validation text, the relations' targets in them, and where a closing bracket stands."""
    corpus = load_corpus() if corpus is None else corpus
    chars = CharTokenizer(corpus.train)
    context = HEADS_GPT["context"]
    valid_ids = chars.encode(corpus.validation)
    n = TEST["windows"]
    text_windows = valid_ids[:n * context].reshape(n, context)
    targets = relation_targets(corpus)
    relations = {name: window_targets(targets[name], n, context) for name in RELATIONS}
    closes = {name: targets[f"closes_{name}"][:n * context].reshape(n, context) for name in RELATIONS}
    return {"chars": chars, "test": repeat_test(chars.encode(corpus.train), chars.vocab_size, context),
            "text_windows": text_windows, "relations": relations, "closes": closes,
            "baselines": {name: relation_baselines(t) for name, t in relations.items()}}


def heads_run(seed: int = 0, corpus: Corpus | None = None, measured: dict | None = None) -> dict:
    """Lesson 14's measurements for one seed at the current thread count: both models' head scores beside the
    untrained model's, the copies' losses, what silencing heads costs, and when the induction heads formed."""
    corpus = load_corpus() if corpus is None else corpus
    measured = measurement_set(corpus) if measured is None else measured
    args = (measured["test"], measured["text_windows"], measured["relations"])
    run = {"seed": seed, "threads": torch.get_num_threads()}
    plain, plain_history = plain_model(seed, corpus)
    repeats, history = repeats_model_trained(seed, corpus)
    vocab = measured["chars"].vocab_size
    run["plain"] = head_facts(plain, *args)
    run["plain"]["untrained"] = head_facts(text_model(vocab, TEXT_GPT, seed), *args)
    run["repeats"] = head_facts(repeats, *args)
    run["repeats"]["untrained"] = head_facts(repeats_model(vocab, HEADS_GPT, seed), *args)
    for facts in (run["plain"], run["repeats"]):  # the untrained model: only its scores
        facts["untrained"] = {k: v for k, v in facts["untrained"].items() if k not in ("copies", "loss_by_position")}
    run["plain"]["seconds"], run["repeats"]["seconds"] = round(plain_history.seconds, 1), round(history.seconds, 1)
    # silencing: the best induction head; all of layer 0 (composition); the plain model's bracket head
    period = max(PERIODS)
    induction_head = best_head(run["repeats"]["induction"][str(period)], layer=1)
    weights, loss = attention_and_loss(repeats, measured["test"][period], [induction_head])
    run["repeats"]["induction_head"] = list(induction_head)
    run["repeats"]["induction_head_silenced"] = {k: round(v, 4) for k, v in copy_losses(loss, period).items()}
    layer_0 = [(0, h) for h in range(HEADS_GPT["n_heads"])]
    run["repeats"]["layer_0_silenced"] = {}
    for silenced in [[head] for head in layer_0] + [layer_0]:
        weights, loss = attention_and_loss(repeats, measured["test"][period], silenced)
        name = "all" if len(silenced) > 1 else str(silenced[0][1])
        run["repeats"]["layer_0_silenced"][name] = {
            "induction": round(induction_score(weights, period)[induction_head].item(), 4),
            "later_copies_loss": round(copy_losses(loss, period)["later"], 4)}
    for name in RELATIONS:  # the plain model's bracket head, and the quote head of exercise 14-2
        head = best_head(run["plain"][name], layer=1)
        closes = measured["closes"][name]
        run["plain"][f"{name}_head"] = list(head)
        run["plain"][f"{name}_closing_loss"] = closing_loss(plain, measured["text_windows"], closes)
        run["plain"][f"{name}_closing_loss_silenced"] = closing_loss(plain, measured["text_windows"], closes, [head])
    run["repeats"]["formation"] = history.evals
    run["baselines"] = {name: {k: round(v, 4) if isinstance(v, float) else v for k, v in b.items()}
                        for name, b in measured["baselines"].items()}
    run["uniform_induction"] = {str(p): round(uniform_score(p, HEADS_GPT["context"]), 4) for p in PERIODS}
    run["claims"] = heads_claims(run)
    run["holds"] = all(run["claims"].values())
    return run


def uniform_score(period: int, length: int) -> float:
    """The induction score of a head that spreads its weight evenly over every key it may see."""
    return sum(1 / (t + 1) for t in range(period, length)) / (length - period)


def formed_at(formation: list[dict], threshold: float = HEADS_THRESHOLDS["induction"],
              eval_every: int = HEADS_GPT["eval_every"]) -> int | None:
    """The first step at which the best induction score reached ``threshold`` (None: never)."""
    for i, point in enumerate(formation):
        if point["induction"] >= threshold:
            return (i + 1) * eval_every
    return None


def heads_claims(run: dict, thresholds: dict = HEADS_THRESHOLDS) -> dict:
    """Lesson 14's claims about one run, each True or False."""
    plain, repeats = run["plain"], run["repeats"]
    periods = [str(p) for p in PERIODS]
    best = best_score
    later = lambda facts: facts["copies"][str(max(PERIODS))]["later"]
    induction_head = tuple(repeats["induction_head"])
    return {
        "previous_token_heads": min(best(plain["previous_token"], 0), best(repeats["previous_token"], 0))
                                >= thresholds["previous_token"],
        "plain_no_induction": max(best(plain["induction"][p]) for p in periods) < thresholds["no_induction_below"],
        "plain_no_copying": later(plain) > plain["copies"][periods[-1]]["first"] - thresholds["copy_gain"],
        "repeats_induction": min(best(repeats["induction"][p], 1) for p in periods) >= thresholds["induction"],
        "one_head_both_periods": all(repeats["induction"][p][induction_head[0]][induction_head[1]]
                                     >= thresholds["induction"] for p in periods),
        "repeats_copying": later(repeats) <= repeats["copies"][periods[-1]]["first"] - thresholds["copy_gain"],
        "silencing_induction_costs": repeats["induction_head_silenced"]["later"] >= later(repeats)
                                     + thresholds["silenced_rise"],
        "composition": repeats["layer_0_silenced"]["all"]["induction"] < thresholds["composition_below"],
        "bracket_head": best(plain["bracket"], 1) >= thresholds["bracket_over_offset"]
                        * run["baselines"]["bracket"]["best_offset"],
        **{f"{name}_silencing_costs_closers": _costs_closers(plain, name) for name in RELATIONS},
        "formed": formed_at(repeats["formation"]) is not None,
    }


def _costs_closers(facts: dict, name: str) -> bool:
    """Whether silencing the relation's head raised the loss on the characters that close it more than on the rest."""
    before, after = facts[f"{name}_closing_loss"], facts[f"{name}_closing_loss_silenced"]
    return after["closing"] - before["closing"] > after["other"] - before["other"]


RECORD_SETTINGS = {"plain": TEXT_GPT, "repeats": HEADS_GPT, "periods": PERIODS, "test": TEST}
RECORD_THRESHOLDS = HEADS_THRESHOLDS


def recorded_heads(path: Path | None = None) -> list[dict]:
    """The recorded runs (seeds 0-9 at 1, 2 and 4 threads); a ValueError if they were made with other settings or
    thresholds."""
    from course_lib.experiments.records import recorded_runs
    return recorded_runs(RECORDED_HEADS if path is None else path, RECORD_SETTINGS, RECORD_THRESHOLDS)


def text_head_report(model: TransformerLM, measured: dict, relations: tuple = ("bracket",)) -> HeadScores:
    """The head report of a GPT on real text: every head's previous-token, induction (longest period) and
    ``relations``' scores (``"bracket"``, ``"quote"``), and how much the loss on the text windows rises when that head
    alone is silenced; the baselines under the table. ``measured`` is ``measurement_set()``."""
    period = max(PERIODS)
    facts = head_facts(model, {period: measured["test"][period]}, measured["text_windows"], measured["relations"])
    windows = measured["text_windows"][:250]
    full = silenced_loss(model, windows, [])
    layers, heads = len(facts["previous_token"]), len(facts["previous_token"][0])
    rise = [[silenced_loss(model, windows, [(layer, head)]) - full for head in range(heads)] for layer in range(layers)]
    baselines = measured["baselines"]
    notes = (f"uniform attention scores: previous token {uniform_score(1, model.max_len):.2f}, induction "
             f"{uniform_score(period, model.max_len):.2f}"
             + "".join(f", {name} {baselines[name]['uniform']:.2f}" for name in relations),
             *(f"the best fixed offset back, {name}: {baselines[name]['best_offset']:.2f} (offset "
               f"{baselines[name]['offset']})" for name in relations),
             f"loss rise: nats per character on {len(windows)} windows of validation text when that head alone is "
             f"silenced (the loss with every head: {full:.2f})")
    return HeadScores({"previous token": facts["previous_token"], f"induction (period {period})":
                       facts["induction"][str(period)], **{name: facts[name] for name in relations},
                       "loss rise": rise}, notes)


def visible(text: str) -> list[str]:
    """One label per character, for the explorer: a space shows as ``␣``, a new line as ``↵``, a tab as ``→``."""
    return [{" ": "\u2423", "\n": "\u21b5", "\t": "\u2192"}.get(c, c) for c in text]


CLAIMS = {  # each claim of heads_claims in the lesson's words
    "previous_token_heads": "both models have a previous-token head in layer 0",
    "plain_no_induction": "lesson 13's GPT has no induction head",
    "plain_no_copying": "lesson 13's GPT does not predict a repeat better than the first copy",
    "repeats_induction": "the model trained on repeats has an induction head in layer 1, at both periods",
    "one_head_both_periods": "the same head scores at both periods (no fixed offset can)",
    "repeats_copying": "that model predicts the later copies far better than the first",
    "silencing_induction_costs": "silencing its induction head costs the later copies at least 1 nat",
    "composition": "silencing layer 0 (the previous-token heads) breaks the induction head",
    "bracket_head": "lesson 13's GPT has a bracket head in layer 1, twice the best fixed offset",
    "bracket_silencing_costs_closers": "silencing it costs more on closing brackets than elsewhere",
    "quote_silencing_costs_closers": "silencing the best quote head costs more on closing quotes than elsewhere",
    "formed": "the induction head formed during training",
}


def record_summary(runs: list[dict]) -> dict:
    """The recorded runs in numbers the lesson prints: for each figure its ``(lowest, highest)`` over the runs, the
    steps at which the induction heads formed, and how many runs support each claim (and which do not)."""
    period = str(max(PERIODS))
    best = best_score

    def span(values):
        values = list(values)
        return (min(values), max(values)) if values else None

    later = lambda r, model: r[model]["copies"][period]["later"]
    return {
        "runs": len(runs),
        "plain_previous_token": span(best(r["plain"]["previous_token"], 0) for r in runs),
        "repeats_previous_token": span(best(r["repeats"]["previous_token"], 0) for r in runs),
        "untrained_previous_token": span(best(r["plain"]["untrained"]["previous_token"], 0) for r in runs),
        "plain_induction": span(best(r["plain"]["induction"][p]) for r in runs for p in r["plain"]["induction"]),
        "repeats_induction": {p: span(best(r["repeats"]["induction"][p], 1) for r in runs) for p in map(str, PERIODS)},
        "untrained_induction": span(best(r["repeats"]["untrained"]["induction"][period]) for r in runs),
        "plain_copies": {"first": span(r["plain"]["copies"][period]["first"] for r in runs),
                         "later": span(later(r, "plain") for r in runs)},
        "repeats_copies": {"first": span(r["repeats"]["copies"][period]["first"] for r in runs),
                           "later": span(later(r, "repeats") for r in runs)},
        "induction_silenced_later": span(r["repeats"]["induction_head_silenced"]["later"] for r in runs),
        "induction_silenced_rise": span(r["repeats"]["induction_head_silenced"]["later"] - later(r, "repeats")
                                        for r in runs),
        "layer_0_all_silenced": span(r["repeats"]["layer_0_silenced"]["all"]["induction"] for r in runs),
        "layer_0_one_silenced": span(v["induction"] for r in runs
                                     for k, v in r["repeats"]["layer_0_silenced"].items() if k != "all"),
        "bracket": span(best(r["plain"]["bracket"], 1) for r in runs),
        "untrained_bracket": span(best(r["plain"]["untrained"]["bracket"]) for r in runs),
        "bracket_closing_rise": span(r["plain"]["bracket_closing_loss_silenced"]["closing"]
                                     - r["plain"]["bracket_closing_loss"]["closing"] for r in runs),
        "bracket_other_rise": span(r["plain"]["bracket_closing_loss_silenced"]["other"]
                                   - r["plain"]["bracket_closing_loss"]["other"] for r in runs),
        "quote_head_is_bracket_head": sum(r["plain"]["quote_head"] == r["plain"]["bracket_head"] for r in runs),
        "formed_at": span(formed_at(r["repeats"]["formation"]) or 0 for r in runs),
        "seconds": {"plain": span(r["plain"]["seconds"] for r in runs if r["threads"] == 1),
                    "repeats": span(r["repeats"]["seconds"] for r in runs if r["threads"] == 1)},
        "claims": {claim: {"held": sum(r["claims"][claim] for r in runs),
                           "missed": [(r["seed"], r["threads"]) for r in runs if not r["claims"][claim]]}
                   for claim in CLAIMS},
    }

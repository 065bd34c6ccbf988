"""``python -m course_lib bench``: is the course's readable code as fast as PyTorch's own modules, and
does the reference result hold on this machine? It measures and prints; it writes nothing.

Each ratio is course time / PyTorch time for forward + backward, measured side by side (alternating
rounds, median of rounds) in one run: ``mha``, ``block``, ``train_step`` (the reference's sizes) and
``text_gpt_train_step`` (lesson 13's GPT, ``TEXT_GPT``, on 32 windows of 64 characters). ``kv_cache_generation``
is lesson 13's ``generate`` from 8 to 256 tokens (greedy) with the key-value cache / without it, with a check
that both give the same tokens. Targets: ``mha``, ``block`` and ``train_step`` ratios <= 1.25,
``text_gpt_train_step`` <= 1.05, ``kv_cache_generation`` <= 0.5 (the cache at least 2x faster) with no token
different; every exercise check answers within 1 s; the reference (``course_lib.experiments.reference.REFERENCE``)
trains within its time and reaches its accuracy, subject-head and neighbour-head targets. ``--speed`` adds lesson
10's longer runs.
The many-seed records that lessons 09 and 10 read are ``python -m course_lib record``'s job (tools/record.py).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.experiments.analysis import ablation_effects, capture_attention, head_scores, subject_head_figures
from course_lib.models.attention import MultiHeadAttention, causal_mask
from course_lib.models.block import TransformerBlock
from course_lib.experiments.grammar import (BASELINE_RULES, agreement_vocabulary, comma_after_subject_sentences,
                                            encode_sentences, shortcut_free_sentences)
from course_lib.models.language_model import TransformerLM
from course_lib.experiments.reference import REFERENCE, train_reference_model
from course_lib.experiments.generation import generate
from course_lib.experiments.text_model import TEXT_GPT

RATIO_TARGET = 1.25
TEXT_GPT_RATIO_TARGET = 1.05  # lesson 13's GPT, whose step is mostly the blocks: as fast as PyTorch's, within 5 %
KV_CACHE_RATIO_TARGET = 0.5  # generating with the cache / without it: at least twice as fast
TARGETS = {"mha_ratio": RATIO_TARGET, "block_ratio": RATIO_TARGET, "train_step_ratio": RATIO_TARGET,
           "text_gpt_train_step_ratio": TEXT_GPT_RATIO_TARGET, "kv_cache_generation_ratio": KV_CACHE_RATIO_TARGET,
           "kv_cache_generation.different_tokens": 0,
           "reference.seconds": REFERENCE.max_seconds, "reference.agreement_accuracy": REFERENCE.min_accuracy,
           "reference.subject_head_weight": REFERENCE.min_subject_weight,
           "reference.neighbour_head_weight": REFERENCE.min_neighbour_weight,
           "checks.slowest_seconds": 1.0}


def compare(ours: Callable[[], None], theirs: Callable[[], None], rounds: int = 15, per_round: int = 5,
            warm_up: int = 2) -> dict:
    """Median seconds per call of each, measured in alternating rounds so both see the same machine state
    (after ``warm_up`` untimed calls of each)."""
    for fn in (ours, theirs) * warm_up:
        fn()
    times = {"ours": [], "theirs": []}
    for _ in range(rounds):
        for name, fn in (("ours", ours), ("theirs", theirs)):
            start = time.perf_counter()
            for _ in range(per_round):
                fn()
            times[name].append((time.perf_counter() - start) / per_round)
    ours_s, theirs_s = statistics.median(times["ours"]), statistics.median(times["theirs"])
    return {"ours_ms": ours_s * 1e3, "theirs_ms": theirs_s * 1e3, "ratio": ours_s / theirs_s}


def forward_backward(module: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        run(x).sum().backward()
    return step


def bench_mha(batch: int = 16, T: int = 128, d_model: int = 128, n_heads: int = 8) -> dict:
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
    ours = MultiHeadAttention.from_torch(theirs)
    x = torch.randn(batch, T, d_model, requires_grad=True)
    allowed = causal_mask(T)
    return compare(forward_backward(ours, lambda x: ours(x, allowed, need_weights=False)[0], x),
                   forward_backward(theirs, lambda x: theirs(x, x, x, attn_mask=~allowed, need_weights=False)[0], x))


def bench_block(batch: int = 16, T: int = 128, d_model: int = 128, n_heads: int = 8) -> dict:
    torch.manual_seed(0)
    theirs = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, activation="gelu",
                                        batch_first=True, norm_first=True)
    ours = TransformerBlock.from_torch(theirs)
    x = torch.randn(batch, T, d_model, requires_grad=True)
    allowed = causal_mask(T)
    return compare(forward_backward(ours, lambda x: ours(x, allowed), x),
                   forward_backward(theirs, lambda x: theirs(x, src_mask=~allowed), x))


class TorchEncoderLM(nn.Module):
    """The same language model as ``TransformerLM``, built from PyTorch's ``nn.TransformerEncoderLayer``."""

    def __init__(self, vocab_size: int, d_model: int, n_heads: int, n_layers: int, max_len: int,
                 d_ff: int | None = None):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Parameter(torch.zeros(max_len, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff or 4 * d_model, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        x = self.embed(ids) + self.positions[:T]
        blocked = ~causal_mask(T, device=ids.device)
        return self.head(self.ln_f(self.encoder(x, mask=blocked)))


def compare_train_steps(vocab_size: int, sizes: dict, ids: torch.Tensor, rounds: int = 15,
                        per_round: int = 10) -> dict:
    """One training step (forward, next-token cross-entropy, backward, AdamW) of ``TransformerLM(vocab_size,
    **sizes)`` against ``TorchEncoderLM`` of the same sizes and parameter count, on ``ids`` ``(batch, T + 1)``."""

    def trainer(model: nn.Module) -> Callable[[], None]:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step() -> None:
            logits = model(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, vocab_size), ids[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    ours = TransformerLM(vocab_size, **sizes)  # learned positions on both sides: the same parameters
    theirs = TorchEncoderLM(vocab_size, **sizes)
    counts = [sum(p.numel() for p in model.parameters()) for model in (ours, theirs)]
    assert counts[0] == counts[1], f"not equal models: {counts[0]} parameters against {counts[1]}"
    return compare(trainer(ours), trainer(theirs), rounds=rounds, per_round=per_round)


def bench_train_step(batch: int = 64, T: int = 16) -> dict:
    torch.manual_seed(0)
    vocab_size = len(agreement_vocabulary())
    sizes = {key: value for key, value in REFERENCE.model_kwargs().items() if key != "positions"}
    return compare_train_steps(vocab_size, sizes, torch.randint(3, vocab_size, (batch, T + 1)))


# Lesson 13's character vocabulary: CharTokenizer(load_corpus().train).vocab_size (tests/test_cli.py checks it). A
# constant, so that bench needs neither the corpus nor its checksum (which holds for the pinned torch only).
TEXT_VOCAB_SIZE = 100


def text_gpt_sizes(settings: dict = TEXT_GPT) -> dict:
    """``TransformerLM``'s sizes (besides the vocabulary) for lesson 13's GPT: ``settings["context"]`` is max_len."""
    return {"d_model": settings["d_model"], "n_heads": settings["n_heads"], "n_layers": settings["n_layers"],
            "max_len": settings["context"]}


def bench_text_gpt_train_step(settings: dict = TEXT_GPT, rounds: int = 10, per_round: int = 4) -> dict:
    """Lesson 13's GPT: a training step on ``batch_size`` windows of ``context`` characters, course ÷ PyTorch."""
    torch.manual_seed(0)
    ids = torch.randint(0, TEXT_VOCAB_SIZE, (settings["batch_size"], settings["context"] + 1))
    return compare_train_steps(TEXT_VOCAB_SIZE, text_gpt_sizes(settings), ids, rounds=rounds, per_round=per_round)


def bench_kv_cache_generation(prompt_tokens: int = 8, total_tokens: int = 256, rounds: int = 5,
                              settings: dict = TEXT_GPT) -> dict:
    """Lesson 13's ``generate`` (greedy) from a prompt of ``prompt_tokens`` to ``total_tokens`` tokens, on an
    untrained GPT of the lesson's width with ``max_len = total_tokens``: with the key-value cache / without it.
    ``ratio`` is cache time / no-cache time; ``different_tokens`` how many generated tokens the two disagree on."""
    torch.manual_seed(0)
    model = TransformerLM(TEXT_VOCAB_SIZE, **{**text_gpt_sizes(settings), "max_len": total_tokens})
    prompt = torch.randint(0, TEXT_VOCAB_SIZE, (1, prompt_tokens))
    new_tokens = total_tokens - prompt_tokens

    def generating(cache: bool) -> Callable[[], torch.Tensor]:
        return lambda: generate(model, prompt, new_tokens, temperature=0, cache=cache)

    with_cache, without = generating(True)(), generating(False)()  # the tokens to check, and the warm-up
    assert with_cache.shape == without.shape == (1, total_tokens), (with_cache.shape, without.shape)
    timed = compare(generating(True), generating(False), rounds=rounds, per_round=1, warm_up=0)
    return {"cache_ms": timed["ours_ms"], "no_cache_ms": timed["theirs_ms"], "ratio": timed["ratio"],
            "speed_up": 1 / timed["ratio"], "different_tokens": int((with_cache != without).sum()),
            "prompt_tokens": prompt_tokens, "total_tokens": total_tokens}


def run_bench(reference: bool = True) -> dict:
    """Every measurement, as one dict (the ``--json`` output), with PyTorch's current thread count."""
    results: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    details = {"mha": bench_mha(), "block": bench_block(), "train_step": bench_train_step(),
               "text_gpt_train_step": bench_text_gpt_train_step(), "kv_cache_generation": bench_kv_cache_generation()}
    for name, d in details.items():
        results[f"{name}_ratio"] = round(d["ratio"], 3)
    results["details_ms"] = {name: {k: round(v, 3) for k, v in d.items() if k.endswith("_ms")}
                             for name, d in details.items()}
    generation = details["kv_cache_generation"]
    results["kv_cache_generation"] = {"speed_up": round(generation["speed_up"], 2),
                                      "different_tokens": generation["different_tokens"],
                                      "prompt_tokens": generation["prompt_tokens"],
                                      "total_tokens": generation["total_tokens"]}
    from course_lib.checks import time_checks

    seconds = time_checks()  # each exercise check on a right answer: a learner waits this long for the verdict
    slowest = max(seconds, key=seconds.get)
    results["checks"] = {"slowest": slowest, "slowest_seconds": round(seconds[slowest], 3),
                         "total_seconds": round(sum(seconds.values()), 3), "count": len(seconds)}
    if reference:
        results["reference"] = reference_figures(seed=0)
    return results


# Sentences no shortcut explains (lesson 09): how many of each the reference's subject head is scored on.
SHORTCUT_SENTENCES = 1000


def reference_figures(seed: int = 0) -> dict:
    """Train the reference model once (and keep it in the cache, so lessons and records can load it); its
    figures as ``bench --json`` reports them."""
    start = time.perf_counter()
    run = train_reference_model(seed=seed, progress=False, cache=True)
    seconds = time.perf_counter() - start
    drops = run.agreement_accuracy - ablation_effects(run.model, run.test, run.vocab)  # (layers, heads)
    scores = head_scores(run.model, run.test, run.vocab)
    subject_layer, subject_head = run.subject_head
    ids, _ = encode_sentences(run.test, run.vocab)
    attention = capture_attention(run.model, ids)[:, subject_layer]  # (batch, heads, query, key)
    rows = torch.arange(len(run.test))
    before_verb = torch.tensor([s.verb - 1 for s in run.test])
    subject = torch.tensor([s.subject for s in run.test])
    from_verb = attention[rows, :, before_verb]  # (batch, heads, key): where the verb-predicting position looks
    return {"seconds": round(seconds, 2), "threads": torch.get_num_threads(), "seed": seed,
            "agreement_accuracy": round(run.agreement_accuracy, 4),
            "subject_head_weight": round(run.subject_head_weight, 3), "subject_head": list(run.subject_head),
            "neighbour_head_weight": round(run.neighbour_head_weight, 3),
            "neighbour_head": list(run.neighbour_head),
            # the best general previous-token score of any head: weight from every position to the one before it
            "best_previous_token_weight": round(float(scores["previous_token"].max()), 3),
            # what silencing a head costs: the subject head, and the most and least any head costs
            "subject_head_drop": round(float(drops[run.subject_head]), 3),
            "largest_drop": round(float(drops.max()), 3), "smallest_drop": round(float(drops.min()), 3),
            # how often the subject head looks most at the subject, and the weight its whole layer gives it on average
            "subject_hit_rate": round(float((from_verb[:, subject_head].argmax(-1) == subject).float().mean()), 3),
            "layer_average_subject_weight": round(float(from_verb.mean(1)[rows, subject].mean()), 3),
            # the subject head's weight on the attractors (nouns of the other number) between subject and verb
            "subject_head_attractor_weight": round(float(torch.stack([
                from_verb[i, subject_head, list(s.attractors)].sum() for i, s in enumerate(run.test)]).mean()), 3),
            "two_different_heads": run.subject_head != run.neighbour_head,
            # every head, (layers, heads) as nested lists: what lesson 09 reads from the recorded matrix
            "heads": {"verb_to_subject": _rounded(scores["verb_to_subject"]), "neighbour": _rounded(scores["neighbour"]),
                      "previous_token": _rounded(scores["previous_token"]), "accuracy_drop": _rounded(drops)},
            "baselines": {name: round(rate, 3) for name, rate in run.baselines.items()},
            # the subject head where no shortcut finds the subject, and where a comma stands after the subject
            "shortcut_free": _on(run, shortcut_free_sentences(SHORTCUT_SENTENCES, seed)),
            "comma_after_subject": _on(run, comma_after_subject_sentences(SHORTCUT_SENTENCES, seed))}


def _on(run, sentences) -> dict:
    return subject_head_figures(run.model, run.subject_head, sentences, run.vocab, reference=run.train)


def _rounded(table: torch.Tensor) -> list[list[float]]:
    return [[round(float(value), 3) for value in row] for row in table]


AT_LEAST = ("agreement_accuracy", "subject_head_weight", "neighbour_head_weight")  # every other target is a maximum


def _missed(results: dict, targets: dict = TARGETS) -> list[tuple[str, float, float, str]]:
    """``(name, value, target, "<=" or ">=")`` for each target this run missed (measured ones only)."""
    missed = []
    for key, target in targets.items():
        section, _, field = key.partition(".")
        value = results.get(section, {}).get(field) if field else results.get(section)
        if value is None:
            continue
        at_least = field in AT_LEAST or field.startswith("worst_")
        if (value < target) if at_least else (value > target):
            missed.append((key, value, target, ">=" if at_least else "<="))
    return missed


def failures(results: dict, targets: dict = TARGETS) -> list[str]:
    """The targets this run missed, as readable lines."""
    return [f"{key} = {value} (target {op} {target})" for key, value, target, op in _missed(results, targets)]


def missed_targets(results: dict, targets: dict = TARGETS) -> list[str]:
    """The names of the targets this run missed (the ``"failed"`` list of ``--json``), e.g. ``mha_ratio``."""
    return [key for key, *_ in _missed(results, targets)]


def _baselines(rates: dict) -> str:
    return ", ".join(f"{BASELINE_RULES.get(name, name)} {rate:.2f}" for name, rate in rates.items())


def format_table(results: dict) -> str:
    rows = [f"course_lib bench — torch {results['torch']}, {results['threads']} threads",
            f"{'measurement':<20}{'course (ms)':>13}{'PyTorch (ms)':>14}{'ratio':>8}{'target':>9}"]
    for name in ("mha", "block", "train_step", "text_gpt_train_step"):
        if name not in results["details_ms"]:  # results of an older bench
            continue
        d = results["details_ms"][name]
        rows.append(f"{name:<20}{d['ours_ms']:>13.2f}{d['theirs_ms']:>14.2f}{results[name + '_ratio']:>8.2f}"
                    f"{'<= ' + str(TARGETS[name + '_ratio']):>9}")
    if "kv_cache_generation" in results:
        d, g = results["details_ms"]["kv_cache_generation"], results["kv_cache_generation"]
        rows.append(f"kv_cache_generation: {g['prompt_tokens']} to {g['total_tokens']} tokens in "
                    f"{d['cache_ms']:.1f} ms with the cache, {d['no_cache_ms']:.1f} ms without, ratio "
                    f"{results['kv_cache_generation_ratio']:.2f} (target <= {KV_CACHE_RATIO_TARGET}), "
                    f"{g['speed_up']:.1f}x faster; "
                    + ("the same tokens" if g["different_tokens"] == 0 else
                       f"{g['different_tokens']} token(s) differ (target 0)"))
    c = results["checks"]
    rows.append(f"exercise checks: slowest {c['slowest']} {c['slowest_seconds']:.2f} s (target <= 1), "
                f"all {c['count']} in {c['total_seconds']:.2f} s")
    if "reference" in results:
        r, c = results["reference"], REFERENCE
        rows.append(f"reference: {r['seconds']:.1f} s at {r['threads']} thread(s) (target <= {c.max_seconds:g}), "
                    f"agreement accuracy {r['agreement_accuracy']:.3f} (>= {c.min_accuracy}), subject head "
                    f"{tuple(r['subject_head'])} weight {r['subject_head_weight']:.2f} (>= {c.min_subject_weight}), "
                    f"neighbour head {tuple(r['neighbour_head'])} weight "
                    f"{r['neighbour_head_weight']:.2f} (>= {c.min_neighbour_weight}); every head's previous-token "
                    f"weight <= {r['best_previous_token_weight']:.2f}")
        rows.append("  baselines, the fraction of test sentences whose subject a rule finds: " + _baselines(r["baselines"]))
        for name, words in (("shortcut_free", "sentences no shortcut explains"),
                            ("comma_after_subject", "a comma after the subject")):
            if name in r:
                f = r[name]
                rows.append(f"  {words}: the subject head finds the subject in {f['subject_hit_rate']:.2f}, agreement "
                            f"{f['agreement_accuracy']:.3f}; baselines " + _baselines(f["baselines"]))
    if "speed" in results:
        from course_lib.experiments.speed import format_speed_figures
        rows.append(format_speed_figures(results["speed"]))
    missed = failures(results)
    rows.append("all targets met" if not missed else "missed: " + "; ".join(missed))
    return "\n".join(rows)


def run(args) -> int:
    """Run the bench as parsed by ``python -m course_lib``; 0 when every target is met, 1 otherwise."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results = run_bench(reference=not args.no_reference)
    if args.speed:
        from course_lib.experiments.speed import speed_figures
        results["speed"] = speed_figures(seeds=range(args.speed_seeds))
    failed = missed_targets(results)
    results["passed"], results["failed"] = not failed, failed
    print(json.dumps(results) if args.json else format_table(results))
    return 0 if not failed else 1

"""``python -m course_lib bench``: is the course's readable code as fast as PyTorch's own modules, and
does the reference result hold on this machine?

Each ratio is course time / PyTorch time for forward + backward, measured side by side (alternating
rounds, median of rounds) in one run. Targets: every ratio <= 1.25; the reference reaches >= 99 %
agreement accuracy and a subject head >= 0.8 in <= 20 s; every exercise check answers within 1 s.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention, causal_mask
from .block import TransformerBlock
from .grammar import agreement_vocabulary
from .language_model import TransformerLM
from .reference import REFERENCE_CONFIG, train_reference_model

RATIO_TARGET = 1.25
TARGETS = {"mha_ratio": RATIO_TARGET, "block_ratio": RATIO_TARGET, "train_step_ratio": RATIO_TARGET,
           "reference.seconds": 20.0, "reference.agreement_accuracy": 0.99, "reference.subject_head_weight": 0.8,
           "checks.slowest_seconds": 1.0}


def compare(ours: Callable[[], None], theirs: Callable[[], None], rounds: int = 15, per_round: int = 5) -> dict:
    """Median seconds per call of each, measured in alternating rounds so both see the same machine state."""
    for fn in (ours, theirs, ours, theirs):  # warm-up
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

    def __init__(self, vocab_size: int, d_model: int, n_heads: int, n_layers: int, max_len: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Parameter(torch.zeros(max_len, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        x = self.embed(ids) + self.positions[:T]
        blocked = ~causal_mask(T, device=ids.device)
        return self.head(self.ln_f(self.encoder(x, mask=blocked)))


def bench_train_step(batch: int = 64, T: int = 16) -> dict:
    torch.manual_seed(0)
    vocab_size = len(agreement_vocabulary())
    ids = torch.randint(3, vocab_size, (batch, T + 1))

    def trainer(model: nn.Module) -> Callable[[], None]:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step() -> None:
            logits = model(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, vocab_size), ids[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    ours = TransformerLM(vocab_size, **REFERENCE_CONFIG)
    theirs = TorchEncoderLM(vocab_size, **REFERENCE_CONFIG)
    return compare(trainer(ours), trainer(theirs), rounds=15, per_round=10)


def run_bench(reference: bool = True) -> dict:
    """Every measurement, as one dict (the ``--json`` output), with PyTorch's current thread count."""
    results: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    details = {"mha": bench_mha(), "block": bench_block(), "train_step": bench_train_step()}
    for name, d in details.items():
        results[f"{name}_ratio"] = round(d["ratio"], 3)
    results["details_ms"] = {name: {k: round(v, 3) for k, v in d.items() if k.endswith("_ms")}
                             for name, d in details.items()}
    from .checks import time_checks

    seconds = time_checks()  # each exercise check on a right answer: a learner waits this long for the verdict
    slowest = max(seconds, key=seconds.get)
    results["checks"] = {"slowest": slowest, "slowest_seconds": round(seconds[slowest], 3),
                         "total_seconds": round(sum(seconds.values()), 3), "count": len(seconds)}
    if reference:
        start = time.perf_counter()
        run = train_reference_model(progress=False)
        results["reference"] = {"seconds": round(time.perf_counter() - start, 2),
                                "agreement_accuracy": round(run.agreement_accuracy, 4),
                                "subject_head_weight": round(run.subject_head_weight, 3),
                                "subject_head": list(run.subject_head)}
    return results


AT_LEAST = ("agreement_accuracy", "subject_head_weight")  # higher is better; every other target is a maximum


def _missed(results: dict) -> list[tuple[str, float, float, str]]:
    """``(name, value, target, "<=" or ">=")`` for each target this run missed (measured ones only)."""
    missed = []
    for key, target in TARGETS.items():
        section, _, field = key.partition(".")
        value = results.get(section, {}).get(field) if field else results.get(section)
        if value is None:
            continue
        at_least = field in AT_LEAST
        if (value < target) if at_least else (value > target):
            missed.append((key, value, target, ">=" if at_least else "<="))
    return missed


def failures(results: dict) -> list[str]:
    """The targets this run missed, as readable lines."""
    return [f"{key} = {value} (target {op} {target})" for key, value, target, op in _missed(results)]


def missed_targets(results: dict) -> list[str]:
    """The names of the targets this run missed (the ``"failed"`` list of ``--json``), e.g. ``mha_ratio``."""
    return [key for key, *_ in _missed(results)]


def format_table(results: dict) -> str:
    rows = [f"course_lib bench — torch {results['torch']}, {results['threads']} threads",
            f"{'measurement':<14}{'course (ms)':>13}{'PyTorch (ms)':>14}{'ratio':>8}{'target':>9}"]
    for name in ("mha", "block", "train_step"):
        d = results["details_ms"][name]
        rows.append(f"{name:<14}{d['ours_ms']:>13.2f}{d['theirs_ms']:>14.2f}{results[name + '_ratio']:>8.2f}"
                    f"{'<= ' + str(RATIO_TARGET):>9}")
    c = results["checks"]
    rows.append(f"exercise checks: slowest {c['slowest']} {c['slowest_seconds']:.2f} s (target <= 1), "
                f"all {c['count']} in {c['total_seconds']:.2f} s")
    if "reference" in results:
        r = results["reference"]
        rows.append(f"reference: {r['seconds']:.1f} s (target <= 20), agreement accuracy "
                    f"{r['agreement_accuracy']:.3f} (>= 0.99), subject head {tuple(r['subject_head'])} weight "
                    f"{r['subject_head_weight']:.2f} (>= 0.8)")
    missed = failures(results)
    rows.append("all targets met" if not missed else "missed: " + "; ".join(missed))
    return "\n".join(rows)


def run(args) -> int:
    """Run the bench as parsed by ``python -m course_lib``; 0 when every target is met, 1 otherwise."""
    torch.set_num_threads(args.threads)
    results = run_bench(reference=not args.no_reference)
    failed = missed_targets(results)
    results["passed"], results["failed"] = not failed, failed
    print(json.dumps(results) if args.json else format_table(results))
    return 0 if not failed else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib bench [options]``, with the options in ``argv``."""
    from .__main__ import main as cli

    return cli(["bench", *(argv or [])])

"""``python -m course_lib record {reference-seeds,same-steps}``: the many-seed records lessons 09 and 10 read.

A lesson shows one run; a record says what many did. ``reference-seeds`` trains the reference model
(``course_lib.experiments.reference``) for seeds 0..N-1 at each thread count (a different count adds floats in
another order, so it is another training run; about 25 minutes for 10 seeds x 1, 2, 4 threads) and keeps
the figures in ``course_lib/data/reference_seed_matrix.json``, which lesson 09 reads. ``same-steps`` runs lesson
10's comparison (a GRU and a transformer, 300 steps each) the same way and keeps it in
``course_lib/data/lesson10_same_steps.json``. ``--dry-run`` measures and prints without writing.

This command is the only code that writes into ``course_lib/data/``. A record is JSON: the settings it was
measured with, the torch version, the command that makes it again, and ``runs``, one per (seed, threads).
Recording one thread count at a time keeps the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from course_lib.experiments.reference import RECORDED_SEED_MATRIX, REFERENCE
from course_lib.experiments.speed import RECORDED_SAME_STEPS, SAME_STEPS, SAME_STEPS_THRESHOLDS, same_steps_comparison
from course_lib.tools.bench import failures, missed_targets, reference_figures

# Every run of a matrix must meet the reference's own targets; lesson 10's thresholds must hold in every run.
SEED_TARGETS = {"seed_matrix.worst_agreement_accuracy": REFERENCE.min_accuracy,
                "seed_matrix.worst_subject_head_weight": REFERENCE.min_subject_weight,
                "seed_matrix.worst_previous_token_weight": REFERENCE.min_neighbour_weight}
SAME_STEPS_TARGETS = {"same_steps.failed": 0}


def at_every_thread_count(run: Callable[[int], dict], seeds, threads) -> list[dict]:
    """``run(seed)`` for every seed at every thread count (a different count rounds floats differently, so it is
    a different training run), seed by seed; the caller's thread count is restored afterwards."""
    before = torch.get_num_threads()
    runs = []
    try:
        for seed in seeds:
            for count in threads:
                torch.set_num_threads(count)
                runs.append(run(seed))
    finally:
        torch.set_num_threads(before)
    return runs


def run_seed_matrix(seeds=range(10), threads=(1, 2, 4)) -> dict:
    """Train the reference for every seed at every thread count (a different thread count rounds floats
    differently, so it is a different training run); every run must meet the reference's targets."""
    runs = at_every_thread_count(reference_figures, seeds, threads)
    worst = {name: min(runs, key=lambda r: r[name])
             for name in ("agreement_accuracy", "subject_head_weight", "previous_token_weight")}
    return {"runs": runs, "count": len(runs),
            **{f"worst_{name}": run[name] for name, run in worst.items()},
            "worst_cases": {name: {"seed": run["seed"], "threads": run["threads"]} for name, run in worst.items()},
            "slowest_seconds": max(r["seconds"] for r in runs)}


def run_same_steps(seeds=range(10), threads=(1, 2, 4)) -> dict:
    """Lesson 10's quality comparison for every seed at every thread count; the lesson's thresholds must hold
    in every run. Returns ``{"runs": [...], "count", "failed", "smallest_lead"}``."""
    runs = at_every_thread_count(same_steps_comparison, seeds, threads)
    return {"runs": runs, "count": len(runs), "failed": sum(not r["holds"] for r in runs),
            "smallest_lead": min(round(r["gru"] - r["transformer"], 3) for r in runs)}


def format_seed_matrix(matrix: dict) -> str:
    c = REFERENCE
    rows = [f"reference across seeds and thread counts (targets: accuracy >= {c.min_accuracy}, subject head >= "
            f"{c.min_subject_weight}, previous-token head >= {c.min_neighbour_weight})",
            f"{'seed':>4}{'threads':>9}{'accuracy':>10}{'subject':>9}{'(layer, head)':>15}{'previous':>10}"
            f"{'(layer, head)':>15}{'seconds':>9}"]
    for r in matrix["runs"]:
        rows.append(f"{r['seed']:>4}{r['threads']:>9}{r['agreement_accuracy']:>10.3f}{r['subject_head_weight']:>9.2f}"
                    f"{str(tuple(r['subject_head'])):>15}{r['previous_token_weight']:>10.2f}"
                    f"{str(tuple(r['previous_token_head'])):>15}{r['seconds']:>9.1f}")
    worst = matrix["worst_cases"]
    rows.append("worst of {count} runs: accuracy {a:.3f} (seed {sa}, {ta} threads), subject head {s:.2f} (seed {ss}, "
                "{ts} threads), previous-token head {p:.2f} (seed {sp}, {tp} threads)".format(
                    count=matrix["count"], a=matrix["worst_agreement_accuracy"],
                    sa=worst["agreement_accuracy"]["seed"], ta=worst["agreement_accuracy"]["threads"],
                    s=matrix["worst_subject_head_weight"], ss=worst["subject_head_weight"]["seed"],
                    ts=worst["subject_head_weight"]["threads"], p=matrix["worst_previous_token_weight"],
                    sp=worst["previous_token_weight"]["seed"], tp=worst["previous_token_weight"]["threads"]))
    return "\n".join(rows)


def format_same_steps(s: dict) -> str:
    rows = [f"lesson 10, after the same 300 steps: the GRU ahead in {s['count'] - s['failed']} of {s['count']} "
            f"runs (every threshold of the lesson met); smallest lead {s['smallest_lead']:.3f} (threshold "
            f"{SAME_STEPS_THRESHOLDS['min_lead']})"]
    rows.extend(f"  seed {r['seed']}, {r['threads']} thread(s): agreement GRU {r['gru']:.3f}, transformer "
                f"{r['transformer']:.3f}; held-out loss GRU {r['loss_gru']:.3f}, transformer {r['loss_transformer']:.3f}"
                + ("" if r["holds"] else "  <- a threshold missed") for r in s["runs"])
    return "\n".join(rows)


def merged_runs(path: Path, settings: Mapping, runs: Sequence[Mapping]) -> list[dict]:
    """``runs`` together with the runs ``path`` already holds for other (seed, threads), when it was recorded
    with the same ``settings`` (each of its keys compared) and torch version; sorted by seed, then threads."""
    new_keys = {(r["seed"], r["threads"]) for r in runs}
    kept = []
    if path.exists():
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError):
            before = {}
        if all(before.get(key) == value for key, value in settings.items()) and before.get("torch") == torch.__version__:
            kept = [r for r in before.get("runs", []) if (r["seed"], r["threads"]) not in new_keys]
    return sorted([*kept, *map(dict, runs)], key=lambda r: (r["seed"], r["threads"]))


def write_record(path: Path, settings: Mapping, command: str, runs: Sequence[Mapping]) -> Path:
    """Save a record: ``settings``' keys, the torch version, the ``command`` that makes it, then the runs."""
    content = {**settings, "torch": torch.__version__, "command": command, "runs": list(runs)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=1) + "\n")
    return path


def record_seed_matrix(matrix: dict, path: Path | None = None) -> Path:
    """Save a matrix from ``run_seed_matrix`` as the course's record, with the configuration it used.

    Runs already recorded with the same configuration and torch version are kept unless this matrix has
    the same (seed, threads): so one thread count can be recorded at a time."""
    path = RECORDED_SEED_MATRIX if path is None else Path(path)
    settings = {"config": asdict(REFERENCE)}
    return write_record(path, settings, "python -m course_lib record reference-seeds",
                        merged_runs(path, settings, matrix["runs"]))


def record_same_steps(runs: Sequence[Mapping], path: Path | None = None) -> Path:
    """Keep ``same_steps_comparison`` results as the course's record (runs of the same seed and thread count
    already there are replaced; the others kept when recorded with the same settings and torch version)."""
    path = RECORDED_SAME_STEPS if path is None else Path(path)
    settings = {"settings": SAME_STEPS, "thresholds": SAME_STEPS_THRESHOLDS}
    return write_record(path, settings, "python -m course_lib record same-steps",
                        merged_runs(path, settings, runs))


def run(args) -> int:
    """Run ``record`` as parsed by ``python -m course_lib``: 0 when every run met its targets, 1 otherwise."""
    seeds = range(args.seeds)
    if args.what == "reference-seeds":
        results = {"seed_matrix": run_seed_matrix(seeds, args.thread_counts)}
        targets, table = SEED_TARGETS, format_seed_matrix(results["seed_matrix"])
        if not args.dry_run:
            results["recorded_to"] = str(record_seed_matrix(results["seed_matrix"]))
    else:
        results = {"same_steps": run_same_steps(seeds, args.thread_counts)}
        targets, table = SAME_STEPS_TARGETS, format_same_steps(results["same_steps"])
        if not args.dry_run:
            results["recorded_to"] = str(record_same_steps(results["same_steps"]["runs"]))
    failed = missed_targets(results, targets)
    results["passed"], results["failed"] = not failed, failed
    if args.json:
        print(json.dumps(results))
    else:
        missed = failures(results, targets)
        print("\n".join([table, *([f"recorded in {results['recorded_to']}"] if "recorded_to" in results else []),
                         "every run met its targets" if not missed else "missed: " + "; ".join(missed)]))
    return 0 if not failed else 1

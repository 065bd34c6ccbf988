"""``python -m course_lib record {reference-seeds,same-steps,recall-race,probes,exercise-runs,text-gpt,text-heads}``:
the records lessons 09, 10, 12, 13, 14 and the experiment exercises read.

A lesson shows one run; a record says what many did. ``reference-seeds`` trains the reference model
(``course_lib.experiments.reference``) for seeds 0..N-1 at each thread count (a different count adds floats in
another order, so it is another training run; about 25 minutes for 10 seeds x 1, 2, 4 threads) and keeps
the figures in ``course_lib/data/reference_seed_matrix.json``, which lesson 09 reads. ``same-steps`` runs lesson
10's comparison (a GRU and a transformer, 300 steps each) the same way and keeps it in
``course_lib/data/lesson10_same_steps.json``; ``recall-race`` runs lesson 10's race to recall a far-back token at
equal cost (``course_lib.experiments.speed.recall_races``; about 20 minutes on the course's busy 2-core machine)
and keeps it in ``course_lib/data/lesson10_recall_race.json``.
``probes`` runs lesson 12's probes on the reference model and the digit ViT of each seed
(``course_lib.experiments.probes.probe_run``; each model from the cache, else trained: about 10 minutes once
``reference-seeds`` has filled the cache) and keeps them in ``course_lib/data/lesson12_probes.json``.
``exercise-runs`` runs the experiments of exercises 07-2, 10-2, 11-1 and 12-1 with their right answers
(``course_lib.experiments.changes.exercise_runs``; about 15 minutes) and keeps them in
``course_lib/data/exercise_runs.json``.
``text-gpt`` trains lesson 13's GPT on real text twice, characters and byte pairs as tokens
(``course_lib.experiments.text_model.text_gpt_run``; about 30 minutes) and keeps it in
``course_lib/data/lesson13_text_gpt.json``.
``text-heads`` trains lesson 14's two models, lesson 13's GPT on plain text and the attention-only GPT on text that
repeats, and scores every head (``course_lib.experiments.text_heads.heads_run``; about 50 s a run at 1 thread) into
``course_lib/data/lesson14_heads.json``.
``--dry-run`` measures and prints without writing.

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
from course_lib.experiments.probes import PROBE_SETTINGS, PROBE_THRESHOLDS, RECORDED_PROBES, probe_run
from course_lib.experiments.speed import RECORDED_SAME_STEPS, SAME_STEPS, SAME_STEPS_THRESHOLDS, same_steps_comparison
from course_lib.experiments.speed import (RECALL_RACE, RECALL_RACE_THRESHOLDS, RECORDED_RECALL_RACE, recall_races,
                                          time_ratio)
from course_lib.experiments.changes import (EXERCISE_RUN_SETTINGS, EXERCISE_RUN_THRESHOLDS, RECORDED_EXERCISE_RUNS,
                                            patch_shuffle_experiment, reach_experiment, residual_experiment,
                                            unseen_digits_experiment)
from course_lib.experiments.text_model import RECORD_SETTINGS, RECORD_THRESHOLDS, RECORDED_TEXT_GPT, text_gpt_runs
from course_lib.experiments import text_heads
from course_lib.tools.bench import failures, missed_targets, reference_figures

# Every run of a matrix must meet the reference's own targets; lesson 10's thresholds must hold in every run.
SEED_TARGETS = {"seed_matrix.worst_agreement_accuracy": REFERENCE.min_accuracy,
                "seed_matrix.worst_subject_head_weight": REFERENCE.min_subject_weight,
                "seed_matrix.worst_neighbour_head_weight": REFERENCE.min_neighbour_weight}
SAME_STEPS_TARGETS = {"same_steps.failed": 0}
PROBES_TARGETS = {"probes.failed": 0}  # lesson 12: every claim of probe_claims in every run
RECALL_RACE_TARGETS = {"recall_race.failed": 0}  # lesson 10's race: every threshold in every run
EXERCISE_RUNS_TARGETS = {"exercise_runs.failed": 0}  # the experiment exercises: every threshold in every run
TEXT_GPT_TARGETS = {"text_gpt.failed": 0}  # lesson 13: every threshold in every run
TEXT_HEADS_TARGETS = {"text_heads.failed": 0}  # lesson 14: every claim in every run


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
             for name in ("agreement_accuracy", "subject_head_weight", "neighbour_head_weight")}
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


def run_probes(seeds=range(10), threads=(1, 2, 4)) -> dict:
    """Lesson 12's probes (``probe_run``: the reference model and the digit ViT of each seed, from the cache or
    trained) for every seed at every thread count; every claim must hold in every run. Returns ``{"runs": [...],
    "count", "failed"}``."""
    runs = at_every_thread_count(probe_run, seeds, threads)
    return {"runs": runs, "count": len(runs), "failed": sum(bool(r["missed"]) for r in runs)}


def run_recall_race(seeds=range(10), threads=(1, 2, 4)) -> dict:
    """Lesson 10's race at equal cost (``recall_races``: both lengths) for every seed at every thread count; the
    lesson's thresholds must hold in every run. Returns ``{"runs": [...], "count", "failed"}``."""
    runs = at_every_thread_count(recall_races, seeds, threads)
    return {"runs": runs, "count": len(runs), "failed": sum(not r["holds"] for r in runs)}


def exercise_runs(seed: int = 0) -> dict:
    """The four experiments of ``course_lib.experiments.changes`` for one seed at the current thread count, each with
    the exercise's right answer (the checks' reference; the experiments themselves never import the checks)."""
    from course_lib.checks.lesson07_transformer_block import _block_without_residuals
    from course_lib.checks.lesson10_speed import _reach
    from course_lib.checks.lesson11_vision import _shuffle_patches
    from course_lib.checks.lesson12_representations import _keep_digits
    runs = {"residuals": residual_experiment(_block_without_residuals, seed),
            "reach": reach_experiment(_reach, seed),
            "patch_shuffle": patch_shuffle_experiment(_shuffle_patches, seed),
            "unseen_digits": unseen_digits_experiment(_keep_digits, seed)}
    return {"seed": seed, "threads": torch.get_num_threads(),
            **{name: {k: v for k, v in run.items() if k not in ("seed", "threads")} for name, run in runs.items()},
            "holds": all(run["holds"] for run in runs.values())}


def run_exercise_runs(seeds=range(10), threads=(1, 2, 4)) -> dict:
    """The experiments of exercises 07-2, 10-2, 11-1 and 12-1 for every seed at every thread count; every threshold must hold
    in every run. Returns ``{"runs": [...], "count", "failed"}``."""
    runs = at_every_thread_count(exercise_runs, seeds, threads)
    return {"runs": runs, "count": len(runs), "failed": sum(not r["holds"] for r in runs)}


def run_text_gpt(seeds=range(10), threads=(1, 2, 4)) -> dict:
    """Lesson 13's two trainings on real text (characters, byte pairs) and exercise 13-4's context experiment for every seed at every thread count; every
    threshold must hold in every run. Returns ``{"runs": [...], "count", "failed"}``."""
    from course_lib.experiments.text import load_corpus
    corpus = load_corpus()
    runs = at_every_thread_count(lambda seed: text_gpt_runs(seed, corpus), seeds, threads)
    return {"runs": runs, "count": len(runs), "failed": sum(not r["holds"] for r in runs)}


def format_text_gpt(s: dict) -> str:
    rows = [f"lesson 13, a GPT on torch/nn's source: every threshold met in {s['count'] - s['failed']} of {s['count']} "
            f"runs; bits per character (characters as tokens / byte pairs; bigram baseline)"]
    rows.extend(f"  seed {r['seed']}, {r['threads']} thread(s): {r['characters']['bits_per_character']:.3f} / "
                f"{r['bpe']['bits_per_character']:.3f}; bigram {r['bigram']:.3f}; "
                f"{r['characters']['seconds'] + r['bpe']['seconds']:.0f} s; exercise 13-4, context "
                + ", ".join(f"{c}: {b:.3f}" for c, b in r["context"]["bits_per_character"].items())
                + ("" if r["holds"] else "  <- a threshold missed") for r in s["runs"])
    return "\n".join(rows)


def run_text_heads(seeds=range(10), threads=(1, 2, 4)) -> dict:
    """Lesson 14's two models and every head's scores for every seed at every thread count; every claim of
    ``heads_claims`` must hold in every run. Returns ``{"runs": [...], "count", "failed"}``."""
    corpus = text_heads.load_corpus()
    measured = text_heads.measurement_set(corpus)
    runs = at_every_thread_count(lambda seed: text_heads.heads_run(seed, corpus, measured), seeds, threads)
    return {"runs": runs, "count": len(runs), "failed": sum(not r["holds"] for r in runs)}


def format_text_heads(s: dict) -> str:
    rows = [f"lesson 14, heads in GPTs on torch/nn's source: every claim held in {s['count'] - s['failed']} of "
            f"{s['count']} runs"]
    for r in s["runs"]:
        plain, repeats = r["plain"], r["repeats"]
        best = text_heads.best_score
        rows.append(f"  seed {r['seed']}, {r['threads']} thread(s): plain model: previous token "
                    f"{best(plain['previous_token'], 0):.2f}, induction {best(plain['induction']['32']):.2f}, "
                    f"bracket {best(plain['bracket'], 1):.2f} (best offset {r['baselines']['bracket']['best_offset']:.2f}); "
                    f"repeats model: induction {best(repeats['induction']['32'], 1):.2f}, formed at step "
                    f"{text_heads.formed_at(repeats['formation'])}, later copies {repeats['copies']['32']['later']:.2f} "
                    f"nats against {repeats['copies']['32']['first']:.2f}; {plain['seconds'] + repeats['seconds']:.0f} s"
                    + "".join(f"\n    missed: {claim}" for claim, held in r["claims"].items() if not held))
    return "\n".join(rows)


def format_exercise_runs(s: dict) -> str:
    rows = [f"exercises 07-2, 10-2, 11-1, 12-1: every threshold met in {s['count'] - s['failed']} of {s['count']} runs"]
    for r in s["runs"]:
        res, reach, shuffle, unseen = r["residuals"], r["reach"]["models"], r["patch_shuffle"], r["unseen_digits"]
        rows.append(f"  seed {r['seed']}, {r['threads']} thread(s): 07-2 test loss with residuals "
                    f"{res['with_residuals']:.3f}, without {res['yours']:.3f} (baseline {res['baseline']:.3f}); 10-2 recall "
                    + ", ".join(f"{name} {m['accuracy']:.2f}" for name, m in reach.items())
                    + f"; 11-1 shuffled: ViT {shuffle['vit']['shuffled']:.2f} (as they are {shuffle['vit']['as_they_are']:.2f}),"
                    f" MLP {shuffle['mlp']['shuffled']:.2f} ({shuffle['mlp']['as_they_are']:.2f}); 12-1 probe of 5-9: "
                    f"trained on 0-4 {unseen['trained_on_0_to_4']:.2f}, on all {unseen['trained_on_all']:.2f}, untrained "
                    f"{unseen['untrained']:.2f}, pixels {unseen['pixels']:.2f}"
                    + ("" if r["holds"] else "  <- a threshold missed"))
    return "\n".join(rows)


def format_seed_matrix(matrix: dict) -> str:
    c = REFERENCE
    rows = [f"reference across seeds and thread counts (targets: accuracy >= {c.min_accuracy}, subject head >= "
            f"{c.min_subject_weight}, neighbour head >= {c.min_neighbour_weight}); 'no shortcut': how often the subject head "
            f"looks most at the subject in sentences no simple rule explains",
            f"{'seed':>4}{'threads':>9}{'accuracy':>10}{'subject':>9}{'(layer, head)':>15}{'neighbour':>10}"
            f"{'(layer, head)':>15}{'no shortcut':>12}{'seconds':>9}"]
    for r in matrix["runs"]:
        rows.append(f"{r['seed']:>4}{r['threads']:>9}{r['agreement_accuracy']:>10.3f}{r['subject_head_weight']:>9.2f}"
                    f"{str(tuple(r['subject_head'])):>15}{r['neighbour_head_weight']:>10.2f}"
                    f"{str(tuple(r['neighbour_head'])):>15}{r['shortcut_free']['subject_hit_rate']:>12.2f}"
                    f"{r['seconds']:>9.1f}")
    worst = matrix["worst_cases"]
    rows.append("worst of {count} runs: accuracy {a:.3f} (seed {sa}, {ta} threads), subject head {s:.2f} (seed {ss}, "
                "{ts} threads), neighbour head {p:.2f} (seed {sp}, {tp} threads)".format(
                    count=matrix["count"], a=matrix["worst_agreement_accuracy"],
                    sa=worst["agreement_accuracy"]["seed"], ta=worst["agreement_accuracy"]["threads"],
                    s=matrix["worst_subject_head_weight"], ss=worst["subject_head_weight"]["seed"],
                    ts=worst["subject_head_weight"]["threads"], p=matrix["worst_neighbour_head_weight"],
                    sp=worst["neighbour_head_weight"]["seed"], tp=worst["neighbour_head_weight"]["threads"]))
    return "\n".join(rows)


def format_same_steps(s: dict) -> str:
    rows = [f"lesson 10, after the same 300 steps: the GRU ahead in {s['count'] - s['failed']} of {s['count']} "
            f"runs (every threshold of the lesson met); smallest lead {s['smallest_lead']:.3f} (threshold "
            f"{SAME_STEPS_THRESHOLDS['min_lead']})"]
    rows.extend(f"  seed {r['seed']}, {r['threads']} thread(s): agreement GRU {r['gru']:.3f}, transformer "
                f"{r['transformer']:.3f}; held-out loss GRU {r['loss_gru']:.3f}, transformer {r['loss_transformer']:.3f}"
                + ("" if r["holds"] else "  <- a threshold missed") for r in s["runs"])
    return "\n".join(rows)


def format_recall_race(s: dict) -> str:
    rows = [f"lesson 10's race to {RECALL_RACE['target']} held-out recall, time counted in transformer steps: every "
            f"threshold met in {s['count'] - s['failed']} of {s['count']} runs"]
    for r in s["runs"]:
        parts = []
        for race in r["races"]:
            ratio = time_ratio(race)
            parts.append(f"{race['length']} tokens: GRU step {race['gru_step_over_transformer']:.2f} x, steps to target "
                         f"GRU {race['steps_to_target']['gru']}, transformer {race['steps_to_target']['transformer']}, "
                         f"GRU's time {'-' if ratio is None else f'{ratio:.2f}'} x")
        rows.append(f"  seed {r['seed']}, {r['threads']} thread(s): " + "; ".join(parts)
                    + "".join(f"\n    missed: {m}" for m in r["missed"]))
    return "\n".join(rows)


def format_probes(s: dict) -> str:
    rows = [f"lesson 12's probes: every claim met in {s['count'] - s['failed']} of {s['count']} runs; after layer 1 "
            f"(the prediction), then the new task from {PROBE_THRESHOLDS['subject_labels']} labelled nouns and the "
            f"digits at {PROBE_THRESHOLDS['digit_dimensions']} numbers"]
    for r in s["runs"]:
        verb, subject, digits = r["language"]["before_verb"], r["language"]["find_the_subject"], r["digits"]
        at = subject["sizes"].index(PROBE_THRESHOLDS["subject_labels"])
        k = digits["dimensions"].index(PROBE_THRESHOLDS["digit_dimensions"])
        rows.append(f"  seed {r['seed']}, {r['threads']} thread(s): "
                    + ", ".join(f"{name} {report['trained'][-1]:.2f} "
                                f"({max(report['probabilities'], report['logits']):.2f})" for name, report in verb.items())
                    + f"; subject {subject['trained'][at]:.2f} against raw words {subject['raw words'][at]:.2f}"
                    + f"; digits ViT {digits['trained'][k]:.2f}, pixels {digits['pixels'][k]:.2f}"
                    + "".join(f"\n    missed: {claim}" for claim in r["missed"]))
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


def record_probes(runs: Sequence[Mapping], path: Path | None = None) -> Path:
    """Keep ``probe_run`` results as the course's record, which lesson 12 reads (runs of the same seed and thread
    count already there are replaced; the others kept when recorded with the same settings, thresholds and torch
    version)."""
    path = RECORDED_PROBES if path is None else Path(path)
    settings = {"settings": PROBE_SETTINGS, "thresholds": PROBE_THRESHOLDS}
    return write_record(path, settings, "python -m course_lib record probes", merged_runs(path, settings, runs))


def record_recall_race(runs: Sequence[Mapping], path: Path | None = None) -> Path:
    """Keep ``recall_races`` results as the course's record, which lesson 10 reads (runs of the same seed and
    thread count already there are replaced; the others kept when recorded with the same settings, thresholds
    and torch version)."""
    path = RECORDED_RECALL_RACE if path is None else Path(path)
    settings = {"settings": RECALL_RACE, "thresholds": RECALL_RACE_THRESHOLDS}
    return write_record(path, settings, "python -m course_lib record recall-race", merged_runs(path, settings, runs))


def record_exercise_runs(runs: Sequence[Mapping], path: Path | None = None) -> Path:
    """Keep ``exercise_runs`` results as the course's record (runs of the same seed and thread count already there
    are replaced; the others kept when recorded with the same settings, thresholds and torch version)."""
    path = RECORDED_EXERCISE_RUNS if path is None else Path(path)
    settings = {"settings": EXERCISE_RUN_SETTINGS, "thresholds": EXERCISE_RUN_THRESHOLDS}
    return write_record(path, settings, "python -m course_lib record exercise-runs", merged_runs(path, settings, runs))


def record_text_gpt(runs: Sequence[Mapping], path: Path | None = None) -> Path:
    """Keep ``text_gpt_run`` results as the course's record, which lesson 13 reads (runs of the same seed and thread
    count already there are replaced; the others kept when recorded with the same settings, thresholds and torch
    version)."""
    path = RECORDED_TEXT_GPT if path is None else Path(path)
    settings = {"settings": RECORD_SETTINGS, "thresholds": RECORD_THRESHOLDS}
    return write_record(path, settings, "python -m course_lib record text-gpt", merged_runs(path, settings, runs))


def record_text_heads(runs: Sequence[Mapping], path: Path | None = None) -> Path:
    """Keep ``heads_run`` results as the course's record, which lesson 14 reads (runs of the same seed and thread
    count already there are replaced; the others kept when recorded with the same settings, thresholds and torch
    version)."""
    path = text_heads.RECORDED_HEADS if path is None else Path(path)
    settings = {"settings": text_heads.RECORD_SETTINGS, "thresholds": text_heads.RECORD_THRESHOLDS}
    return write_record(path, settings, "python -m course_lib record text-heads", merged_runs(path, settings, runs))


def run(args) -> int:
    """Run ``record`` as parsed by ``python -m course_lib``: 0 when every run met its targets, 1 otherwise."""
    seeds = range(args.seeds)
    if args.what == "reference-seeds":
        results = {"seed_matrix": run_seed_matrix(seeds, args.thread_counts)}
        targets, table = SEED_TARGETS, format_seed_matrix(results["seed_matrix"])
        if not args.dry_run:
            results["recorded_to"] = str(record_seed_matrix(results["seed_matrix"]))
    elif args.what == "recall-race":
        results = {"recall_race": run_recall_race(seeds, args.thread_counts)}
        targets, table = RECALL_RACE_TARGETS, format_recall_race(results["recall_race"])
        if not args.dry_run:
            results["recorded_to"] = str(record_recall_race(results["recall_race"]["runs"]))
    elif args.what == "exercise-runs":
        results = {"exercise_runs": run_exercise_runs(seeds, args.thread_counts)}
        targets, table = EXERCISE_RUNS_TARGETS, format_exercise_runs(results["exercise_runs"])
        if not args.dry_run:
            results["recorded_to"] = str(record_exercise_runs(results["exercise_runs"]["runs"]))
    elif args.what == "text-heads":
        results = {"text_heads": run_text_heads(seeds, args.thread_counts)}
        targets, table = TEXT_HEADS_TARGETS, format_text_heads(results["text_heads"])
        if not args.dry_run:
            results["recorded_to"] = str(record_text_heads(results["text_heads"]["runs"]))
    elif args.what == "text-gpt":
        results = {"text_gpt": run_text_gpt(seeds, args.thread_counts)}
        targets, table = TEXT_GPT_TARGETS, format_text_gpt(results["text_gpt"])
        if not args.dry_run:
            results["recorded_to"] = str(record_text_gpt(results["text_gpt"]["runs"]))
    elif args.what == "probes":
        results = {"probes": run_probes(seeds, args.thread_counts)}
        targets, table = PROBES_TARGETS, format_probes(results["probes"])
        if not args.dry_run:
            results["recorded_to"] = str(record_probes(results["probes"]["runs"]))
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

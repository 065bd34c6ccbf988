"""``python -m course_lib {doctor,bench,record,exercises,nbgrader,links,times}``: one command line, one argparse parser.

Every subcommand answers ``--help``; an unknown option or a malformed value is an error (exit 2, with
usage). ``doctor``, ``bench`` and ``record`` exit 1 when a check fails or a target is missed; ``exercises
build`` exits 1 when a notebook cannot be built (or, with ``--check``, differs from what build would write).
``nbgrader source`` and ``links`` are for instructors (docs/instructor-guide.md); ``times`` estimates lesson and
exercise minutes by the guide's stated method (``--check`` exits 1 where a header or the README differs).

This module imports only the standard library: each command's module (``course_lib.tools.<name>``) is
imported when that command runs, so ``--help`` and ``doctor`` work where PyTorch is missing. No command
module imports this one.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (``--threads 0`` is an error with usage, not a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def thread_counts(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated positive integers, e.g. ``1,2,4``."""
    return tuple(positive_int(part.strip()) for part in text.split(","))


def build_parser() -> argparse.ArgumentParser:
    """The whole command line. Each command's module is imported only when that command runs, so a
    problem in one (say, bench's imports) never stops the others, nor ``--help``."""
    parser = argparse.ArgumentParser(prog="python -m course_lib",
                                     description="The course's commands: check this machine, time the "
                                                 "library, build the exercises; for instructors, an nbgrader "
                                                 "course and nbgitpuller links.")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{doctor,bench,record,exercises,nbgrader,links,times}")

    summary = ("check this machine for the course: Python, packages, widgets, threads, speed, and that the "
               "reference result holds here")
    doctor = commands.add_parser("doctor", help=summary, description=summary,
                                 epilog="Exits 1 when a check fails, 0 when all pass.")
    doctor.add_argument("--quick", action="store_true",
                        help="skip training the course's reference model (about 20 s) to see that its result holds here")
    doctor.set_defaults(module="doctor", parser=doctor)

    summary = "time course_lib against PyTorch's own modules; train the reference model"
    bench = commands.add_parser("bench", help=summary, description=summary,
                                epilog="Exits 1 when a target is missed (table and JSON alike), 0 when all are met.")
    bench.add_argument("--json", action="store_true",
                       help='print one JSON object instead of a table, with "passed" (true/false) and '
                            '"failed" (the names of the missed targets)')
    bench.add_argument("--threads", type=positive_int, default=None,
                       help="PyTorch threads, a positive integer (default: the course's, 1 unless COURSE_LIB_THREADS "
                            "or OMP_NUM_THREADS says otherwise)")
    bench.add_argument("--no-reference", action="store_true", help="skip training the reference model")
    bench.add_argument("--speed", action="store_true",
                       help="also run lesson 10's longer runs: a GRU and a transformer of matched size at 8 to 1,024 "
                            "tokens on the CPU (and CUDA if present), agreement after 1,000 steps and after 30 s of "
                            "training per seed (minutes)")
    bench.add_argument("--speed-seeds", type=positive_int, default=1, metavar="N",
                       help="with --speed: the races for seeds 0..N-1 (default 1)")
    bench.set_defaults(module="bench", parser=bench)

    summary = ("measure many seeds at several thread counts and keep the result as the record a lesson reads "
               "(record reference-seeds | same-steps | recall-race | probes | exercise-runs | text-gpt | text-heads)")
    record = commands.add_parser("record", help=summary, description=summary,
                                 epilog="Writes course_lib/data/<record>.json unless --dry-run. Exits 1 when a run "
                                        "misses its targets (the record is kept all the same: it says what happened).")
    record.add_argument("what", choices=("reference-seeds", "same-steps", "recall-race", "probes", "exercise-runs", "text-gpt",
                                         "text-heads"),
                        help="reference-seeds: the reference model, which lesson 09 reads (about 25 minutes); "
                             "same-steps: lesson 10's 300-step GRU-against-transformer comparison (about 30 s a run); "
                             "recall-race: lesson 10's race to recall a far-back token at equal cost, 16 and 64 tokens "
                             "(about 40 s a run on a busy 2-core machine); "
                             "probes: lesson 12's probes on the reference model and the digit ViT (about 20 s a run "
                             "once the models are in the cache); "
                             "exercise-runs: the experiments of exercises 07-2, 10-2, 11-1 and 12-1 with their right "
                             "answers (about 30 s a run); "
                             "text-gpt: lesson 13's GPT on real text, characters and byte pairs as tokens (about 35 s a "
                             "run at 1 thread); "
                             "text-heads: lesson 14's two models on real text and every head's scores (about 50 s a "
                             "run at 1 thread)")
    record.add_argument("--seeds", type=positive_int, default=10, metavar="N", help="seeds 0..N-1 (default 10)")
    record.add_argument("--thread-counts", type=thread_counts, default=(1, 2, 4), metavar="1,2,4",
                        help="PyTorch thread counts, comma-separated (default 1,2,4)")
    record.add_argument("--dry-run", action="store_true", help="measure and print; write nothing")
    record.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    record.set_defaults(module="record", parser=record)

    summary = "build exercises/ from solutions/ (exercises build [--check])"
    exercises = commands.add_parser("exercises", help=summary, description=summary)
    exercises.set_defaults(module="exercise_builder")
    actions = exercises.add_subparsers(dest="action", required=True, metavar="{build}")
    build = actions.add_parser("build", help="write exercises/NN_<topic>.ipynb from solutions/NN_<topic>.ipynb",
                               description="Write exercises/NN_<topic>.ipynb from solutions/NN_<topic>.ipynb. "
                                           "Only what changed is rebuilt; a learner's edited exercise is kept "
                                           "while its solution is unchanged, and backed up to exercises/backups/ "
                                           "before it is replaced.")
    build.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 naming each notebook and cell that build would change")
    build.add_argument("--sources-only", action="store_true",
                       help="with --check: compare the cells' sources only, without executing (fast)")
    build.add_argument("--root", type=Path, default=None, help="the repository (default: the course's)")
    build.add_argument("names", nargs="*", help="lessons to build, e.g. 04 or 04_self_attention (default: all)")
    build.set_defaults(parser=build)

    summary = "for instructors: the course as an nbgrader course (nbgrader source DIR)"
    grading = commands.add_parser("nbgrader", help=summary, description=summary)
    grading.set_defaults(module="nbgrader_course")
    actions = grading.add_subparsers(dest="action", required=True, metavar="{source}")
    source = actions.add_parser("source", help="write DIR/nbgrader_config.py and DIR/source/<lesson>/<lesson>.ipynb",
                                description="Write an nbgrader course into DIR: nbgrader_config.py (course id, "
                                            "exchange inside DIR, per-cell timeout, the grader's own copy of the "
                                            "checks) and one assignment per lesson, from solutions/ and the "
                                            "checks' registry. Then run nbgrader in DIR.",
                                epilog="Exits 1 when a solution notebook cannot become an assignment.")
    source.add_argument("directory", type=Path, metavar="DIR", help="the nbgrader course folder (created)")
    source.add_argument("--lessons", nargs="+", default=None, metavar="NN",
                        help="lessons to write, e.g. 03 04 (default: every lesson with exercises)")
    source.add_argument("--course-id", default="transformers-hands-on", help="nbgrader's course id")
    source.add_argument("--timeout", type=positive_int, default=60,
                        help="seconds each cell may run when grading before it is interrupted (default 60)")
    source.set_defaults(parser=source)

    summary = "for instructors: print an nbgitpuller link per lesson for a JupyterHub"
    links = commands.add_parser("links", help=summary, description=summary,
                                epilog="Each line: the lesson, a tab, its link. Exits 1 without a repository.")
    links.add_argument("--hub", required=True, metavar="URL", help="the hub's address, e.g. https://hub.example.org")
    links.add_argument("--repo", default=None, metavar="URL",
                       help="the repository students clone (default: this clone's 'origin' remote)")
    links.add_argument("--branch", default="main", help="the branch to pull (default: main)")
    links.set_defaults(module="links", parser=links)

    summary = ("how long each lesson and its exercises take, by one stated method (docs/instructor-guide.md, "
               "'How the times are estimated')")
    times = commands.add_parser("times", help=summary, description=summary,
                                epilog="Prints a table: each lesson's words, code cells, compute and minutes, and "
                                       "its exercises' minutes, beside what the notebooks state now. With --check, "
                                       "exits 1 when a lesson header, the README or the guide differs from the "
                                       "method.")
    action = times.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true",
                        help="write the lesson minutes into each lesson's header, the README's course map and the "
                             "instructor guide's table (no notebook is executed); with --exercises also each "
                             "exercise header of solutions/ (then run exercises build)")
    action.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming each lesson header, README or guide time that differs")
    times.add_argument("--exercises", action="store_true",
                       help="with --check: also fail when an exercise header differs from the method; with "
                            "--write: also write the exercise headers of solutions/")
    times.add_argument("--root", type=Path, default=None, help="the repository (default: the course's)")
    times.set_defaults(module="times", parser=times)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # reported by the subcommand's own parser, so the usage shown is that command's
            args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exit_:  # --help (0) or a usage error (2): argparse has printed what to say
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    try:  # a command imports some packages only when it needs them: a missing one can show up while it runs
        return importlib.import_module(f"course_lib.tools.{args.module}").run(args)
    except ModuleNotFoundError as error:  # a pinned package is missing: say so, and how to fix it, not a traceback
        if (error.name or "course_lib").startswith("course_lib"):
            raise
        print(f"error: `{args.command}` needs {error.name}, which is not installed here ({error}).\n"
              f"fix: {sys.executable} -m pip install -r requirements.txt (from the course's folder); "
              f"`python -m course_lib doctor` checks every package", file=sys.stderr)
        return 1

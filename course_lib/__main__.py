"""``python -m course_lib <command>``: bench, doctor, exercises."""

from __future__ import annotations

import sys

USAGE = """usage: python -m course_lib <command> [options]

commands:
  doctor      check this machine for the course: Python, packages, widgets, threads, speed
  bench       time course_lib against PyTorch's own modules; train the reference model
  exercises   build exercises/ from solutions/ (exercises build [--check])
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "doctor":
        from .doctor import main as run
    elif command == "bench":
        from .bench import main as run
    elif command == "exercises":
        from .exercise_builder import main as run
    else:
        print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())

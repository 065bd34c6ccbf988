"""The course's tools, apart from the library a learner reads: the command line (``cli``) and what its
commands run: ``doctor`` (is this machine ready?), ``bench`` (timings and targets), ``record`` (the
many-seed records lessons 09 and 10 read), ``exercise_builder`` (exercises/ from solutions/),
``nbgrader_course`` and ``autograde`` (grading a class), ``links`` (nbgitpuller links), ``times`` (lesson and
exercise minutes by one stated method).

Nothing in models, experiments, widgets, plots or checks imports this package. ``cli`` imports each
command's module only when that command runs, so ``--help`` and ``doctor`` work where PyTorch is missing.
"""

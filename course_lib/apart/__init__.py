"""Running a learner's answer apart from the check that judges it.

A check runs in one process; the answer runs in another (a forked copy of the notebook's kernel in
self-study, a process that ran the submission's cells when grading). The two talk over a socket:

- ``wire``: how messages travel. The check sends inputs (pickled: it trusts its own objects); the answer's side
  sends back only plain data (numbers, strings, tensors and arrays as raw bytes, lists, tuples, dicts), never
  a pickle, so nothing that comes back can run code or lie to a comparison.
- ``session`` (the check's side): ``Session``, ``Remote`` (an object that lives in the answer's process),
  ``fork_session`` (self-study), and the helpers a check uses on a remote object (``is_instance``, ``type_name``).
- ``serve`` (the answer's side): the loop that runs each requested call and reports what it did.
- ``answering``: what runs around one call of the answer in either process: the world it is given, the
  built-ins it used (``Delegation``), and the sentence for whatever it raised.
- ``stand_ins``: the small models and optimizers the checks hand to answers, importable where the checks are not.
- ``notebook``: ``python -m course_lib.apart.notebook``, the process that runs a graded submission's cells.

Nothing here imports ``course_lib.checks``: the answer's process never holds the checks' reference solutions.
"""

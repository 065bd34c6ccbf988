"""Everything a check is written with, in one import (see README.md in this folder)::

    from .kit import Fail, Inputs, call, check, compare, summary

Declaring and running (running.py)
    ``check``: the decorator that declares and registers a check; ``call``: run the learner's code safely.
Fresh inputs (inputs.py)
    ``Inputs``: random values and sizes from the running check's seed; ``non_contiguous``: a strided view;
    ``seeded_module``: a module built from the seed; ``lazy``: a mistake's value, computed only when needed.
Comparing and naming the mistake (compare.py)
    ``compare``: the answer against the reference, naming a known mistake; ``check_tensor``: a tensor no
    comparison can read; ``close``, ``same``: tensors equal within tolerance or exactly; ``fmt_number``,
    ``fmt_values``: numbers as a message shows them; ``mistake_values``, ``name_by_value_and_gradient``,
    ``unpack_pair``: helpers for mistakes, losses and ``(output, weights)`` pairs; ``shape_error_named``: a raw
    shape error turned into the mistake behind it (a sum without keepdim=True), tested on inputs where it does
    not raise; ``softmaxes_without_keepdim``: what such a softmax returns on a square input.
What a check says (result.py)
    ``Fail``: stop with a diagnosis; ``summary``: the success line; ``describe_type``, ``describe_exception``:
    what the learner's code returned or raised, in words; ``CheckResult``: what a check returns;
    ``shape_str``: a shape as ``(2, 3)``.
"""

from course_lib.validation import shape_str
from .compare import (Mistakes, check_tensor, close, compare, fmt_number, fmt_values, mistake_values,
                      name_by_value_and_gradient, same, shape_error_named, softmaxes_without_keepdim,
                      unpack_pair)
from .inputs import Inputs, lazy, non_contiguous, seeded_module
from .result import CheckResult, Fail, describe_exception, describe_type, summary
from .running import call, check

__all__ = ["CheckResult", "Fail", "Inputs", "Mistakes", "call", "check", "check_tensor", "close", "compare",
           "describe_exception", "describe_type", "fmt_number", "fmt_values", "lazy", "mistake_values",
           "name_by_value_and_gradient", "non_contiguous", "same", "seeded_module", "shape_error_named", "shape_str",
           "softmaxes_without_keepdim", "summary", "unpack_pair"]

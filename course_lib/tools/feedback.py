"""What students read back: nbgrader's feedback, with the grader's name taken out.

The hidden line of each test cell names the object the grading kernel keeps its real checks under
(``course_lib.tools.nbgrader_course`` writes it into ``nbgrader_config.py``). The feedback shows test cells
and tracebacks, so without this every student would read that name. ``HideGrader`` replaces it, in every cell's
source and output, by ``<grader>``; ``nbgrader_config.py`` adds it to ``GenerateFeedback.preprocessors``.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Unicode

SHOWN_INSTEAD = "<grader>"


class HideGrader(Preprocessor):
    """Replace ``name`` (the grader's) by ``<grader>`` in a notebook's sources and outputs."""

    name = Unicode("", help="the grader's name, as nbgrader_config.py's GRADER").tag(config=True)
    enabled = Bool(True, help="nbconvert runs a preprocessor only when enabled; this one always").tag(config=True)

    def _scrub(self, value):
        if isinstance(value, str):
            return value.replace(self.name, SHOWN_INSTEAD)
        if isinstance(value, list):
            return [self._scrub(item) for item in value]
        if isinstance(value, dict):
            return type(value)((key, self._scrub(item)) for key, item in value.items())
        return value

    def preprocess_cell(self, cell, resources, index):
        if self.name:
            cell.source = self._scrub(cell.source)
            for output in cell.get("outputs", []):
                for key in ("text", "traceback", "evalue", "data"):
                    if key in output:
                        output[key] = self._scrub(output[key])
        return cell, resources

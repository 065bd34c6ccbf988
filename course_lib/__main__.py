"""``python -m course_lib ...``: the course's command line, defined in ``course_lib.tools.cli``."""

import sys

from course_lib.tools.cli import main

sys.exit(main())

"""Widgets to look inside attention: explore every head, play with one softmax.

Lessons 03 and 09. Built from core ipywidgets and matplotlib only: no extension, no CDN, so they work
offline in JupyterLab 4, Notebook 7 and VS Code. Python draws each view and sends only that picture to
the browser; the state lives in Python, where you can read, set and observe it. One small fixed script,
carried by a hidden HTML widget, keeps arrow keys on the focused control (away from JupyterLab's
notebook shortcuts) and names the sliders for screen readers (``keyboard.py``); without it the widgets
still work by mouse, Tab, Enter and Space.

    AttentionExplorer(attention, tokens)       attention (layers, heads, query, key) of one sentence   (explorer.py)
    AttentionExplorer.from_model(model, ids, tokens)
    AttentionPlayground(words, keys, values, queries)   one query, one softmax, live (lesson 03)   (playground.py)

Both draw with ``render.py``. Every head scored against the grammar and silenced in turn is
``course_lib.experiments.head_report`` (analysis, not a widget).
"""

from course_lib.threads import apply_thread_policy

apply_thread_policy()  # the course's thread count, once (see course_lib.threads)

from course_lib.widgets.explorer import AVERAGE, AttentionExplorer, StateError  # noqa: E402
from course_lib.widgets.playground import AttentionPlayground  # noqa: E402

__all__ = ["AVERAGE", "AttentionExplorer", "AttentionPlayground", "StateError"]

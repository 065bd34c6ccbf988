"""Keyboard and screen-reader support for the course widgets, without a JupyterLab extension.

JupyterLab's command-mode shortcuts listen for keydown on the whole page: an arrow key pressed on a
focused dropdown or button moved the notebook's active cell instead of the choice. Core ipywidgets
offer no hook for that, and a labextension (or anywidget) is more than a laptop course should install.
What core ipywidgets do offer: an ``HTML`` widget sets its value as ``innerHTML``, so a ``<style>`` in it
applies, and an image that fails to load runs its ``onerror`` attribute. ``support_widget()`` is such an
HTML widget (hidden); its fixed text, written here and never built from user data, installs once per page:

- a keydown listener (capture phase, on ``document``) that, for arrow, Home/End and PageUp/PageDown keys
  on a control inside a ``.course-widget``, moves the selection of a toggle-button group (as in a radio
  group) and adds to that widget's root a listener that stops those keys' propagation: the focused
  control acts on them (a dropdown changes its choice, a slider moves) and the notebook never sees them;
- names for what ipywidgets leaves unnamed: a slider's handle gets its description as ``aria-label``, a
  toggle-button group becomes a named ``role="group"`` and every toggle button says ``aria-pressed``;
- a focus ring on every control (3 px, dark blue #0b57d0 with a white gap: at least 3:1 against light and
  dark backgrounds), and a check mark before the selected toggle button's label (beyond colour).

Where the script cannot run (VS Code, nbviewer, a sanitizing front end), the widgets still work by mouse,
Tab, Enter and Space; only the arrow keys fall back to the front end's own behaviour.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

ROOT_CLASS = "course-widget"
FOCUS_COLOUR = "#0b57d0"  # 6.4:1 against white; the white gap around it gives 3:1 or more on dark themes
FOCUS_WIDTH_PX = 3
CHECK = "✓"

CSS = f"""
.{ROOT_CLASS} :focus-visible,
.{ROOT_CLASS} .noUi-handle:focus {{
  outline: {FOCUS_WIDTH_PX}px solid {FOCUS_COLOUR} !important;
  outline-offset: 2px !important;
  box-shadow: 0 0 0 2px #fff !important;
}}
.{ROOT_CLASS} .widget-toggle-button.mod-active::before {{ content: "{CHECK} "; }}
.{ROOT_CLASS} .widget-toggle-button.mod-active {{ font-weight: bold; }}
"""

# Plain ES5, no double quotes (it goes into an HTML attribute), idempotent: every render re-runs it, the
# listeners are installed once per page and always call the newest functions.
SCRIPT = """
(function () {
  var K = window.courseWidgets = window.courseWidgets || {};
  var ROOT = '.%(root)s';
  var KEYS = ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End', 'PageUp', 'PageDown'];
  K.isMoveKey = function (e) {
    return KEYS.indexOf(e.key) >= 0 && !e.altKey && !e.ctrlKey && !e.metaKey;
  };
  K.labelText = function (el) {
    var label = el && el.querySelector(':scope > .widget-label');
    return label ? label.textContent.trim() : '';
  };
  K.label = function (root) {
    root.querySelectorAll('.widget-toggle-buttons').forEach(function (widget) {
      var buttons = widget.querySelectorAll('button.widget-toggle-button');
      var group = buttons.length ? buttons[0].parentNode : null;
      var name = K.labelText(widget);
      if (group && group.getAttribute('role') !== 'group') { group.setAttribute('role', 'group'); }
      if (group && name && group.getAttribute('aria-label') !== name) { group.setAttribute('aria-label', name); }
      buttons.forEach(function (b) {
        var pressed = b.classList.contains('mod-active') ? 'true' : 'false';
        if (b.getAttribute('aria-pressed') !== pressed) { b.setAttribute('aria-pressed', pressed); }
      });
    });
    root.querySelectorAll('.widget-slider').forEach(function (widget) {
      var name = K.labelText(widget);
      if (!name) { return; }
      widget.querySelectorAll('.noUi-handle').forEach(function (h) {
        if (h.getAttribute('aria-label') !== name) { h.setAttribute('aria-label', name); }
      });
      widget.querySelectorAll('.widget-readout').forEach(function (r) {
        if (r.getAttribute('aria-label') !== name + ' value') { r.setAttribute('aria-label', name + ' value'); }
      });
    });
  };
  K.keydown = function (e) {
    var target = e.target;
    var root = K.isMoveKey(e) && target.closest ? target.closest(ROOT) : null;
    if (!root) { return; }
    if (!root.courseKeys) {  /* runs in this same event's bubbling phase, after the focused control */
      root.courseKeys = true;
      root.addEventListener('keydown', function (ev) { if (K.isMoveKey(ev)) { ev.stopPropagation(); } });
    }
    if (target.classList.contains('widget-toggle-button')) {
      var buttons = Array.prototype.slice.call(target.parentNode.querySelectorAll('button.widget-toggle-button'));
      var i = buttons.indexOf(target), n = buttons.length;
      var j = {ArrowLeft: i - 1, ArrowUp: i - 1, ArrowRight: i + 1, ArrowDown: i + 1,
               Home: 0, PageUp: 0, End: n - 1, PageDown: n - 1}[e.key];
      e.preventDefault();
      var next = buttons[(j + n) %% n];
      if (next && !next.disabled) { next.focus(); next.click(); }
    }
  };
  K.scan = function () {
    document.querySelectorAll(ROOT).forEach(function (root) {
      K.label(root);
      if (!root.courseObserved) {
        root.courseObserved = true;
        new MutationObserver(function () { K.label(root); }).observe(
          root, {subtree: true, childList: true, attributes: true, attributeFilter: ['class']});
      }
    });
  };
  if (!K.installed) {
    K.installed = true;
    document.addEventListener('keydown', function (e) { K.keydown(e); }, true);
    document.addEventListener('focusin', function (e) {
      var root = e.target.closest ? e.target.closest(ROOT) : null;
      if (root) { K.label(root); }
    }, true);
  }
  K.scan();
  setTimeout(K.scan, 200);
  setTimeout(K.scan, 1500);
})();
""" % {"root": ROOT_CLASS}

SUPPORT_HTML = (f"<style>{CSS}</style>"
                f'<img src="data:," alt="" width="0" height="0" onerror="{html.escape(SCRIPT, quote=True)}">')


def support_widget() -> widgets.HTML:
    """The hidden HTML widget that carries the style and the script (put it among a widget's children)."""
    return widgets.HTML(SUPPORT_HTML, layout={"display": "none"})

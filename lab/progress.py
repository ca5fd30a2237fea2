"""The one progress reporter of every training loop in the package.

A loop wraps its iterations in :func:`progress` and shows its running numbers
with :meth:`Progress.update`::

    bar = progress(total=num_iters, desc="adam", enabled=verbose)
    for i in range(num_iters):
        ...
        bar.update(loss=J)
    bar.close()

Whether a bar is shown
----------------------
``enabled=True`` or ``False`` decides.  ``enabled=None`` (the default) reads
the environment variable ``LAB_PROGRESS`` (``1``/``0``) and otherwise shows a
bar only when standard error is a terminal: a command-line run gets bars, a
notebook that is stored executed or compared by nbval gets none, so its
outputs stay the same from run to run.  In Jupyter, pass ``enabled=True`` (or
``verbose=True`` to a trainer) for a notebook progress bar (ipywidgets).

A disabled bar costs nothing: it prints nothing and keeps no state beyond
its counter, so loops call it unconditionally.
"""
from __future__ import annotations

import os
import sys

__all__ = ["progress", "Progress", "progress_enabled"]


def progress_enabled(enabled=None) -> bool:
    """Resolve ``enabled``: True/False as given; None from ``$LAB_PROGRESS``,
    else whether standard error is a terminal."""
    if enabled is not None:
        if not isinstance(enabled, (bool, int)) or enabled not in (0, 1):
            raise TypeError(f"enabled must be True, False or None, got {enabled!r}")
        return bool(enabled)
    env = os.environ.get("LAB_PROGRESS", "").strip().lower()
    if env in ("1", "true", "yes", "on"):
        return True
    if env in ("0", "false", "no", "off"):
        return False
    if env:
        raise ValueError(f"LAB_PROGRESS must be 1 or 0, got {os.environ['LAB_PROGRESS']!r}")
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class Progress:
    """A tqdm bar (``tqdm.auto``: a widget in Jupyter, text in a terminal)
    that is created only when enabled.

    Attributes
    ----------
    n : int
        Steps counted so far (also when disabled).
    enabled : bool
    """

    def __init__(self, total=None, desc=None, unit="it", enabled=None, leave=True):
        self.enabled = progress_enabled(enabled)
        self.n = 0
        self._bar = None
        if self.enabled:
            import warnings

            with warnings.catch_warnings():
                # a Jupyter without ipywidgets: tqdm falls back to text and says so
                warnings.filterwarnings("ignore", message="IProgress not found")
                from tqdm.auto import tqdm
            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=leave,
                             dynamic_ncols=True)

    def update(self, n: int = 1, **postfix):
        """Count ``n`` steps and show ``postfix`` (e.g. ``loss=0.53``) beside the bar."""
        self.n += n
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix({k: _fmt(v) for k, v in postfix.items()}, refresh=False)
            self._bar.update(n)

    def write(self, msg: str):
        """Print a line without breaking the bar (prints nothing when disabled)."""
        if self._bar is not None:
            self._bar.write(msg)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress(total=None, *, desc=None, unit="it", enabled=None, leave=True) -> Progress:
    """A :class:`Progress` bar over ``total`` steps; see the module docstring
    for when it is shown."""
    return Progress(total=total, desc=desc, unit=unit, enabled=enabled, leave=leave)

"""A tiny progress bar for long loops (feature extraction, sampling).

``for batch in progress(batches, total=n, desc="features"): ...`` prints
``features: 3/10 [00:01<00:02, 2.95it/s]`` to stderr, redrawn in place with ``\\r`` on a terminal.
When the stream is not a terminal (a log file, nohup, a batch scheduler) it writes one such line
every ``log_interval`` seconds (default 30, or ``$GUIDEKIT_PROGRESS_INTERVAL``), and a last line at
the end if it wrote any, so short loops stay quiet. ``disable=True`` (or ``GUIDEKIT_PROGRESS=0``)
silences it; ``force=True`` (or ``GUIDEKIT_PROGRESS=1``) redraws in place even off a terminal.
No dependency beyond the standard library.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import Generic, TextIO, TypeVar

T = TypeVar("T")


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress(Generic[T]):
    """Iterator wrapper that reports ``n/total``, elapsed time, ETA and rate.

    Use it as an iterator, or call :meth:`update` by hand (``iterable=None``) and :meth:`close` at the end.
    """

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        total: int | None = None,
        desc: str = "",
        disable: bool = False,
        *,
        force: bool = False,
        file: TextIO | None = None,
        unit: str = "it",
        min_interval: float = 0.1,
        log_interval: float | None = None,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.total = total
        self.desc = desc
        self.unit = unit
        self.file = file if file is not None else sys.stderr
        self.min_interval = min_interval
        self.n = 0
        self.start = time.monotonic()
        self._last_draw = -float("inf")
        self._width = 0
        self._closed = False
        self.postfix = ""  # e.g. "loss 0.123", shown after the rate
        setting = os.environ.get("GUIDEKIT_PROGRESS", "").lower()
        if setting not in {"", "1", "true", "yes", "on", "0", "false", "no", "off"}:
            _warn_once(f"GUIDEKIT_PROGRESS={setting!r} is neither on (1, true, yes, on) nor off (0, false, no, off); "
                       "ignoring it")
        forced = force or setting in {"1", "true", "yes", "on"}
        isatty = getattr(self.file, "isatty", None)
        self.enabled = not disable and setting not in {"0", "false", "no", "off"}
        #: off a terminal: whole lines every log_interval seconds instead of redrawing in place
        self.log_lines = self.enabled and not forced and not bool(isatty and isatty())
        if self.log_lines:
            self.min_interval = log_interval if log_interval is not None else _log_interval()
        self._lines_written = 0  # 0: no line yet, else 1 + the count on the last line written

    def format(self) -> str:
        """The status line, e.g. ``desc: 3/10 [00:01<00:02, 2.95it/s]``."""
        elapsed = time.monotonic() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        if self.total is not None and rate > 0:
            eta = _clock((self.total - self.n) / rate)
        else:
            eta = "?"
        rate_text = f"{rate:.2f}{self.unit}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.2f}s/{self.unit}"
        prefix = f"{self.desc}: " if self.desc else ""
        postfix = f" {self.postfix}" if self.postfix else ""
        return f"{prefix}{count} [{_clock(elapsed)}<{eta}, {rate_text}]{postfix}"

    def _draw(self, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.log_lines:
            if self._last_draw == -float("inf"):
                self._last_draw = self.start
            if final and self._lines_written in (0, self.n + 1):  # nothing written yet, or this very line
                return
            if not final and now - self._last_draw < self.min_interval:
                return
            self._last_draw = now
            self._lines_written = self.n + 1  # 1 + the count on the last line written
            self.file.write(self.format() + "\n")
            self.file.flush()
            return
        if not final and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        line = self.format()
        pad = " " * max(self._width - len(line), 0)
        self._width = len(line)
        self.file.write("\r" + line + pad + ("\n" if final else ""))
        self.file.flush()

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` items and redraw (at most every ``min_interval`` seconds)."""
        self.n += n
        self._draw(final=False)

    def close(self) -> None:
        """Draw the final line and end it with a newline (once)."""
        if not self._closed:
            self._closed = True
            self._draw(final=True)

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("Progress(iterable=None) is not iterable; call update() instead")
        self._draw()
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Progress[T]:
        self._draw()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _log_interval() -> float:
    value = os.environ.get("GUIDEKIT_PROGRESS_INTERVAL", "30")
    try:
        return max(float(value), 0.0)
    except ValueError:
        _warn_once(f"GUIDEKIT_PROGRESS_INTERVAL={value!r} is not a number of seconds; using 30")
        return 30.0


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """One warning per distinct message and process (progress bars are made in loops)."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, stacklevel=3)


def progress(
    iterable: Iterable[T] | None = None,
    total: int | None = None,
    desc: str = "",
    disable: bool = False,
    **kwargs: object,
) -> Progress[T]:
    """Wrap ``iterable`` in a :class:`Progress` bar written to stderr (see the module docstring)."""
    return Progress(iterable, total=total, desc=desc, disable=disable, **kwargs)  # type: ignore[arg-type]

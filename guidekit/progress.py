"""A tiny progress bar for long loops (feature extraction, sampling).

``for batch in progress(batches, total=n, desc="features"): ...`` prints
``features: 3/10 [00:01<00:02, 2.95it/s]`` to stderr, redrawn in place with ``\\r``.
It is silent when ``disable=True`` or when the stream is not a terminal, unless ``force=True``
(or the environment variable ``GUIDEKIT_PROGRESS=1``). No dependency beyond the standard library.
"""

from __future__ import annotations

import os
import sys
import time
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
        forced = force or os.environ.get("GUIDEKIT_PROGRESS", "").lower() in {"1", "true", "yes", "on"}
        isatty = getattr(self.file, "isatty", None)
        self.enabled = not disable and (forced or bool(isatty and isatty()))

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


def progress(
    iterable: Iterable[T] | None = None,
    total: int | None = None,
    desc: str = "",
    disable: bool = False,
    **kwargs: object,
) -> Progress[T]:
    """Wrap ``iterable`` in a :class:`Progress` bar written to stderr (see the module docstring)."""
    return Progress(iterable, total=total, desc=desc, disable=disable, **kwargs)  # type: ignore[arg-type]

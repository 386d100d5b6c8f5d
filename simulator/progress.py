"""A progress bar on stderr for runs longer than a second (only when stderr is a terminal)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Call with (done, total); draws after `delay` seconds, at most 10 times a second."""

    def __init__(self, label: str, delay: float = 1.0, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.delay = delay
        self.last = 0.0
        self.drawn = False
        self.enabled = self.stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.start < self.delay or now - self.last < 0.1:
            return
        self.last = now
        frac = done / total if total else 1.0
        bar = "#" * int(30 * frac)
        self.stream.write(f"\r{self.label} [{bar:<30}] {100 * frac:5.1f}%  {now - self.start:.1f}s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()

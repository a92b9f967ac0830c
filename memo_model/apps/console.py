"""What the command line shows: the `memo:` voice, the progress bar, usage errors and exit codes."""
from __future__ import annotations

import logging
import sys
import time

EXIT_USAGE = 2        # bad options, missing files, unusable inputs
EXIT_FAILED = 1       # the render itself failed
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A problem with the command line or its inputs; the message says what to do."""


class TextProgress:
    """A one-line progress bar on stderr (a line per clip when stderr is not a terminal)."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self._base = None           # fraction already done when we started (resumed renders)
        self._last = None

    def __call__(self, p) -> None:
        where = (p.clip, getattr(p, "face", 0), p.step)
        if where == self._last:     # the render's interruption points repeat the latest progress
            return
        self._last = where
        frac = p.fraction
        if self._base is None:
            self._base = p.resumed_clips / max(1, p.num_clips)
        elapsed = time.monotonic() - self.start
        done = frac - self._base
        eta = elapsed / done * (1 - frac) if done > 0 else 0.0
        filled = int(round(frac * self.width))
        face = f"  face {p.face + 1}/{p.num_faces}" if getattr(p, "num_faces", 1) > 1 else ""
        line = (f"clip {p.clip + 1:>3}/{p.num_clips} [{'#' * filled}{'-' * (self.width - filled)}] "
                f"{frac * 100:5.1f}%{face}  step {p.step:>2}/{p.num_steps}  "
                f"elapsed {_hms(elapsed)}  left {_hms(eta)}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if frac >= 1 else ""))
        elif p.step == p.num_steps:
            self.stream.write(line + "\n")
        self.stream.flush()


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def say(message: str) -> None:
    print(f"memo: {message}", file=sys.stderr, flush=True)


class SayWarnings(logging.Handler):
    """Library warnings (damaged audio, resume notes) in the memo: voice, not as bare lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            say(f"warning: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a warning must never stop a render
            self.handleError(record)

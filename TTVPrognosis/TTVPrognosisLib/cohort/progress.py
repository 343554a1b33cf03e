"""Terminal progress: a one-line bar with an estimate of the time left, for ``ttvprognosis batch``.

It is its own module because the runner only calls a ``progress`` callback (Slicer passes its own dialog);
drawing in a terminal is the command line's concern.
"""

from __future__ import annotations

import time


class TerminalProgress:
    """A ``progress`` callback drawing a one-line bar with an estimate of the time left (for a terminal)."""

    def __init__(self, stream, redraw_seconds: float = 0.1):
        self.stream = stream
        self.redraw_seconds = redraw_seconds
        self.started: float | None = None
        self.done_at_start = 0
        self.last_draw = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int, patient_id: str | None) -> None:
        now = time.monotonic()
        if self.started is None:  # patients kept from an earlier run do not count for the rate
            self.started, self.done_at_start = now, done
        if done < total and now - self.last_draw < self.redraw_seconds:
            return
        self.last_draw = now
        computed, elapsed = done - self.done_at_start, now - self.started
        text = f"{done}/{total} patients"
        if computed and done < total:
            text += f", about {_duration(elapsed / computed * (total - done))} left"
        if patient_id:
            text += f" (last: {patient_id})"
        import shutil

        columns = shutil.get_terminal_size((80, 20)).columns
        width = max(10, min(40, columns - len(text) - 4))
        filled = width if not total else int(width * done / total)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {text}"[:max(columns - 1, 20)]
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class LogProgress:
    """A ``progress`` callback writing plain lines (no bar, no carriage returns) for logs that are not a
    terminal, e.g. a cluster job's stderr file: the first and last counts, and at most one line per
    ``every_seconds`` in between."""

    def __init__(self, stream, every_seconds: float = 30.0, clock=time.monotonic):
        self.stream = stream
        self.every_seconds = every_seconds
        self.clock = clock
        self.started: float | None = None
        self.done_at_start = 0
        self.last_line: float | None = None

    def __call__(self, done: int, total: int, patient_id: str | None) -> None:
        now = self.clock()
        if self.started is None:
            self.started, self.done_at_start = now, done
        due = self.last_line is None or now - self.last_line >= self.every_seconds
        if not (due or done >= total):
            return
        self.last_line = now
        computed, elapsed = done - self.done_at_start, now - self.started
        text = f"{time.strftime('%Y-%m-%d %H:%M:%S')} progress: {done}/{total} patients"
        if computed and done < total:
            text += f", about {_duration(elapsed / computed * (total - done))} left"
        if patient_id:
            text += f" (last: {patient_id})"
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Nothing to finish (lines are complete); here so both callbacks can be closed alike."""

"""Undoing a predictor's latest observations, so that a passing arriving late costs a replay of
what came after it rather than of the whole race.

While it observes a passing, every part of a :class:`~livetrack.domain.predict.Predictor` that
changes (the runner's track, today's segment offsets, the calibration, the checks waiting)
writes down how to put back what it changed: a call and its arguments, restoring the values it
had (never subtracting what was added, so that undoing leaves every float as it was).
:class:`Journal` keeps those records for the latest ``keep`` observations; undoing one applies
its records in reverse order. A predictor that observed passings ``1..n`` and undid ``k..n``
is then the predictor that observed ``1..k-1``, exactly: observing in race order again from
there gives what a predictor observing from the start would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Journal", "Key", "Undo"]

Undo = tuple[Callable[..., Any], tuple[Any, ...]]
"""A call that puts back what one change did, and its arguments."""
Key = tuple[float, str, int]
"""An observation: (elapsed seconds, runner, checkpoint index): race order."""


class Journal:
    """Undo records of the latest ``keep`` observations (none if ``keep`` is 0)."""

    __slots__ = ("_before", "_entries", "keep", "log")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        #: the records of the observation under way (None: nothing is written down)
        self.log: list[Undo] | None = None
        self._entries: deque[tuple[Key, list[Undo]]] = deque()
        self._before: Key | None = None  # the observation before the oldest kept, if any

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self, key: Key) -> list[Undo] | None:
        """Start writing down the observation ``key``; the oldest is forgotten beyond
        ``keep``. Returns the list its records go to (None when keeping none)."""
        if self.keep <= 0:
            self.log = None
            self._before = key
            return None
        log: list[Undo] = []
        self.log = log
        entries = self._entries
        entries.append((key, log))
        if len(entries) > self.keep:
            self._before = entries.popleft()[0]
        return log

    def end(self) -> None:
        """The observation is done: later changes (queries' caches) are not written down."""
        self.log = None

    def first(self) -> Key | None:
        """The oldest observation that can be undone (None: none can)."""
        return self._entries[0][0] if self._entries else None

    def undo(self) -> Key | None:
        """Undo the latest observation; returns the key of the one now latest (None if the
        predictor has observed nothing since). Raises ``IndexError`` with nothing to undo."""
        _, log = self._entries.pop()
        for fn, args in reversed(log):
            fn(*args)
        return self._entries[-1][0] if self._entries else self._before

    def forget(self, count: int) -> bool:
        """Forget the records of the oldest ``count`` observations (they can no longer be
        undone); returns whether any are left. A few at a time, a predictor let go of is not
        freed in one go."""
        entries = self._entries
        for _ in range(min(count, len(entries))):
            self._before = entries.popleft()[0]
        self.log = None
        return bool(entries)

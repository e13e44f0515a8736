"""The field predictor, fed from the fold: forecasts are a function of the log.

The fold tells :class:`Forecasts` each runner's current passings (elapsed seconds from the
runner's own start, per checkpoint after the start) whenever they change. A predictor per race
observes, in race order (by elapsed time, then bib, then course order), exactly the current
passings up to a *watermark* a minute of race time behind the latest passing known. Which
passings those are, and in which order, depends only on the fold's state, never on how the log
was folded (one record at a time, in pages, replayed, restored from a snapshot): so every
process gives the same estimates.

* A passing newer than the watermark is not observed yet; a runner with such passings is
  estimated from them as well (:meth:`~livetrack.domain.predict.Predictor.estimate_with`), so a
  runner's estimate moves the moment they pass, and never lags behind a passing they have.
* A passing that moves or vanishes after being observed (a later read, a correction, a gun
  or start moved), or one that arrives already behind what was observed (a marshal's sighting
  synced late), marks the race's predictor stale: before its next use it goes back to the
  latest copy of itself taken before that passing (one is kept every
  :data:`COPY_EVERY` passings observed, the last :data:`COPIES` of them; a long catch-up
  copies only near its end) and observes the passings from there on again, in race order;
  with no such copy, it starts afresh. The
  watermark's minute keeps the usual out-of-order arrival of reads from different mats off
  that path. (Going back gives what observing from the start would: the predictor's state is
  a function of the passings it has observed, in order.)

Observing is lazy: an estimate brings its race's predictor up to the watermark, and the
runtime's tick does so a bounded batch at a time, so ingest never waits for prediction work.
"""

from __future__ import annotations

import contextlib
import gc
import math
import pickle
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sortedcontainers import SortedList

from livetrack.domain.event import Event
from livetrack.domain.predict import Estimate, Predictor

#: Race time by which observing trails the latest passing known (seconds).
LAG_S = 60.0

#: A copy of the predictor is kept every this many passings observed ...
COPY_EVERY = 25_000
#: ... the latest this many of them (a marathon's field copies to about 60 MB).
COPIES = 2

_Key = tuple[float, str, int]
"""(elapsed seconds, bib, checkpoint index): race order."""
_AFTER = "\U0010ffff"
"""Sorts after every bib."""


@dataclass(frozen=True, slots=True)
class Accuracy:
    """How the finish estimates made at one checkpoint turned out, over finishers so far:
    ``n`` runners, mean absolute error in seconds, and how many finished inside the 80%
    range estimated there."""

    checkpoint: str
    n: int
    mae_s: float
    inside: int

    @property
    def coverage(self) -> float:
        return self.inside / self.n if self.n else 0.0


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Copying makes many objects and no cycles: the collector would rescan them often."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


class _RaceFeed:
    """One race's passings and the predictor that has observed the oldest of them."""

    __slots__ = (
        "changes",
        "checkpoints",
        "copies",
        "count",
        "finishers",
        "history",
        "index",
        "keys",
        "passings",
        "predictor",
        "seen",
        "stale",
    )

    def __init__(
        self, checkpoints: list[tuple[str, float]], history: list[Sequence[float | None]]
    ) -> None:
        self.checkpoints = checkpoints
        self.history = history
        self.index = {name: i for i, (name, _) in enumerate(checkpoints)}
        self.passings: dict[str, dict[str, float]] = {}
        self.keys: SortedList = SortedList()
        self.predictor: Predictor | None = None
        self.seen: _Key | None = None  # the last key observed, None before the first
        self.count = 0  # passings observed
        self.stale: _Key | None = None  # the first key observed that is no longer right
        self.copies: list[tuple[_Key, int, bytes]] = []  # (last key observed, count, copy)
        self.changes = 0  # puts that changed something
        self.finishers: set[str] = set()  # bibs with a finish passing

    def watermark(self) -> float:
        return float(self.keys[-1][0]) - LAG_S if self.keys else float("-inf")

    def put(self, bib: str, passings: Mapping[str, float]) -> None:
        old = self.passings.get(bib, {})
        if old == passings:
            return
        seen = self.seen
        index = self.index
        for cp, t in old.items():
            if passings.get(cp) != t:
                key = (t, bib, index[cp])
                self.keys.remove(key)
                if seen is not None and key <= seen:
                    self._wrong(key)
        for cp, t in passings.items():
            if old.get(cp) != t:
                key = (t, bib, index[cp])
                self.keys.add(key)
                if seen is not None and key <= seen:
                    self._wrong(key)
        if passings:
            self.passings[bib] = dict(passings)
        else:
            self.passings.pop(bib, None)
        self.changes += 1
        if self.checkpoints and self.checkpoints[-1][0] in passings:
            self.finishers.add(bib)
        else:
            self.finishers.discard(bib)
        if seen is not None and seen[0] > self.watermark():
            # observed beyond the watermark (the latest passing went away)
            self._wrong((self.watermark(), _AFTER, len(self.checkpoints)))

    def _wrong(self, key: _Key) -> None:
        if self.stale is None or key < self.stale:
            self.stale = key

    def _go_back(self) -> None:
        """Back to the latest copy observed entirely before the first wrong key (or to
        nothing observed): later copies are dropped."""
        stale = self.stale
        assert stale is not None
        self.stale = None
        while self.copies and not self.copies[-1][0] < stale:
            self.copies.pop()
        if self.copies:
            key, count, blob = self.copies[-1]
            with _no_gc():
                self.predictor = pickle.loads(blob)
            self.seen, self.count = key, count
        else:
            self.predictor, self.seen, self.count = None, None, 0

    def sync(self, limit: int | None = None) -> tuple[int, int]:
        """Observe up to ``limit`` passings (all if None) up to the watermark, rebuilding the
        predictor first if it is stale; returns how many were observed and how many are left
        to observe."""
        if self.stale is not None:
            self._go_back()
        predictor = self.predictor
        if predictor is None:
            predictor = self.predictor = Predictor(self.checkpoints, self.history or None)
            self.seen, self.count = None, 0
        keys = self.keys
        start = 0 if self.seen is None else keys.bisect_right(self.seen)
        end = keys.bisect_right((self.watermark(), _AFTER, len(self.checkpoints)))
        stop = end if limit is None else min(end, start + max(0, limit))
        names = self.checkpoints
        count = self.count
        # copies are taken only where they may be kept (the last COPIES before `end`)
        first_copy = count + (end - start) - COPIES * COPY_EVERY
        for key in keys.islice(start, stop):
            predictor.observe(key[1], names[key[2]][0], key[0])
            count += 1
            if count % COPY_EVERY == 0 and count > first_copy:
                with _no_gc():
                    blob = pickle.dumps(predictor, pickle.HIGHEST_PROTOCOL)
                self.copies.append((key, count, blob))
                del self.copies[:-COPIES]
        if stop > start:
            self.seen = keys[stop - 1]
        self.count = count
        return stop - start, end - stop

    def unseen(self, bib: str) -> list[tuple[str, float]]:
        """The runner's passings not observed yet, in race order."""
        seen = self.seen
        mine = self.passings.get(bib, {})
        index = self.index
        return sorted(
            ((cp, t) for cp, t in mine.items() if seen is None or (t, bib, index[cp]) > seen),
            key=lambda item: (item[1], index[item[0]]),
        )


class Forecasts:
    """One :class:`Predictor` per race (over its checkpoints after the start), fed the fold's
    current passings (see the module's docstring)."""

    def __init__(
        self, event: Event, history: dict[str, Iterable[Sequence[float | None]]] | None = None
    ) -> None:
        self._races: dict[str, _RaceFeed] = {}
        for race in event.races.values():
            cps = [(cp.id, cp.distance_m) for cp in race.course.checkpoints[1:]]
            past = list((history or {}).get(race.id) or ())
            self._races[race.id] = _RaceFeed(cps, past)
        self._accuracy: dict[str, tuple[tuple[int, int, int], list[Accuracy]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        """A snapshot keeps the passings, not the predictors: a restored process rebuilds
        them from the passings, as any other process does."""
        races = {}
        for race_id, feed in self._races.items():
            races[race_id] = (feed.checkpoints, feed.history, feed.passings)
        return {"races": races}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._races = {}
        self._accuracy = {}
        for race_id, (checkpoints, history, passings) in state["races"].items():
            feed = self._races[race_id] = _RaceFeed(checkpoints, history)
            for bib, mine in passings.items():
                feed.put(bib, mine)

    def put(self, race_id: str, bib: str, passings: Mapping[str, float]) -> None:
        """The runner's passings now: checkpoint -> elapsed seconds since their start
        (checkpoints after the start only, positive times); empty when none."""
        self._races[race_id].put(bib, passings)

    def remove(self, race_id: str, bib: str) -> None:
        """The runner is no longer in ``race_id`` (entered in another race)."""
        feed = self._races.get(race_id)
        if feed is not None:
            feed.put(bib, {})

    def drain(self, limit: int) -> int:
        """Observe up to ``limit`` passings in all; returns how many are left to observe."""
        left = 0
        for feed in self._races.values():
            done, more = feed.sync(limit)
            limit -= done
            left += more
        return left

    def pending(self) -> int:
        """Passings up to the watermarks not observed yet."""
        return sum(feed.sync(0)[1] for feed in self._races.values())

    def estimate(self, race_id: str, bib: str, checkpoint: str) -> Estimate | None:
        """Predicted elapsed seconds (since the runner's start) at ``checkpoint``."""
        feed = self._races[race_id]
        feed.sync()
        predictor = feed.predictor
        assert predictor is not None
        try:
            unseen = feed.unseen(bib)
            if unseen:
                return predictor.estimate_with(bib, unseen, checkpoint)
            return predictor.estimate(bib, checkpoint)
        except KeyError:
            return None

    def accuracy(self, race_id: str) -> list[Accuracy]:
        """Per checkpoint before the finish, in course order: how the finish estimate made the
        moment each finisher so far passed it turned out."""
        feed = self._races[race_id]
        feed.sync()
        predictor = feed.predictor
        assert predictor is not None
        key = (feed.changes, feed.count, id(predictor))
        cached = self._accuracy.get(race_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        names = [name for name, _ in feed.checkpoints]
        finish = names[-1] if names else ""
        errors: list[list[float]] = [[] for _ in names[:-1]]
        inside = [0] * (len(names) - 1)
        for bib in feed.finishers:
            truth = feed.passings[bib][finish]
            for c, est in enumerate(predictor.made(bib)[:-1]):
                if est is not None:
                    errors[c].append(abs(est.seconds - truth))
                    inside[c] += est.low <= truth <= est.high
        # an exact sum: the same in any order, so in any process
        out = [
            Accuracy(names[c], len(e), math.fsum(e) / len(e) if e else 0.0, inside[c])
            for c, e in enumerate(errors)
        ]
        self._accuracy[race_id] = (key, out)
        return out

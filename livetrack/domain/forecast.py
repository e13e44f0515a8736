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
  synced late), starts a *rebuild*: a fresh predictor (sharing what the history alone
  determines) observes the passings from the start again, in race order, a bounded step at a
  time (:meth:`Forecasts.drain`), and takes over once it has reached the watermark. Meanwhile
  the old predictor keeps answering, and :meth:`Forecasts.updating` says so (a runner card
  marks its estimate as updating). A passing that goes wrong behind a rebuild's progress joins
  it unseen; one already observed by the rebuild starts it afresh. The watermark's minute
  keeps the usual out-of-order arrival of reads from different mats off that path. (A fresh
  replay gives what observing from the start would: the predictor's state is a function of
  the passings it has observed, in order.)

Nothing here observes unasked: :meth:`Forecasts.estimate` and :meth:`Forecasts.accuracy` read
the predictor as it stands, and the runtime drives :meth:`Forecasts.drain` in steps of
:data:`STEP` passings between its other work, so neither a late passing nor a page waits on a
replay. Once drained (:meth:`Forecasts.settle`) every process that folded the same log gives
the same estimates.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sortedcontainers import SortedList

from livetrack.domain.event import Event
from livetrack.domain.predict import Estimate, Predictor

#: Race time by which observing trails the latest passing known (seconds).
LAG_S = 60.0

#: Runners' state let go of per step from a predictor replaced (freeing a marathon's predictor
#: at once would itself hold the loop up for a second).
SHED = 2000

#: Passings observed per step of :meth:`Forecasts.drain` in the runtime: a step is the longest
#: the event loop waits on the forecasts (about 200 observations: a few tens of ms).
STEP = 200

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


class _RaceFeed:
    """One race's passings, the predictor that has observed the oldest of them and, after a
    passing went wrong behind it, the rebuild that will replace it."""

    __slots__ = (
        "back",
        "behind",
        "changes",
        "checkpoints",
        "count",
        "finishers",
        "history",
        "index",
        "keys",
        "next",
        "next_count",
        "next_seen",
        "observed",
        "passings",
        "predictor",
        "rebuilding",
        "retired",
        "seen",
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
        self.rebuilding = False  # whether the predictor has observed a passing gone wrong
        self.next: Predictor | None = None  # the rebuild (None: not begun yet)
        self.next_seen: _Key | None = None
        self.next_count = 0
        self.observed = 0  # observations ever made (replays included)
        self.retired: list[Predictor] = []  # replaced, being let go of a step at a time
        self.changes = 0  # puts that changed something
        self.finishers: set[str] = set()  # bibs with a finish passing
        self.back: _Key | None = None  # the predictor is to undo what it observed from here
        self.behind = False  # it undid observations, and has not observed up to the mark again

    @property
    def updating(self) -> bool:
        """Whether the predictor that answers has observed a passing since moved or withdrawn
        (or undone passings it has not observed again yet)."""
        return self.rebuilding or self.behind

    def watermark(self) -> float:
        return float(self.keys[-1][0]) - LAG_S if self.keys else float("-inf")

    def put(self, bib: str, passings: Mapping[str, float]) -> None:
        old = self.passings.get(bib, {})
        if old == passings:
            return
        index = self.index
        for cp, t in old.items():
            if passings.get(cp) != t:
                key = (t, bib, index[cp])
                self.keys.remove(key)
                self._touched(key)
        for cp, t in passings.items():
            if old.get(cp) != t:
                key = (t, bib, index[cp])
                self.keys.add(key)
                self._touched(key)
        if passings:
            self.passings[bib] = dict(passings)
        else:
            self.passings.pop(bib, None)
        self.changes += 1
        if self.checkpoints and self.checkpoints[-1][0] in passings:
            self.finishers.add(bib)
        else:
            self.finishers.discard(bib)
        # observed beyond the watermark (the latest passing went away)
        self._touched((self.watermark(), _AFTER, len(self.checkpoints)))

    def _touched(self, key: _Key) -> None:
        """``key`` appeared or vanished: a predictor that has observed past it is wrong."""
        if self.rebuilding:
            if self.next_seen is not None and key <= self.next_seen:
                self._retire(self.next)  # afresh
                self.next, self.next_seen, self.next_count = None, None, 0
        elif self.seen is not None and key <= self.seen:
            first = self.predictor.undoable() if self.predictor is not None else None
            if first is not None and first <= key:
                # the predictor can undo what it observed from key on: no replay from the start
                if self.back is None or key < self.back:
                    self.back = key
                self.behind = True
            else:
                self.rebuilding = True
                self.next, self.next_seen, self.next_count = None, None, 0
                self.back, self.behind = None, False

    def _retire(self, predictor: Predictor | None) -> None:
        if predictor is not None:
            self.retired.append(predictor)

    def fresh(self) -> Predictor:
        if self.predictor is not None:
            return self.predictor.fresh()
        return Predictor(self.checkpoints, self.history or None)

    def _rewind(self, limit: int | None) -> int:
        """Undo up to ``limit`` (all if None) of the observations from :attr:`back` on;
        returns how many were undone."""
        predictor, back = self.predictor, self.back
        if self.rebuilding or back is None or predictor is None:
            return 0
        budget = sys.maxsize if limit is None else limit
        undone = 0
        seen = self.seen
        while seen is not None and seen >= back and undone < budget:
            seen = predictor.undo()
            undone += 1
        self.seen = seen
        self.count -= undone
        if seen is None or seen < back:
            self.back = None
        return undone

    def sync(self, limit: int | None = None) -> tuple[int, int]:
        """Observe up to ``limit`` passings (all if None) up to the watermark, for the rebuild
        if there is one (which takes over once it is there), after undoing what is to be
        undone (each undo counting as an observation); returns how many observations were
        made or undone and how many are left to make (a rewind or a rebuild not finished
        counts at least one)."""
        query = limit == 0
        undone = 0 if query else self._rewind(limit)
        if limit is not None and undone:
            limit = max(0, limit - undone)
        keys = self.keys
        end = keys.bisect_right((self.watermark(), _AFTER, len(self.checkpoints)))
        if self.rebuilding:
            seen, count = self.next_seen, self.next_count
        else:
            seen, count = self.seen, self.count
        start = 0 if seen is None else keys.bisect_right(seen)
        stop = end if limit is None else min(end, start + max(0, limit))
        if stop > start:
            if self.rebuilding:
                if self.next is None:
                    self.next = self.fresh()
                predictor = self.next
            else:
                if self.predictor is None:
                    self.predictor = self.fresh()
                predictor = self.predictor
            names = self.checkpoints
            for key in keys.islice(start, stop):
                predictor.observe(key[1], names[key[2]][0], key[0])
            count += stop - start
            self.observed += stop - start
            if stop > start:
                seen = keys[stop - 1]
            if self.rebuilding:
                self.next_seen, self.next_count = seen, count
            else:
                self.seen, self.count = seen, count
        if self.rebuilding and stop == end and not query:
            if self.next is None:
                self.next = self.fresh()
            # caught up: the rebuild takes over
            self._retire(self.predictor)
            self.predictor, self.seen, self.count = self.next, self.next_seen, self.next_count
            self.next, self.next_seen, self.next_count = None, None, 0
            self.rebuilding = False
        elif not query and self.retired and not self.retired[-1].shed(SHED):
            self.retired.pop()
        if self.behind and self.back is None and stop == end and not query:
            self.behind = False  # observed up to the mark again
        left = end - stop
        if self.updating or self.retired:  # not caught up yet, or not let go of yet
            left += 1
        return undone + stop - start, left

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
        self._caught_up: set[str] = set()

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
        self._caught_up = set()
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
        """Observe up to ``limit`` passings in all (rebuilds first); returns how many are left
        to observe (a rebuild not yet taken over counts at least one)."""
        left = 0
        feeds = sorted(self._races.items(), key=lambda item: not item[1].updating)
        for race_id, feed in feeds:
            was = feed.updating
            done, more = feed.sync(limit)
            limit -= done
            left += more
            if was and not feed.updating:
                self._caught_up.add(race_id)
        return left

    def caught_up(self) -> set[str]:
        """The races whose rebuild has taken over since last asked (their estimates moved)."""
        out, self._caught_up = self._caught_up, set()
        return out

    def settle(self) -> None:
        """Observe everything up to the watermarks and finish every rebuild: what every
        process that folded the same log shows."""
        while self.drain(sys.maxsize):
            pass

    def pending(self) -> int:
        """Passings up to the watermarks not observed yet (a rebuild not yet taken over
        counts at least one)."""
        return sum(feed.sync(0)[1] for feed in self._races.values())

    def updating(self, race_id: str) -> bool:
        """Whether the race's estimates come from a predictor that has observed a passing
        since moved or withdrawn, while it undoes and observes again, or its rebuild catches
        up."""
        return self._races[race_id].updating

    def rebuilding(self) -> bool:
        """Whether any race's predictor is being rebuilt from the start (a passing went
        wrong further back than its predictor can undo)."""
        return any(feed.rebuilding for feed in self._races.values())

    def observed(self) -> int:
        """Observations made so far, replays included (what a step of work is counted in)."""
        return sum(feed.observed for feed in self._races.values())

    def estimate(self, race_id: str, bib: str, checkpoint: str) -> Estimate | None:
        """Predicted elapsed seconds (since the runner's start) at ``checkpoint``, from the
        race's predictor as it stands (observing nothing: see :meth:`drain`), with the
        runner's passings it has not observed yet."""
        feed = self._races[race_id]
        predictor = feed.predictor
        if predictor is None:
            predictor = feed.predictor = feed.fresh()
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
        predictor = feed.predictor
        if predictor is None:
            predictor = feed.predictor = feed.fresh()
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

"""The field predictor, fed from the fold.

The fold notes each new passing (cheaply, in a queue); the predictors observe queued passings
in race order when an estimate is asked for, or a bounded batch at a time from the runtime's
tick, so ingest never waits for prediction work.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from livetrack.domain.event import Event
from livetrack.domain.predict import Estimate, Predictor

#: An estimate drains at most this many queued passings itself; the tick drains the rest.
DRAIN_ON_ASK = 5000


def _elapsed(item: tuple[str, str, float]) -> float:
    return item[2]


class Forecasts:
    """One :class:`Predictor` per race (over its checkpoints after the start)."""

    def __init__(
        self, event: Event, history: dict[str, Iterable[Sequence[float | None]]] | None = None
    ) -> None:
        self._predictors: dict[str, Predictor] = {}
        self._pending: dict[str, deque[tuple[str, str, float]]] = {}
        for race in event.races.values():
            cps = [(cp.id, cp.distance_m) for cp in race.course.checkpoints[1:]]
            self._predictors[race.id] = Predictor(cps, (history or {}).get(race.id))
            self._pending[race.id] = deque()

    def queue(self, race_id: str) -> deque[tuple[str, str, float]]:
        """The race's queue of (bib, checkpoint, elapsed_s) passings, for the fold to append
        to directly: only checkpoints after the start and positive elapsed times."""
        return self._pending[race_id]

    def mark(self) -> dict[str, int]:
        """Where each race's queue ends now (for :meth:`order_since`)."""
        return {race_id: len(q) for race_id, q in self._pending.items()}

    def order_since(self, mark: dict[str, int]) -> None:
        """Put the passings queued since ``mark`` in race order (by elapsed time)."""
        for race_id, queue in self._pending.items():
            start = mark.get(race_id, 0)
            if len(queue) - start > 1:
                new = [queue.pop() for _ in range(len(queue) - start)]
                new.reverse()
                new.sort(key=_elapsed)
                queue.extend(new)

    def drain(self, limit: int) -> int:
        """Observe up to ``limit`` queued passings; returns how many are still queued."""
        left = 0
        for race_id, queue in self._pending.items():
            predictor = self._predictors[race_id]
            while queue and limit > 0:
                predictor.observe(*queue.popleft())
                limit -= 1
            left += len(queue)
        return left

    def pending(self) -> int:
        return sum(len(q) for q in self._pending.values())

    def estimate(self, race_id: str, bib: str, checkpoint: str) -> Estimate | None:
        """Predicted elapsed seconds (since the runner's start) at ``checkpoint``."""
        queue = self._pending[race_id]
        predictor = self._predictors[race_id]
        for _ in range(min(len(queue), DRAIN_ON_ASK)):
            predictor.observe(*queue.popleft())
        try:
            return predictor.estimate(bib, checkpoint)
        except KeyError:
            return None

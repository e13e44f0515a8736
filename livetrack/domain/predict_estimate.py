"""The per-runner questions a :class:`~livetrack.domain.predict.Predictor` answers: the
estimate at a later checkpoint with its 80% interval (also as though the runner had passed more
checkpoints), the estimates made at each passing, the next checkpoint and whether the runner is
overdue. The calibration's factors widen or narrow each interval (see
:mod:`livetrack.domain.predict`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from livetrack.domain.predict_calibration import Calibration, blend
from livetrack.domain.predict_model import Estimate, PredictorModel, Track

_OVERDUE_FACTOR = 1.5
"""A runner is overdue once the time since the last passing exceeds this multiple of the
upper-bound time to the next checkpoint."""


class RunnerEstimates(PredictorModel):
    """Estimates for one runner from the field observed so far; the predictor's observing
    fills ``_calibration`` and ``_floor``."""

    _calibration: list[Calibration]
    _floor: list[list[float]]

    def estimate(self, runner_id: str, target: str) -> Estimate | None:
        """Predicted elapsed seconds at ``target`` with an 80% interval.

        ``None`` if the runner has no passing yet. For a checkpoint already passed, the observed
        time (zero-width interval), or for a missed one the interpolation between the passings
        around it. Raises ``KeyError`` for an unknown target.
        """
        j = self._checkpoint_index(target)
        r = self._runners.get(runner_id)
        if r is None:
            return None
        i = r.last
        t_i = r.times[i]
        assert t_i is not None
        if j <= i:
            return self._passed(r, j)
        if r.version == self._version and r.cached[0] == j:
            return r.cached[1]
        return self._query(r, j)

    def _query(self, r: Track, j: int) -> Estimate:
        """The estimate at j (after r's last passing) leaving the field's caches as they are:
        what the predictor keeps depends only on the passings observed, never on which
        estimates were asked for when."""
        i = r.last
        t_i = r.times[i]
        assert t_i is not None
        self._store = False
        try:
            mid, lo, hi, model = self._raw(r, j)
            below, above = self._factors(i, model)
        finally:
            self._store = True
        return self._interval(i, j, t_i, mid, lo * below, hi * above)

    def estimate_with(
        self, runner_id: str, passings: Sequence[tuple[str, float]], target: str
    ) -> Estimate | None:
        """:meth:`estimate` as though the runner had also passed ``passings`` (``(checkpoint,
        elapsed_s)`` in race order, later than everything observed), without telling the
        field: the runner's own news before it is observed in race order."""
        j = self._checkpoint_index(target)
        seen = self._runners.get(runner_id)
        r = Track(self._n)
        if seen is not None:
            r.times, r.xs, r.zs = list(seen.times), list(seen.xs), list(seen.zs)
            r.last, r.x, r.z, r.dev, r.dev_w = seen.last, seen.x, seen.z, seen.dev, seen.dev_w
            r.vol, r.vol_n = seen.vol, seen.vol_n
        for name, elapsed in passings:
            c = self._checkpoint_index(name)
            t = float(elapsed)
            if not (t > 0.0 and math.isfinite(t)) or r.times[c] is not None:
                continue
            r.times[c] = t
            r.xs[c] = math.log(t / self._dist[c])
            r.zs[c] = self._trend(r.times, c)
            if c < r.last:
                r.z = r.zs[r.last] = self._trend(r.times, r.last)
                continue
            prev = r.last
            r.last, r.x, r.z = c, r.xs[c], r.zs[c]
            t_prev = r.times[prev] if prev == c - 1 else None
            if t_prev is not None and t > t_prev:
                scaled = self._segment_news(r, prev, math.log(t / t_prev), False)[1]
                r.vol += self._segments[prev].variability(scaled)
                r.vol_n += 1
            for k in range(max(prev, 0), c if prev >= 0 else 0):
                found = self._segments[k].offset(r.xs[prev], self._cut(k), k, r.zs[prev], False)
                if found is not None:
                    r.dev += found[0] * found[0]
                    r.dev_w += self._seg_riegel[k] * self._seg_riegel[k]
        i = r.last
        if i < 0:
            return None
        t_i = r.times[i]
        assert t_i is not None
        if j <= i:
            return self._passed(r, j)
        return self._query(r, j)

    def made(self, runner_id: str) -> list[Estimate | None]:
        """Per checkpoint, the finish estimate made the moment the runner's passing there was
        observed (None where none was made: not passed, passed out of course order, or the
        finish itself)."""
        r = self._runners.get(runner_id)
        return list(r.made) if r is not None else [None] * self._n

    def _interval(
        self, i: int, j: int, t_i: float, mid: float, below: float, above: float
    ) -> Estimate:
        """The estimate at j from a passing of i at t_i: never sooner than running the rest
        at twice the pace so far, and low < estimate < high, the low end after t_i."""
        mid = max(mid, self._floor[i][j])
        seconds = t_i * math.exp(mid)
        rest = seconds - t_i
        gap = max(0.5, 0.002 * rest)
        low = max(min(t_i * math.exp(mid - below), seconds - gap), t_i + 0.05 * rest)
        high = max(t_i * math.exp(mid + above), seconds + gap)
        return Estimate(seconds, low, high)

    def _factors(self, i: int, model: float) -> tuple[float, float]:
        """Multiples of the reference half-widths (below, above) for predictions from i:
        the calibration, blended with the model's own multiple while little is known
        (:func:`~livetrack.domain.predict_calibration.blend`)."""
        calibration = self._calibration
        return blend(calibration[i].factors(calibration, self._store), model)

    def next_checkpoint(self, runner_id: str) -> str | None:
        """Name of the checkpoint after the runner's last passing; ``None`` if unknown or done."""
        r = self._runners.get(runner_id)
        if r is None or r.last >= self._finish:
            return None
        return self._names[r.last + 1]

    def overdue(self, runner_id: str, elapsed_now_s: float, target: str | None = None) -> bool:
        """Whether the runner is far past the upper bound of their predicted time at ``target``
        (default: the next checkpoint), i.e. the time since their last passing exceeds 1.5 times
        the upper-bound time from that passing to the target. ``False`` for an unknown or
        finished runner, or a target already passed.
        """
        r = self._runners.get(runner_id)
        name = self.next_checkpoint(runner_id) if target is None else target
        if r is None or name is None:
            return False
        if self._checkpoint_index(name) <= r.last:
            return False
        est = self.estimate(runner_id, name)
        t_i = r.times[r.last]
        if est is None or t_i is None:
            return False
        return elapsed_now_s - t_i > _OVERDUE_FACTOR * (est.high - t_i)

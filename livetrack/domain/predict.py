"""Finish-time (and any later checkpoint) prediction for runners in a live race.

Model, for a runner whose last passing is checkpoint ``i`` at elapsed ``t_i``, asked about a
later checkpoint ``j``; all ratios are in log space::

    log(t_j / t_i) = H_ij(x, z) + sum over segments k of i..j of D_k(x)

* ``x`` is the runner's log pace at ``i`` and ``z`` its pacing trend there: log of (pace since
  an earlier checkpoint at least a tenth of the course back) / (average pace so far).
* ``H_ij`` gives the 10/50/90% quantiles of the ratio among earlier editions' runners nearest
  in (pace, trend) (:class:`~livetrack.domain.predict_grid.QuantileGrid`). Without history, or
  where history has no comparable runner, it is a Riegel prior: median ratio
  ``(d_j / d_i) ** 1.06`` with an interval widening with the share of the course left.
* ``D_k`` is today's correction on segment ``k -> k+1``: the median residual (today's ratio minus
  ``H``'s median) of the runners nearest in pace who have already run that segment, adjusted
  by a slope on the trend at ``i`` fitted over today's runners
  (:class:`~livetrack.domain.predict_field.SegmentOffsets`). Late segments are thus learned from
  the runners ahead, whatever the history says. Only runners of a pace that has (nearly) all
  reached ``k+1`` by the latest elapsed time observed are used, since the first arrivals of a
  pace are its quick ones. Without history, a runner with nobody ahead extends today's offset on
  the segment just run to the rest of the course.
* The 80% interval is ``H``'s 10%..90% spread around the corrected median (without history:
  today's residual spreads on the segments, combined with correlation 0.5, the prior's where
  nobody has run a segment yet), widened by the uncertainty of the corrections (few runners,
  runners of a different pace, or with history a possible day-to-day shift on segments nobody
  has run yet). For the finish, it is then scaled so that the finish predictions made earlier
  from the same checkpoint for runners who have since finished cover 80%
  (:class:`~livetrack.domain.predict_field.Calibration`; until some have, by today's spread
  relative to the model on the segments run so far).

Elapsed times are taken as comparable across runners (a common start or chip times from
start waves close together): "the latest elapsed time observed" stands for the race clock.

Everything is incremental: ``observe`` is O(log n) in the number of passings and ``estimate`` is
a handful of dictionary look-ups. The predictor reads no clock and does no I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from livetrack.domain.predict_field import Calibration, SegmentOffsets
from livetrack.domain.predict_grid import QuantileGrid

__all__ = ["FINISH", "Estimate", "Predictor"]

FINISH = "finish"
"""Target alias for the last checkpoint, whatever its name."""

RIEGEL_EXPONENT = 1.06

_PRIOR_LOW = 0.16
"""Prior interval below the Riegel median, in log ratio per unit share of the course left."""
_PRIOR_HIGH = 0.12
"""Prior interval above the Riegel median, likewise."""
_DAY_SHIFT = 0.015
"""Prior spread of a day-to-day change of a segment's log ratio, as a share of its Riegel value."""
_SEGMENT_CORRELATION = 0.5
"""Assumed correlation of a runner's residuals on different segments (for combining spreads)."""
_OVERDUE_FACTOR = 1.5
"""A runner is overdue once the time since the last passing exceeds this multiple of the
upper-bound time to the next checkpoint."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """Predicted elapsed seconds at a checkpoint with an 80% interval: low <= seconds <= high."""

    seconds: float
    low: float
    high: float


_Correction = tuple[float, float, float, float, float]


class _Runner:
    __slots__ = ("cached", "last", "pending", "times", "version", "x", "xs", "z", "zs")

    def __init__(self, n: int) -> None:
        self.times: list[float | None] = [None] * n
        self.xs: list[float] = [0.0] * n
        self.zs: list[float] = [0.0] * n
        self.last = -1
        self.x = 0.0
        self.z = 0.0
        self.pending: dict[int, tuple[float, float, float]] = {}
        self.version = -1
        self.cached: tuple[int, float, float, float, float] = (-1, 0.0, 0.0, 0.0, 1.0)


class Predictor:
    """Predicts elapsed times at later checkpoints from the field so far and earlier editions.

    ``checkpoints`` are ``(name, metres from the start)`` in course order, distances strictly
    increasing and positive; the last one is the finish and may also be called ``"finish"``.
    ``history`` holds earlier editions' runners, each a sequence of cumulative elapsed seconds
    at every checkpoint in that order, ``None`` where missing. Raises ``ValueError`` on a
    malformed course or history row.
    """

    def __init__(
        self,
        checkpoints: Sequence[tuple[str, float]],
        history: Iterable[Sequence[float | None]] | None = None,
    ) -> None:
        if not checkpoints:
            raise ValueError("at least one checkpoint is required")
        names = [str(name) for name, _ in checkpoints]
        dists = [float(d) for _, d in checkpoints]
        if len(set(names)) != len(names):
            raise ValueError("checkpoint names must be unique")
        if dists[0] <= 0 or any(b <= a for a, b in itertools.pairwise(dists)):
            raise ValueError("checkpoint distances must be positive and strictly increasing")
        self._names = names
        self._dist = dists
        self._logd = [math.log(d) for d in dists]
        self._n = n = len(dists)
        self._index = {name: i for i, name in enumerate(names)}
        self._finish = n - 1
        self._trend_gap = 0.1 * dists[-1]
        self._history: list[list[float | None]] = []
        for row in history or ():
            if len(row) != n:
                raise ValueError(f"history row has {len(row)} times, expected {n}")
            self._history.append([_positive(v) for v in row])
        self._history_features: list[tuple[list[float], list[float]]] | None = None
        self._grids: dict[tuple[int, int], QuantileGrid | None] = {}
        self._segments = [SegmentOffsets(k) for k in range(n - 1)]
        self._runners: dict[str, _Runner] = {}
        self._now = 0.0
        self._log_now = 0.0
        self._seg_high = [self._segment_high(k) for k in range(n - 1)]
        self._version = 0
        self._calibration = [Calibration() for _ in range(n)]

    # -- public API ---------------------------------------------------------------------------

    @property
    def checkpoint_names(self) -> list[str]:
        """Checkpoint names in course order."""
        return list(self._names)

    def observe(self, runner_id: str, checkpoint: str, elapsed_s: float) -> None:
        """Record one passing (elapsed seconds since the runner's start).

        Calls are expected in race order. A repeated passing of the same checkpoint is ignored.
        Raises ``KeyError`` for an unknown checkpoint, ``ValueError`` for a non-positive time.
        """
        c = self._checkpoint_index(checkpoint)
        t = float(elapsed_s)
        if not (t > 0.0 and math.isfinite(t)):
            raise ValueError(f"elapsed time must be positive and finite, got {elapsed_s!r}")
        r = self._runners.get(runner_id)
        if r is None:
            r = self._runners[runner_id] = _Runner(self._n)
        if r.times[c] is not None:
            return
        r.times[c] = t
        if t > self._now:
            self._now = t
            self._log_now = math.floor(math.log(t) * 2000.0) / 2000.0
        x = math.log(t / self._dist[c])
        z = self._trend(r.times, c)
        r.xs[c] = x
        r.zs[c] = z
        self._version += 1
        if c < r.last:
            last = r.last
            r.z = r.zs[last] = self._trend(r.times, last)
            return
        prev = r.last
        r.last, r.x, r.z = c, x, z
        if prev == c - 1:
            t_prev = r.times[prev]
            if t_prev is not None and t > t_prev:
                self._add_segment(r, prev, math.log(t / t_prev))
        if c == self._finish:
            self._resolve(r, t)
        else:
            raw = self._raw(r, self._finish)
            r.pending[c] = raw[:3]
            r.version = self._version
            r.cached = (self._finish, *raw)

    def _add_segment(self, r: _Runner, k: int, y: float) -> None:
        """Today's runner r covered segment k -> k+1 with log ratio y."""
        x, z = r.xs[k], r.zs[k]
        q10, q50, q90, _ = self._base(k, k + 1, x, z)
        res = y - q50
        seg = self._segments[k]
        found = seg.offset(x, self._cut(k), k, z)
        u = res - found[0] if found is not None else res
        scaled = u / max(q90 - q50, 1e-6) if u > 0 else u / min(q10 - q50, -1e-6)
        seg.add(x, res, scaled, r.zs)

    def _resolve(self, r: _Runner, t: float) -> None:
        """Score the finish predictions made for r at its earlier passings."""
        for i, (mid, lo, hi) in r.pending.items():
            t_i = r.times[i]
            if t_i is None:
                continue
            u = math.log(t / t_i) - mid
            self._calibration[i].add(u / hi if u > 0 else -u / lo)
        r.pending.clear()

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
            _, mid, lo, hi, ratio = r.cached
        else:
            mid, lo, hi, ratio = self._raw(r, j)
        if j == self._finish:
            ratio = self._calibration[i].ratio(ratio)
        return Estimate(
            t_i * math.exp(mid),
            max(t_i, t_i * math.exp(mid - lo * ratio)),
            t_i * math.exp(mid + hi * ratio),
        )

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

    # -- model --------------------------------------------------------------------------------

    def _checkpoint_index(self, name: str) -> int:
        i = self._index.get(name)
        if i is None:
            if name == FINISH:
                return self._finish
            raise KeyError(f"unknown checkpoint {name!r}")
        return i

    def _passed(self, r: _Runner, j: int) -> Estimate | None:
        t = r.times[j]
        if t is not None:
            return Estimate(t, t, t)
        before = next((k for k in range(j - 1, -1, -1) if r.times[k] is not None), None)
        after = next(k for k in range(j + 1, r.last + 1) if r.times[k] is not None)
        t_after = r.times[after]
        assert t_after is not None
        if before is None:
            t_before, d_before = 0.0, 0.0
        else:
            t_before, d_before = r.times[before] or 0.0, self._dist[before]
        share = (self._dist[j] - d_before) / (self._dist[after] - d_before)
        return Estimate(t_before + share * (t_after - t_before), t_before, t_after)

    def _trend(self, times: Sequence[float | None], c: int) -> float:
        """log(recent pace / average pace) at checkpoint c; 0 without an earlier passing."""
        t_c = times[c]
        if t_c is None:
            return 0.0
        d_c = self._dist[c]
        back = -1
        for k in range(c - 1, -1, -1):
            if times[k] is not None:
                back = k
                if d_c - self._dist[k] >= self._trend_gap:
                    break
        if back < 0:
            return 0.0
        t_k = times[back]
        assert t_k is not None
        if t_c <= t_k:
            return 0.0
        ratio = (t_c - t_k) * d_c / ((d_c - self._dist[back]) * t_c)
        return max(-1.0, min(1.0, math.log(ratio)))

    def _prior(self, i: int, j: int) -> tuple[float, float, float, int]:
        mid = RIEGEL_EXPONENT * (self._logd[j] - self._logd[i])
        left = 1.0 - self._dist[i] / self._dist[j]
        return (mid - _PRIOR_LOW * left, mid, mid + _PRIOR_HIGH * left, 0)

    def _raw(self, r: _Runner, j: int) -> tuple[float, float, float, float]:
        """(median, lower and upper half-width of the 80% interval, all in log ratio to the
        last passing; today's spread ratio) for runner r at checkpoint j, uncalibrated."""
        i = r.last
        q10, q50, q90, n = self._base(i, j, r.x, r.z)
        shift, var, ratio, field_lo, field_hi = self._correction(i, j, r.x, r.z)
        if n:
            inflate = 1.0 + 1.0 / math.sqrt(n)
            lo, hi = (q50 - q10) * inflate, (q90 - q50) * inflate
        else:
            lo, hi, ratio = field_lo, field_hi, 1.0
        return q50 + shift, math.sqrt(lo * lo + 1.64 * var), math.sqrt(hi * hi + 1.64 * var), ratio

    def _cut(self, k: int) -> float:
        """Log pace at k below which (nearly) every runner has covered segment k -> k+1."""
        return self._log_now - self._seg_high[k] - self._logd[k]

    def _base(self, i: int, j: int, x: float, z: float) -> tuple[float, float, float, int]:
        key = (i, j)
        grid = self._grids[key] if key in self._grids else self._build_grid(i, j)
        if grid is not None:
            q = grid.quantiles(x, z)
            if q is not None:
                return q
        return self._prior(i, j)

    def _correction(self, i: int, j: int, x: float, z: float) -> _Correction:
        """Today's segment offsets from i to j summed, with their variance, the mean ratio of
        today's spread to the model's on the segments run so far (1 if none), and the 80%
        half-widths of today's residuals combined over the segments (the prior's where
        nobody has run a segment yet), segments correlated by _SEGMENT_CORRELATION."""
        shift = var = ratios = unseen = seen_riegel = unseen_riegel = 0.0
        lo_sum = lo_sq = hi_sum = hi_sq = 0.0
        shift_before: float | None = None
        covered = 0
        drift = RIEGEL_EXPONENT - 1.0
        logd = self._logd
        dist = self._dist
        log_now = self._log_now
        seg_high = self._seg_high
        for k in range(i - 1 if i > 0 else 0, j):
            seg = self._segments[k]
            riegel = RIEGEL_EXPONENT * (logd[k + 1] - logd[k])
            cut = log_now - seg_high[k] - logd[k]
            found = seg.offset(x + drift * (logd[k] - logd[i]), cut, min(i, k), z)
            if k < i:
                if found is not None and not covered:
                    shift_before = found[0]
                continue
            if found is not None:
                d, v, lo, hi = found
                shift += d
                var += v
                ratios += seg.spread_ratio()
                covered += 1
                seen_riegel += riegel
            else:
                unseen += _DAY_SHIFT * riegel
                unseen_riegel += riegel
                left = 1.0 - dist[k] / dist[k + 1]
                lo, hi = _PRIOR_LOW * left, _PRIOR_HIGH * left
            lo_sum += lo
            lo_sq += lo * lo
            hi_sum += hi
            hi_sq += hi * hi
        if unseen_riegel and not seen_riegel and shift_before is not None and not self._history:
            # nobody ahead yet: today's offset on the segment just run, per unit of prior
            before = RIEGEL_EXPONENT * (logd[i] - logd[i - 1])
            shift += shift_before * unseen_riegel / before
        rho = _SEGMENT_CORRELATION
        return (
            shift,
            var + unseen * unseen if self._history else var,
            ratios / covered if covered else 1.0,
            math.sqrt((1.0 - rho) * lo_sq + rho * lo_sum * lo_sum),
            math.sqrt((1.0 - rho) * hi_sq + rho * hi_sum * hi_sum),
        )

    def _segment_high(self, k: int) -> float:
        """A high (about 97.5%) log ratio of times across segment k -> k+1: runners at k more
        than this below the latest elapsed time seen have (nearly) all passed k+1."""
        riegel = RIEGEL_EXPONENT * (self._logd[k + 1] - self._logd[k])
        high = 1.3 * riegel + 0.02
        if self._history:
            ratios = sorted(
                math.log(b / a)
                for a, b in ((row[k], row[k + 1]) for row in self._history)
                if a is not None and b is not None and b > a
            )
            if len(ratios) >= 40:
                high = ratios[int(0.975 * (len(ratios) - 1))]
        return high

    def _build_grid(self, i: int, j: int) -> QuantileGrid | None:
        grid: QuantileGrid | None = None
        if self._history:
            feats = self._features()
            samples = []
            for row, (xs, zs) in zip(self._history, feats, strict=True):
                t_i, t_j = row[i], row[j]
                if t_i is not None and t_j is not None and t_j > t_i:
                    samples.append((xs[i], zs[i], math.log(t_j / t_i)))
            if samples:
                grid = QuantileGrid(samples)
        self._grids[(i, j)] = grid
        return grid

    def _features(self) -> list[tuple[list[float], list[float]]]:
        if self._history_features is None:
            feats = []
            for row in self._history:
                xs = [math.log(t / d) if t else 0.0 for t, d in zip(row, self._dist, strict=True)]
                zs = [self._trend(row, c) for c in range(self._n)]
                feats.append((xs, zs))
            self._history_features = feats
        return self._history_features


def _positive(value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if v > 0.0 and math.isfinite(v) else None

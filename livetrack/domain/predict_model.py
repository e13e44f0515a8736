"""The predictor's model: what a runner's passings say about a later checkpoint.

:class:`PredictorModel` holds the course, the history and today's field, and works out the
model's median and reference 80% interval for a runner from its last passing (the history's
quantile grids or the prior, today's segment corrections and their uncertainty; see
:mod:`livetrack.domain.predict`, whose :class:`~livetrack.domain.predict.Predictor` adds the
observations' bookkeeping, the calibration of the intervals and the public API).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from livetrack.domain.predict_field import SegmentOffsets
from livetrack.domain.predict_grid import QuantileGrid, quantile

FINISH = "finish"
"""Target alias for the last checkpoint, whatever its name."""

RIEGEL_EXPONENT = 1.06
"""Exponent of distance in time used to scale segments against each other."""

_FADE = 0.12
"""Prior slowing of the pace from start to finish, per marathon distance of course."""
_MARATHON = 42195.0
_PRIOR_LOW = 0.056
"""Prior interval below the median, per unit share of the time still to run (at the finish,
for a marathon)."""
_PRIOR_HIGH = 0.099
"""Prior interval above the median, likewise."""
_DAY_SHIFT = 0.015
"""Least spread of a day-to-day change of a segment's log ratio, as a share of its Riegel
value."""
_STRAY_PRIOR = 0.25
"""Weight of _DAY_SHIFT in a runner's deviation from the model, in squared Riegel ratio."""
_BORROW_PACE = 0.2
"""Difference in log pace at which an offset borrowed from other runners is as uncertain as
today's typical deviation from the model."""
_INV_BORROW_SQ = 1.0 / (_BORROW_PACE * _BORROW_PACE)
_VOLATILITY_PRIOR = 3.0
"""Segments of the field's typical variability (1) a runner's own is pooled with."""
_EVEN_PACE = math.log(0.305)
"""Log pace (seconds per metre: 5:05 per km) beyond which the prior widens."""
_SLOW_SPREAD = 2.5
"""Growth of the prior's spread per unit of log pace beyond _EVEN_PACE."""
_SLOW_MAX = 2.0
"""Most the prior's spread grows for slow runners."""
_AHEAD = 4.0
"""Multiple of the square of today's shift so far on the segments ahead (summed, each counted
by how far slower than the runners who ran it the runner is, up to :data:`_BORROW_PACE`)
added to the square of the half-width on its side: a runner slower than those may lose (or
gain) up to twice what they did."""
_USUAL_N = 100
"""History runners nearest in pace whose median trend is the usual one at a checkpoint."""
_ANOMALY = 0.5
"""Share of today's trend anomaly on the segments ahead added to a runner's offsets: all of
it counts twice what the runner's own trend at its checkpoint already carries into the
history's median from there."""
"""Share of today's trend anomaly on a segment ahead added to a runner's offsets."""
_RATIO_N = 50.0
"""Runners on a segment at which its spread ratio counts half in the model's multiple."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """Predicted elapsed seconds at a checkpoint with an 80% interval: low < seconds < high
    for a checkpoint still ahead (zero width for one already passed)."""

    seconds: float
    low: float
    high: float


_Correction = tuple[float, float, float, float]
_Raw = tuple[float, float, float, float]
"""(median, lower and upper half-width of the reference 80% interval, all in log ratio to the
runner's last passing; the model's own multiple of those half-widths)."""
Pending = tuple[float, int, "Track", int, int, int, float]
"""(due time, sequence, runner, from checkpoint, checked checkpoint, sample key, log ratio of
the upper bound of the finish prediction from the checkpoint)."""


class Track:
    """One runner's passings and what the predictor keeps for it (estimates made, calibration
    samples waiting, its deviation from the model)."""

    __slots__ = (
        "cached",
        "dev",
        "dev_w",
        "last",
        "late",
        "made",
        "raws",
        "times",
        "version",
        "vol",
        "vol_n",
        "x",
        "xs",
        "z",
        "zs",
    )

    def __init__(self, n: int) -> None:
        self.times: list[float | None] = [None] * n
        self.xs: list[float] = [0.0] * n
        self.zs: list[float] = [0.0] * n
        self.last = -1
        self.x = 0.0
        self.z = 0.0
        self.late: list[Pending] = []
        self.raws: list[_Raw | None] = [None] * n
        self.made: list[Estimate | None] = [None] * n
        self.dev = 0.0
        self.dev_w = 0.0
        # the sizes of the runner's residuals on the segments run so far, each relative to
        # the field's mean there (:meth:`SegmentOffsets.variability`), and their number
        self.vol = 0.0
        self.vol_n = 0
        self.version = -1
        self.cached: tuple[int, Estimate | None] = (-1, None)

    def state(self) -> tuple[object, ...]:
        """Everything observing a passing may change, as it is now (see :meth:`restore`)."""
        return (
            list(self.times),
            list(self.xs),
            list(self.zs),
            self.last,
            self.x,
            self.z,
            self.late,
            list(self.late),
            list(self.raws),
            list(self.made),
            self.dev,
            self.dev_w,
            self.vol,
            self.vol_n,
            self.version,
            self.cached,
        )

    def restore(self, state: tuple[object, ...]) -> None:
        """Put back what :meth:`state` returned. The list of checks waiting is the same list
        again, as it was (an undo may still take a check out of it)."""
        late: list[Pending]
        (
            self.times,
            self.xs,
            self.zs,
            self.last,
            self.x,
            self.z,
            late,
            self.late,
            self.raws,
            self.made,
            self.dev,
            self.dev_w,
            self.vol,
            self.vol_n,
            self.version,
            self.cached,
        ) = state  # type: ignore[assignment]
        late[:] = self.late
        self.late = late


class PredictorModel:
    """The course, history and field of a :class:`~livetrack.domain.predict.Predictor`, and
    its model; see there for the arguments."""

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
        fade = _FADE * dists[-1] / _MARATHON
        self._fade = [math.log1p(fade * (d / dists[-1]) ** 2 / 3.0) for d in dists]
        self._prior_scale = (dists[-1] / _MARATHON) ** 0.3
        self._history: list[list[float | None]] = []
        for row in history or ():
            if len(row) != n:
                raise ValueError(f"history row has {len(row)} times, expected {n}")
            self._history.append([_positive(v) for v in row])
        self._history_features: list[tuple[list[float], list[float]]] | None = None
        self._grids: dict[tuple[int, int], QuantileGrid | None] = {}
        self._usual: dict[int, tuple[list[float], list[float]]] = {}
        self._usual_cache: dict[tuple[int, int], float] = {}
        self._segments = [SegmentOffsets(k) for k in range(n - 1)]
        self._runners: dict[str, Track] = {}
        self._now = 0.0
        self._log_now = 0.0
        self._seg_high = [self._segment_high(k) for k in range(n - 1)]
        self._seg_riegel = [
            RIEGEL_EXPONENT * (self._logd[k + 1] - self._logd[k]) for k in range(n - 1)
        ]
        self._version = 0
        self._store = True  # whether model queries may refresh the field's caches

    # -- model --------------------------------------------------------------------------------

    def _checkpoint_index(self, name: str) -> int:
        i = self._index.get(name)
        if i is None:
            if name == FINISH:
                return self._finish
            raise KeyError(f"unknown checkpoint {name!r}")
        return i

    def _passed(self, r: Track, j: int) -> Estimate | None:
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
        mid = self._logd[j] - self._logd[i] + self._fade[j] - self._fade[i]
        width = (1.0 - math.exp(-mid)) * math.sqrt(self._dist[j] / self._dist[-1])
        width *= self._prior_scale
        return (mid - _PRIOR_LOW * width, mid, mid + _PRIOR_HIGH * width, 0)

    def _raw(self, r: Track, j: int) -> _Raw:
        """The reference interval for runner r at checkpoint j (see ``_Raw``)."""
        i = r.last
        q10, q50, q90, n = self._base(i, j, r.x, r.z)
        # how far today's runners of this pace have strayed from the model so far
        stray = math.sqrt(
            (r.dev + _DAY_SHIFT * _DAY_SHIFT * _STRAY_PRIOR) / (r.dev_w + _STRAY_PRIOR)
        )
        shift, var, ratio, ahead = self._correction(i, j, r.x, r.z, stray)
        # the runner's own variability so far, relative to the field's
        typical = self._slow(r.x) if not n else 1.0
        inflate = (r.vol + _VOLATILITY_PRIOR * typical) / (r.vol_n + _VOLATILITY_PRIOR)
        if n:
            inflate *= 1.0 + 1.0 / math.sqrt(n)
        extra = 1.64 * var
        lo = max(q50 - q10, 1e-6) * inflate
        hi = max(q90 - q50, 1e-6) * inflate
        # today's shift on the segments ahead, which a runner slower than those who ran them
        # may suffer (or enjoy) up to twice over: on that side only
        up = _AHEAD * ahead * ahead
        lo_sq = lo * lo + extra + (up if ahead < 0.0 else 0.0)
        hi_sq = hi * hi + extra + (up if ahead > 0.0 else 0.0)
        return q50 + shift, math.sqrt(lo_sq), math.sqrt(hi_sq), ratio

    def _usual_trend(self, k: int, x: float) -> float:
        """The history's median trend at checkpoint k among its runners nearest log pace x
        (0 without history): what the model's median for a segment from k expects of a
        runner there."""
        if not self._history:
            return 0.0
        key = (k, math.floor(x * 100.0))
        found = self._usual_cache.get(key)
        if found is not None:
            return found
        table = self._usual.get(k)
        if table is None:
            pairs = sorted(
                (xs[k], zs[k])
                for row, (xs, zs) in zip(self._history, self._features(), strict=True)
                if row[k] is not None
            )
            table = self._usual[k] = ([p[0] for p in pairs], [p[1] for p in pairs])
        xs_k, zs_k = table
        if not xs_k:
            value = 0.0
        else:
            pos = bisect.bisect_left(xs_k, (key[1] + 0.5) / 100.0)
            lo = max(0, min(pos - _USUAL_N // 2, len(xs_k) - _USUAL_N))
            value = quantile(sorted(zs_k[lo : lo + _USUAL_N]), 0.5)
        self._usual_cache[key] = value
        return value

    def _anomaly(self, r: Track, k: int, median: float) -> float:
        """How much of the model's median log ratio over segment k -> k+1 for runner r
        (``median``) its trend at k accounts for beyond the trend usual there at its pace (0
        without history)."""
        if not self._history:
            return 0.0
        x = r.xs[k]
        return median - self._base(k, k + 1, x, self._usual_trend(k, x))[1]

    def _segment_news(
        self, r: Track, k: int, y: float, store: bool
    ) -> tuple[float, float, tuple[float, float, float, float, float, float] | None, float]:
        """Runner r covered segment k -> k+1 with log ratio y: its residual from the model's
        median, that residual less today's offset for its pace in units of the model's
        half-width on its side (1: on the bound), the offset found (None: none yet) and the
        model's median."""
        x, z = r.xs[k], r.zs[k]
        q10, q50, q90, _ = self._base(k, k + 1, x, z)
        res = y - q50
        found = self._segments[k].offset(x, self._cut(k), k, z, store)
        u = res - found[0] if found is not None else res
        scaled = u / max(q90 - q50, 1e-6) if u > 0 else u / min(q10 - q50, -1e-6)
        return res, scaled, found, q50

    @staticmethod
    def _slow(x: float) -> float:
        """The prior's multiple of its spread for a runner of log pace x (seconds per metre so
        far): 1 up to :data:`_EVEN_PACE`, growing by :data:`_SLOW_SPREAD` per unit of log pace
        beyond, up to :data:`_SLOW_MAX` (slower runners' finishes spread more)."""
        slower = x - _EVEN_PACE
        if slower <= 0.0:
            return 1.0
        return min(_SLOW_MAX, 1.0 + _SLOW_SPREAD * slower)

    def _cut(self, k: int) -> float:
        """Log pace at k below which (nearly) every runner has covered segment k -> k+1."""
        return self._log_now - self._seg_high[k] - self._logd[k]

    def _base(self, i: int, j: int, x: float, z: float) -> tuple[float, float, float, int]:
        key = (i, j)
        grid = self._grids[key] if key in self._grids else self._build_grid(i, j)
        if grid is not None:
            q = grid.quantiles(x, z)
            if q is not None:
                trust = q[4]
                if trust >= 1.0:
                    return q[0], q[1], q[2], q[3]
                # beyond the history's range of runners: towards the prior
                p = self._prior(i, j)
                keep = 1.0 - trust
                return (
                    trust * q[0] + keep * p[0],
                    trust * q[1] + keep * p[1],
                    trust * q[2] + keep * p[2],
                    q[3],
                )
        return self._prior(i, j)

    def _correction(self, i: int, j: int, x: float, z: float, stray: float) -> _Correction:
        """Today's segment offsets from i to j summed, with their variance (``stray``: typical
        deviation of today's runners of this pace from the model, per unit of Riegel ratio),
        and with history the mean ratio of today's spread to the model's on the segments run
        so far (1 if none)."""
        shift = var = unseen = seen_riegel = unseen_riegel = ratios = covered = ahead = 0.0
        shift_before: float | None = None
        drift = RIEGEL_EXPONENT - 1.0
        logd = self._logd
        log_now = self._log_now
        seg_high = self._seg_high
        seg_riegel = self._seg_riegel
        segments = self._segments
        stray_sq = stray * stray
        history = bool(self._history)
        for k in range(i - 1 if i > 0 else 0, j):
            riegel = seg_riegel[k]
            cut = log_now - seg_high[k] - logd[k]
            found = segments[k].offset(
                x + drift * (logd[k] - logd[i]), cut, min(i, k), z, self._store
            )
            if k < i:
                if found is not None:
                    shift_before = found[0]
                continue
            if found is not None:
                shift += found[0]
                if k > i:
                    # the slowing of today's field its trends account for, which this
                    # runner's trend at i cannot show yet
                    shift += _ANOMALY * found[5]
                    if found[4] > 0.0 and history:
                        gap = found[4] / _BORROW_PACE
                        ahead += (found[0] + found[5]) * (gap if gap < 1.0 else 1.0)
                # borrowed from runners of another pace: as uncertain as today's deviations
                borrowed = found[4] * found[4] * _INV_BORROW_SQ
                var += found[1] + stray_sq * riegel * riegel * (borrowed if borrowed < 1.0 else 1.0)
                seen_riegel += riegel
            else:
                unseen += stray * riegel
                unseen_riegel += riegel
        if unseen_riegel and not seen_riegel and shift_before is not None and not history:
            # nobody ahead yet: today's offset on the segment just run, per unit of prior
            before = RIEGEL_EXPONENT * (logd[i] - logd[i - 1])
            shift += shift_before * unseen_riegel / before
        if not history:
            return shift, var, 1.0, 0.0
        # today's spread relative to the model's on the segments ahead, each counting by the
        # runners who have covered it (a segment nobody has covered counts as 1)
        for k in range(i, j):
            n = len(segments[k])
            weight = seg_riegel[k] * n / (n + _RATIO_N)
            ratios += weight * segments[k].spread_ratio(self._store) + seg_riegel[k] - weight
            covered += seg_riegel[k]
        return shift, var + unseen * unseen, ratios / covered if covered else 1.0, ahead

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

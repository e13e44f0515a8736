"""Today's field: how runners' times differ from a model, per segment and per checkpoint.

:class:`SegmentOffsets` keeps, for the stretch of course from checkpoint ``k`` to ``k + 1``,
the residual ``r`` (observed log ratio of times minus the model's median) of every runner who
has covered it so far, keyed by their log pace ``x`` at ``k``, together with their pacing trends
at checkpoints ``0..k``.

``offset`` returns, for a runner of log pace ``x`` whose trend at checkpoint ``i`` is ``z``:

* the median residual of the ``window`` runners nearest in pace (each residual clipped at
  ±0.15, so that a misread passing cannot carry the offset while it is alone on the stretch),
  shrunk towards zero while few runners exist,
* plus ``g * (z - mean trend at i of those runners)``, where ``g`` is the least-squares slope of
  residuals on trend at ``i`` over every runner so far (a runner slowing down keeps slowing),
* and the variance of that estimate.

Window statistics are cached per pace bin and recomputed once the number of runners used (or
those in the bin) has grown by ``refresh`` (a factor): ``add`` is O(log n) plus O(k), ``offset``
is a dictionary look-up most of the time.

How the intervals built on them have turned out is kept by
:mod:`livetrack.domain.predict_calibration`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sortedcontainers import SortedList

from livetrack.domain.predict_grid import quantile
from livetrack.domain.predict_undo import Journal

_EDGE = -(2**62)
"""Cache key of queries at or beyond the cut (they all use the runners just below it)."""
_CLIP_RESIDUAL = 0.15
"""Largest residual (log ratio) counted, either way, in the trend regression and in an
offset's window: a passing misread by the timing (a runner timed at 15K seventeen minutes
after the start, in a marathon) would otherwise set, while it is the only runner on a
stretch, the offset of everyone behind."""
_CLIP_TREND = 0.5
_CLIP_SCALED = 3.0
"""Largest scaled residual counted in a runner's variability (half-widths)."""


SCALED_PER_UNIT = 20
SCALED_BINS = 200
MIN_FACTOR = 0.2
"""Least calibration factor of an interval side (keeps low <= median <= high)."""


def histogram_quantile(counts: list[int], rank: float) -> float:
    """Value at ``rank`` (0..total) of a histogram with bins of 1/SCALED_PER_UNIT from 0."""
    seen = 0
    for b, c in enumerate(counts):
        if seen + c >= rank and c:
            return (b + (rank - seen) / c) / SCALED_PER_UNIT
        seen += c
    return len(counts) / SCALED_PER_UNIT


class _Window:
    __slots__ = ("anomaly", "delta", "due_bin", "due_n", "high", "low", "mean_x", "trends", "var")

    def __init__(
        self,
        delta: float,
        var: float,
        mean_x: float,
        trends: list[float],
        due_n: float,
        spread: tuple[float, float],
    ) -> None:
        self.delta = delta
        self.low, self.high = spread
        self.var = var
        self.mean_x = mean_x
        self.trends = trends
        self.due_n = due_n
        self.due_bin = 0.0
        self.anomaly = 0.0


class SegmentOffsets:
    """Residuals of today's runners on one segment; see the module docstring.

    ``pace_drift`` is the extra variance per squared unit of log pace between a query and the
    runners it borrows from: it widens intervals while only much faster runners have covered
    the segment. ``journal``: where the changes are written down to be undone
    (:mod:`~livetrack.domain.predict_undo`).
    """

    def __init__(
        self,
        start: int,
        *,
        window: int = 100,
        shrink: float = 4.0,
        bin_width: float = 0.01,
        refresh: float = 1.15,
        pace_drift: float = 0.0006,
        prior_n: float = 20.0,
        journal: Journal | None = None,
    ) -> None:
        self._start = start
        self._journal = journal
        self._points: SortedList = SortedList()
        self._seq = 0
        self._cut = -math.inf
        self._cut_n = 0
        self._window = window
        self._shrink = shrink
        self._inv_bin = 1.0 / bin_width
        self._refresh = refresh
        self._drift = pace_drift
        self._prior_n = prior_n
        self._cache: dict[int, _Window] = {}
        self._bin_counts: dict[int, int] = {}
        self._scaled = [0] * SCALED_BINS
        self._n_scaled = 0
        self._sum_abs = 0.0
        self._ratio = 1.0
        self._ratio_due = 0.0
        # regression of clipped residuals on trends at each checkpoint 0..start
        self._n = 0
        self._sum_r = 0.0
        self._sz = [0.0] * (start + 1)
        self._szz = [0.0] * (start + 1)
        self._szr = [0.0] * (start + 1)
        self._slopes = [0.0] * (start + 1)
        self._slope_due = [0.0] * (start + 1)

    def __len__(self) -> int:
        return len(self._points)

    def add(
        self,
        x: float,
        residual: float,
        scaled: float,
        trends: Sequence[float],
        anomaly: float = 0.0,
    ) -> None:
        """Record one runner.

        ``x``: log pace at the segment start; ``residual``: its log ratio minus the model's
        median; ``scaled``: the residual in units of the model's interval half-width on that
        side (1 = on the bound); ``trends``: its pacing trend at checkpoints ``0..start``;
        ``anomaly``: how much of the model's median for the segment its trend at the start
        accounts for beyond the trend usual there at its pace (see :meth:`offset`).
        """
        zs = tuple(trends[: self._start + 1])
        point = (x, residual, self._seq + 1, zs, anomaly)
        scaled_bin = min(SCALED_BINS - 1, int(abs(scaled) * SCALED_PER_UNIT))
        key = math.floor(x * self._inv_bin)
        in_bin = self._bin_counts.get(key, 0)
        log = self._journal.log if self._journal is not None else None
        if log is not None:
            log.append(
                (
                    self._unadd,
                    (
                        point,
                        scaled_bin,
                        key,
                        in_bin,
                        self._sum_r,
                        self._sum_abs,
                        self._sz,
                        self._szz,
                        self._szr,
                    ),
                )
            )
            self._sz, self._szz, self._szr = list(self._sz), list(self._szz), list(self._szr)
        self._seq += 1
        self._points.add(point)
        if x < self._cut:
            self._cut_n += 1
        self._scaled[scaled_bin] += 1
        self._n_scaled += 1
        self._sum_abs += min(abs(scaled), _CLIP_SCALED)
        self._bin_counts[key] = in_bin + 1
        r = max(-_CLIP_RESIDUAL, min(_CLIP_RESIDUAL, residual))
        self._n += 1
        self._sum_r += r
        sz, szz, szr = self._sz, self._szz, self._szr
        for i, z in enumerate(zs):
            sz[i] += z
            szz[i] += z * z
            szr[i] += z * r

    def _unadd(
        self,
        point: tuple[float, float, int, tuple[float, ...], float],
        scaled_bin: int,
        key: int,
        in_bin: int,
        sum_r: float,
        sum_abs: float,
        sz: list[float],
        szz: list[float],
        szr: list[float],
    ) -> None:
        """Undo :meth:`add` of ``point`` (the values it changed, as they were)."""
        self._points.remove(point)
        self._seq -= 1
        self._cut = math.nan  # the count below the cut is counted again when next asked
        self._scaled[scaled_bin] -= 1
        self._n_scaled -= 1
        if in_bin:
            self._bin_counts[key] = in_bin
        else:
            del self._bin_counts[key]
        self._n -= 1
        self._sum_r = sum_r
        self._sum_abs = sum_abs
        self._sz, self._szz, self._szr = sz, szz, szr

    def variability(self, scaled: float) -> float:
        """The size of a runner's residual ``scaled`` (as given to :meth:`add`) relative to the
        mean size of the runners' so far, both clipped at :data:`_CLIP_SCALED`: 1 on
        average."""
        mean = self._sum_abs / self._n_scaled if self._n_scaled else 0.0
        return min(abs(scaled), _CLIP_SCALED) / mean if mean > 0.0 else 1.0

    def spread_ratio(self, store: bool = True) -> float:
        """How much wider today's spread is than the model's: the 80% quantile of the scaled
        residuals, shrunk towards 1 while few runners exist.

        ``store``: keep a value recomputed for later calls. Queries that must leave no trace
        (so that what is kept depends only on the runners added and the queries made while
        adding them) pass False; see :class:`~livetrack.domain.predict.Predictor`."""
        n = self._n_scaled
        if n >= self._ratio_due:
            m = histogram_quantile(self._scaled, 0.8 * n) if n else 1.0
            ratio = (n * m + self._prior_n) / (n + self._prior_n)
            if not store:
                return ratio
            log = self._journal.log if self._journal is not None else None
            if log is not None:
                log.append((self._unratio, (self._ratio, self._ratio_due)))
            self._ratio = ratio
            self._ratio_due = n * self._refresh + 2
        return self._ratio

    def _unratio(self, ratio: float, due: float) -> None:
        self._ratio, self._ratio_due = ratio, due

    def trend_slope(self, i: int, store: bool = True) -> float:
        """Slope of residuals on the trend at checkpoint ``i``, shrunk while few runners
        (``store`` as for :meth:`spread_ratio`)."""
        n = self._n
        if n < self._slope_due[i]:
            return self._slopes[i]
        slope = self._slope(i)
        if store:
            log = self._journal.log if self._journal is not None else None
            if log is not None:
                log.append((self._unslope, (i, self._slopes[i], self._slope_due[i])))
            self._slope_due[i] = n * 1.02 + 1
            self._slopes[i] = slope
        return slope

    def _unslope(self, i: int, slope: float, due: float) -> None:
        self._slopes[i], self._slope_due[i] = slope, due

    def _slope(self, i: int) -> float:
        n = self._n
        if n < 10:
            return 0.0
        mz = self._sz[i] / n
        var = self._szz[i] / n - mz * mz
        cov = self._szr[i] / n - mz * self._sum_r / n
        return cov / (var + 1e-4) * n / (n + 50.0)

    def offset(
        self, x: float, x_cut: float, i: int, z: float, store: bool = True
    ) -> tuple[float, float, float, float, float, float] | None:
        """(offset, variance of the offset, lower and upper 80% half-width of the residuals
        around it, log pace of the query minus the mean of the runners used, and the mean
        ``anomaly`` of those runners) for a runner of log pace ``x`` and trend ``z`` at
        checkpoint ``i`` (``i <= start``); ``None`` without data.

        The anomaly is what the offset leaves out for a runner still short of the segment:
        the model's median for it already follows each runner's trend at its start, so a
        whole field slowing (a warm day) shows there as steeper trends more than as
        residuals, and a runner further back, whose trend there is not known yet, is owed
        that part too.

        Only runners with log pace below ``x_cut`` are used: slower ones may not all have
        covered the segment yet, and those who have are the quick ones (a biased sample).
        ``store`` as for :meth:`spread_ratio`.
        """
        if x_cut == self._cut:
            n = self._cut_n
        else:
            n = self._cut_n = self._points.bisect_left((x_cut,))
            self._cut = x_cut
        if n == 0:
            return None
        if x >= x_cut:
            key = _EDGE
            in_bin = 0
        else:
            key = math.floor(x * self._inv_bin)
            in_bin = self._bin_counts.get(key, 0)
        win = self._cache.get(key)
        if win is None or n >= win.due_n or in_bin >= win.due_bin:
            win = self._compute(x, n)
            win.due_bin = in_bin * self._refresh + 1
            if store:
                log = self._journal.log if self._journal is not None else None
                if log is not None:
                    log.append((self._uncache, (key, self._cache.get(key))))
                self._cache[key] = win
        shift = win.delta
        if z or win.trends[i]:
            shift += self.trend_slope(i, store) * (z - win.trends[i])
        dx = x - win.mean_x
        return shift, win.var + self._drift * dx * dx, win.low, win.high, dx, win.anomaly

    def _uncache(self, key: int, win: _Window | None) -> None:
        if win is None:
            del self._cache[key]
        else:
            self._cache[key] = win

    def _compute(self, x: float, n: int) -> _Window:
        w = self._window
        pos = self._points.bisect_left((x,))
        lo = max(0, min(pos - w // 2, n - w))
        window = self._points[lo : min(n, lo + w)]
        m = len(window)
        clip = _CLIP_RESIDUAL
        residuals = sorted(max(-clip, min(clip, p[1])) for p in window)
        mean_x = sum(p[0] for p in window) / m
        anomaly = sum(p[4] for p in window) / m
        trends = [sum(p[3][i] for p in window) / m for i in range(self._start + 1)]
        median = quantile(residuals, 0.5)
        q10 = quantile(residuals, 0.1)
        q90 = quantile(residuals, 0.9)
        if m < 5:
            q10 = min(q10, median - 0.01)
            q90 = max(q90, median + 0.01)
        sd = (q90 - q10) / 2.56
        delta = median * m / (m + self._shrink)
        inflate = 1.0 + 2.0 / math.sqrt(m)
        spread = ((median - q10) * inflate, (q90 - median) * inflate)
        win = _Window(delta, 1.57 * sd * sd / m, mean_x, trends, n * self._refresh + 2, spread)
        win.anomaly = anomaly * m / (m + self._shrink)
        return win

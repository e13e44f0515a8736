"""Finish-time (and any later checkpoint) prediction for runners in a live race.

Model, for a runner whose last passing is checkpoint ``i`` at elapsed ``t_i``, asked about a
later checkpoint ``j``; all ratios are in log space::

    log(t_j / t_i) = H_ij(x, z) + sum over segments k of i..j of D_k(x)

* ``x`` is the runner's log pace at ``i`` and ``z`` its pacing trend there: log of (pace since
  an earlier checkpoint at least a tenth of the course back) / (average pace so far).
* ``H_ij`` gives the 10/50/90% quantiles of the ratio among earlier editions' runners nearest
  in (pace, trend) (:class:`~livetrack.domain.predict_grid.QuantileGrid`). Without history, or
  where history has no comparable runner, it is a prior (a runner beyond the range of the
  history's paces gets a blend, all prior a standard deviation beyond it: the edge of a
  history, e.g. the slowest finishers of an edition cut short, says little about runners
  further out): even pace slowing quadratically over
  the course, by 12% per marathon distance at the finish (median ratio ``(d_j / d_i) *
  (1 + a f_j^2 / 3) / (1 + a f_i^2 / 3)``, ``f`` the share of the course, ``a`` = 0.12 times the
  course length in marathons), with an interval proportional to the share of the time still
  to run and to the square root of the share of the course at ``j`` (later stretches spread
  more), wider for longer races (as the 0.3 power of the length).
* ``D_k`` is today's correction on segment ``k -> k+1``: the median residual (today's ratio minus
  ``H``'s median) of the runners nearest in pace who have already run that segment, adjusted
  by a slope on the trend at ``i`` fitted over today's runners
  (:class:`~livetrack.domain.predict_field.SegmentOffsets`). Late segments are thus learned from
  the runners ahead, whatever the history says. Only runners of a pace that has (nearly) all
  reached ``k+1`` by the latest elapsed time observed are used, since the first arrivals of a
  pace are its quick ones. Without history, a runner with nobody ahead extends today's offset on
  the segment just run to the rest of the course. A runner timed at ``a`` and then ``b`` but not
  between (an untimed station, a missed mat) counts on each segment between with the model's
  ratio plus a share of the residual over ``a..b`` proportional to the segment's Riegel ratio.
  With history, each segment ahead of ``i`` (not the one starting there) also adds half of
  today's trend anomaly there: how much of ``H``'s median for the segment the trends of the
  runners who ran it account for, beyond the trend usual at their pace in the history. A
  field slowing more than its history (a warm day) shows on the late segments mostly as
  steeper trends, which ``H`` follows runner by runner, so their residuals stay small; a
  runner further back, whose trend there is not known yet, is owed that part (all of it
  would count twice what the runner's own trend at ``i`` already carries).
* The reference 80% interval is ``H``'s 10%..90% spread around the corrected median, scaled by
  the runner's own variability and widened by the uncertainty of the corrections: few runners;
  offsets borrowed from runners of another pace, the more so the more today's runners of this
  pace have strayed from the model on the segments behind them; and with history, a day-to-day
  shift on segments nobody has run yet of that same size; and with history, on the side it
  points to, twice today's shift on the segments ahead (added in quadrature; the offsets plus
  anomalies found there, summed, each counted by how much slower the runner is than the runners
  who ran the segment, in units of 0.2 in log pace, at most 1): a runner slower than those who
  lost time on a segment may lose up to twice as much. The runner's variability is the mean size
  of its residuals on the segments it has run (less today's offset, in units of the model's
  half-width), each relative to the mean size of the field's there, pooled with three segments
  of the typical size 1: a runner whose splits have swung finishes further from any prediction
  (on Boston 2015, from 30K the fifth of the field with the steadiest splits finishes within
  half the spread of the least steady fifth). Where the prior stands alone (no comparable runner
  in the history), that typical size grows for runners slower than 5:05 per km (by 2.5 per unit
  of log pace beyond, at most 2): in a marathon the finishes of the slower part of the field
  spread about twice as far from their 5K times as the rest.
* Calibration, online: its half-widths below and above the median are multiplied by factors
  learned from how earlier predictions from the same checkpoint turned out
  (:class:`~livetrack.domain.predict_calibration.Calibration`), so that each side leaves out 10%. A
  runner followed from checkpoint ``i`` is checked at later checkpoints ``m`` (``i+1``, ``i+2``,
  ``i+4``... and the finish) once the upper bound of its prediction, prorated to ``m``, has
  passed (so that slow runners are not missed while fast ones count: which runners are
  scored does not depend on how they did); its news is the revision of its predicted finish
  from ``i`` to ``m`` plus the interval still open at ``m`` (nothing once finished), counted
  by the share of the remaining course it covers; the interval still open counts as ``m``'s
  calibration has it when the factors are worked out (not when the news came), so what the
  runners further on have taught ``m`` reaches ``i`` as well. This calibrates the finish
  intervals long before anybody finishes, from the part of the course the field has run so
  far, and the finish itself takes over as runners finish. Until then (and weighted in while
  little is known) the factors are 1, or with history today's spread relative to ``H`` on the
  segments still ahead, each segment counting by the runners who have covered it (a handful of
  leaders, all alike, say little about the field; a segment nobody has covered counts as 1).

Elapsed times are taken as comparable across runners (a common start or chip times from
start waves close together): "the latest elapsed time observed" stands for the race clock.

Everything is incremental: ``observe`` is O(log n) in the number of passings (a bounded number
of runners per checkpoint are followed for calibration) and ``estimate`` is a handful of
dictionary look-ups. The predictor reads no clock and does no I/O.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence

from sortedcontainers import SortedList

from livetrack.domain.predict_calibration import Calibration
from livetrack.domain.predict_estimate import RunnerEstimates
from livetrack.domain.predict_field import SegmentOffsets
from livetrack.domain.predict_model import FINISH, Estimate, Pending, Track
from livetrack.domain.predict_model import RIEGEL_EXPONENT as RIEGEL_EXPONENT
from livetrack.domain.predict_undo import Journal, Key, Undo

__all__ = ["FINISH", "REWIND", "Estimate", "Predictor"]

REWIND = 20_000
"""Latest observations a predictor can undo (:meth:`Predictor.undo`): a passing arriving
later than that costs a replay from the start instead."""


_DUE_FACTOR = 1.5
"""A runner followed for calibration is checked once the upper bound of its prediction,
with its half-width times this, has passed."""
_SAMPLES_PER_CHECKPOINT = 1000
"""Runners followed per checkpoint for calibration: every one until this many have passed
it, then every 2nd, 4th... (those no longer followed are dropped), evenly over the field."""


class Predictor(RunnerEstimates):
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
        super().__init__(checkpoints, history)
        n, dists = self._n, self._dist
        self._journal = Journal(REWIND)
        self._segments = [SegmentOffsets(k, journal=self._journal) for k in range(n - 1)]
        self._calibration = [Calibration(self._journal) for _ in range(n)]
        self._pending: SortedList = SortedList()
        self._seq = 0
        self._passed_count = [0] * n
        self._stride = [1] * n
        self._progress = [
            [(dists[m] - dists[i]) / (dists[-1] - dists[i]) if m > i else 0.0 for m in range(n)]
            for i in range(n)
        ]
        self._floor = [
            [math.log1p(0.5 * (dists[m] - dists[i]) / dists[i]) for m in range(n)] for i in range(n)
        ]
        self._share = [
            [self._prior(i, m)[1] / self._prior(i, n - 1)[1] if m > i else 0.0 for m in range(n)]
            for i in range(n)
        ]

    def fresh(self) -> Predictor:
        """A predictor on the same course and history that has observed nothing: it shares
        this one's history and what is derived from it alone (read-only, or caches of pure
        functions of it), so it costs no rebuilding of those."""
        new = copy.copy(self)
        n = self._n
        new._journal = journal = Journal(REWIND)
        new._segments = [SegmentOffsets(k, journal=journal) for k in range(n - 1)]
        new._runners = {}
        new._now = 0.0
        new._log_now = 0.0
        new._version = 0
        new._store = True
        new._calibration = [Calibration(journal) for _ in range(n)]
        new._pending = SortedList()
        new._seq = 0
        new._passed_count = [0] * n
        new._stride = [1] * n
        return new

    def shed(self, runners: int) -> bool:
        """Let go of the record of what can be undone for up to ``runners`` observations,
        or with none left of up to ``runners`` runners' state (or, with none left, of one
        segment's or the calibration's): a predictor no longer used is freed a bounded piece
        at a time instead of all at once. Returns whether anything is left to let go of."""
        if self._journal.forget(runners):
            return True
        for _ in range(min(runners, len(self._runners))):
            self._runners.popitem()
        if self._runners:
            return True
        if self._segments:
            self._segments.pop()
            return True
        self._calibration, self._pending = [], SortedList()
        return False

    def undoable(self) -> Key | None:
        """The oldest observation :meth:`undo` can reach back to, as ``(elapsed seconds,
        runner, checkpoint index)`` (None: none)."""
        return self._journal.first()

    def undo(self) -> Key | None:
        """Undo the latest observation: the predictor is then exactly what it was before
        observing it (so observing in race order from there gives what observing from the
        start would). Returns the latest observation still in effect, as
        :meth:`undoable`'s (None: none). Raises ``IndexError`` if there is nothing to undo."""
        return self._journal.undo()

    # -- public API ---------------------------------------------------------------------------

    @property
    def checkpoint_names(self) -> list[str]:
        """Checkpoint names in course order."""
        return list(self._names)

    def observe(self, runner_id: str, checkpoint: str, elapsed_s: float) -> None:
        """Record one passing (elapsed seconds since the runner's start).

        Calls are expected in race order. A repeated passing of the same checkpoint is ignored.
        Raises ``KeyError`` for an unknown checkpoint, ``ValueError`` for a non-positive time.
        The latest :data:`REWIND` observations can be undone (:meth:`undo`).
        """
        c = self._checkpoint_index(checkpoint)
        t = float(elapsed_s)
        if not (t > 0.0 and math.isfinite(t)):
            raise ValueError(f"elapsed time must be positive and finite, got {elapsed_s!r}")
        journal = self._journal
        log = journal.begin((t, runner_id, c))
        try:
            self._observe(runner_id, c, t, log)
        finally:
            journal.end()

    def _observe(self, runner_id: str, c: int, t: float, log: list[Undo] | None) -> None:
        r = self._runners.get(runner_id)
        if log is not None:
            log.append(
                (
                    self._unobserve,
                    (
                        runner_id,
                        None if r is None else r.state(),
                        self._now,
                        self._log_now,
                        self._version,
                        c,
                        self._passed_count[c],
                        self._stride[c],
                    ),
                )
            )
        if r is None:
            r = self._runners[runner_id] = Track(self._n)
        if r.times[c] is not None:
            return
        r.times[c] = t
        if t > self._now:
            self._now = t
            self._log_now = math.floor(math.log(t) * 2000.0) / 2000.0
            pending = self._pending
            while pending and pending[0][0] <= t:
                entry = pending.pop(0)
                if log is not None:
                    log.append((pending.add, (entry,)))
                self._commit(entry)
        x = math.log(t / self._dist[c])
        z = self._trend(r.times, c)
        r.xs[c] = x
        r.zs[c] = z
        self._version += 1
        if r.late:
            late, r.late = r.late, []
            for entry in late:
                self._commit(entry)
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
        elif 0 <= prev < c - 1:
            self._add_gap(r, prev, c)
        if c != self._finish:
            finish = self._finish
            raw = self._raw(r, finish)
            r.raws[c] = raw
            mid, lo, hi, model = raw
            below, above = self._factors(c, model)
            r.version = self._version
            made = r.made[c] = self._interval(c, finish, t, mid, lo * below, hi * above)
            r.cached = (finish, made)
            count = self._passed_count[c] = self._passed_count[c] + 1
            stride = self._stride[c]
            if count % stride == 0:
                if count // stride > _SAMPLES_PER_CHECKPOINT:
                    stride = self._stride[c] = 2 * stride
                    self._calibration[c].thin(stride)
                if count % stride == 0:
                    self._schedule(r, c, c + 1, count, mid + _DUE_FACTOR * hi * above)

    def _unobserve(
        self,
        runner_id: str,
        state: tuple[object, ...] | None,
        now: float,
        log_now: float,
        version: int,
        c: int,
        passed: int,
        stride: int,
    ) -> None:
        """Undo what observing a passing of ``runner_id`` at ``c`` changed of the predictor
        and the runner (the rest undoes itself: see :mod:`~livetrack.domain.predict_undo`)."""
        if state is None:
            del self._runners[runner_id]
        else:
            self._runners[runner_id].restore(state)
        self._now, self._log_now, self._version = now, log_now, version
        self._passed_count[c], self._stride[c] = passed, stride

    def _schedule(self, r: Track, i: int, m: int, key: int, up: float) -> None:
        """Queue the check of runner r's progress from i to m, due once the upper bound of
        its finish prediction from i (log ratio ``up``), prorated to m, has passed."""
        t_i = r.times[i]
        assert t_i is not None
        due = t_i * math.exp(up * self._share[i][m])
        self._seq += 1
        entry = (due, self._seq, r, i, m, key, up)
        self._pending.add(entry)
        log = self._journal.log
        if log is not None:
            log.append((self._unschedule, (entry,)))

    def _unschedule(self, entry: Pending) -> None:
        self._pending.remove(entry)
        self._seq -= 1

    def _commit(self, entry: Pending) -> None:
        """Score the finish prediction made at i for runner r against where r has got by m:
        the finish itself, or the finish prediction made at m with its interval."""
        _, _, r, i, m, key, up = entry
        if key % self._stride[i]:
            return
        t_m = r.times[m]
        raw_m = r.raws[m] if m != self._finish else None
        if t_m is None or (raw_m is None and m != self._finish):
            if r.last > m:
                self._schedule(r, i, m + 1, key, up)
            else:
                r.late.append(entry)
                log = self._journal.log
                if log is not None:
                    log.append((r.late.pop, ()))
            return
        t_i = r.times[i]
        raw_i = r.raws[i]
        assert t_i is not None and raw_i is not None
        mid, lo, hi = raw_i[0], raw_i[1], raw_i[2]
        if raw_m is None:
            v = math.log(t_m / t_i) - mid
            r_lo = r_hi = model = 0.0
        else:
            v = math.log(t_m / t_i) + raw_m[0] - mid
            r_lo, r_hi, model = raw_m[1] / lo, raw_m[2] / hi, raw_m[3]
        s = v / hi if v > 0 else v / lo
        self._calibration[i].update(key, s, r_lo, r_hi, self._progress[i][m], m, model)
        if m != self._finish:
            self._schedule(r, i, min(self._finish, 2 * m - i), key, up)

    def _add_gap(self, r: Track, a: int, b: int) -> None:
        """Runner r passed a and then b, not the checkpoints between (untimed or missed): each
        segment between gets the model's ratio plus a share of the residual over the whole
        stretch, in proportion to its Riegel ratio, at the pace interpolated there."""
        t_a, t_b = r.times[a], r.times[b]
        assert t_a is not None and t_b is not None
        if t_b <= t_a:
            return
        medians = [self._base(k, k + 1, r.xs[a], r.zs[a])[1] for k in range(a, b)]
        riegel = self._seg_riegel[a:b]
        excess = (math.log(t_b / t_a) - sum(medians)) / sum(riegel)
        t = t_a
        for k, median, share in zip(range(a, b), medians, riegel, strict=True):
            if k > a:
                r.xs[k] = math.log(t / self._dist[k])
                r.zs[k] = r.zs[a]
            y = median + excess * share
            self._add_segment(r, k, y)
            t *= math.exp(y)

    def _add_segment(self, r: Track, k: int, y: float) -> None:
        """Today's runner r covered segment k -> k+1 with log ratio y."""
        res, scaled, found, median = self._segment_news(r, k, y, True)
        if found is not None:
            riegel = self._seg_riegel[k]
            r.dev += found[0] * found[0]
            r.dev_w += riegel * riegel
        seg = self._segments[k]
        seg.add(r.xs[k], res, scaled, r.zs, self._anomaly(r, k, median))
        r.vol += seg.variability(scaled)
        r.vol_n += 1

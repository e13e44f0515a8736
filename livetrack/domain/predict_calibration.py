"""How the finish predictions made at one checkpoint have turned out so far.

:class:`Calibration` keeps, for one checkpoint, how the finish predictions made there have
turned out so far for a sample of runners, and the factors that make those intervals cover
80%; :func:`blend` mixes them with the model's own multiple while little is known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from livetrack.domain.predict_field import MIN_FACTOR
from livetrack.domain.predict_undo import Journal

_Sample = tuple[float, float, float, float, int, float]
"""(revision s, lower and upper model half-width at the checkpoint reached over those at the
checkpoint of the prediction, weight, checkpoint reached, model multiple there)."""

CALIBRATION_PRIOR_N = 12.0
"""Weight, in finish-equivalents, of the model's own spread against realised errors."""


def blend(factors: tuple[float, float, float], model: float) -> tuple[float, float]:
    """Multiples (below, above) of a checkpoint's reference half-widths: its calibration's
    ``factors`` (:meth:`Calibration.factors`), blended with the model's own multiple while
    little is known."""
    weight, below, above = factors
    prior = CALIBRATION_PRIOR_N
    return (
        (weight * below + prior * model) / (weight + prior),
        (weight * above + prior * model) / (weight + prior),
    )


class Calibration:
    """How far off earlier finish predictions from one checkpoint turned out, for the runners
    followed there.

    Each sample is the latest news of one runner: the revision ``s`` of its predicted finish
    from the checkpoint to the furthest checkpoint it has since reached (or to its finish
    time), in units of the predicted half-width on its side (negative: earlier); the
    half-widths of the interval still open there, ``e_lo`` and ``e_hi`` in the same units (0
    once finished), as that checkpoint's calibration has them now (the sample keeps the model's
    half-widths there; the calibration of a later checkpoint learns from runners who got further,
    so a revision counts with what is known of the rest); and a weight, the share of the
    remaining course the revision covers. ``factors()`` combines them into the multiples of the
    half-widths below and above the median that leave out 10% on each side: ``median(s) +
    sqrt((q90(s) - median(s))^2 + mean(e_hi^2))`` above, likewise below (the quantiles of
    revision plus what is still open, taken as independent), where every quantile and mean
    counts each sample by its weight (a runner just past the checkpoint tells less than a
    finished one); recomputed once a tenth of the samples have changed.
    """

    __slots__ = ("_due", "_factors", "_journal", "_samples", "_updates")

    def __init__(self, journal: Journal | None = None) -> None:
        self._journal = journal
        self._samples: dict[int, _Sample] = {}
        self._updates = 0
        self._due = 0.0
        self._factors = (0.0, 1.0, 1.0)

    def __len__(self) -> int:
        return len(self._samples)

    def update(
        self, key: int, s: float, r_lo: float, r_hi: float, weight: float, at: int, model: float
    ) -> None:
        """Record (or replace) the sample ``key``: revision ``s``, the model's half-widths at
        checkpoint ``at`` over the prediction's (``r_lo``, ``r_hi``; 0 at the finish), the
        model's multiple at ``at``."""
        log = self._journal.log if self._journal is not None else None
        if log is not None:
            log.append((self._unupdate, (key, self._samples.get(key), self._updates)))
        self._samples[key] = (s, r_lo, r_hi, weight, at, model)
        self._updates += 1

    def _unupdate(self, key: int, sample: _Sample | None, updates: int) -> None:
        if sample is None:
            del self._samples[key]
        else:
            self._samples[key] = sample
        self._updates = updates

    def thin(self, stride: int) -> None:
        """Drop the samples whose key is not a multiple of ``stride``."""
        log = self._journal.log if self._journal is not None else None
        if log is not None:
            log.append((self._unthin, (dict(self._samples), self._due)))
        for key in [k for k in self._samples if k % stride]:
            del self._samples[key]
        self._due = 0.0

    def _unthin(self, samples: dict[int, _Sample], due: float) -> None:
        self._samples, self._due = samples, due

    def _unfactors(self, factors: tuple[float, float, float], due: float) -> None:
        self._factors, self._due = factors, due

    def factors(
        self, later: Sequence[Calibration], store: bool = True
    ) -> tuple[float, float, float]:
        """(total weight, below, above); (0, 1, 1) while empty. Factors >= MIN_FACTOR.
        ``later``: the calibrations of every checkpoint (those of the checkpoints the samples
        reached are asked). ``store``: keep a recomputed value for later calls (see
        :meth:`~livetrack.domain.predict_field.SegmentOffsets.spread_ratio`)."""
        if self._updates < self._due:
            return self._factors
        m = len(self._samples)
        if not m:
            return self._factors
        # each runner counts by how much of its outcome is known (its weight); what is still
        # open counts as the calibration of the checkpoint reached has it now
        reached: dict[int, tuple[float, float, float]] = {}
        samples = []
        for s, r_lo, r_hi, w, at, model in self._samples.values():
            if r_lo or r_hi:
                f = reached.get(at)
                if f is None:
                    f = reached[at] = later[at].factors(later, store)
                below, above = blend(f, model)
                e_lo, e_hi = r_lo * below, r_hi * above
            else:
                e_lo = e_hi = 0.0
            samples.append((s, e_lo * e_lo, e_hi * e_hi, w))
        weight = sum(p[3] for p in samples)
        if weight <= 0.0:
            return self._factors
        ordered = sorted((p[0], p[3]) for p in samples)
        e_lo = math.sqrt(sum(p[1] * p[3] for p in samples) / weight)
        e_hi = math.sqrt(sum(p[2] * p[3] for p in samples) / weight)
        q10, med, q90 = weighted_quantiles(ordered, weight, (0.1, 0.5, 0.9))
        below = -med + math.hypot(med - q10, e_lo)
        above = med + math.hypot(q90 - med, e_hi)
        factors = (weight, max(MIN_FACTOR, below), max(MIN_FACTOR, above))
        if store:
            log = self._journal.log if self._journal is not None else None
            if log is not None:
                log.append((self._unfactors, (self._factors, self._due)))
            self._factors = factors
            self._due = self._updates + max(5.0, 0.1 * m)
        return factors


def weighted_quantiles(
    ordered: list[tuple[float, float]], total: float, levels: tuple[float, ...]
) -> list[float]:
    """Quantiles at ascending ``levels`` of ``(value, weight)`` pairs sorted by value, whose
    weights sum to ``total``: the value at which the running weight, counting each pair at its
    middle, reaches the level (interpolated between neighbours)."""
    out: list[float] = []
    it = iter(levels)
    level = next(it, None)
    seen = 0.0
    prev_v, prev_c = ordered[0][0], 0.0
    for v, w in ordered:
        centre = (seen + 0.5 * w) / total
        while level is not None and centre >= level:
            if centre > prev_c and level > prev_c:
                out.append(prev_v + (v - prev_v) * (level - prev_c) / (centre - prev_c))
            else:
                out.append(v)
            level = next(it, None)
        seen += w
        prev_v, prev_c = v, centre
    while level is not None:
        out.append(ordered[-1][0])
        level = next(it, None)
    return out

"""Scoring the finish-time predictor on a past race (what ``livetrack evaluate-predictions``
prints, :mod:`~livetrack.evaluation.replay`).

Every passing of the evaluated race is fed to :class:`~livetrack.domain.predict.Predictor` in
race order (all passings sorted by elapsed time, i.e. as if every runner started together), and
after each passing the runner's finish estimate is requested. For runners who finished, the
estimate made at each checkpoint is scored against the true finish time; the constant-pace
projection ``elapsed * finish distance / checkpoint distance`` is scored alongside. Non-finishers
are replayed too (they are part of the field) and counted per checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import TextIO

from livetrack.domain.predict import Predictor
from livetrack.evaluation.formats import RaceResults

__all__ = ["CheckpointScore", "evaluate", "evaluate_same_day", "format_table"]


@dataclass(slots=True)
class CheckpointScore:
    """Accumulated scores of the finish estimates made at one checkpoint."""

    name: str
    n: int = 0
    abs_err_s: float = 0.0
    abs_err_pct: float = 0.0
    covered: int = 0
    base_abs_err_s: float = 0.0
    base_abs_err_pct: float = 0.0
    dnf: int = 0

    def add(self, truth: float, seconds: float, low: float, high: float, baseline: float) -> None:
        """Score one estimate (and its baseline) against the true finish time."""
        self.n += 1
        err = abs(seconds - truth)
        self.abs_err_s += err
        self.abs_err_pct += 100.0 * err / truth
        self.covered += low <= truth <= high
        base = abs(baseline - truth)
        self.base_abs_err_s += base
        self.base_abs_err_pct += 100.0 * base / truth

    def merge(self, other: CheckpointScore) -> None:
        """Add the scores of ``other`` (the same checkpoint, another part of the field):
        every field but the name is a sum."""
        for f in fields(self):
            if f.name != "name":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def mae_min(self) -> float:
        return self.abs_err_s / self.n / 60.0 if self.n else float("nan")

    @property
    def base_mae_min(self) -> float:
        return self.base_abs_err_s / self.n / 60.0 if self.n else float("nan")

    @property
    def coverage_pct(self) -> float:
        return 100.0 * self.covered / self.n if self.n else float("nan")


def evaluate(
    race: RaceResults,
    history: list[tuple[float | None, ...]] | None = None,
    *,
    progress: TextIO | None = None,
) -> list[CheckpointScore]:
    """Replay ``race`` through a predictor (with ``history``) and score it per checkpoint.

    Returns one score per checkpoint before the finish, in course order.
    """
    checkpoints = list(race.checkpoints)
    finish = len(checkpoints) - 1
    finish_dist = checkpoints[finish][1]
    predictor = Predictor(checkpoints, history)
    names = [name for name, _ in checkpoints]
    passings: list[tuple[float, int, int]] = []
    for r_idx, runner in enumerate(race.runners):
        for c_idx, t in enumerate(runner.times):
            if t is not None:
                passings.append((t, c_idx, r_idx))
    passings.sort()
    scores = [CheckpointScore(name) for name in names[:finish]]
    total = len(passings)
    step = max(1, total // 20)
    started = time.perf_counter()
    for done, (t, c_idx, r_idx) in enumerate(passings, start=1):
        runner = race.runners[r_idx]
        predictor.observe(runner.runner_id, names[c_idx], t)
        if c_idx != finish:
            est = predictor.estimate(runner.runner_id, "finish")
            truth = runner.finish
            score = scores[c_idx]
            if truth is None:
                score.dnf += 1
            elif est is not None:
                baseline = t * finish_dist / checkpoints[c_idx][1]
                score.add(truth, est.seconds, est.low, est.high, baseline)
        if progress is not None and (done % step == 0 or done == total):
            elapsed = time.perf_counter() - started
            progress.write(f"\rreplayed {done}/{total} passings ({elapsed:.1f} s)")
            if done == total:
                progress.write("\n")
            progress.flush()
    return scores


def evaluate_same_day(
    race: RaceResults, seed: int = 1, *, progress: TextIO | None = None
) -> list[CheckpointScore]:
    """Each half of ``race`` (:meth:`~livetrack.evaluation.formats.RaceResults.halves`)
    replayed with the other half as its history, both scored together: the predictor as it
    would do if its history were this very day, which no live race can give it. What is left
    of its errors then is what the splits (as the model reads them) cannot tell, not what the
    day had in store; the gap to a run with the real history is what the day's conditions
    cost."""
    first, second = race.halves(seed)
    scores = evaluate(first, [r.times for r in second.runners], progress=progress)
    for total, part in zip(
        scores,
        evaluate(second, [r.times for r in first.runners], progress=progress),
        strict=True,
    ):
        total.merge(part)
    return scores


def format_table(scores: list[CheckpointScore]) -> str:
    """The per-checkpoint table: predictor and constant-pace baseline side by side."""
    header = (
        f"{'checkpoint':<20} {'n':>6} {'MAE min':>8} {'MAE %':>6} {'cover80':>7} "
        f"{'base min':>8} {'base %':>6} {'gain':>6} {'DNF':>5}"
    )
    lines = [header, "-" * len(header)]
    for s in scores:
        if s.n:
            gain = 100.0 * (1.0 - s.abs_err_s / s.base_abs_err_s) if s.base_abs_err_s else 0.0
            lines.append(
                f"{s.name:<20} {s.n:>6} {s.mae_min:>8.2f} {s.abs_err_pct / s.n:>6.2f} "
                f"{s.coverage_pct:>6.1f}% {s.base_mae_min:>8.2f} {s.base_abs_err_pct / s.n:>6.2f} "
                f"{gain:>5.0f}% {s.dnf:>5}"
            )
        else:
            lines.append(
                f"{s.name:<20} {0:>6} {'-':>8} {'-':>6} {'-':>7} {'-':>8} {'-':>6} "
                f"{'-':>6} {s.dnf:>5}"
            )
    return "\n".join(lines)

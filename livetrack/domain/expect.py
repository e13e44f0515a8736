"""When a runner is expected at a checkpoint: the one seam every consumer of predictions uses
(runner pages, alerts, the map, marshals' expected and overdue lists, the record watch).

Answers in absolute epoch ms with an 80% range, from the field predictor
(:mod:`livetrack.domain.predict`, fed by the fold); before a runner's first split, from the
field's times to that checkpoint so far.
"""

from __future__ import annotations

from dataclasses import dataclass

from livetrack.domain.state import RaceState, Runner

#: Past the top of its range by this share of the time still to run, a runner is overdue.
OVERDUE_MARGIN = 0.5


@dataclass(frozen=True, slots=True)
class Expected:
    """Expected passing of ``checkpoint`` at ``at_ms`` (80% range ``low_ms``–``high_ms``);
    ``basis`` is ``predictor`` or ``field`` (no split of the runner's own yet); ``updating``:
    the race's predictor is catching up with a passing that arrived late or moved, and this is
    its estimate from before."""

    checkpoint: str
    at_ms: int
    low_ms: int
    high_ms: int
    basis: str = "predictor"
    updating: bool = False


def start_ms(state: RaceState, runner: Runner) -> int | None:
    """The runner's own start: their start-mat passing, else their wave's gun."""
    start = runner.passings.get(runner.race.course.checkpoints[0].id)
    if start is not None:
        return start.time_ms
    return state.gun_ms(runner.race.id, runner.p.wave)


def last_passing(runner: Runner) -> tuple[int, int] | None:
    """(checkpoint index, time) of the furthest checkpoint the runner has passed."""
    cps = runner.race.course.checkpoints
    for i in range(len(cps) - 1, 0, -1):
        p = runner.passings.get(cps[i].id)
        if p is not None:
            return i, p.time_ms
    return None


def expected(state: RaceState, runner: Runner, checkpoint: str) -> Expected | None:
    """When ``runner`` should pass ``checkpoint`` (a later one than their last passing)."""
    cps = runner.race.course.checkpoints
    ids = [cp.id for cp in cps]
    if checkpoint not in ids or runner.status != "ok":
        return None
    target = ids.index(checkpoint)
    begin = start_ms(state, runner)
    last = last_passing(runner)
    if begin is None or (last is not None and last[0] >= target):
        return None
    if last is None:
        return _from_field(state, runner, checkpoint, begin)
    est = state.forecasts.estimate(runner.race.id, runner.bib, checkpoint)
    if est is None:
        return None
    return Expected(
        checkpoint,
        begin + int(est.seconds * 1000),
        begin + int(est.low * 1000),
        begin + int(est.high * 1000),
        updating=state.forecasts.updating(runner.race.id),
    )


def _from_field(state: RaceState, runner: Runner, checkpoint: str, begin: int) -> Expected | None:
    """Before a runner's first split: the field's median time to ``checkpoint`` so far, with
    its 10th-90th percentile as the range; None until somebody has got there."""
    race = runner.race
    mid = state.boards.quantile(race.id, checkpoint, "all", 0.5)
    low = state.boards.quantile(race.id, checkpoint, "all", 0.1)
    high = state.boards.quantile(race.id, checkpoint, "all", 0.9)
    if mid is None or low is None or high is None:
        return None
    base = begin if race.rank_by == "chip" else state.gun_ms(race.id, runner.p.wave) or begin
    return Expected(checkpoint, base + mid, base + low, base + high, "field")


def next_checkpoint(runner: Runner) -> str | None:
    cps = runner.race.course.checkpoints
    last = last_passing(runner)
    index = 0 if last is None else last[0]
    return cps[index + 1].id if index + 1 < len(cps) else None


def overdue_ms(state: RaceState, runner: Runner, checkpoint: str, now_ms: int) -> int | None:
    """How long past its expected time (the top of the range plus a margin) ``runner`` is at
    ``checkpoint``; None when not overdue, already seen, or with no split to go on."""
    if checkpoint in runner.passings:
        return None
    return overdue_by(runner, expected(state, runner, checkpoint), now_ms)


def overdue_by(runner: Runner, exp: Expected | None, now_ms: int) -> int | None:
    """:func:`overdue_ms` for a caller that already has :func:`expected`'s answer for a
    checkpoint the runner has not passed."""
    limit = overdue_from(runner, exp)
    if limit is None or now_ms <= limit:
        return None
    return now_ms - limit


def overdue_from(runner: Runner, exp: Expected | None) -> int | None:
    """The moment after which ``runner`` is overdue at the checkpoint ``exp`` is for (the top
    of its range plus a margin); None with no split of theirs to go on."""
    if exp is None or exp.basis != "predictor":
        return None
    last = last_passing(runner)
    since = exp.high_ms - (last[1] if last else exp.high_ms)
    return exp.high_ms + int(since * OVERDUE_MARGIN)

"""The fold of a championship meet's records: a race run in rounds (draws, heat results,
adjustments) and the judgements at obstacles, with the status an obstacle's disqualification
sets. :class:`~livetrack.domain.state.RaceState` folds them through :class:`MeetFold`.
"""

from __future__ import annotations

from livetrack.domain.derived import DerivedState
from livetrack.domain.meet import MeetRecord, apply_adjust, apply_draw, apply_result, meet_problem
from livetrack.domain.meet_records import DrawRound, HeatResult
from livetrack.domain.obstacles import OUTCOMES, assess, obstacle_at
from livetrack.domain.records import Judgement
from livetrack.domain.runner import (
    PROBLEMS_TOPIC,
    RACES_TOPIC,
    Problem,
    Runner,
    marshal_topic,
    race_topic,
    runner_topic,
)


class MeetFold(DerivedState):
    """How rounds records and judgements change the state."""

    def _rounds(self, record: MeetRecord) -> set[str]:
        """A draw, a heat's result or an adjustment of a race run in rounds."""
        changed_problems = False
        why = meet_problem(self.event, self.meet, record)
        if not why:
            if isinstance(record, DrawRound):
                entries = [
                    (r.bib, r.p.entry_ms)
                    for r in self.runners.values()
                    if r.race.id == record.race and r.status != "DNS"
                ]
                why = apply_draw(self.event, self.meet, record, entries)
            elif isinstance(record, HeatResult):
                rr = self.meet.get(record.race)
                before = rr.results.get((record.round, record.heat)) if rr is not None else None
                why = apply_result(self.event, self.meet, record)
                if rr is not None and rr.results.get((record.round, record.heat)) is record:
                    # it counts: the lines the result it replaced left out are no longer news,
                    # and its own are listed until a result replaces it (nothing to undo)
                    if before is not None and self.problems.pop(before.key, None) is not None:
                        changed_problems = True
                    why = "; ".join([*record.notes, *([why] if why else [])])
                    if why:
                        by = record.by
                        self.problems[record.key] = Problem("rounds", "", "", why, "", by)
                        why = ""
                        changed_problems = True
                elif record.notes:
                    why = "; ".join([*record.notes, *([why] if why else [])])
            else:
                why = apply_adjust(self.event, self.meet, record)
        changed = {race_topic(record.race)} if record.race in self.event.races else set()
        if changed:  # the athletes' cards show their heats, lanes and Q/q
            changed |= {
                runner_topic(b) for b, r in self.runners.items() if r.race.id == record.race
            }
        if why:
            self._problem("rounds", getattr(record, "bib", ""), "", why, record)
            changed.add(PROBLEMS_TOPIC)
        if changed_problems:
            changed.add(PROBLEMS_TOPIC)
        return changed

    def _judgement(self, j: Judgement) -> set[str]:
        runner = self.runners.get(j.bib)
        self.now_ms = max(self.now_ms, j.time_ms)
        if runner is None:
            self._problem("unknown-bib", j.bib, j.point, "a judgement for a bib nobody has", j)
            return {PROBLEMS_TOPIC}
        obstacle = obstacle_at(runner.race.obstacles, j.point)
        if obstacle is None or j.outcome not in OUTCOMES:
            why = f"no obstacle at {j.point} on {runner.race.name}"
            if obstacle is not None:
                why = f"{j.outcome!r} is not one of {', '.join(OUTCOMES)}"
            self._problem("not-an-obstacle", j.bib, j.point, why, j)
            return {PROBLEMS_TOPIC}
        runner.judgements.setdefault(j.point, []).append((j.key, j.outcome))
        runner.history.append(j)
        self._targets[j.key] = j.bib
        runner.penalty = assess(runner.race.obstacles, runner.judgements)
        self._set_status(runner)
        changed = self._refresh(runner, 0, force=True)
        return changed | {runner_topic(j.bib), marshal_topic(j.point), RACES_TOPIC}

    @staticmethod
    def _drop_judgement(runner: Runner, key: str) -> None:
        """Take the judgement ``key`` out (undone): the one before it counts again."""
        for point, items in list(runner.judgements.items()):
            kept = [i for i in items if i[0] != key]
            if len(kept) != len(items):
                if kept:
                    runner.judgements[point] = kept
                else:
                    del runner.judgements[point]
                runner.penalty = assess(runner.race.obstacles, runner.judgements)

    @staticmethod
    def _set_status(runner: Runner) -> None:
        """The latest status set, else ok; an obstacle's disqualification (while no status
        other than ok is set) makes it DQ with the obstacle as the reason."""
        if runner.statuses:
            _, runner.status, runner.status_reason = runner.statuses[-1]
        else:
            runner.status, runner.status_reason = "ok", ""
        if runner.status == "ok" and runner.penalty.dq:
            runner.status, runner.status_reason = "DQ", runner.penalty.dq

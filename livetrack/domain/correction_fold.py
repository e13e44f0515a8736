"""The fold of the records that change what the timing said: corrections (a time set or
voided at a checkpoint), undos of an earlier record and status changes.
:class:`~livetrack.domain.state.RaceState` folds them through :class:`CorrectionFold`.
"""

from __future__ import annotations

from livetrack.domain.meet_fold import MeetFold
from livetrack.domain.records import Correction, StatusChange
from livetrack.domain.runner import (
    PROBLEMS_TOPIC,
    RACES_TOPIC,
    feed_topic,
    race_topic,
    runner_topic,
)


class CorrectionFold(MeetFold):
    """How corrections, undos and status changes change the state."""

    def _refresh_race(self, race_id: str) -> set[str]:
        changed = {RACES_TOPIC, race_topic(race_id), feed_topic(race_id)}
        for runner in self.runners.values():
            if runner.race.id == race_id:
                changed |= self._refresh(runner, 0, force=True)
        return changed

    def _correction(self, c: Correction) -> set[str]:
        if c.kind == "undo":
            return self._undo(c)
        runner = self.runners.get(c.bib)
        if runner is None:
            self._problem("unknown-bib", c.bib, c.point, "correction for an unknown bib", c)
            return {PROBLEMS_TOPIC}
        cps = runner.race.course.checkpoints
        index = next((i for i, cp in enumerate(cps) if cp.id == c.point), None)
        if index is None:
            return set()
        t = None if c.kind == "void" else c.time_ms
        runner.corrections.setdefault(c.point, []).append((c.key, t))
        runner.inputs.overrides[c.point] = (c.key, t)
        runner.history.append(c)
        self._targets[c.key] = c.bib
        return self._refresh(runner, index) | {runner_topic(c.bib)}

    def _undo(self, c: Correction) -> set[str]:
        target = self._targets.get(c.target)
        if target is None and c.target in self.problems and c.target not in self._undone:
            # a record that only raised a problem (e.g. a mistyped bib): undoing it clears it
            self._undone.add(c.target)
            del self.problems[c.target]
            return {PROBLEMS_TOPIC}
        if target is None or c.target in self._undone:
            return set()
        self._undone.add(c.target)
        if target.startswith("gun:"):
            race_id = target[4:]
            for key, entries in self.guns.items():
                if key[0] == race_id:
                    entries[:] = [e for e in entries if e[0] != c.target]
            self._gun_cache.clear()
            return self._refresh_race(race_id)
        runner = self.runners[target]
        runner.history.append(c)
        if runner.inputs.remove_sighting(c.target) is None:
            for cp, items in runner.corrections.items():
                items[:] = [i for i in items if i[0] != c.target]
                if items:
                    runner.inputs.overrides[cp] = items[-1]
                else:
                    runner.inputs.overrides.pop(cp, None)
            runner.statuses = [s for s in runner.statuses if s[0] != c.target]
            self._drop_judgement(runner, c.target)
            self._set_status(runner)
        return self._refresh(runner, 0, force=True) | {runner_topic(target)}

    def _status(self, s: StatusChange) -> set[str]:
        runner = self.runners.get(s.bib)
        if runner is None:
            self._problem("unknown-bib", s.bib, "", "status for an unknown bib", s)
            return {PROBLEMS_TOPIC}
        runner.statuses.append((s.key, s.status, s.reason))
        runner.history.append(s)
        self._targets[s.key] = s.bib
        self._set_status(runner)
        return self._refresh(runner, 0, force=True) | {runner_topic(s.bib), RACES_TOPIC}

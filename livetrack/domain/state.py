"""The fold: ``RaceState.apply(record) -> topics changed``. Pure and synchronous.

Two processes that apply the same records in the same order hold the same state. Time only
comes in on the records; nothing here awaits, reads a clock or touches I/O.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable

from livetrack.domain import topics as tk
from livetrack.domain.derived import DerivedState
from livetrack.domain.event import TimingPoint
from livetrack.domain.meet import MeetRecord, apply_adjust, apply_draw, apply_result, meet_problem
from livetrack.domain.meet_records import DrawRound, HeatResult, RoundAdjust
from livetrack.domain.obstacles import OUTCOMES, assess, obstacle_at
from livetrack.domain.participants import category
from livetrack.domain.passings import Inputs, Passing
from livetrack.domain.ranking import ALL, Move
from livetrack.domain.records import (
    AlertOutcome,
    AlertSent,
    ChipAssign,
    ChipRead,
    Correction,
    GunStart,
    Judgement,
    ParticipantRecord,
    Record,
    Sighting,
    StatusChange,
    Sweep,
    TokenRecord,
)
from livetrack.domain.runner import (
    PROBLEMS_TOPIC,
    RACES_TOPIC,
    UNMATCHED_TOPIC,
    Problem,
    Runner,
    feed_topic,
    map_topic,
    marshal_topic,
    parse_shift,
    race_topic,
    runner_topic,
    shift_topic,
)
from livetrack.domain.topics import board_topic as board_topic
from livetrack.domain.window import outside, read_outside, read_usable

__all__ = [
    "PROBLEMS_TOPIC",
    "RACES_TOPIC",
    "UNMATCHED_TOPIC",
    "Problem",
    "RaceState",
    "Runner",
    "board_topic",
    "feed_topic",
    "map_topic",
    "marshal_topic",
    "parse_shift",
    "race_topic",
    "runner_topic",
    "shift_topic",
]


def _irrelevant(tp: TimingPoint, current: Passing, t: int) -> bool:
    """Whether a new read at ``tp`` at ``t`` cannot change ``current`` (its checkpoint's
    passing): a main passing shadows every backup read, and with ``first`` picking a later
    read never moves a passing of the same stream."""
    if tp.role == "backup":
        if current.source == "chip":
            return True
        return current.source == "backup" and tp.rules.pick == "first" and t >= current.time_ms
    return current.source == "chip" and tp.rules.pick == "first" and t >= current.time_ms


class RaceState(DerivedState):
    """The whole event's live state, derived from the log by :meth:`apply` alone."""

    # -- the fold ----------------------------------------------------------------------------

    def apply(self, record: Record) -> set[str]:
        """Fold one record in; returns the topics whose content changed. A record whose time
        lies outside the event's window (:mod:`livetrack.domain.window`) is skipped and kept as
        a problem."""
        self.applied += 1
        if isinstance(record, ChipRead):
            if not read_usable(self._read_window, record.time_ms, record.received_ms):
                return self._skip(record, read_outside(record.time_ms))
            return self._read(record)
        t = getattr(record, "time_ms", None)
        if isinstance(t, int) and not self._window[0] <= t <= self._window[1]:
            return self._skip(record, outside(self.event, t, self._window))
        if isinstance(record, ParticipantRecord):
            return self._participant(record)
        if isinstance(record, GunStart):
            return self._gun(record)
        if isinstance(record, Sighting):
            return self._sighting(record)
        if isinstance(record, Correction):
            return self._correction(record)
        if isinstance(record, StatusChange):
            return self._status(record)
        if isinstance(record, ChipAssign):
            return self._assign(record)
        if isinstance(record, Sweep):
            self.sweeps[record.point] = record
            self.now_ms = max(self.now_ms, record.time_ms)
            return {marshal_topic(record.point)}
        if isinstance(record, TokenRecord):
            self.tokens[record.token_hash] = record
            return set()
        if isinstance(record, AlertSent):
            self.alerts_sent.add(record.key)
            if record.expires_ms:
                self.alerts_pending[record.key] = record
            return set()
        if isinstance(record, AlertOutcome):
            self.alerts_pending.pop(record.claim, None)
            return set()
        if isinstance(record, DrawRound | HeatResult | RoundAdjust):
            return self._rounds(record)
        if isinstance(record, Judgement):
            return self._judgement(record)
        raise TypeError(f"not a record: {type(record).__name__}")

    def apply_all(
        self,
        records: Iterable[Record],
        on_error: Callable[[int, Exception], None] | None = None,
    ) -> set[str]:
        """Fold many records in log order: the same state, and the same topics in all, as
        :meth:`apply` on each in turn, faster.

        Reads only gather inputs; each runner they touched is re-derived once, from the
        first checkpoint any of them can affect, before the next record of another kind and
        at the end. Passings are a function of a runner's inputs alone, so one re-derivation
        after many reads ends where one per read would have. A passing that appeared and
        moved again within the batch is handed to the forecasts once, at its final time (they
        depend on the passings alone, not on how they were folded).

        ``on_error(i, exc)``: a record that raises is reported and skipped (it may have been
        folded in part, as with :meth:`apply`); without it, the exception propagates."""
        paused = gc.isenabled()
        if paused:  # nothing here makes cycles; the collector would rescan the state often
            gc.disable()
        try:
            return self._apply_all(records, on_error)
        finally:
            if paused:
                gc.enable()

    def _apply_all(
        self, records: Iterable[Record], on_error: Callable[[int, Exception], None] | None
    ) -> set[str]:
        changed: set[str] = set()
        by_chip: dict[str, list[ChipRead]] = {}  # the reads not yet folded, by chip
        by_reader: dict[str, list[ChipRead]] = {}  # the same, by reader
        first = 0  # index of the first of them
        window = self._read_window
        for i, r in enumerate(records):
            if type(r) is ChipRead:
                if not read_usable(window, r.time_ms, r.received_ms):
                    self.applied += 1
                    changed |= self._skip(r, read_outside(r.time_ms))
                    continue
                same = by_chip.get(r.chip)
                if same is None:
                    by_chip[r.chip] = [r]
                    if not by_reader:
                        first = i
                else:
                    same.append(r)
                same = by_reader.get(r.reader)
                if same is None:
                    by_reader[r.reader] = [r]
                else:
                    same.append(r)
                continue
            if by_chip:
                changed |= self._fold_reads(by_chip, by_reader, first, on_error)
                by_chip, by_reader = {}, {}
            try:
                changed |= self.apply(r)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(i, exc)
        if by_chip:
            changed |= self._fold_reads(by_chip, by_reader, first, on_error)
        return changed

    def _fold_reads(
        self,
        by_chip: dict[str, list[ChipRead]],
        by_reader: dict[str, list[ChipRead]],
        first: int,
        on_error: Callable[[int, Exception], None] | None,
    ) -> set[str]:
        """Fold a run of reads (no other records among them), grouped by chip and by reader,
        each group in log order. An error is reported at the run's first index."""
        try:
            return self._gather(by_chip, by_reader)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(first, exc)
            return set()

    def _gather(
        self, by_chip: dict[str, list[ChipRead]], by_reader: dict[str, list[ChipRead]]
    ) -> set[str]:
        changed: set[str] = set()
        dirty: dict[str, int] = {}
        offsets, aliases, point_of = self._offsets, self._aliases, self._point
        chip_reads, owners, runners, feeds = (
            self.reads_by_chip,
            self.chip_owner,
            self.runners,
            self._feeds,
        )
        now = self.now_ms
        for chip, reads in by_chip.items():
            self.applied += len(reads)
            if offsets:
                items = [
                    (
                        aliases.get((r.reader, r.point)) or point_of(r),
                        r.time_ms + offsets.get(r.reader, 0),
                    )
                    for r in reads
                ]
            else:
                items = [
                    (aliases.get((r.reader, r.point)) or point_of(r), r.time_ms) for r in reads
                ]
            known = chip_reads.get(chip)
            if known is None:
                chip_reads[chip] = items
            else:
                known.extend(items)
            bib = owners.get(chip)
            if bib is None:
                latest = max(t for _, t in items)
                if latest > now:
                    now = latest
                self.unmatched[chip] = self.unmatched.get(chip, 0) + len(reads)
                changed.add(UNMATCHED_TOPIC)
                continue
            runner = runners[bib]
            first_index = feeds[runner.race.course.id].first_index
            add = runner.inputs.add_read
            index = dirty.get(bib)
            for point, t in items:
                if t > now:
                    now = t
                if add(point, t):
                    i = first_index.get(point)
                    if i is not None and (index is None or i < index):
                        index = i
            if index is not None:
                dirty[bib] = index
        self.now_ms = now
        for reads in by_reader.values():
            self.readers.observe_many(reads, point_of(reads[-1]))
        if dirty:
            changed |= self._settle(dirty)
        return changed

    def _point(self, r: ChipRead) -> str:
        """The timing point a read counts for (memoised per reader and point as sent)."""
        alias = (r.reader, r.point)
        point = self._aliases.get(alias)
        if point is None:
            point = self._aliases[alias] = self.event.point_for(r.reader, r.point)
        return point

    def _settle(self, dirty: dict[str, int]) -> set[str]:
        """Re-derive each runner in ``dirty`` from its checkpoint index; board entries move in
        bulk."""
        changed: set[str] = set()
        moves: list[Move] = []
        runners = self.runners
        for bib, index in dirty.items():
            changed |= self._refresh(runners[bib], index, moves=moves)
        self.boards.move_many(moves, self.finishers)
        return changed

    def _read(self, r: ChipRead) -> set[str]:
        t = r.time_ms + self._offsets.get(r.reader, 0)
        if t > self.now_ms:
            self.now_ms = t
        point = self._point(r)
        self.readers.observe(r, point)
        self.reads_by_chip.setdefault(r.chip, []).append((point, t))
        bib = self.chip_owner.get(r.chip)
        if bib is None:
            self.unmatched[r.chip] = self.unmatched.get(r.chip, 0) + 1
            return {UNMATCHED_TOPIC}
        runner = self.runners[bib]
        if not runner.inputs.add_read(point, t):
            return set()
        feeds = self._feeds[runner.race.course.id]
        index = feeds.first_index.get(point)
        if index is None:
            return set()
        tp = self.event.points[point]
        single = len(tp.checkpoints) == 1
        if single:
            current = runner.passings.get(runner.race.course.checkpoints[index].id)
            if current is not None and _irrelevant(tp, current, t):
                return set()
        return self._refresh(runner, index, settle=single)

    def _participant(self, p: ParticipantRecord) -> set[str]:
        race = self.event.races.get(p.race)
        if race is None:
            self._problem("unknown-race", p.bib, "", f"race {p.race!r} is not in this event", p)
            return {PROBLEMS_TOPIC}
        old = self.runners.get(p.bib)
        cat = p.category or category(p.gender, p.age, race.categories)
        divisions = tuple(d for d in (ALL, p.gender, cat) if d)
        changed: set[str] = {RACES_TOPIC, runner_topic(p.bib)}
        if old is not None:
            changed |= self._unrank(old)
            if old.p.team and (old.p.team != p.team or old.race.id != race.id):
                changed.add(tk.TEAM_LEFT(old.race.id, old.p.team))
            if old.race.id != race.id:
                self.forecasts.remove(old.race.id, p.bib)
            for chip in old.p.chips:
                if self.chip_owner.get(chip) == p.bib:
                    del self.chip_owner[chip]
            runner = Runner(p, race, divisions, cat, inputs=Inputs(), history=old.history)
            runner.inputs.sightings = old.inputs.sightings
            runner.inputs.overrides = old.inputs.overrides
            runner.corrections = old.corrections
            runner.statuses = old.statuses
            runner.status, runner.status_reason = old.status, old.status_reason
            runner.judgements = old.judgements
            if old.judgements:
                runner.penalty = assess(race.obstacles, old.judgements)
                self._set_status(runner)
        else:
            runner = Runner(p, race, divisions, cat)
        self.runners[p.bib] = runner
        for chip in p.chips:
            self._take_chip(chip, p.bib, changed)
        changed |= self._refresh(runner, 0, force=True)
        return changed

    def _take_chip(self, chip: str, bib: str, changed: set[str]) -> None:
        previous = self.chip_owner.get(chip)
        if previous == bib:
            return
        self.chip_owner[chip] = bib
        if previous is not None and previous in self.runners:
            other = self.runners[previous]
            other.inputs.reads = {}
            for c in other.p.chips:
                if self.chip_owner.get(c) == previous:
                    self._load_reads(other, c)
            changed |= self._refresh(other, 0)
        if self.unmatched.pop(chip, None) is not None:
            changed.add(UNMATCHED_TOPIC)
        self._load_reads(self.runners[bib], chip)

    def _load_reads(self, runner: Runner, chip: str) -> None:
        for point, t in self.reads_by_chip.get(chip, ()):
            runner.inputs.add_read(point, t)

    def _assign(self, a: ChipAssign) -> set[str]:
        runner = self.runners.get(a.bib)
        if runner is None:
            self._problem("unknown-bib", a.bib, "", f"chip {a.chip} assigned to unknown bib", a)
            return {PROBLEMS_TOPIC}
        changed: set[str] = set()
        runner.history.append(a)
        self._take_chip(a.chip, a.bib, changed)
        return changed | self._refresh(runner, 0)

    def _gun(self, g: GunStart) -> set[str]:
        if g.race not in self.event.races:
            self._problem("unknown-race", "", "", f"gun for unknown race {g.race!r}", g)
            return {PROBLEMS_TOPIC}
        self.guns.setdefault((g.race, g.wave), []).append((g.key, g.time_ms))
        self._gun_cache.clear()
        self.now_ms = max(self.now_ms, g.time_ms)
        self._targets[g.key] = f"gun:{g.race}"
        return self._refresh_race(g.race)

    def _refresh_race(self, race_id: str) -> set[str]:
        changed = {RACES_TOPIC, race_topic(race_id), feed_topic(race_id)}
        for runner in self.runners.values():
            if runner.race.id == race_id:
                changed |= self._refresh(runner, 0, force=True)
        return changed

    def _sighting(self, s: Sighting) -> set[str]:
        runner = self.runners.get(s.bib)
        self.now_ms = max(self.now_ms, s.time_ms)
        if runner is None:
            self._problem("unknown-bib", s.bib, s.point, "a marshal saw a bib nobody has", s)
            return {PROBLEMS_TOPIC}
        cps = runner.race.course.checkpoints
        index = next((i for i, cp in enumerate(cps) if cp.id == s.point), None)
        if index is None:
            self._problem(
                "wrong-course", s.bib, s.point, f"{s.point} is not on {runner.race.name}", s
            )
            return {PROBLEMS_TOPIC}
        runner.inputs.add_sighting(s.point, s.time_ms, s.key)
        runner.history.append(s)
        self._targets[s.key] = s.bib
        return self._refresh(runner, index) | {runner_topic(s.bib), marshal_topic(s.point)}

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

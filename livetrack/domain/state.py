"""The fold: ``RaceState.apply(record) -> topics changed``. Pure and synchronous.

Two processes that apply the same records in the same order hold the same state. Time only
comes in on the records; nothing here awaits, reads a clock or touches I/O.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable

from livetrack.domain import topics as tk
from livetrack.domain.correction_fold import CorrectionFold
from livetrack.domain.event import TimingPoint
from livetrack.domain.meet_records import DrawRound, HeatResult, RoundAdjust
from livetrack.domain.obstacles import assess
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


class RaceState(CorrectionFold):
    """The whole event's live state, derived from the log by :meth:`apply` alone. Corrections,
    undos and status changes fold in :mod:`~livetrack.domain.correction_fold`, a meet's rounds
    records and judgements in :mod:`~livetrack.domain.meet_fold`."""

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

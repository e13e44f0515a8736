"""The fold: ``RaceState.apply(record) -> topics changed``. Pure and synchronous.

Two processes that apply the same records in the same order hold the same state. Time only
comes in on the records; nothing here awaits, reads a clock or touches I/O.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import NamedTuple

from sortedcontainers import SortedList

from livetrack.domain import topics as tk
from livetrack.domain.event import Event, Race, TimingPoint
from livetrack.domain.forecast import Forecasts
from livetrack.domain.participants import category, display_name
from livetrack.domain.passings import CourseFeeds, Inputs, Passing, compute
from livetrack.domain.ranking import ALL, FINISHERS, Boards, Move
from livetrack.domain.readers import ReaderHealth
from livetrack.domain.records import (
    AlertSent,
    ChipAssign,
    ChipRead,
    Correction,
    GunStart,
    ParticipantRecord,
    Record,
    Sighting,
    StatusChange,
    Sweep,
    TokenRecord,
)
from livetrack.domain.topics import board_topic as board_topic
from livetrack.domain.window import bounds, outside, read_bounds, read_outside, read_usable


def _irrelevant(tp: TimingPoint, current: Passing, t: int) -> bool:
    """Whether a new read at ``tp`` at ``t`` cannot change ``current`` (its checkpoint's
    passing): a main passing shadows every backup read, and with ``first`` picking a later
    read never moves a passing of the same stream."""
    if tp.role == "backup":
        if current.source == "chip":
            return True
        return current.source == "backup" and tp.rules.pick == "first" and t >= current.time_ms
    return current.source == "chip" and tp.rules.pick == "first" and t >= current.time_ms


@cache
def _board_topics(race: str, checkpoint: str, divisions: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(tk.BOARD(race, checkpoint, d) for d in divisions)


def runner_topic(bib: str) -> str:
    return tk.RUNNER(bib)


def feed_topic(race: str) -> str:
    return tk.FEED(race)


def race_topic(race: str) -> str:
    return tk.RACE(race)


def map_topic(race: str) -> str:
    return tk.MAP(race)


def shift_topic(race: str, checkpoint: str, elapsed_ms: int) -> str:
    """The :data:`~livetrack.domain.tk.SHIFT` signal; :func:`parse_shift` reads it back."""
    return tk.SHIFT(race, checkpoint, str(elapsed_ms))


def parse_shift(topic: str) -> tuple[str, str, int] | None:
    """``(race, checkpoint, elapsed_ms)`` of a :func:`shift_topic`, else None."""
    if not topic.startswith("shift:"):
        return None
    race, checkpoint, elapsed = tk.parse(topic).values
    return race, checkpoint, int(elapsed)


@cache
def marshal_topic(checkpoint: str) -> str:
    return tk.MARSHAL(checkpoint)


RACES_TOPIC = tk.RACES()
UNMATCHED_TOPIC = tk.UNMATCHED()
PROBLEMS_TOPIC = tk.PROBLEMS()


@dataclass(slots=True)
class Runner:
    """One participant's live state: inputs, derived passings, and what the boards hold."""

    p: ParticipantRecord
    race: Race
    divisions: tuple[str, ...]
    category: str
    inputs: Inputs = field(default_factory=Inputs)
    passings: dict[str, Passing] = field(default_factory=dict)
    ranked: dict[str, int] = field(default_factory=dict)  # checkpoint -> elapsed on the boards
    status: str = "ok"
    status_reason: str = ""
    contradiction: bool = False
    statuses: list[tuple[str, str, str]] = field(default_factory=list)  # (key, status, reason)
    corrections: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)
    history: list[Record] = field(default_factory=list)

    @property
    def bib(self) -> str:
        return self.p.bib

    def board_topics(self, checkpoint: str) -> tuple[str, ...]:
        """The board topics this runner appears on at ``checkpoint``."""
        return _board_topics(self.race.id, checkpoint, self.divisions)

    @property
    def name(self) -> str:
        return display_name(self.p)


class _RaceTopics(NamedTuple):
    """A race's fixed topic names and checkpoint ids, for the fold's inner loop."""

    map: str
    feed: str
    race: str
    start: str
    finish: str
    later: tuple[tuple[str, str], ...]  # (checkpoint, its marshal topic) after the start


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    bib: str
    point: str
    detail: str
    key: str
    #: The author of the record (for records that carry one).
    by: str = ""


class RaceState:
    """The whole event's live state, derived from the log by :meth:`apply` alone."""

    def __init__(self, event: Event) -> None:
        self.event = event
        self.runners: dict[str, Runner] = {}
        self.boards = Boards()
        self.chip_owner: dict[str, str] = {}
        self.reads_by_chip: dict[str, list[tuple[str, int]]] = {}
        self.unmatched: dict[str, int] = {}
        self.guns: dict[tuple[str, str], list[tuple[str, int]]] = {}
        self.finishers: dict[str, SortedList] = {r: SortedList() for r in event.races}
        self.problems: dict[str, Problem] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self.sweeps: dict[str, Sweep] = {}
        #: Keys of the push alerts decided so far (see ``livetrack.domain.alerts``).
        self.alerts_sent: set[str] = set()
        self.readers = ReaderHealth()
        self.now_ms = 0
        self.applied = 0
        self._undone: set[str] = set()
        self._gun_cache: dict[tuple[str, str], int | None] = {}
        self._targets: dict[str, str] = {}  # undoable record key -> bib
        self._feeds = {
            cid: CourseFeeds.build(c, event.points, event) for cid, c in event.courses.items()
        }
        self._offsets = {r.id: r.clock_offset_ms for r in event.readers.values()}
        self._aliases: dict[tuple[str, str], str] = {}
        self._idle: dict[str, frozenset[str]] = {}
        self._topics: dict[str, _RaceTopics] = {}
        self.forecasts = Forecasts(event)
        self._window = bounds(event)
        self._read_window = read_bounds(event)
        #: Reads refused at the edge because their key was stored already with other content
        #: (a conflict), by reader: counted by the process that refused them, not folded.
        self.read_conflicts: dict[str, int] = {}
        #: Records skipped because their time is unusable, not yet reported (see
        #: :meth:`take_skipped`); each is also kept in ``problems``.
        self._skipped: list[Problem] = []

    # -- queries -----------------------------------------------------------------------------

    def gun_ms(self, race_id: str, wave: str = "") -> int | None:
        """The gun for ``wave`` of ``race``: its own gun, else the race gun plus the wave's
        offset, else the scheduled start; None when none is known."""
        key = (race_id, wave)
        if key in self._gun_cache:
            return self._gun_cache[key]
        race = self.event.races[race_id]
        own = self.guns.get(key) if wave else None
        whole = self.guns.get((race_id, ""))
        if own:
            value: int | None = own[-1][1]
        elif whole:
            value = whole[-1][1] + int(race.wave(wave).offset_s * 1000)
        else:
            value = race.scheduled_ms
        self._gun_cache[key] = value
        return value

    def started(self, race_id: str) -> bool:
        return any(r == race_id and v for (r, _), v in self.guns.items())

    def elapsed(self, runner: Runner, checkpoint: str, basis: str = "") -> int | None:
        """Elapsed ms at ``checkpoint`` by ``basis`` (``gun``/``chip``; default the race's)."""
        passing = runner.passings.get(checkpoint)
        if passing is None:
            return None
        basis = basis or runner.race.rank_by
        start = runner.passings.get(runner.race.course.checkpoints[0].id)
        if basis == "chip" and start is not None:
            return passing.time_ms - start.time_ms
        gun = self.gun_ms(runner.race.id, runner.p.wave)
        return None if gun is None else passing.time_ms - gun

    def position(self, runner: Runner, checkpoint: str, division: str = ALL) -> int | None:
        elapsed = runner.ranked.get(checkpoint)
        if elapsed is None or division not in runner.divisions:
            return None
        return self.boards.position(runner.race.id, checkpoint, division, runner.bib, elapsed)

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
            return set()
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

    @staticmethod
    def _set_status(runner: Runner) -> None:
        if runner.statuses:
            _, runner.status, runner.status_reason = runner.statuses[-1]
        else:
            runner.status, runner.status_reason = "ok", ""

    def _problem(self, kind: str, bib: str, point: str, detail: str, record: Record) -> None:
        by = getattr(record, "by", "")
        self.problems[record.key] = Problem(kind, bib, point, detail, record.key, by)

    def _skip(self, record: Record, why: str) -> set[str]:
        bib = getattr(record, "bib", "")
        point = getattr(record, "point", "")
        problem = Problem("unusable-time", bib, point, f"{record.TYPE} skipped: {why}", record.key)
        self.problems[record.key] = problem
        self._skipped.append(problem)
        return {PROBLEMS_TOPIC}

    def note_failure(self, record: Record, why: str) -> None:
        """``record`` raised while it was folded (it may be folded in part): list it."""
        bib = getattr(record, "bib", "")
        point = getattr(record, "point", "")
        detail = f"{record.TYPE} could not be applied: {why}"
        self.problems[record.key] = Problem("unapplied", bib, point, detail, record.key)

    def take_skipped(self) -> list[Problem]:
        """The records skipped since the last call (for the caller to log once each)."""
        taken, self._skipped = self._skipped, []
        return taken

    # -- derived state -----------------------------------------------------------------------

    def _refresh(
        self,
        runner: Runner,
        from_index: int,
        *,
        settle: bool = False,
        force: bool = False,
        moves: list[Move] | None = None,
    ) -> set[str]:
        """Re-derive ``runner``'s passings from checkpoint ``from_index`` and move the boards.

        ``settle``: only that checkpoint's inputs changed. ``force``: re-rank every checkpoint
        even if no passing changed (a new gun, status or division). ``moves``: collect the
        board moves there for the caller to make in bulk, instead of making them."""
        race = runner.race
        old = runner.passings
        if not old and not runner.ranked and runner.inputs.empty():
            # nothing to derive or rank (a new entry, or a gun for runners not yet seen)
            return self._idle_topics(race) if force else set()
        gun = self.gun_ms(race.id, runner.p.wave)
        feeds = self._feeds[race.course.id]
        new = compute(race, feeds, runner.inputs, gun, old, from_index, settle)
        moved = new is not old and new != old
        if not force and not moved:
            return set()
        runner.passings = new
        own_topic = runner_topic(runner.bib)
        topics = self._race_topics(race)
        changed: set[str] = {own_topic, topics.map} if moved else set()
        race_id, bib, divisions = race.id, runner.bib, runner.divisions
        forecast: dict[str, float] = {}
        start = new.get(topics.start)
        by_chip = race.rank_by == "chip" and start is not None
        full = force or (race.rank_by == "chip" and start != old.get(topics.start))
        base = start.time_ms if by_chip and start is not None else gun
        # where the predictor's clock starts (nothing is queued without a base)
        own = None if base is None else start.time_ms if start is not None else base
        finish = topics.finish
        rankable = runner.status not in ("DQ", "DNS")
        ranked = runner.ranked
        boards = self.boards
        for cp_id, marshal in topics.later:
            p = new.get(cp_id)
            q = old.get(cp_id)
            if p is not None and own is not None and p.time_ms > own:
                forecast[cp_id] = (p.time_ms - own) / 1000
            if not full and (p is q or p == q):
                continue
            before = ranked.get(cp_id)
            after = None
            if p is not None and rankable and base is not None:
                after = p.time_ms - base
                if cp_id == finish and runner.status == "DNF":
                    after = None
            changed.add(marshal)
            if before == after:
                continue
            if moves is None:
                boards.move(race_id, cp_id, divisions, bib, before, after)
            else:
                moves.append((race_id, cp_id, divisions, bib, before, after))
            if after is None:
                ranked.pop(cp_id, None)
            else:
                ranked[cp_id] = after
            changed.update(_board_topics(race_id, cp_id, divisions))
            changed.add(own_topic)
            # the faster of the two times (they differ, and one is not None)
            if before is None:
                low = after
            elif after is None or before < after:
                low = before
            else:
                low = after
            last = boards.last(race_id, cp_id, ALL)
            if last is not None and low is not None and last > low:
                # others behind moved a place: see shift_topic
                changed.add(shift_topic(race_id, cp_id, low))
            if cp_id == finish:
                changed.add(topics.feed)
                changed.add(topics.race)
        if moved or full:
            self.forecasts.put(race_id, bib, forecast)
        old_finish, new_finish = old.get(finish), new.get(finish) if rankable else None
        if old_finish != new_finish or force:
            self._update_finishers(runner, old_finish, new_finish, moves)
        contradiction = runner.contradiction
        if moved:
            contradiction = False
            for p in new.values():
                if p.contradiction:
                    contradiction = True
                    break
        if contradiction or runner.contradiction:
            runner.contradiction = contradiction
            changed.add(PROBLEMS_TOPIC)
        return changed

    def _race_topics(self, race: Race) -> _RaceTopics:
        topics = self._topics.get(race.id)
        if topics is None:
            cps = race.course.checkpoints
            topics = self._topics[race.id] = _RaceTopics(
                map_topic(race.id),
                feed_topic(race.id),
                race_topic(race.id),
                cps[0].id,
                cps[-1].id,
                tuple((cp.id, marshal_topic(cp.id)) for cp in cps[1:]),
            )
        return topics

    def _idle_topics(self, race: Race) -> set[str]:
        """What a forced refresh of a runner with nothing to rank reports: every checkpoint's
        marshal list after the start (whose expected runners may change)."""
        topics = self._idle.get(race.id)
        if topics is None:
            cps = race.course.checkpoints[1:]
            topics = self._idle[race.id] = frozenset(marshal_topic(cp.id) for cp in cps)
        return set(topics)

    def _update_finishers(
        self,
        runner: Runner,
        old: Passing | None,
        new: Passing | None,
        moves: list[Move] | None = None,
    ) -> None:
        """The race's finish feed (time of day order); with ``moves``, the change is added
        there (as a move on the race's board ``FINISHERS``) for the caller to make."""
        before = None if old is None else old.time_ms
        after = None if new is None or runner.status == "DNF" else new.time_ms
        if moves is not None:
            moves.append((runner.race.id, FINISHERS, (), runner.bib, before, after))
            return
        feed = self.finishers[runner.race.id]
        if before is not None:
            feed.discard((before, runner.bib))
        if after is not None:
            feed.add((after, runner.bib))

    def _unrank(self, runner: Runner) -> set[str]:
        changed: set[str] = set()
        for cp, elapsed in runner.ranked.items():
            self.boards.move(runner.race.id, cp, runner.divisions, runner.bib, elapsed, None)
            changed.update(board_topic(runner.race.id, cp, d) for d in runner.divisions)
        runner.ranked = {}
        finish = runner.passings.get(runner.race.course.checkpoints[-1].id)
        if finish is not None:
            self.finishers[runner.race.id].discard((finish.time_ms, runner.bib))
        return changed

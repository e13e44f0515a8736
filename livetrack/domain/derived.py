"""The fold's state and what follows from it: the queries on it (guns, elapsed times,
positions), the problems it lists, and the re-derivation of a runner's passings, board places,
finish feed and forecasts after its inputs changed.

:class:`DerivedState` holds it all; :class:`livetrack.domain.state.RaceState` adds how each
record changes it. Pure and synchronous, like the fold.
"""

from __future__ import annotations

from dataclasses import dataclass

from sortedcontainers import SortedList

from livetrack.domain.event import Event, Race
from livetrack.domain.forecast import Forecasts
from livetrack.domain.meet import Meet
from livetrack.domain.passings import CourseFeeds, Passing, compute
from livetrack.domain.ranking import ALL, FINISHERS, Boards, Move
from livetrack.domain.readers import ReaderHealth
from livetrack.domain.records import AlertSent, Record, Sweep, TokenRecord
from livetrack.domain.runner import (
    PROBLEMS_TOPIC,
    Problem,
    RaceTopics,
    Runner,
    feed_topic,
    map_topic,
    marshal_topic,
    race_board_topics,
    race_topic,
    runner_topic,
    shift_topic,
)
from livetrack.domain.topics import board_topic
from livetrack.domain.window import bounds, read_bounds


@dataclass(slots=True)
class RaceCounts:
    """One race's field, counted for one state of the fold (see
    :meth:`DerivedState.race_counts`)."""

    #: Runners entered in the race.
    entrants: int = 0
    #: Runners who have passed a mat and are still in it (status ok).
    moving: int = 0
    #: Of those, how many have finished.
    moving_finished: int = 0
    #: The latest passing of a moving runner (worked out when first asked: it walks passings).
    last_passing_ms: int | None = None


class DerivedState:
    """The whole event's live state (see :class:`~livetrack.domain.state.RaceState`)."""

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
        #: Claims of push alerts with no outcome yet, by key (sent again after a restart).
        self.alerts_pending: dict[str, AlertSent] = {}
        self.readers = ReaderHealth()
        #: Races run in rounds: draws, heat results, qualifiers (``livetrack.domain.meet``).
        self.meet = Meet(event)
        self.now_ms = 0
        self.applied = 0
        #: Runners whose passings were re-derived with a change, or forcibly (a new entry, gun,
        #: status), each at the count of such re-derivations when it last was, newest last:
        #: :meth:`moved_since` answers what changed since a count without going over everyone.
        self.moved: dict[str, int] = {}
        self.moves = 0
        self._undone: set[str] = set()
        self._gun_cache: dict[tuple[str, str], int | None] = {}
        self._targets: dict[str, str] = {}  # undoable record key -> bib
        self._feeds = {
            cid: CourseFeeds.build(c, event.points, event) for cid, c in event.courses.items()
        }
        self._offsets = {r.id: r.clock_offset_ms for r in event.readers.values()}
        self._aliases: dict[tuple[str, str], str] = {}
        self._idle: dict[str, frozenset[str]] = {}
        self._topics: dict[str, RaceTopics] = {}
        self.forecasts = Forecasts(event)
        self._window = bounds(event)
        self._read_window = read_bounds(event)
        #: Reads refused at the edge because their key was stored already with other content
        #: (a conflict), by reader: counted by the process that refused them, not folded.
        self.read_conflicts: dict[str, int] = {}
        #: Records skipped because their time is unusable, not yet reported (see
        #: :meth:`take_skipped`); each is also kept in ``problems``.
        self._skipped: list[Problem] = []
        self._counts: dict[str, RaceCounts] = {}
        self._counts_at = -1  # the ``applied`` count they were made at

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

    # -- problems ----------------------------------------------------------------------------

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

    def note_input(self, name: str, kind: str, detail: str) -> bool:
        """List a problem with an input that never reached the log (a photo-finish file from
        which nothing could be imported) under ``name``, until :meth:`clear_input`. It is
        this process's own, not in the log: what found it takes it back. Whether it is new
        or says something new."""
        problem = Problem(kind, "", "", detail, "")
        if self.problems.get(f"input:{name}") == problem:
            return False
        self.problems[f"input:{name}"] = problem
        return True

    def clear_input(self, name: str) -> bool:
        """Take back :meth:`note_input`'s problem ``name``; whether there was one."""
        return self.problems.pop(f"input:{name}", None) is not None

    def take_skipped(self) -> list[Problem]:
        """The records skipped since the last call (for the caller to log once each)."""
        taken, self._skipped = self._skipped, []
        return taken

    def race_counts(self, race_id: str) -> RaceCounts:
        """``race_id``'s entrants and runners on the move. Every race is counted in one walk
        of the field, once per state of the fold (each record applied changes ``applied``),
        so the pages' race headers and the alerts may ask at every tick, for every race,
        without walking the field each time: at a city marathon's field size a walk per
        header was a cost paid per render."""
        if self._counts_at != self.applied:
            counts = {race: RaceCounts() for race in self.event.races}
            finish_of = {r.id: r.course.checkpoints[-1].id for r in self.event.races.values()}
            for runner in self.runners.values():
                rid = runner.race.id
                c = counts.get(rid)
                if c is None:
                    c = counts[rid] = RaceCounts()
                c.entrants += 1
                if runner.passings and runner.status == "ok":
                    c.moving += 1
                    if finish_of.get(rid, "") in runner.passings:
                        c.moving_finished += 1
            self._counts = counts
            self._counts_at = self.applied
        return self._counts.get(race_id) or RaceCounts()

    def last_moving_passing_ms(self, race_id: str) -> int:
        """The latest passing of ``race_id``'s runners on the move (0 when none), worked out
        once per state of the fold."""
        c = self.race_counts(race_id)
        if c.last_passing_ms is None:
            c.last_passing_ms = max(
                (
                    p.time_ms
                    for r in self.runners.values()
                    if r.race.id == race_id and r.passings and r.status == "ok"
                    for p in r.passings.values()
                ),
                default=0,
            )
        return c.last_passing_ms

    # -- derived state -----------------------------------------------------------------------

    def _note_moved(self, bib: str) -> None:
        self.moves += 1
        moved = self.moved
        moved.pop(bib, None)
        moved[bib] = self.moves

    def moved_since(self, count: int) -> list[str]:
        """The runners re-derived (see :attr:`moved`) after :attr:`moves` was ``count``,
        newest first: as many steps as there are such runners, whatever the field's size."""
        out = []
        for bib, n in reversed(self.moved.items()):
            if n <= count:
                break
            out.append(bib)
        return out

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
            if not force:
                return set()
            self._note_moved(runner.bib)
            return self._idle_topics(race)
        gun = self.gun_ms(race.id, runner.p.wave)
        feeds = self._feeds[race.course.id]
        new = compute(race, feeds, runner.inputs, gun, old, from_index, settle)
        moved = new is not old and new != old
        if not force and not moved:
            return set()
        runner.passings = new
        self._note_moved(runner.bib)
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
                if cp_id == finish:
                    # obstacle penalties count at the finish (DQ ones made it unrankable)
                    after = None if runner.status == "DNF" else after + runner.penalty.ms
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
            changed.update(race_board_topics(race_id, cp_id, divisions))
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

    def _race_topics(self, race: Race) -> RaceTopics:
        topics = self._topics.get(race.id)
        if topics is None:
            cps = race.course.checkpoints
            topics = self._topics[race.id] = RaceTopics(
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

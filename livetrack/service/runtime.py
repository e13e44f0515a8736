"""The running service's resources: the log, the fold fed by tailing it, and the hub."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from livetrack.domain import forecast
from livetrack.domain.event import Event
from livetrack.domain.forecast import Forecasts
from livetrack.domain.records import ParticipantRecord, Record
from livetrack.domain.state import RaceState, runner_topic
from livetrack.live.hub import Hub
from livetrack.service import snapshots, stopping
from livetrack.service.snapshots import SnapshotInfo
from livetrack.store.base import AppendResult, Countable, EventLog, LogUnavailable, Offset

log = logging.getLogger("livetrack.runtime")

#: While catching up at start, fold up to this many records at once (see ``_follow``).
CATCH_UP_RECORDS = 300_000
#: After a catch-up of at least this many records, the objects it made are frozen (gc.freeze).
FREEZE_FROM = 100_000
#: Passings the forecasts observe in one step between the loop's other work (see ``_forecasts``).
FORECAST_STEP = forecast.STEP


class ForecastSteps:
    """Drives the forecasts :data:`FORECAST_STEP` passings at a time. While a race's predictor
    is rebuilt, the cyclic collector is paused (as during a catch-up): the rebuild makes about
    as many objects as the predictor it replaces, and the full collections they would set off
    rescan them all, each holding the loop for a second or more on a marathon. When the rebuild
    has taken over, what it made is frozen (``gc.freeze``) and the collector resumes."""

    def __init__(self, forecasts: Forecasts) -> None:
        self.forecasts = forecasts
        self.paused = False

    def step(self) -> tuple[int, set[str]]:
        """One step: returns how much is left (0: idle) and the races whose rebuild took over."""
        forecasts = self.forecasts
        if not self.paused and forecasts.rebuilding() and gc.isenabled():
            gc.disable()
            self.paused = True
        left = forecasts.drain(FORECAST_STEP)
        if self.paused and not forecasts.rebuilding():
            gc.freeze()
            gc.enable()
            self.paused = False
        return left, forecasts.caught_up()


#: Shifts this process's clock (``LIVETRACK_CLOCK_SHIFT_MS``): rehearse a machine whose clock
#: is wrong. A follower also sets :data:`_skew_ms` from the site's clock (see ``set_site_clock``).
_shift_ms = int(os.environ.get("LIVETRACK_CLOCK_SHIFT_MS", "0") or 0)
_skew_ms = 0
_skews: deque[int] = deque(maxlen=30)


def now_ms() -> int:
    """The event's wall clock: this machine's, or on a public server that follows a site,
    the site's (the site's clock stamped its records, so every time on a page agrees)."""
    return int(time.time() * 1000) + _shift_ms + _skew_ms


def set_site_clock(site_ms: int) -> None:
    """A frame stamped ``site_ms`` by the site has just arrived: keep the site's clock minus
    ours, from the frame that travelled fastest of the last few (transit only makes it
    smaller), rounded to a tenth of a second so it does not jitter."""
    global _skew_ms
    _skews.append(site_ms - (int(time.time() * 1000) + _shift_ms))
    _skew_ms = round(max(_skews), -2)


def clock_of(state: RaceState) -> int:
    """The event's clock: wall time, or the newest record's time when a (simulated or
    replayed) race runs ahead of the wall clock."""
    return max(now_ms(), state.now_ms)


def clock(rt: Runtime) -> int:
    return clock_of(rt.state)


@dataclass
class Counters:
    reads_accepted: int = 0
    reads_duplicate: int = 0
    reads_rejected: int = 0
    #: Websocket subscriptions served by the direct write, and through ASGI sends.
    ws_direct: int = 0
    ws_asgi: int = 0


#: How often a process reads the log's head to know whether it is caught up (and how far behind).
HEAD_EVERY_S = 1.0


@dataclass
class Runtime:
    """Owns the fold and keeps it in step with the log (every write goes through the log)."""

    event: Event
    log: EventLog
    state: RaceState
    hub: Hub
    offset: Offset | None = None
    head_at_start: Offset | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    counters: Counters = field(default_factory=Counters)
    #: Save a snapshot of the fold after this many new records, or after this many seconds
    #: with anything new folded, and on shutdown; 0 turns periodic snapshots off.
    snapshot_every_records: int = 250_000
    snapshot_every_s: float = 600.0
    snapshot_on_stop: bool = True
    snapshot: SnapshotInfo = field(default_factory=SnapshotInfo)
    #: The log's head as last read (every :data:`HEAD_EVERY_S`), and when.
    head: Offset | None = None
    head_checked: float = 0.0
    head_error: str = ""
    lag: int = 0
    #: Records the fold held when it got ready (snapshots count new records from there).
    ready_applied: int = 0
    _progress: asyncio.Event = field(default_factory=asyncio.Event)
    _waiting: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: On a public server that follows a site, writes go to the site instead of the log
    #: (``web.follow.Follower.forward``).
    forward: Callable[[list[Record]], Awaitable[list[AppendResult]]] | None = None

    async def append(self, records: list[Record]) -> list[AppendResult]:
        """Durably append ``records``; the fold sees them when the tail delivers them."""
        if self.forward is not None:
            return await self.forward(records)
        return await self.log.append(records)

    async def seed_participants(
        self, participants: list[ParticipantRecord], timeout: float = 60.0
    ) -> int:
        """Append the entries the fold does not already hold exactly so (a restart with the
        same file appends nothing; the log's keys make any repeat harmless), then wait until
        the fold has them. Call once caught up. Returns how many were stored."""
        runners = self.state.runners
        fresh = [p for p in participants if (r := runners.get(p.bib)) is None or r.p != p]
        stored: list[Offset] = []
        for i in range(0, len(fresh), 1000):
            res = await self.log.append(fresh[i : i + 1000])
            stored += [r.offset for r in res if r.offset is not None]
        if stored:
            newest = max(stored)
            if self.head is None or self.head < newest:
                self.head = newest  # the head is at least what was just stored
            await self.wait_applied(newest, timeout)
        return len(stored)

    async def start(self) -> None:
        """Start tailing from ``offset`` (None: the start; a restored snapshot's offset
        otherwise). ``ready`` is set once the fold has reached the head the log had now."""
        self.head_at_start = self.head = await self.log.head()
        self.head_checked = time.monotonic()
        if self.head_at_start is None or (
            self.offset is not None and self.offset >= self.head_at_start
        ):
            self._become_ready()
        self.lag = self._lag()
        self._tasks.append(asyncio.create_task(self._follow(), name="livetrack-follow"))
        self._tasks.append(asyncio.create_task(self.hub.run(), name="livetrack-hub"))
        self._tasks.append(asyncio.create_task(self._forecasts(), name="livetrack-forecasts"))
        self._tasks.append(asyncio.create_task(self._watch_head(), name="livetrack-head"))
        if self.snapshot_every_records > 0 or self.snapshot_every_s > 0:
            self._tasks.append(asyncio.create_task(self._snapshots(), name="livetrack-snapshots"))

    @property
    def caught_up(self) -> bool:
        """Whether the fold has applied everything the log held at the last head check."""
        return self.ready.is_set() and (
            self.head is None or (self.offset is not None and self.offset >= self.head)
        )

    def _lag(self) -> int:
        """Records behind the head as last read: exact where offsets count records (SQLite
        row ids); 1 when behind otherwise (the exact count comes from :meth:`_watch_head`)."""
        if self.head is None or (self.offset is not None and self.offset >= self.head):
            return 0
        behind = self.head.records_after(self.offset)
        return 1 if behind is None else behind

    async def _watch_head(self) -> None:
        """Read the log's head every second: /healthz and /metrics compare it with the fold."""
        counter = self.log if isinstance(self.log, Countable) else None
        while True:
            await asyncio.sleep(HEAD_EVERY_S)
            try:
                self.head = await self.log.head()
                self.head_checked = time.monotonic()
                self.head_error = ""
                lag = self._lag()
                head = self.head
                if lag and counter is not None and head and head.records_after(self.offset) is None:
                    total = await counter.count()
                    lag = max(1, total - self.state.applied)
                self.lag = lag
            except (LogUnavailable, OSError) as exc:
                self.head_error = str(exc)

    async def _snapshots(self) -> None:
        """Save a snapshot when enough records or time have passed since the last one, or
        since the process got ready. Records folded before it got ready do not count: a
        process that has just replayed a long log would otherwise pause to encode it the
        moment it starts serving; it saves after the interval, or when it stops."""
        await self.ready.wait()
        last = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            if self.offset is None:
                continue
            uncovered = self.state.applied - self.snapshot.applied
            new = self.state.applied - max(self.snapshot.applied, self.ready_applied)
            due_records = self.snapshot_every_records > 0 and new >= self.snapshot_every_records
            due_time = (
                self.snapshot_every_s > 0 and time.monotonic() - last >= self.snapshot_every_s
            )
            if uncovered > 0 and (due_records or due_time):
                last = time.monotonic()
                await snapshots.save(self.log, self.state, self.offset, self.snapshot)

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def wait_applied(self, offset: Offset, timeout: float = 5.0) -> None:
        """Wait until the fold has applied the record at ``offset`` (for read-your-writes)."""

        deadline = asyncio.get_running_loop().time() + timeout
        self._waiting += 1
        try:
            while self.offset is None or self.offset < offset:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise TimeoutError(f"record {offset} not applied within {timeout}s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), left)
        finally:
            self._waiting -= 1

    async def _follow(self) -> None:
        """Fold the log as the tail delivers it. While catching up with the head the log had
        at start, pages are gathered and folded together (up to :data:`CATCH_UP_RECORDS` at
        a time): one re-derivation per runner instead of one per read. The cyclic garbage
        collector waits meanwhile: decoding and folding make no cycles, and it would rescan
        the growing state again and again."""
        paused = not self.ready.is_set() and gc.isenabled()
        if paused:
            gc.disable()
        try:
            await self._fold_pages(paused)
        finally:
            if paused and not gc.isenabled():
                gc.enable()
        log.info("log tail ended")

    async def _fold_pages(self, paused: bool) -> None:
        pending: list[tuple[Offset, Record]] = []
        async for page in self.log.tail_pages(self.offset):
            pending += page
            offset = page.end  # past any unreadable entry, so readiness is not held up
            catching_up = (
                not self.ready.is_set()
                and self.head_at_start is not None
                and offset < self.head_at_start
            )
            if catching_up and len(pending) < CATCH_UP_RECORDS:
                continue
            if pending:
                skip = functools.partial(_failed, self.state, pending)
                self.hub.mark(self.state.apply_all([r for _, r in pending], on_error=skip))
                for problem in self.state.take_skipped():
                    log.warning("record %s skipped: %s", problem.key, problem.detail)
                pending = []
            self.offset = offset
            if (
                not self.ready.is_set()
                and self.head_at_start is not None
                and offset >= self.head_at_start
            ):
                self._become_ready()
                if paused:
                    gc.enable()
            if self._waiting:
                woken, self._progress = self._progress, asyncio.Event()
                woken.set()

    def _become_ready(self) -> None:
        """The fold has reached the head the log had at start. The forecasts observe what
        the fold has (so the first page asked for does not wait for them)."""
        self.state.forecasts.settle()
        if self.state.applied >= FREEZE_FROM:
            # what a long catch-up (or a restored snapshot) built lives as long as the
            # process: keep the cyclic collector from rescanning it on every full collection
            gc.freeze()
        self.ready_applied = self.state.applied
        self.ready.set()

    async def _forecasts(self) -> None:
        """The forecasts observe the passings behind their watermarks (and replay a race
        after a late passing) a step at a time (:class:`ForecastSteps`), yielding to the loop
        between steps, so no step holds up the pages; idle, they look again each second. A
        rebuild that takes over marks its race's runner cards, whose estimates moved. Nothing
        is marked for the time alone: pages tick their clocks themselves."""
        steps = ForecastSteps(self.state.forecasts)
        while True:
            left, done = steps.step()
            if done:
                self.hub.mark(
                    runner_topic(bib) for bib, r in self.state.runners.items() if r.race.id in done
                )
            await asyncio.sleep(0 if left else 1.0)

    async def stop(self) -> None:
        """Stop tailing; save a last snapshot if anything was folded since the newest one;
        close the log."""
        await stopping.end_tasks(self._tasks)
        try:
            if (
                self.snapshot_on_stop
                and self.offset is not None
                and self.state.applied > self.snapshot.applied
            ):
                await snapshots.save(self.log, self.state, self.offset, self.snapshot)
        finally:
            await stopping.within("closing the log", self.log.close())


async def restore(
    event_log: EventLog, event: Event, info: SnapshotInfo
) -> tuple[Offset | None, RaceState]:
    """The newest compatible snapshot's fold (see ``snapshots.restore``), with the cyclic
    collector paused while it is built: re-enabled at once, the collector would traverse
    every object just loaded, young as they all are, in its next collections. A large
    restored fold lives as long as the process, so it is frozen out of the collector's way."""
    paused = gc.isenabled()
    gc.disable()
    try:
        offset, state = await snapshots.restore(event_log, event, info)
        if state.applied >= FREEZE_FROM:
            gc.freeze()
        return offset, state
    finally:
        if paused:
            gc.enable()


def _failed(state: RaceState, pending: list[tuple[Offset, Record]], i: int, exc: Exception) -> None:
    """A record the fold could not apply: logged once (with the traceback, as it is a fault
    of ours) and listed on the timer's problems panel."""
    offset, record = pending[i]
    log.error("record %s at %s could not be applied; skipped", record.key, offset, exc_info=exc)
    state.note_failure(record, f"{type(exc).__name__}: {exc}"[:200])

"""One contract for every EventLog backend.

Each test runs once per backend in ``BACKENDS`` (in ``conftest.py``, where the ``open_log``
fixture lives, so that other suites can run on every backend too). A backend is a function
that, given the test's request, returns an *opener*: a callable that opens a new log object on
the same storage each time it is called (as a second process would). A new backend joins the
suite by adding one entry to ``BACKENDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import fields
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import pytest
from conftest import PATIENCE_S, Opener

from livetrack.domain.records import (
    ChipRead,
    Correction,
    GunStart,
    ParticipantRecord,
    Record,
    Sighting,
    StatusChange,
    TokenRecord,
)
from livetrack.store.base import (
    AppendResult,
    AppendTimes,
    Countable,
    Leases,
    LogUnavailable,
    Offset,
    SnapshotStore,
)

#: Long enough for a polling backend to notice another process's append on a loaded machine,
#: short enough that a bug fails a test instead of hanging the suite.
WAIT_S = PATIENCE_S


@pytest.fixture
def event_log(open_log: Opener) -> Any:
    return open_log()


def reads(n: int, reader: str = "R1", start: int = 0) -> list[Record]:
    return [
        ChipRead(reader, "finish", f"chip{i}", 1_700_000_000_000 + i, seq=i)
        for i in range(start, start + n)
    ]


def _value(name: str, hint: Any, i: int) -> Any:
    """A non-default value of type ``hint`` for field ``name`` (odd characters included)."""
    if get_origin(hint) is Literal:
        return get_args(hint)[-1]
    if get_origin(hint) in (Union, UnionType):
        return _value(name, next(a for a in get_args(hint) if a is not type(None)), i)
    if get_origin(hint) is tuple:
        return (f"{name}-1", f"{name}-ü 2")
    if hint is bool:
        return True
    if hint is int:
        return 1_700_000_000_000 + i
    if hint is float:
        return 120.5 + i
    if hint is str:
        return f'{name}-{i} Łódź "q" ✓'
    raise AssertionError(f"no example value for {name}: {hint}")


def one_of_each() -> list[Record]:
    """One record of every type in ``Record`` with every field set, plus a few realistic ones
    with fields left at their defaults."""
    examples: list[Record] = []
    for i, cls in enumerate(get_args(Record)):
        hints = get_type_hints(cls)
        examples.append(cls(**{f.name: _value(f.name, hints[f.name], i) for f in fields(cls)}))
    examples += [
        ChipRead("R2", "start", "E2002", 1_700_000_000_456),
        GunStart("mile", 1_700_000_000_000),
        Correction("c2", "undo", target="correction:c1"),
        StatusChange("s1", "102", "DNF"),
        ParticipantRecord("007", "mile", "Ana", chips=("E2001",), birth_year=1990),
        TokenRecord("ab" * 32, "reader"),
    ]
    return examples


async def take(log: Any, n: int, after: Offset | None = None) -> list[tuple[Offset, Record]]:
    """The first ``n`` items of ``log.tail(after)``."""
    out: list[tuple[Offset, Record]] = []

    async def run() -> None:
        async with contextlib.aclosing(log.tail(after)) as it:
            async for item in it:
                out.append(item)
                if len(out) == n:
                    return

    await asyncio.wait_for(run(), WAIT_S)
    return out


class Follower:
    """A task that collects ``log.tail(after)`` until it has ``n`` items."""

    def __init__(self, log: Any, n: int, after: Offset | None = None) -> None:
        self.seen: list[tuple[Offset, Record]] = []
        self.log, self.n, self.after = log, n, after
        self.progress = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with contextlib.aclosing(self.log.tail(self.after)) as it:
            async for item in it:
                self.seen.append(item)
                self.progress.set()
                if len(self.seen) == self.n:
                    return

    async def wait_for_count(self, count: int) -> None:
        async def reached() -> None:
            while len(self.seen) < count and not self.task.done():
                self.progress.clear()
                await self.progress.wait()

        await asyncio.wait_for(reached(), WAIT_S)

    async def finish(self) -> list[tuple[Offset, Record]]:
        """Wait (bounded) until all ``n`` items came; always ends the task."""
        try:
            await asyncio.wait_for(asyncio.shield(self.task), WAIT_S)
        finally:
            if not self.task.done():
                self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        return self.seen


async def nothing_more(log: Any, after: Offset | None, within: float = 0.3) -> None:
    """Assert that ``log.tail(after)`` yields nothing for ``within`` seconds."""

    async def first() -> tuple[Offset, Record]:
        async with contextlib.aclosing(log.tail(after)) as it:
            async for item in it:
                return item  # type: ignore[no-any-return]
        raise AssertionError("tail ended")

    with pytest.raises(TimeoutError):
        got = await asyncio.wait_for(first(), within)
        raise AssertionError(f"unexpected record after {after}: {got}")


def stored(results: list[AppendResult]) -> list[Offset]:
    return [r.offset for r in results if r.offset is not None]


# -- append -------------------------------------------------------------------------------------


async def test_append_returns_one_result_per_record_in_order(event_log: Any) -> None:
    recs = reads(5)
    results = await event_log.append(recs)
    assert [r.key for r in results] == [r.key for r in recs]
    assert not any(r.duplicate for r in results)
    assert all(r.offset is not None for r in results)
    assert len(set(stored(results))) == 5
    got = await take(event_log, 5)
    assert [o for o, _ in got] == stored(results)
    assert [rec for _, rec in got] == recs


async def test_append_nothing_returns_nothing(event_log: Any) -> None:
    assert await event_log.append([]) == []
    assert await event_log.head() is None


async def test_duplicate_in_a_later_call_is_reported_and_not_stored(event_log: Any) -> None:
    first = await event_log.append(reads(3))
    again = await event_log.append([*reads(1, start=1), *reads(1, start=3)])
    assert again[0] == AppendResult(reads(1, start=1)[0].key, None, True)
    assert not again[1].duplicate and again[1].offset is not None
    got = await take(event_log, 4)
    assert [o for o, _ in got] == [*stored(first), again[1].offset]
    await nothing_more(event_log, got[-1][0])
    assert await event_log.count() == 4


async def test_duplicate_within_one_call_is_reported_and_not_stored(event_log: Any) -> None:
    a, b = reads(2)
    results = await event_log.append([a, b, a, a])
    assert [r.duplicate for r in results] == [False, False, True, True]
    assert [r.key for r in results] == [a.key, b.key, a.key, a.key]
    assert results[2].offset is None and results[3].offset is None
    got = await take(event_log, 2)
    assert [rec for _, rec in got] == [a, b]
    await nothing_more(event_log, got[-1][0])
    assert await event_log.count() == 2


async def test_the_same_key_with_a_different_body_is_still_a_duplicate(event_log: Any) -> None:
    original = ChipRead("R1", "finish", "chipA", 1_000, seq=1)
    resent = ChipRead("R1", "finish", "chipB", 2_000, seq=1)  # same reader sequence number
    assert original.key == resent.key
    await event_log.append([original])
    assert (await event_log.append([resent]))[0].duplicate
    got = await take(event_log, 1)
    assert got[0][1] == original


async def test_append_after_close_raises(event_log: Any) -> None:
    await event_log.close()
    with pytest.raises(LogUnavailable):
        await event_log.append(reads(1))


# -- tail and head ------------------------------------------------------------------------------


async def test_tail_yields_everything_in_order_then_follows(event_log: Any) -> None:
    before = reads(20)
    await event_log.append(before[:10])
    await event_log.append(before[10:])
    follower = Follower(event_log, 30)
    try:
        await follower.wait_for_count(20)
        after = reads(10, start=20)
        results: list[AppendResult] = []
        for rec in after:  # one at a time, while the tail is waiting
            results += await event_log.append([rec])
    finally:
        seen = await follower.finish()
    assert [rec for _, rec in seen] == before + after
    assert [o for o, _ in seen[20:]] == stored(results)


async def test_tail_after_an_offset_resumes_exactly_after_it(event_log: Any) -> None:
    results = await event_log.append(reads(10))
    offsets = stored(results)
    got = await take(event_log, 4, after=offsets[5])
    assert [o for o, _ in got] == offsets[6:]
    assert [rec for _, rec in got] == reads(10)[6:]
    await nothing_more(event_log, offsets[-1])
    more = await event_log.append(reads(1, start=10))
    assert await take(event_log, 1, after=offsets[-1]) == [(more[0].offset, reads(1, start=10)[0])]


async def test_tail_pages_hold_what_tail_yields_in_order_and_end_where_they_read(
    event_log: Any,
) -> None:
    results = await event_log.append(reads(30))
    offsets = stored(results)
    pages: list[list[tuple[Offset, Record]]] = []

    async def run() -> None:
        async with contextlib.aclosing(event_log.tail_pages(offsets[4])) as it:
            async for page in it:
                pages.append(page)
                if sum(map(len, pages)) >= 25:
                    return

    await asyncio.wait_for(run(), WAIT_S)
    assert all(page and page.end == page[-1][0] for page in pages)  # nothing unreadable here
    assert [item for page in pages for item in page] == await take(event_log, 25, offsets[4])


async def test_head_is_none_when_empty_then_the_newest_offset(event_log: Any) -> None:
    assert await event_log.head() is None
    first = await event_log.append(reads(3))
    assert await event_log.head() == first[-1].offset
    await event_log.append(reads(1))  # a duplicate does not move the head
    assert await event_log.head() == first[-1].offset
    second = await event_log.append(reads(2, start=3))
    assert await event_log.head() == second[-1].offset


async def test_append_times_say_when_the_first_record_after_an_offset_was_appended(
    event_log: Any,
) -> None:
    assert isinstance(event_log, AppendTimes)
    assert await event_log.appended_after(None) is None
    before = int(time.time() * 1000)
    first = await event_log.append(reads(2))
    between = int(time.time() * 1000)
    while int(time.time() * 1000) == between:  # the next append is a later millisecond
        await asyncio.sleep(0.001)
    second = await event_log.append(reads(1, start=2))
    after = int(time.time() * 1000)
    at_first = await event_log.appended_after(None)
    assert at_first is not None and before <= at_first <= between
    assert await event_log.appended_after(first[0].offset) == at_first
    at_second = await event_log.appended_after(first[-1].offset)
    assert at_second is not None and between < at_second <= after
    assert await event_log.appended_after(second[0].offset) is None


async def test_offsets_are_typed_and_ordered_in_log_order_by_every_reader(event_log: Any) -> None:
    appended = [r.offset for r in await event_log.append(reads(12))]
    assert all(isinstance(o, Offset) for o in appended)
    assert appended == sorted(appended) and len(set(appended)) == 12
    assert max(reversed(appended)) == appended[-1] == await event_log.head()
    pages = event_log.tail_pages(None)
    try:
        page = await anext(pages)
    finally:
        await pages.aclose()
    assert all(isinstance(o, Offset) for o, _ in page) and isinstance(page.end, Offset)
    await event_log.save_snapshot("fold", appended[4], b"x")
    saved, _ = await event_log.load_snapshot("fold")
    assert isinstance(saved, Offset) and appended[3] < saved < appended[5]
    assert isinstance(event_log, Countable) and isinstance(event_log, SnapshotStore)
    assert await event_log.count() == 12


async def test_a_second_log_on_the_same_storage_sees_the_first_ones_records(
    open_log: Opener,
) -> None:
    writer, reader = open_log(), open_log()
    early = await writer.append(reads(5))
    follower = Follower(reader, 8)
    try:
        await follower.wait_for_count(5)
        late = await writer.append(reads(3, start=5))
    finally:
        seen = await follower.finish()
    assert [o for o, _ in seen] == stored(early) + stored(late)
    assert [rec for _, rec in seen] == reads(8)
    assert await reader.head() == late[-1].offset
    assert (await reader.append(reads(1, start=2)))[0].duplicate  # keys are shared too


async def test_a_tail_sees_its_own_and_another_process_appends_interleaved_in_log_order(
    open_log: Opener,
) -> None:
    """This process's appends may reach its tail without being read back (the SQLite log
    hands them over directly); another process's records between them must still come, and
    everything in the order of its offsets, each once."""
    here, there = open_log(), open_log()
    follower = Follower(here, 12)
    stored_in_order: list[Offset] = []
    try:
        for i in range(6):
            for log, base in ((here, 0), (there, 100)):
                res = await log.append(reads(1, start=base + i))
                stored_in_order += stored(res)
            if i % 2:
                await follower.wait_for_count(2 * (i + 1))  # sometimes caught up, sometimes not
    finally:
        seen = await follower.finish()
    assert [o for o, _ in seen] == sorted(stored_in_order)
    expected = [r for i in range(6) for r in reads(1, start=i) + reads(1, start=100 + i)]
    assert [rec for _, rec in seen] == expected


async def test_concurrent_appends_are_each_stored_once(open_log: Opener) -> None:
    logs = [open_log(), open_log()]
    contested = Sighting("same-uuid", "cp1", "7", 1_000)

    async def caller(i: int) -> tuple[list[Record], list[AppendResult]]:
        mine = [*reads(5, reader=f"R{i}"), contested, *reads(5, reader=f"R{i}", start=5)]
        return mine, await logs[i % 2].append(mine)

    calls = await asyncio.wait_for(asyncio.gather(*(caller(i) for i in range(40))), WAIT_S)
    winners = 0
    for mine, results in calls:
        assert [r.key for r in results] == [r.key for r in mine]
        assert [r.duplicate for r in results[:5] + results[6:]] == [False] * 10
        winners += not results[5].duplicate
    assert winners == 1
    offsets = [o for _, results in calls for o in stored(results)]
    assert len(offsets) == len(set(offsets)) == 40 * 10 + 1
    got = await take(logs[0], len(offsets))
    assert {o for o, _ in got} == set(offsets)
    assert len({rec.key for _, rec in got}) == len(got)
    by_offset = dict(got)
    for mine, results in calls:  # each caller's records are where its results say
        for rec, res in zip(mine, results, strict=True):
            if res.offset is not None:
                assert by_offset[res.offset] == rec
    assert await logs[1].count() == 401


async def test_every_record_type_round_trips_unchanged(open_log: Opener) -> None:
    records = one_of_each()
    assert {type(r) for r in records} == set(get_args(Record))
    log = open_log()
    results = await log.append(records)
    assert not any(r.duplicate for r in results)
    got = await take(open_log(), len(records))
    assert [rec for _, rec in got] == records


# -- snapshots and lifecycle ----------------------------------------------------------------------


async def test_snapshots_round_trip(event_log: Any, open_log: Opener) -> None:
    assert await event_log.load_snapshot("fold") is None
    results = await event_log.append(reads(3))
    body = bytes(range(256)) * 4
    await event_log.save_snapshot("fold", results[1].offset, body)
    assert await event_log.load_snapshot("fold") == (results[1].offset, body)
    await event_log.save_snapshot("fold", results[2].offset, b"newer")
    await event_log.save_snapshot("other", results[0].offset, b"")
    other_process = open_log()
    assert await other_process.load_snapshot("fold") == (results[2].offset, b"newer")
    assert await other_process.load_snapshot("other") == (results[0].offset, b"")
    assert await other_process.load_snapshot("missing") is None
    got = await take(other_process, 1, after=results[1].offset)  # a snapshot offset resumes
    assert got == [(results[2].offset, reads(3)[2])]


async def test_close_is_idempotent(event_log: Any) -> None:
    await event_log.append(reads(1))
    await event_log.close()
    await event_log.close()


# -- leases: one holder at a time among the processes sharing a log ----------------------------


async def test_a_lease_has_one_holder_until_released(open_log: Opener) -> None:
    a, b = open_log(), open_log()  # two processes
    assert isinstance(a, Leases)
    assert await a.lease("readers", "process-a", 30)
    assert not await b.lease("readers", "process-b", 30)
    assert await a.lease("readers", "process-a", 30)  # renewing keeps it
    assert await a.lease("other", "process-b", 30)  # leases are independent by name
    await b.release("readers", "process-b")  # not b's to give up: nothing happens
    assert not await b.lease("readers", "process-b", 30)
    await a.release("readers", "process-a")
    assert await b.lease("readers", "process-b", 30)
    assert not await a.lease("readers", "process-a", 30)


async def test_an_unrenewed_lease_expires_and_another_process_takes_it(open_log: Opener) -> None:
    a, b = open_log(), open_log()
    assert await a.lease("readers", "process-a", 1.0)
    assert not await b.lease("readers", "process-b", 1.0)
    await asyncio.sleep(1.2)  # a stopped renewing (it crashed, or lost its connection)
    assert await b.lease("readers", "process-b", 30)
    assert not await a.lease("readers", "process-a", 30)  # a learns it lost it

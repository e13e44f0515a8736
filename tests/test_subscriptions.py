"""Push subscriptions beside the log, on every backend (a real redis-server for Redis), and
the alert loop over them: shared by processes, each alert claimed once, gone after the event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventfiles import MILE_WITH_HALF, course, event_file, header, points, race
from pushservice import PushService

from livetrack.domain.event import load_event_text
from livetrack.domain.records import ChipRead, GunStart, ParticipantRecord, Record
from livetrack.domain.state import RaceState
from livetrack.service.alerting import Alerter
from livetrack.service.push import PushSender, new_vapid_key
from livetrack.store.base import Offset
from livetrack.store.subscriptions import Follow, Subscription, subscriptions_for

ONE_RACE = event_file(
    header("one", "One Race"),
    course("c", MILE_WITH_HALF),
    race("r", "The Mile", "c", max_speed_mps=8.0),
    points("half", "finish"),
)
EVENT = load_event_text(ONE_RACE)
GUN = 1_781_431_200_000  # 10:00 BST on the event's day


def sub(n: int, follows: tuple[Follow, ...] = (Follow("1", "finish"),)) -> Subscription:
    return Subscription(f"https://push.example.org/s/{n}", "BPk" + "A" * 84, "a" * 22, follows)


async def test_subscriptions_are_shared_by_every_process_on_the_log(
    open_log: Callable[[], Any],
) -> None:
    log_a, log_b = open_log(), open_log()
    a, b = subscriptions_for(log_a), subscriptions_for(log_b)
    try:
        v0 = await b.version()
        await a.put(sub(1))
        await a.put(sub(2))
        assert await b.version() != v0
        assert sorted(s.endpoint for s in await b.all()) == [sub(1).endpoint, sub(2).endpoint]
        changed = sub(1, (Follow("1", "half", None, 300), Follow("2", "", 1200.0)))
        await b.put(changed)  # the same endpoint: replaced, not added
        got = {s.id: s for s in await a.all()}
        assert len(got) == 2 and got[changed.id].follows == changed.follows
        assert await a.remove(sub(2).id) is True and await b.remove(sub(2).id) is False
        key = await a.vapid_key(new_vapid_key)
        assert await b.vapid_key(new_vapid_key) == key  # one server identity, made once
        assert await b.clear() == 1 and await a.all() == []
    finally:
        await a.close()
        await b.close()


def race_records() -> list[Record]:
    people: list[Record] = [
        ParticipantRecord(str(i), "r", f"F{i}", f"L{i}", (f"C{i}",)) for i in range(1, 13)
    ]
    reads: list[Record] = [GunStart("r", GUN, id="g")]
    for i in range(1, 13):
        half = GUN + (200 + 10 * i) * 1000
        reads.append(ChipRead("m", "half", f"C{i}", half))
        reads.append(ChipRead("m", "finish", f"C{i}", half + (200 + 10 * i) * 1000))
    return people + sorted(reads, key=lambda r: getattr(r, "time_ms", 0))


async def catch_up(lg: Any, st: RaceState, after: Offset | None) -> Offset | None:
    """Fold what the shared log holds beyond ``after`` (as each process's tail does)."""
    head = await lg.head()
    if head is None or (after is not None and after >= head):
        return after
    pages = lg.tail_pages(after)
    try:
        async for page in pages:
            st.apply_all([r for _, r in page])
            after = page.end
            if after >= head:
                break
    finally:
        await pages.aclose()
    return after


async def test_two_deciders_on_one_log_claim_each_alert_once_and_clear_after_the_event(
    open_log: Callable[[], Any],
) -> None:
    records = race_records()
    clock = [GUN]
    with PushService() as svc:
        logs = [open_log(), open_log()]
        await logs[0].append(records[:13])  # the entrants and the gun
        store = subscriptions_for(logs[0])
        key = await store.vapid_key(new_vapid_key)
        b = svc.subscribe(PushSender(key, "mailto:t@example.org", store.remove).public_key)
        follow = (Follow("12", "finish", None, 60),)
        await store.put(Subscription(b.endpoint, b.p256dh, b.json()["keys"]["auth"], follow))
        deciders = []
        for lg in logs:
            s = subscriptions_for(lg)
            sender = PushSender(
                await s.vapid_key(new_vapid_key),
                "mailto:t@example.org",
                s.remove,
                clock_ms=lambda: clock[0],
            )
            await sender.start()
            st = RaceState(EVENT)
            deciders.append([lg, st, s, sender, Alerter(st, s, sender, lg.append, lambda: 0), None])
        try:
            claimed: list[str] = []
            rest = records[13:]
            end = GUN + 1200_000
            while clock[0] < end:
                clock[0] += 5_000
                now = clock[0]
                due_now = [r for r in rest if getattr(r, "time_ms", 0) <= now]
                rest = [r for r in rest if getattr(r, "time_ms", 0) > now]
                if due_now:
                    await logs[0].append(due_now)
                for d in deciders:  # both fold the same log, then both decide at once
                    d[5] = await catch_up(d[0], d[1], d[5])
                for d in deciders:
                    claimed += [a.kind for a in await d[4].run_once(now)]
            for d in deciders:
                await d[3].drain(10)
            assert sorted(claimed) == ["finished", "near:finish", "passed:half"]
            assert sorted(m["tag"] for m in svc.to(b.endpoint)) == [
                "12:finished",
                "12:near:finish",
                "12:passed:half",
            ]
            assert svc.rejected == []
            # after the event (every race over) the subscriptions are removed
            assert await deciders[0][4].run_once(end + 3 * 3600_000) == []
            assert await store.all() == []
        finally:
            for d in deciders:
                await d[3].stop()
                await d[2].close()
            await store.close()


async def test_closing_waits_for_a_transaction_whose_caller_was_cancelled(tmp_path: Any) -> None:
    import asyncio
    import sqlite3
    import time

    from livetrack.store.subscriptions import SqliteSubscriptions

    subs = SqliteSubscriptions(str(tmp_path / "subs.db"))
    started, finished = asyncio.Event(), []
    loop = asyncio.get_running_loop()

    def slow(conn: sqlite3.Connection) -> None:
        loop.call_soon_threadsafe(started.set)
        time.sleep(0.3)
        conn.execute("SELECT count(*) FROM push_subscriptions").fetchone()
        finished.append(True)

    task = asyncio.create_task(subs._run(slow))
    await started.wait()
    task.cancel()
    await subs.close()  # a close under the running statement would crash the process
    assert finished == [True]


async def test_failing_alert_passes_are_logged_once_when_they_start_and_once_on_recovery(
    open_log: Callable[[], Any], caplog: Any
) -> None:
    import logging

    clock = GUN + 321_000  # runner 12 passed halfway a second ago: an alert is due
    records = [r for r in race_records() if getattr(r, "time_ms", 0) <= clock]
    lg = open_log()
    await lg.append(records)
    st = RaceState(EVENT)
    await catch_up(lg, st, None)
    store = subscriptions_for(lg)
    down = [True]

    async def append(recs: list[Record]) -> Any:
        if down[0]:
            raise ConnectionError("the site link is down")
        return await lg.append(recs)

    sender = PushSender(await store.vapid_key(new_vapid_key), "mailto:t@example.org", store.remove)
    await store.put(sub(1, (Follow("12", "finish", None, 60),)))
    alerter = Alerter(st, store, sender, append, lambda: clock)
    caplog.set_level(logging.INFO, logger="livetrack.alerts")
    try:
        assert [await alerter.attempt() for _ in range(5)] == [False] * 5
        failing = [r for r in caplog.records if r.name == "livetrack.alerts"]
        assert len(failing) == 1 and "failing" in failing[0].getMessage()
        assert failing[0].exc_info is not None  # the cause is in the one line
        down[0] = False
        assert await alerter.attempt() is True
        assert sender.queue.qsize() == 1  # the alert the failed passes could not claim
        assert await alerter.attempt() is True
        logged = [r.getMessage() for r in caplog.records if r.name == "livetrack.alerts"]
        assert len(logged) == 2 and "after 5 failed" in logged[1]
        down[0] = True
        assert await alerter.attempt() is True  # nothing left to append: the pass works
    finally:
        await sender.stop()
        await store.close()


async def test_the_lease_holder_resends_claims_left_without_an_outcome_or_lets_them_expire(
    open_log: Callable[[], Any],
) -> None:
    from livetrack.domain.records import AlertOutcome, AlertSent
    from livetrack.store.base import Leases

    clock = GUN + 321_000  # runner 12 passed halfway a second ago
    lg = open_log()
    assert isinstance(lg, Leases)
    await lg.append([r for r in race_records() if getattr(r, "time_ms", 0) <= clock])
    st = RaceState(EVENT)
    at = await catch_up(lg, st, None)
    store = subscriptions_for(lg)
    now = [clock]
    with PushService() as svc:
        key = await store.vapid_key(new_vapid_key)
        sender = PushSender(key, "mailto:t@example.org", store.remove, clock_ms=lambda: now[0])
        b = svc.subscribe(sender.public_key)
        here = Subscription(b.endpoint, b.p256dh, b.json()["keys"]["auth"], (Follow("12"),))
        await store.put(here)

        def claim(supporter: str, kind: str, expires_ms: int) -> AlertSent:
            return AlertSent(
                supporter, "12", kind, clock - 900, clock - 1000, expires_ms, kind, "b", "/r/12"
            )

        # what a process stopped with: claimed, not answered
        await lg.append(
            [
                claim(here.id, "passed:half", clock + 300_000),
                claim(here.id, "near:finish", clock - 1),  # its moment has passed
                claim("elsewhere", "passed:half", clock + 60_000),  # not subscribed here
            ]
        )
        at = await catch_up(lg, st, at)
        alerter = Alerter(st, store, sender, lg.append, lambda: now[0], leases=lg)
        idle = PushSender(key, "mailto:t@example.org", store.remove)
        other = Alerter(st, store, idle, lg.append, lambda: now[0], leases=lg)
        await sender.start()
        try:
            await alerter.hold()
            await other.hold()
            assert alerter.leading and not other.leading
            assert await alerter.attempt() is True  # runner 12's passing: already claimed
            assert await alerter.resume(clock) == 1
            await sender.drain(10)
            await alerter.flush()
            at = await catch_up(lg, st, at)
            assert list(st.alerts_pending) == ["alert:elsewhere:12:passed:half"]
            assert await alerter.resume(clock) == 0  # nothing sent twice
            now[0] = clock + 60_001
            await alerter.resume(now[0])
            await alerter.flush()
            at = await catch_up(lg, st, at)
            assert st.alerts_pending == {}
        finally:
            await sender.stop()
            await store.close()
    assert [m["tag"] for m in svc.to(here.endpoint)] == ["12:passed:half"]
    outcomes: list[tuple[str, str, str]] = []
    async for page in lg.tail_pages(None):
        outcomes += [
            (r.supporter, r.kind, r.outcome) for _, r in page if isinstance(r, AlertOutcome)
        ]
        if page.end >= await lg.head():
            break
    assert sorted(outcomes) == sorted(
        [
            (here.id, "passed:half", "delivered"),
            (here.id, "near:finish", "expired"),
            ("elsewhere", "passed:half", "expired"),
        ]
    )
    assert sender.counters.resent == 1 and sender.counters.expired == 2

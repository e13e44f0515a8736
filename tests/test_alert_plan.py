"""The alert loop's plan: a pass looks at the watches of the runners who moved and at those
whose moment has come, not at every watch; and the alerts come at the same moments as when
every watch is looked at every step."""

from __future__ import annotations

from pathlib import Path

from eventfiles import MILE_WITH_HALF, course, event_file, header, points, race
from test_alerts import simulated_10k

from livetrack.cli import demo_event
from livetrack.domain.alert_plan import REFRESH_MS, Plan
from livetrack.domain.alerts import Spot, Watch
from livetrack.domain.event import load_event_text
from livetrack.domain.records import ChipRead, GunStart, ParticipantRecord, Record
from livetrack.domain.state import RaceState
from livetrack.evaluation.alerts import play
from livetrack.service.alerting import Alerter
from livetrack.service.push import PushSender, new_vapid_key
from livetrack.store.base import AppendResult
from livetrack.store.sqlite import SqliteEventLog
from livetrack.store.subscriptions import Follow, MemorySubscriptions, Subscription

MILE = event_file(
    header("one", "One Race"),
    course("c", MILE_WITH_HALF),
    race("r", "The Mile", "c", max_speed_mps=8.0),
    points("half", "finish"),
)
GUN = 1_781_431_200_000  # 10:00 BST on the event's day
FIELD = 10_000


def supporter(n: int) -> Subscription:
    return Subscription(
        f"https://push.example.org/s/{n}",
        "BPk" + "A" * 84,
        "a" * 22,
        (Follow(str(n), "finish", None, 60),),
        kinds=("passed", "finished"),
    )


async def test_a_pass_over_ten_thousand_watches_looks_only_at_the_runners_who_moved(
    tmp_path: Path,
) -> None:
    event = load_event_text(MILE)
    state = RaceState(event)
    state.apply_all(
        [ParticipantRecord(str(i), "r", f"F{i}", f"L{i}", (f"C{i}",)) for i in range(1, FIELD + 1)]
        + [GunStart("r", GUN, id="g")]
    )
    lg = SqliteEventLog(tmp_path / "events.db")
    store = MemorySubscriptions()
    for n in range(1, FIELD + 1):
        await store.put(supporter(n))

    async def append(records: list[Record]) -> list[AppendResult]:
        results = await lg.append(records)
        state.apply_all(records)  # the claims fold in, as the process's tail folds them
        return results

    sender = PushSender(await store.vapid_key(new_vapid_key), "mailto:t@example.org", store.remove)
    clock = [GUN + 190_000]
    alerter = Alerter(state, store, sender, append, lambda: clock[0])
    plan = alerter.plan
    try:
        assert await alerter.run_once(clock[0]) == []  # the first pass looks at every watch
        assert plan.examined == FIELD and alerter.evaluated == FIELD

        # three runners pass halfway: the next pass looks at their three watches only
        passed = GUN + 200_000
        state.apply_all([ChipRead("m", "half", f"C{i}", passed) for i in (17, 4242, 9999)])
        clock[0] = passed + 1000
        claimed = await alerter.run_once(clock[0])
        assert plan.examined == FIELD + 3 and plan.examined_moved == 3
        assert sorted((a.bib, a.kind) for a in claimed) == [
            ("17", "passed:half"),
            ("4242", "passed:half"),
            ("9999", "passed:half"),
        ]
        # a pass with nothing moved and no moment come looks at nothing
        clock[0] += 1000
        assert await alerter.run_once(clock[0]) == []
        assert plan.examined == FIELD + 3

        # nothing moves for a minute, a pass a second: the three runners on the course are
        # looked at once or twice (their predictions drift as the field passes mats), the
        # 9,997 who have not passed a mat not at all (nothing of theirs comes with time alone)
        looks = []
        for _ in range(REFRESH_MS // 1000):
            before = plan.examined
            clock[0] += 1000
            await alerter.run_once(clock[0])
            looks.append(plan.examined - before)
        assert 3 <= sum(looks) <= 6

        # one of them finishes: looked at when the finish has stood a minute, alerted then
        finish = clock[0] = passed + 200_000
        state.apply_all([ChipRead("m", "finish", "C17", finish)])
        await alerter.run_once(clock[0])
        found: dict[int, list[str]] = {}
        for _ in range(62):
            clock[0] += 1000
            found[clock[0] - finish] = [a.kind for a in await alerter.run_once(clock[0])]
        assert [t for t, kinds in found.items() if "finished" in kinds] == [60_000]
        assert sender.queue.qsize() == 4  # three passings and one finish, each claimed once
    finally:
        await sender.stop()
        await lg.close()


async def test_a_watch_taken_but_not_decided_is_looked_at_on_the_next_pass() -> None:
    event = demo_event()
    state = RaceState(event)
    plan = Plan()
    w = Watch("s1", "1", Spot("hall"), 180)
    plan.load([w])
    assert plan.take(state, 0) == [w]
    assert plan.take(state, 10**12) == []  # taken and never planned again: gone, until ...
    plan.again([w])  # ... the caller says its pass failed
    assert plan.take(state, 1) == [w]
    plan.plan(w, state, 1, {}, set())
    assert plan.take(state, 2) == []
    plan.load([])  # unsubscribed: never looked at again
    assert plan.take(state, 10**12) == []


def test_a_planned_race_alerts_every_watch_at_the_same_moments_as_looking_at_all() -> None:
    records = simulated_10k(200, seed=5)
    watches = [
        Watch(f"s{b}-{spot}", str(b), Spot(spot), lead)
        for b in range(1, 201, 3)
        for spot, lead in (("hall", 120), ("lake2", 300))
    ]
    plan = Plan()
    planned = play(RaceState(demo_event()), records, watches, plan=plan)
    every = play(RaceState(demo_event()), records, watches)
    kinds = {k.split(":")[0] for t in every for k in t.when}
    assert {"near", "passed", "finished"} <= kinds
    assert sum(len(t.when) for t in every) > 3 * len(watches)
    for a, b in zip(planned, every, strict=True):
        assert a.when == b.when, a.watch
    steps = (max(t for t, _ in records) + 15 * 60_000 - min(t for t, _ in records)) // 5000 + 1
    assert plan.examined < steps * len(watches) // 15  # 15,211 of 358,316 when written

"""Which push alerts are due, decided from the fold and the clock: plain functions, no I/O."""

from __future__ import annotations

from datetime import datetime
from datetime import time as dtime

from livetrack import sim
from livetrack.cli import demo_event
from livetrack.domain.alerts import QUIET_END_MS, Spot, Watch, due, eta_at, races_over
from livetrack.domain.records import ChipRead, GunStart, Record, StatusChange
from livetrack.domain.state import RaceState
from livetrack.evaluation.alerts import play, summary

EVENT = demo_event()
GUN = int(datetime.combine(EVENT.date, dtime(10, 0), EVENT.tz).timestamp() * 1000)


def simulated_10k(runners: int = 120, seed: int = 11) -> list[tuple[int, Record]]:
    people = [p for p in sim.make_participants(EVENT, {"tenk": runners}) if p.race == "tenk"]
    out: list[tuple[int, Record]] = [(GUN - 60_000, p) for p in people]
    for a in sim.plan(EVENT, people, {"tenk": GUN}, seed=seed):
        if a.kind == "gun":
            out.append((a.at_ms, GunStart(a.race, a.at_ms, a.wave, id=f"gun-{a.wave}")))
        else:
            b = a.read
            assert b is not None
            out.append(
                (
                    a.at_ms,
                    ChipRead(
                        str(b["reader"]), str(b["point"]), str(b["chip"]), a.at_ms, int(b["seq"])
                    ),
                )  # type: ignore[call-overload]
            )
    return out


def test_a_runner_approaching_the_supporters_spot_gets_one_near_alert_before_arriving() -> None:
    state = RaceState(EVENT)
    watches = [Watch(f"s{b}", str(b), Spot("lake2"), 180) for b in range(1, 121, 7)]
    timings = play(state, simulated_10k(), watches)
    arrived = [t for t in timings if t.arrival_ms is not None]
    assert len(arrived) >= 14
    for t in arrived:
        assert t.alerts.count("near:lake2") == 1, (t.watch.bib, t.alerts)
        assert t.alert_ms is not None and t.arrival_ms is not None
        assert t.alert_ms < t.arrival_ms  # never for a moment already passed
        assert t.alerts.index("near:lake2") < t.alerts.index("passed:lake2")
    figures = summary(timings)
    assert figures["missed"] == 0 and figures["after_arrival"] == 0
    assert abs(figures["median_error_s"]) < 60  # about the lead time ahead, not minutes off


def test_a_late_runner_gets_the_overdue_alert_once() -> None:
    records = simulated_10k(60)
    state = RaceState(EVENT)
    # runner 5 stops after the hall: their reads beyond it never come
    chip = next(r.chips[0] for _, r in records if getattr(r, "bib", None) == "5")  # type: ignore[attr-defined]
    hall_s = None
    kept = []
    for at, r in sorted(records, key=lambda x: x[0]):
        if (
            isinstance(r, ChipRead)
            and r.chip == chip
            and r.point in ("lake", "finish", "finish-backup")
        ) and hall_s is not None:
            continue
        if isinstance(r, ChipRead) and r.chip == chip and r.point == "hall":
            hall_s = at
        kept.append((at, r))
    assert hall_s is not None
    timings = play(state, kept, [Watch("s", "5", Spot("lake2"), 180)])
    assert timings[0].alerts.count("overdue:lake2") == 1
    assert "passed:lake2" not in timings[0].alerts and "finished" not in timings[0].alerts


def test_the_last_finisher_is_announced_and_then_nothing_once_the_race_is_over() -> None:
    state = RaceState(EVENT)
    records = simulated_10k(40)
    state.apply_all([r for _, r in sorted(records, key=lambda x: x[0])])
    t_last, last_bib = state.finishers["tenk"][-1]
    w = Watch("s", last_bib, Spot("finish"), 180)
    assert [a.kind for a in due(state, w, t_last + 90_000)] == ["finished"]
    assert "tenk" not in races_over(state, t_last + 90_000)
    # runners who stopped without a DNF keep it open until nobody has passed a mat for a while
    stopped = [r.bib for r in state.runners.values() if r.passings and "finish" not in r.passings]
    over_at = t_last + (QUIET_END_MS + 60_000 if stopped else 6 * 60_000)
    assert "tenk" in races_over(state, over_at)
    for bib in stopped:  # their overdue alerts are not sent once the race is over either
        assert due(state, Watch("s", bib, Spot("finish"), 180), over_at) == []


def test_a_passing_is_news_for_five_minutes_and_a_finish_once_it_has_stood_a_minute() -> None:
    state = RaceState(EVENT)
    records = sorted(simulated_10k(40), key=lambda x: x[0])
    runner = "7"
    state.apply_all([r for at, r in records if at <= GUN])
    chip = state.runners[runner].p.chips[0]
    lake = next(
        at for at, r in records if isinstance(r, ChipRead) and r.chip == chip and r.point == "lake"
    )
    state.apply_all([r for at, r in records if GUN < at <= lake])
    w = Watch("s", runner, None, 180)
    kinds = [a.kind for a in due(state, w, lake + 1000)]
    assert kinds == ["passed:lake"]
    assert due(state, w, lake + 6 * 60_000) == []  # stale: not sent to someone who joins late
    assert due(state, w, lake + 1000, sent={f"alert:s:{runner}:passed:lake"}) == []


def test_where_i_stand_between_checkpoints_interpolates_the_runners_prediction() -> None:
    state = RaceState(EVENT)
    records = sorted(simulated_10k(80), key=lambda x: x[0])
    chip = next(r.chips[0] for _, r in records if getattr(r, "bib", None) == "9")  # type: ignore[attr-defined]
    hall = next(
        at for at, r in records if isinstance(r, ChipRead) and r.chip == chip and r.point == "hall"
    )
    state.apply_all([r for at, r in records if at <= hall + 1000])
    r = state.runners["9"]
    at_lake2 = eta_at(state, r, Spot("lake2"))
    mid = eta_at(state, r, Spot("", 6250.0))
    assert at_lake2 is not None and mid is not None and not mid.passed
    hall_ms = r.passings["hall"].time_ms
    assert hall_ms < mid.at_ms < at_lake2.at_ms
    assert abs((mid.at_ms - hall_ms) - (at_lake2.at_ms - hall_ms) / 2) < 2000
    assert mid.low_ms <= mid.at_ms <= mid.high_ms
    behind = eta_at(state, r, Spot("", 3000.0))
    assert behind is not None and behind.passed
    assert eta_at(state, r, Spot("", 20_000.0)) is None  # not on the course


def test_a_runner_who_dropped_out_gets_no_near_or_overdue_alert() -> None:
    state = RaceState(EVENT)
    records = sorted(simulated_10k(40), key=lambda x: x[0])
    mid = records[len(records) // 2][0]
    state.apply_all([r for at, r in records if at <= mid])
    state.apply(StatusChange("dnf-11", "11", "DNF", "retired at the hall", at_ms=mid))
    w = Watch("s", "11", Spot("finish"), 600, frozenset({"near", "overdue"}))
    assert all(due(state, w, mid + k * 60_000) == [] for k in range(0, 60, 5))


def test_every_race_on_a_course_has_spots_to_stand_at_but_a_sprint_in_rounds_has_none() -> None:
    from livetrack.domain.alerts import has_spots

    offered = {rid: has_spots(race) for rid, race in EVENT.races.items()}
    assert offered["b100"] is False  # the sprint in rounds, on the track
    assert offered["tenk"] is True and offered["mile"] is True
    # the fun run is timed at its start and finish only: a spot is a distance along it
    assert [cp.id for cp in EVENT.races["fun"].course.checkpoints] == ["start", "finish"]
    assert offered["fun"] is True


def test_a_claim_is_unsettled_until_its_outcome_is_folded_and_a_snapshot_keeps_it() -> None:
    from livetrack.domain import snapshot
    from livetrack.domain.records import AlertOutcome, AlertSent, decode, encode

    state = RaceState(demo_event())
    claims = [
        AlertSent("s1", "12", "passed:hall", 1_000, 900, 301_000, "A passed", "At 10:01", "/r/12"),
        AlertSent("s2", "12", "passed:hall", 1_000, 900, 301_000, "A passed", "At 10:01", "/r/12"),
        AlertSent("s3", "12", "finished", 1_000),  # a claim from before outcomes were recorded
    ]
    for record in claims:
        state.apply(decode(encode(record)))  # as read back from the log
    assert sorted(state.alerts_pending) == ["alert:s1:12:passed:hall", "alert:s2:12:passed:hall"]
    assert state.alerts_pending["alert:s1:12:passed:hall"] == claims[0]
    state.apply(decode(encode(AlertOutcome("s1", "12", "passed:hall", "delivered", 2_000))))
    assert list(state.alerts_pending) == ["alert:s2:12:passed:hall"]
    assert len(state.alerts_sent) == 3
    loaded = snapshot.loads(snapshot.dumps(state, "7", "v1"), state.event, "v1")
    assert loaded is not None
    assert loaded[1].alerts_pending == {"alert:s2:12:passed:hall": claims[1]}

"""The timer console's view models: reader health, guns, the announcer's feed, problems,
unmatched chips and a runner's audited history, each a plain dict for its template block
(``templates/timer.html``). Pure functions of the fold's state and a time."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from livetrack.domain.expect import start_ms
from livetrack.domain.obstacles import obstacle_at
from livetrack.domain.ranking import ALL
from livetrack.domain.readers import QUIET_MS
from livetrack.domain.records import (
    ChipAssign,
    Correction,
    Judgement,
    Record,
    Sighting,
    StatusChange,
)
from livetrack.domain.state import RaceState
from livetrack.web.views import fmt_clock, fmt_elapsed, race_status


def race_day(state: RaceState, race_id: str = "") -> date:
    """The day a time typed on the console for ``race_id`` is read on: the day of its gun (or
    scheduled start) in the event's time zone, else the event's date."""
    at = state.gun_ms(race_id) if race_id in state.event.races else None
    if at is None:
        return state.event.date
    return datetime.fromtimestamp(at / 1000, state.event.tz).date()


def utc_offset(state: RaceState, day: date | None = None) -> str:
    """The event's UTC offset on ``day`` (default the event's date), ``+01:00`` (the console
    builds ISO times with it)."""
    noon = datetime.combine(day or state.event.date, time(12), state.event.tz)
    delta = noon.utcoffset()
    minutes = int(delta.total_seconds() // 60) if delta is not None else 0
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _describe(st: RaceState, rec: Record) -> tuple[str, int, str, str]:
    """(what, when, who, why) of one history record."""
    if isinstance(rec, Sighting):
        return (f"seen at {rec.point} {fmt_clock(st, rec.time_ms)}", rec.received_ms, rec.by, "")
    if isinstance(rec, Correction):
        if rec.kind == "undo":
            return (f"undo {rec.target}", rec.at_ms, rec.by, rec.reason)
        at = "" if rec.time_ms is None else f" → {fmt_clock(st, rec.time_ms)}"
        return (f"{rec.kind} {rec.point}{at}", rec.at_ms, rec.by, rec.reason)
    if isinstance(rec, StatusChange):
        return (f"status {rec.status}", rec.at_ms, rec.by, rec.reason)
    if isinstance(rec, Judgement):
        obstacle = obstacle_at(st.runners[rec.bib].race.obstacles, rec.point)
        cost = f" ({obstacle.penalty(rec.outcome).text()})" if obstacle is not None else ""
        name = obstacle.name if obstacle is not None else rec.point
        what = f"judged {rec.outcome} at {name}{cost}"
        return (what, rec.received_ms or rec.time_ms, rec.by, "")
    if isinstance(rec, ChipAssign):
        return (f"chip {rec.chip} assigned", 0, rec.by, "")
    return (rec.TYPE, 0, "", "")


def history_view(st: RaceState, bib: str) -> dict[str, Any] | None:
    r = st.runners.get(bib)
    if r is None:
        return None
    undone = {c.target for c in r.history if isinstance(c, Correction) and c.kind == "undo"}
    entries = []
    for rec in reversed(r.history):
        what, at, by, why = _describe(st, rec)
        undoable = isinstance(rec, Sighting | StatusChange | Judgement) or (
            isinstance(rec, Correction) and rec.kind != "undo"
        )
        entries.append(
            {
                "key": rec.key,
                "what": what,
                "when": fmt_clock(st, at) if at else "",
                "by": by,
                "why": why,
                "undone": rec.key in undone,
                "undoable": undoable and rec.key not in undone,
            }
        )
    begin = start_ms(st, r)
    passings = []
    for cp in r.race.course.checkpoints:
        p = r.passings.get(cp.id)
        passings.append(
            {
                "id": cp.id,
                "name": cp.name,
                "clock": fmt_clock(st, p.time_ms) if p else "",
                "elapsed": fmt_elapsed(p.time_ms - begin) if p and begin is not None else "",
                "source": p.source if p else "",
                "confirmed": bool(p and p.confirmed),
                "flag": bool(p and p.contradiction),
            }
        )
    day = race_day(st, r.race.id)
    return {
        "bib": r.bib,
        "name": r.name,
        "race": r.race.name,
        "day": day.isoformat(),
        "offset": utc_offset(st, day),
        "status": r.status,
        "reason": r.status_reason,
        "penalty": "+" + fmt_elapsed(r.penalty.ms) if r.penalty.ms else "",
        "passings": passings,
        "entries": entries,
    }


def guns_view(st: RaceState, now: int) -> dict[str, Any]:
    races = []
    for race in st.event.races.values():
        if race.rounds is not None:
            continue  # heats and finals are started and timed by the photo-finish system
        rs = race_status(st, race, now)
        waves = []
        whole = st.guns.get((race.id, ""), [])
        for w in race.waves:
            records = st.guns.get((race.id, w.id), [])
            waves.append(
                {
                    "id": w.id,
                    "started": bool(records or whole),
                    "name": w.name if w.id else "whole race",
                    "gun": fmt_clock(st, st.gun_ms(race.id, w.id))
                    if rs["status"] != "not started"
                    else "",
                    "records": [
                        {"key": k, "clock": fmt_clock(st, t), "current": i == len(records) - 1}
                        for i, (k, t) in enumerate(records)
                    ],
                }
            )
        if len(race.waves) > 1:
            waves.insert(
                0,
                {
                    "id": "",
                    "started": bool(whole),
                    "name": "all waves",
                    "gun": "",
                    "records": [
                        {"key": k, "clock": fmt_clock(st, t), "current": i == len(whole) - 1}
                        for i, (k, t) in enumerate(whole)
                    ],
                },
            )
        day = race_day(st, race.id)
        races.append({**rs, "waves": waves, "day": day.isoformat(), "offset": utc_offset(st, day)})
    return {"races": races}


def _feeds(st: RaceState, point: str) -> list[tuple[str, str]]:
    """(race, checkpoint) pairs that timing point ``point`` feeds."""
    tp = st.event.points.get(point)
    if tp is None:
        return []
    return [
        (race.id, cp.id)
        for race in st.event.races.values()
        for cp in race.course.checkpoints
        if cp.id in tp.checkpoints
    ]


def _offset(ms: int | None) -> str:
    if ms is None:
        return ""
    if abs(ms) < 60_000:
        return f"{ms / 1000:+.1f} s"
    return ("+" if ms > 0 else "-") + fmt_elapsed(abs(ms))


def readers_view(st: RaceState, now: int, heard_now: int | None = None) -> dict[str, Any]:
    """Reader health at event time ``now``. Reads are heard on the server's wall clock, so
    silence is measured against ``heard_now`` (the wall clock; default ``now``): a simulated
    or replayed race runs ahead of the wall clock, and its readers are not quiet for that."""
    heard = now if heard_now is None else heard_now
    running: dict[str, int] = {}
    for race in st.event.races.values():
        rs = race_status(st, race, now)
        if rs["status"] == "running" and rs["gun_ms"] is not None:
            running[race.id] = rs["gun_ms"]
    ids = list(dict.fromkeys([*st.event.readers, *st.readers.readers, *st.read_conflicts]))
    rows = []
    for rid in ids:
        stats = st.readers.get(rid)
        cfg = st.event.readers.get(rid)
        point = stats.point if stats else (cfg.point if cfg else "")
        feeds = [(race, cp) for race, cp in _feeds(st, point) if race in running]
        alert = ""
        if feeds:
            if stats is None or stats.last_heard_ms is None:
                passed = any(st.boards.count(race, cp, ALL) for race, cp in feeds if cp != "")
                if passed:
                    alert = "no reads, but runners have passed this point"
            elif heard - stats.last_heard_ms > QUIET_MS:
                alert = f"quiet for {fmt_elapsed(heard - stats.last_heard_ms)} during a race"
        offset = stats.clock_offset_ms if stats else None
        rows.append(
            {
                "id": rid,
                "point": point,
                "connection": stats.connection(heard) if stats else "silent",
                "last_read": fmt_clock(st, stats.last_read_ms)
                if stats and stats.last_read_ms
                else "",
                "ago": fmt_elapsed(stats.quiet_for_ms(heard))
                if stats and stats.last_heard_ms
                else "",
                "per_minute": stats.per_minute(heard) if stats else 0,
                "reads": stats.reads if stats else 0,
                "offset": _offset(offset),
                "alert": alert,
                "conflicts": st.read_conflicts.get(rid, 0),
            }
        )
    return {"rows": rows, "alerts": sum(1 for r in rows if r["alert"] or r["conflicts"])}


def announce_view(st: RaceState, limit: int = 12) -> dict[str, Any]:
    latest: list[tuple[int, str]] = []
    for feed in st.finishers.values():
        latest.extend(feed.islice(-limit, None, reverse=True))
    latest.sort(reverse=True)
    rows = []
    for t, bib in latest[:limit]:
        r = st.runners[bib]
        finish = r.race.course.checkpoints[-1].id
        raw = st.elapsed(r, finish)
        rows.append(
            {
                "bib": bib,
                "name": r.name,
                "club": r.p.club,
                "race": r.race.name,
                "ranked": r.race.ranked,
                "position": st.position(r, finish, ALL),
                "category": r.category,
                "category_position": st.position(r, finish, r.category) if r.category else None,
                # the final time: obstacle penalties included, and said
                "time": fmt_elapsed(None if raw is None else raw + r.penalty.ms),
                "penalty": "+" + fmt_elapsed(r.penalty.ms) if r.penalty.ms else "",
                "clock": fmt_clock(st, t),
            }
        )
    return {"rows": rows}


def problems_view(st: RaceState, limit: int = 200) -> dict[str, Any]:
    """Everything the timer should look at: records the fold could not place, contradictions,
    manual-only passings, missing splits and impossible paces."""
    items: list[dict[str, Any]] = [
        {"kind": p.kind, "bib": p.bib, "point": p.point, "detail": p.detail, "key": p.key}
        for p in st.problems.values()
    ]
    for r in st.runners.values():
        cps = r.race.course.checkpoints
        last = max((i for i, cp in enumerate(cps) if cp.id in r.passings), default=-1)
        prev_t = st.gun_ms(r.race.id, r.p.wave)
        prev_d = 0.0
        for i, cp in enumerate(cps):
            p = r.passings.get(cp.id)
            base = {"bib": r.bib, "point": cp.id, "key": ""}
            if p is None:
                if 0 < i < last and r.status == "ok":
                    items.append({**base, "kind": "missing-split", "detail": f"no {cp.name} time"})
                continue
            if p.contradiction:
                seen = ", ".join(fmt_clock(st, t) for t, _ in r.inputs.sightings.get(cp.id, ()))
                items.append(
                    {
                        **base,
                        "kind": "contradiction",
                        "detail": f"{p.source} {fmt_clock(st, p.time_ms)}; marshal saw {seen}",
                    }
                )
            elif p.source == "manual":
                items.append(
                    {**base, "kind": "manual-only", "detail": f"seen {fmt_clock(st, p.time_ms)}"}
                )
            if i > 0 and prev_t is not None:
                dt = (p.time_ms - prev_t) / 1000
                metres = cp.distance_m - prev_d
                if metres > 0 and (dt <= 0 or metres / dt > r.race.max_speed_mps):
                    items.append(
                        {
                            **base,
                            "kind": "impossible-pace",
                            "detail": f"{metres:.0f} m in {fmt_elapsed(int(dt * 1000))}",
                        }
                    )
            prev_t, prev_d = p.time_ms, cp.distance_m
    return {"rows": items[:limit], "count": len(items)}


def unmatched_view(st: RaceState) -> dict[str, Any]:
    rows = []
    for chip, count in sorted(st.unmatched.items()):
        reads = st.reads_by_chip.get(chip, [])
        last = max((t for _, t in reads), default=None)
        rows.append({"chip": chip, "reads": count, "last": fmt_clock(st, last)})
    return {"rows": rows}

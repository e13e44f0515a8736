"""View models: plain dictionaries derived from the fold for pages, fragments and the JSON API.

One function per region of a page; the same dictionary feeds the HTML block and the JSON,
so the two cannot disagree.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from livetrack.domain.alerts import race_over
from livetrack.domain.event import Race
from livetrack.domain.expect import expected, last_passing, next_checkpoint, start_ms
from livetrack.domain.meet import progress
from livetrack.domain.obstacles import describe
from livetrack.domain.ranking import ALL
from livetrack.domain.state import RaceState, Runner
from livetrack.web.meets_views import athlete_rounds, rounds_note


def fmt_elapsed(ms: int | None) -> str:
    """``6:58`` / ``1:02:03`` (tenths are dropped; negative shows as ``-0:03``)."""
    if ms is None:
        return ""
    sign = "-" if ms < 0 else ""
    s = abs(ms) // 1000
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{sign}{h}:{m:02d}:{sec:02d}" if h else f"{sign}{m}:{sec:02d}"


def fmt_clock(state: RaceState, ms: int | None) -> str:
    """A time of day in the event's time zone."""
    if ms is None:
        return ""
    try:
        return datetime.fromtimestamp(ms / 1000, state.event.tz).strftime("%H:%M:%S")
    except (OverflowError, OSError, ValueError):  # no stored time may take a page down
        return "??:??:??"


def fmt_pace(ms: int, metres: float) -> str:
    """Minutes per km, ``5:12/km``."""
    if metres <= 0 or ms <= 0:
        return ""
    per_km = int(ms / metres * 1000)
    return fmt_elapsed(per_km) + "/km"


def race_status(
    state: RaceState, race: Race, now_ms: int, clock_text: bool = True
) -> dict[str, Any]:
    """A race's status and clock. The clock is drawn on the page from ``gun_ms`` (and
    ``stop_ms`` once the race is over): with ``clock_text`` False its text is left out, so that
    a pushed region does not change with the time alone."""
    guns = [g for w in race.waves if (g := state.gun_ms(race.id, w.id)) is not None]
    gun = min(guns) if guns else None  # the first wave's gun starts the race clock
    started = state.started(race.id)
    finished = len(state.finishers[race.id])
    done = race_over(state, race, now_ms)
    status = "not started" if not started else ("finished" if done else "running")
    rounds = state.meet.get(race.id)
    if race.rounds is not None and rounds is not None:  # heats and finals: no gun, no mats
        status, finished = progress(rounds, race.rounds)
    # the clock runs while the race does, and stops at the last finish once everyone is in
    stop = state.finishers[race.id][-1][0] if done and finished else now_ms
    cps = race.course.checkpoints
    # until the fastest credible runner could reach the first mat, silence is expected
    first = cps[1] if len(cps) > 1 else cps[0]
    quiet_until = 0
    if (
        started
        and gun is not None
        and not any(state.boards.count(race.id, c.id, ALL) for c in cps[1:])
    ):
        quiet_until = gun + int(first.distance_m / race.max_speed_mps * 1000)
    return {
        "id": race.id,
        "name": race.name,
        "kind": race.kind,
        "status": status,
        "gun_ms": gun if started else None,
        "gun_clock": fmt_clock(state, gun) if started else "",
        "clock": (
            "" if not started or gun is None or not clock_text else fmt_elapsed(max(0, stop - gun))
        ),
        "stop_ms": stop if done and finished else None,
        "quiet_until": quiet_until,
        "entrants": state.race_counts(race.id).entrants,
        "finished": finished,
        # a race in rounds: where its rounds stand, said instead of how many finished
        "rounds": rounds_note(state, race.id) if race.rounds is not None else "",
        "distance_m": race.course.length_m,
        "course_record": fmt_elapsed(int(race.course_record_s * 1000))
        if race.course_record_s
        else "",
        "checkpoints": [
            {"id": cp.id, "name": cp.name, "distance_m": cp.distance_m}
            for cp in race.course.checkpoints
        ],
    }


def races(state: RaceState, now_ms: int, clock_text: bool = True) -> list[dict[str, Any]]:
    return [race_status(state, race, now_ms, clock_text) for race in state.event.races.values()]


def runner_row(state: RaceState, r: Runner, checkpoint: str, division: str) -> dict[str, Any]:
    race = r.race
    gun = state.elapsed(r, checkpoint, "gun")
    chip = state.elapsed(r, checkpoint, "chip")
    # obstacle penalties count at the finish: its times are final times (raw + penalty)
    pen = r.penalty.ms if checkpoint == race.course.checkpoints[-1].id else 0
    raw = gun if race.rank_by == "gun" else chip
    if pen:
        gun = None if gun is None else gun + pen
        chip = None if chip is None else chip + pen
    pos = state.position(r, checkpoint, division)
    cps = [cp.id for cp in race.course.checkpoints]
    i = cps.index(checkpoint)
    move = None
    prev_position = None
    for prev in reversed(cps[1:i]):
        before = state.position(r, prev, division)
        if before is not None and pos is not None:
            move = before - pos
            prev_position = before
            break
    passing = r.passings.get(checkpoint)
    return {
        "bib": r.bib,
        "name": r.name,
        "club": r.p.club,
        "category": r.category,
        "gender": r.p.gender,
        "position": pos,
        "gun": fmt_elapsed(gun),
        "chip": fmt_elapsed(chip),
        "gun_ms": gun,
        "chip_ms": chip,
        "move": move,
        "prev_position": prev_position,
        "status": r.status,
        "raw": fmt_elapsed(raw) if pen else "",
        "penalty": "+" + fmt_elapsed(pen) if pen else "",
        "manual": passing is not None and passing.source in ("manual", "corrected"),
    }


def board(
    state: RaceState, race_id: str, checkpoint: str, division: str = ALL, limit: int = 50
) -> dict[str, Any]:
    race = state.event.races[race_id]
    leader = state.boards.leader(race_id, checkpoint, division)
    rows = []
    for elapsed, bib in state.boards.top(race_id, checkpoint, division, limit):
        row = runner_row(state, state.runners[bib], checkpoint, division)
        row["gap"] = (
            "" if leader is None or elapsed == leader else "+" + fmt_elapsed(elapsed - leader)
        )
        row["rank_ms"] = elapsed  # the board's order: the page works positions and gaps out
        rows.append(row)
    cp = race.course.checkpoints[race.course.index(checkpoint)]
    return {
        "race": race_id,
        "race_name": race.name,
        "checkpoint": checkpoint,
        "checkpoint_name": cp.name,
        "division": division,
        "count": state.boards.count(race_id, checkpoint, division),
        "ranked": race.ranked,
        "rows": rows,
    }


def feed(state: RaceState, race_id: str, limit: int = 10) -> dict[str, Any]:
    race = state.event.races[race_id]
    finish = race.course.checkpoints[-1].id
    latest = list(state.finishers[race_id].islice(-limit, None, reverse=True)) if limit else []
    rows = []
    for _, bib in latest:
        r = state.runners[bib]
        row = runner_row(state, r, finish, ALL)
        row["category_position"] = state.position(r, finish, r.category) if r.category else None
        rows.append(row)
    return {"race": race_id, "rows": rows, "ranked": race.ranked}


#: The field's medians are recomputed after this many new records, or this many seconds after
#: anything new was folded (so a small race's chart does not wait for hundreds of records).
MEDIANS_EVERY_RECORDS = 500
MEDIANS_EVERY_S = 2.0


def segment_medians(state: RaceState, race_id: str) -> list[float | None]:
    """The field's median pace (ms per metre) on each segment of ``race_id``'s course."""
    cps = state.event.races[race_id].course.checkpoints
    samples: list[list[float]] = [[] for _ in cps[1:]]
    for r in state.runners.values():
        if r.race.id != race_id:
            continue
        for i in range(1, len(cps)):
            a, b = r.passings.get(cps[i - 1].id), r.passings.get(cps[i].id)
            if a is not None and b is not None:
                samples[i - 1].append(
                    (b.time_ms - a.time_ms) / (cps[i].distance_m - cps[i - 1].distance_m)
                )
    return [statistics.median(x) if x else None for x in samples]


class FieldMedians:
    """:func:`segment_medians` of one fold, kept per race: a whole-field statistic read by
    every runner card, recomputed only when enough records or time passed. The runner cards'
    region owns one (its cache), so nothing is kept beside the fold by identity."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: dict[str, tuple[int, float, list[float | None]]] = {}

    def __call__(self, state: RaceState, race_id: str) -> list[float | None]:
        now = self._clock()
        kept = self._kept.get(race_id)
        if kept is not None:
            applied, at, medians = kept
            new = state.applied - applied
            if new == 0 or (new < MEDIANS_EVERY_RECORDS and now - at < MEDIANS_EVERY_S):
                return medians
        medians = segment_medians(state, race_id)
        self._kept[race_id] = (state.applied, now, medians)
        return medians


def _expected_view(state: RaceState, r: Runner, cp_id: str, now: int) -> dict[str, Any] | None:
    exp = expected(state, r, cp_id)
    if exp is None:
        return None
    cps = r.race.course.checkpoints
    cp = cps[[c.id for c in cps].index(cp_id)]
    begin = start_ms(state, r) or exp.at_ms
    return {
        "id": cp.id,
        "name": cp.name,
        "distance_m": cp.distance_m,
        "at_ms": exp.at_ms,
        "high_ms": exp.high_ms,
        "clock": fmt_clock(state, exp.at_ms),
        "low": fmt_clock(state, exp.low_ms)[:5],
        "high": fmt_clock(state, exp.high_ms)[:5],
        "elapsed": fmt_elapsed(exp.at_ms - begin),
        "elapsed_low": fmt_elapsed(exp.low_ms - begin),
        "elapsed_high": fmt_elapsed(exp.high_ms - begin),
        "in_min": max(0, round((exp.at_ms - now) / 60000)),
        "overdue": now > exp.high_ms and last_passing(r) is not None,
        "updating": exp.updating,
    }


def runner(
    state: RaceState, bib: str, now: int | None = None, medians: FieldMedians | None = None
) -> dict[str, Any] | None:
    """A runner's card; ``medians`` keeps the field's medians between calls (without one they
    are computed afresh)."""
    r = state.runners.get(bib)
    if r is None:
        return None
    now = state.now_ms if now is None else now
    race = r.race
    cps = race.course.checkpoints
    field = (medians or segment_medians)(state, race.id)
    splits = []
    segments = []
    start = r.passings.get(cps[0].id)
    prev_t: int | None = start.time_ms if start is not None else state.gun_ms(race.id, r.p.wave)
    prev_d = 0.0
    last: dict[str, Any] | None = None
    for i, cp in enumerate(cps):
        p = r.passings.get(cp.id)
        row: dict[str, Any] = {"id": cp.id, "name": cp.name, "distance_m": cp.distance_m}
        if p is not None:
            pace_ms = (p.time_ms - prev_t) / (cp.distance_m - prev_d) if i and prev_t else None
            row.update(
                {
                    "clock": fmt_clock(state, p.time_ms),
                    "time_ms": p.time_ms,
                    "gun": fmt_elapsed(state.elapsed(r, cp.id, "gun")) if i else "",
                    "chip": fmt_elapsed(state.elapsed(r, cp.id, "chip")) if i else "",
                    "position": state.position(r, cp.id, ALL),
                    "gender_position": state.position(r, cp.id, r.p.gender) if r.p.gender else None,
                    "category_position": (
                        state.position(r, cp.id, r.category) if r.category else None
                    ),
                    "pace": fmt_pace(int(pace_ms * 1000), 1000) if pace_ms else "",
                    "source": p.source,
                    "confirmed": p.confirmed,
                }
            )
            if cp.id == cps[-1].id and r.penalty.ms:  # the finish: final time, penalty shown
                raw = state.elapsed(r, cp.id)
                pen = r.penalty.ms
                gun, chip = state.elapsed(r, cp.id, "gun"), state.elapsed(r, cp.id, "chip")
                row["gun"] = fmt_elapsed(None if gun is None else gun + pen)
                row["chip"] = fmt_elapsed(None if chip is None else chip + pen)
                row["raw"], row["penalty"] = fmt_elapsed(raw), "+" + fmt_elapsed(pen)
            if i and pace_ms:
                segments.append({"name": cp.name, "pace": pace_ms, "median": field[i - 1]})
            prev_t, prev_d = p.time_ms, cp.distance_m
            last = {
                "id": cp.id,
                "name": cp.name,
                "time_ms": p.time_ms,
                "distance_m": cp.distance_m,
                "clock": fmt_clock(state, p.time_ms)[:5],
            }
        splits.append(row)
    nxt = next_checkpoint(r)
    finish_id = cps[-1].id
    return {
        "bib": r.bib,
        "name": r.name,
        "club": r.p.club,
        "team": r.p.team,
        "category": r.category,
        "gender": r.p.gender,
        "race": race.id,
        "race_name": race.name,
        "status": r.status,
        "status_reason": r.status_reason,
        "penalties": describe(r.penalty),
        "rounds": athlete_rounds(state, r.bib),
        "splits": splits,
        "segments": segments,
        "chart": pace_chart(segments),
        "last": last,
        "next": _expected_view(state, r, nxt, now) if nxt else None,
        "finish": _expected_view(state, r, finish_id, now) if nxt and nxt != finish_id else None,
        "now_ms": now,
    }


def pace_chart(
    segments: list[dict[str, Any]], width: int = 320, height: int = 120
) -> dict[str, Any]:
    """Geometry of a small SVG bar chart: the runner's pace per segment (bars) against the
    field's median (ticks). Slower is taller, so a fading runner's bars climb."""
    paces = [s["pace"] for s in segments] + [s["median"] for s in segments if s["median"]]
    if not segments or not paces:
        return {"bars": [], "width": width, "height": height}
    top = max(paces) * 1.1
    n = len(segments)
    slot = width / n
    bars = []
    for i, s in enumerate(segments):
        h = s["pace"] / top * (height - 20)
        m = s["median"] / top * (height - 20) if s["median"] else None
        w = min(slot * 0.6, 36.0)
        bars.append(
            {
                "x": round(i * slot + (slot - w) / 2, 1),
                "w": round(w, 1),
                "y": round(height - 18 - h, 1),
                "h": round(h, 1),
                "median_y": round(height - 18 - m, 1) if m is not None else None,
                "label": s["name"][:10],
                "lx": round(i * slot + slot / 2, 1),
                "pace": fmt_pace(int(s["pace"] * 1000), 1000),
                "median": fmt_pace(int(s["median"] * 1000), 1000) if s["median"] else "",
            }
        )
    return {"bars": bars, "width": width, "height": height}


def search(state: RaceState, query: str, limit: int = 20) -> list[dict[str, Any]]:
    """Runners whose bib, name or club contains ``query`` (bib exact matches first)."""
    q = query.strip().lower()
    if not q:
        return []
    exact: list[Runner] = []
    found: list[Runner] = []
    for r in state.runners.values():
        if r.bib.lower() == q:
            exact.append(r)
        elif q in r.name.lower() or q in r.bib.lower() or (r.p.club and q in r.p.club.lower()):
            found.append(r)
        if len(found) >= limit * 4:
            break
    out = exact + sorted(found, key=lambda r: r.name.lower())
    return [
        {
            "bib": r.bib,
            "name": r.name,
            "club": r.p.club,
            "race": r.race.id,
            "race_name": r.race.name,
        }
        for r in out[:limit]
    ]

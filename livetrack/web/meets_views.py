"""View models of a race run in rounds: every round's heats with lanes, results and Q/q (the
race page and the timer's desk), and what the big screen shows (the latest heat's result
with who qualified, and the next round's lanes)."""

from __future__ import annotations

import csv
import io
from typing import Any

from livetrack.domain.meet import RaceRounds, RoundState
from livetrack.domain.rounds import Round, Rounds, fmt_thousandths, fmt_track
from livetrack.domain.state import RaceState

_ORDER = {"ok": 0, "DNF": 1, "DQ": 2, "DNS": 3}


def has_rounds(state: RaceState, race_id: str) -> bool:
    race = state.event.races.get(race_id)
    return race is not None and race.rounds is not None


def advance_text(config: Rounds, i: int) -> str:
    rnd = config.rounds[i]
    if rnd.advance is None or i + 1 >= len(config.rounds):
        return ""
    nxt = config.rounds[i + 1].name
    parts = []
    if rnd.advance.place:
        parts.append(f"the first {rnd.advance.place} in each heat (Q)")
    if rnd.advance.time:
        parts.append(f"the next {rnd.advance.time} fastest (q)")
    text = " and ".join(parts)
    return f"{text[:1].upper()}{text[1:]} go to the {nxt}."


def _athlete(state: RaceState, bib: str) -> tuple[str, str]:
    r = state.runners.get(bib)
    return (r.name, r.p.club) if r is not None else (f"#{bib}", "")


def _heat_rows(state: RaceState, rs: RoundState, heat: int) -> list[dict[str, Any]]:
    assert rs.draw is not None
    q = rs.qualified
    rows = []
    for bib, lane in rs.draw.heat(heat):
        name, club = _athlete(state, bib)
        m = rs.marks.get(bib)
        row: dict[str, Any] = {
            "bib": bib, "lane": lane, "name": name, "club": club, "place": "", "time": "",
            "status": "", "mark": "", "lot": False, "lost": False, "reaction": "", "fine": "",
            "sort": (9, lane),
        }  # fmt: skip
        if m is not None:
            row["lane"] = m.lane or lane
            row["status"] = "" if m.status == "ok" else m.status
            row["place"] = m.place or ""
            row["time"] = fmt_track(m.time_ms) if m.status == "ok" else m.status
            row["ms"] = m.time_ms
            row["reaction"] = f"{m.reaction_ms / 1000:.3f}" if m.reaction_ms is not None else ""
            row["sort"] = (_ORDER.get(m.status, 4), m.place or 99, lane)
        if q is not None:
            row["mark"] = q.marks.get(bib, "")
            row["lot"] = bib in q.by_lot
            row["lost"] = bib in q.lost_lot
        rows.append(row)
    if heat in rs.heats_in:
        rows.sort(key=lambda r: r["sort"])
        shown: dict[str, int] = {}
        for r in rows:
            if r["time"] and r["status"] == "":
                shown[r["time"]] = shown.get(r["time"], 0) + 1
        for r in rows:  # equal to the hundredth: the thousandths decided
            if r["status"] == "" and shown.get(r["time"], 0) > 1:
                r["fine"] = fmt_thousandths(r.get("ms"))
    for r in rows:
        r.pop("sort", None)
    return rows


def _thousandths_across(heats: list[dict[str, Any]]) -> None:
    """Where a time that went on and one that did not are equal to the hundredth (in any
    heats of the round), show both to the thousandth: that is what decided it."""
    rows = [r for h in heats for r in h["rows"] if r["status"] == "" and r.get("ms")]
    by_shown: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_shown.setdefault(r["time"], []).append(r)
    for same in by_shown.values():
        if len({bool(r["mark"]) for r in same}) > 1:
            for r in same:
                r["fine"] = fmt_thousandths(r["ms"])
    for r in (r for h in heats for r in h["rows"]):
        r.pop("ms", None)


def round_view(
    state: RaceState, rr: RaceRounds, config: Rounds, i: int, rnd: Round
) -> dict[str, Any]:
    rs = rr.state(rnd.id)
    heats = []
    if rs.draw is not None:
        for h in range(1, rs.draw.heats + 1):
            res = rs.heats_in.get(h)
            heats.append(
                {
                    "number": h,
                    "title": rnd.name if rs.draw.heats == 1 else f"{rnd.name} · heat {h}",
                    "done": res is not None,
                    "wind": res.wind if res is not None else "",
                    "source": "photo finish"
                    if res and res.source.startswith("lif:")
                    else "hand timed"
                    if res
                    else "",
                    "rows": _heat_rows(state, rs, h),
                }
            )
    _thousandths_across(heats)
    if rs.draw is None:
        status = "not drawn yet"
    elif rs.complete:
        status = "results"
    elif rs.heats_in:
        status = f"{len(rs.heats_in)} of {rs.draw.heats} heats in"
    else:
        status = "start list"
    return {
        "id": rnd.id,
        "name": rnd.name,
        "status": status,
        "drawn": rs.draw is not None,
        "trouble": rs.trouble,
        "advance": advance_text(config, i),
        "heats": heats,
        "has_results": bool(rs.heats_in),
    }


def rounds_view(state: RaceState, race_id: str) -> dict[str, Any]:
    """Every round of the race, first to last."""
    race = state.event.races[race_id]
    config = race.rounds
    rr = state.meet.get(race_id)
    if config is None or rr is None:
        return {"race": race_id, "name": race.name, "rounds": []}
    rounds = [round_view(state, rr, config, i, r) for i, r in enumerate(config.rounds)]
    return {"race": race_id, "name": race.name, "lanes": config.lanes, "rounds": rounds}


def screen_view(state: RaceState, race_id: str) -> dict[str, Any]:
    """The latest heat's result (with Q/q) and the lanes of the round it leads to."""
    view = rounds_view(state, race_id)
    rr = state.meet.get(race_id)
    latest = None
    if rr is not None and rr.last_in is not None:
        rid, heat = rr.last_in
        rnd = next((r for r in view["rounds"] if r["id"] == rid), None)
        if rnd is not None:
            latest = next((h for h in rnd["heats"] if h["number"] == heat), None)
    rounds = view["rounds"]
    upcoming = next((r for r in rounds if r["drawn"] and not r["has_results"]), None) or next(
        (r for r in rounds if not r["drawn"]), None
    )
    return {"race": race_id, "latest": latest, "next": upcoming}


CSV_COLUMNS = ("round", "heat", "lane", "place", "bib", "name", "club", "time", "time_ms",
               "reaction", "status", "qualified", "wind", "source")  # fmt: skip


def rounds_csv(state: RaceState, race_id: str) -> str:
    """Every result of every round, one athlete a row (``time`` to the hundredth rounded up,
    ``time_ms`` to the thousandth; ``qualified`` is Q, q or empty)."""
    rr = state.meet.get(race_id)
    config = state.event.races[race_id].rounds
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    if rr is None or config is None:
        return out.getvalue()
    for rnd in config.rounds:
        rs = rr.state(rnd.id)
        if rs.draw is None:
            continue
        for heat in range(1, rs.draw.heats + 1):
            res = rs.heats_in.get(heat)
            for bib, lane in rs.draw.heat(heat):
                m = rs.marks.get(bib)
                name, club = _athlete(state, bib)
                q = rs.qualified.marks.get(bib, "") if rs.qualified else ""
                w.writerow((
                    rnd.id, heat, m.lane or lane if m else lane, m.place or "" if m else "",
                    bib, name, club, fmt_track(m.time_ms) if m else "",
                    m.time_ms if m and m.time_ms is not None else "",
                    f"{m.reaction_ms / 1000:.3f}" if m and m.reaction_ms is not None else "",
                    m.status if m else "", q, res.wind if res else "",
                    res.source if res else "",
                ))  # fmt: skip
    return out.getvalue()


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def athlete_rounds(state: RaceState, bib: str) -> dict[str, Any] | None:
    """One athlete's way through a race in rounds (their runner card): for every round they
    are drawn in, the heat and lane, and once the heat is in, place, time, reaction and Q/q;
    then what comes next (``next``: the next round's heat and lane, or that they are through
    and the round is still to be drawn, or that they are out). None for other races."""
    runner = state.runners.get(bib)
    if runner is None or runner.race.rounds is None:
        return None
    config = runner.race.rounds
    rr = state.meet.get(runner.race.id)
    rows: list[dict[str, Any]] = []
    through = ""
    for i, rnd in enumerate(config.rounds):
        rs = rr.state(rnd.id) if rr is not None else RoundState()
        where = rs.draw.where(bib) if rs.draw is not None else None
        if rs.draw is None or where is None:
            continue
        heat, lane = where
        m = rs.marks.get(bib)
        title = rnd.name if rs.draw.heats == 1 else f"{rnd.name} · heat {heat}"
        row: dict[str, Any] = {
            "round": rnd.id, "title": title, "lane": lane, "done": heat in rs.heats_in,
            "place": "", "time": "", "reaction": "", "mark": "", "status": "",
        }  # fmt: skip
        if m is not None:
            row["lane"] = m.lane or lane
            row["status"] = "" if m.status == "ok" else m.status
            row["place"] = _ordinal(m.place) if m.place and m.status == "ok" else ""
            row["time"] = fmt_track(m.time_ms) if m.status == "ok" else m.status
            if m.reaction_ms is not None:
                row["reaction"] = f"{m.reaction_ms / 1000:.3f}"
        if rs.qualified is not None:
            row["mark"] = rs.qualified.marks.get(bib, "")
        rows.append(row)
        nxt = config.rounds[i + 1] if i + 1 < len(config.rounds) else None
        through = ""
        if nxt is not None and row["mark"]:
            through = f"Through to the {nxt.name}: lanes are drawn when every heat is in."
        elif nxt is not None and rs.complete and row["done"]:
            through = f"Not through to the {nxt.name}."
        elif nxt is None and row["done"]:  # the last round: how it ended
            through = f"{title}: {row['place'] or row['status'] or 'no result'}" + (
                f" in {row['time']}." if row["place"] else "."
            )
    if not rows:
        first = config.rounds[0].name
        return {"rows": [], "next": f"The {first} are not drawn yet."}
    last = rows[-1]
    if not last["done"]:
        through = f"Next: {last['title']}, lane {last['lane']}."
    return {"rows": rows, "next": through}


def rounds_note(state: RaceState, race_id: str) -> str:
    """Where a race in rounds stands, for its heading: the latest drawn round and how far it
    is (``Heats: 2 of 3 heats in``, ``Final: start list``, ``Final: results``)."""
    race = state.event.races.get(race_id)
    rr = state.meet.get(race_id)
    if race is None or race.rounds is None:
        return ""
    config = race.rounds
    for rnd in reversed(config.rounds):
        rs = rr.state(rnd.id) if rr is not None else RoundState()
        if rs.draw is None:
            continue
        if rs.complete:
            return f"{rnd.name}: results"
        if rs.heats_in:
            return f"{rnd.name}: {len(rs.heats_in)} of {rs.draw.heats} heats in"
        return f"{rnd.name}: start list"
    return f"{config.rounds[0].name}: not drawn yet"

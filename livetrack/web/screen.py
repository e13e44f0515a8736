"""The big screen at the finish: ``/screen/{race}?panels=feed,board,record,charity&rotate=12``.

Built for 1920×1080 read from 10 m: huge type, dark background, no scrolling, no cursor.
Panels (any subset, in the order given; default: what suits the race):

* ``feed``: the latest :data:`FEED_SIZE` finishers (name, time, position, category position).
  Its rows are keyed by bib: a new finisher's row goes first and the oldest one leaves, so
  the page's DOM cannot grow however long the race runs.
* ``board``: leaderboards (overall, women, men, each category, teams, championship) that the
  page rotates through every ``rotate`` seconds (4–120, default 12).
* ``record``: the course record watch (runners on record pace; the new record the moment
  it is set).
* ``charity``: the running charity total (raised by finishers, pledged by everyone).
* ``rounds``: a race run in rounds: the latest heat's result with who qualified (Q/q) and
  the lanes of the next round (``livetrack.web.meets``; the default for such a race).

The race clock (the core ``race:{race}`` region) is always shown. Live regions are topics
``sfeed``, ``sboards``, ``srecord`` and ``scharity`` (each ``kind:race``), and ``srounds``.
Every one is keyed (:class:`~livetrack.web.regions.Region`): its rows are keyed by bib (a
team's, a charity's name) and its totals are parts, so an update carries what changed and
is applied in place, the boards' rotation untouched; a screen that (re)connects gets them
whole first.
"""

from __future__ import annotations

from html import escape
from typing import Any

from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from livetrack.domain import topics
from livetrack.domain.charity import has_charity
from livetrack.domain.ranking import ALL
from livetrack.domain.state import RaceState, race_topic
from livetrack.service.runtime import Runtime, clock
from livetrack.web import formats, meets, meets_views
from livetrack.web.render import Renderer, division_label, race_summary, safe, safe_html
from livetrack.web.views import fmt_elapsed, race_status

FEED_SIZE = 7
BOARD_ROWS = 6
PANELS = ("feed", "board", "record", "charity", "rounds")
SFEED = topics.declare("sfeed", ("race",))
SBOARDS = topics.declare("sboards", ("race",))
SRECORD = topics.declare("srecord", ("race",))
SCHARITY = topics.declare("scharity", ("race",))


def ordinal(n: int | None) -> str:
    if n is None:
        return ""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def feed_view(state: RaceState, race_id: str) -> dict[str, Any]:
    """The newest :data:`FEED_SIZE` finishers, newest first."""
    race = state.event.races[race_id]
    finish = race.course.checkpoints[-1].id
    rows = []
    for t, bib in state.finishers[race_id].islice(-FEED_SIZE, None, reverse=True):
        r = state.runners[bib]
        cat_pos = state.position(r, finish, r.category) if r.category else None
        elapsed = state.elapsed(r, finish)
        rows.append(
            {
                "key": f"{bib}-{t}",
                "bib": bib,
                "name": r.name,
                "club": r.p.club,
                "time": fmt_elapsed(None if elapsed is None else elapsed + r.penalty.ms),
                "penalty": "+" + fmt_elapsed(r.penalty.ms) if r.penalty.ms else "",
                "position": state.position(r, finish),
                "category": r.category,
                "category_position": ordinal(cat_pos),
                "charity": r.p.charity,
            }
        )
    return {"race": race_id, "ranked": race.ranked, "rows": rows}


def _category_key(d: str) -> tuple[int, str]:
    return (0 if d in ("F", "M", "X") else 1, d)


def boards_view(state: RaceState, race_id: str) -> dict[str, Any]:
    """Every leaderboard the screen rotates through, each at most :data:`BOARD_ROWS` rows."""
    race = state.event.races[race_id]
    finish = race.course.checkpoints[-1].id
    boards: list[dict[str, Any]] = []
    if race.ranked:
        for division in [ALL, *sorted(set(state.boards.divisions(race_id, finish)) - {ALL},
                                      key=_category_key)]:  # fmt: skip
            rows = []
            for elapsed, bib in state.boards.top(race_id, finish, division, BOARD_ROWS):
                r = state.runners[bib]
                rows.append(
                    {
                        "id": bib,
                        "position": state.position(r, finish, division),
                        "name": r.name,
                        "detail": r.p.club,
                        "time": fmt_elapsed(elapsed),  # the final time: penalties included
                        "penalty": "+" + fmt_elapsed(r.penalty.ms) if r.penalty.ms else "",
                    }
                )
            if rows:
                title = "Overall" if division == ALL else division_label(division)
                boards.append(
                    {"key": f"div-{division}", "title": title, "rows": rows, "ranked": True}
                )
    if formats.shows_teams(state, race_id):
        tv = formats.teams_view(state, race_id, BOARD_ROWS)
        rows = [
            {
                "id": t["team"],
                "position": t["position"] or "–",
                "name": t["team"],
                "detail": "" if t["complete"] else f"{t['counted']} of {t['needed']} in",
                "time": t["score"] or "—",
            }
            for t in tv["rows"]
        ]
        if rows:
            teams = {"key": "teams", "title": "Teams", "rows": rows, "ranked": False}
            boards.insert(0 if race.kind == "team" else len(boards), teams)
    if race.championship is not None:
        cv = formats.champ_view(state, race_id, BOARD_ROWS)
        rows = [
            {"id": c["bib"], "position": c["position"], "name": c["name"], "detail": c["club"],
             "time": c["time"]}
            for c in cv["rows"]
        ]  # fmt: skip
        if rows:
            boards.append({"key": "champ", "title": "Championship", "rows": rows, "ranked": True})
    if race.kind == "relay":
        rl = formats.relay_view(state, race_id)
        on_course: list[dict[str, Any]] = []
        for t in rl["rows"]:
            if t["finished"] or not t["elapsed"]:
                continue
            running = next((leg for leg in t["legs"] if leg["state"] == "running"), None)
            detail = f"after leg {t['legs_done']}"
            if running:
                detail += f" · now {running['runner']}"
            on_course.append(
                {"id": t["bib"], "position": len(on_course) + 1, "name": t["name"],
                 "detail": detail, "time": t["elapsed"]}
            )  # fmt: skip
        if on_course:
            on = {"key": "on-course", "title": "On course", "rows": on_course[:BOARD_ROWS]}
            boards.insert(0, {**on, "ranked": True})
        for lt in rl["leg_tables"]:
            rows = [
                {"id": r["team"], "position": i, "name": r["runner"], "detail": r["team"],
                 "time": r["split"]}
                for i, r in enumerate(lt["rows"], start=1)
            ]  # fmt: skip
            if rows:
                boards.append(
                    {"key": f"leg-{lt['number']}", "title": f"Leg {lt['number']}", "rows": rows,
                     "ranked": True}
                )  # fmt: skip
    return {"race": race_id, "boards": boards}


def default_panels(state: RaceState, race_id: str) -> list[str]:
    race = state.event.races[race_id]
    if race.rounds is not None:  # heats and finals: the latest heat and the next lanes
        return ["rounds"]
    panels = ["feed"]
    if race.ranked or formats.shows_teams(state, race_id):
        panels.append("board")
    if race.course_record_s is not None:
        panels.append("record")
    if race.kind == "fun" or has_charity(state, race_id):
        panels.append("charity")
    return panels


def screen_page(request: Request) -> HTMLResponse:
    rt: Runtime = request.state.runtime
    r: Renderer = request.state.renderer
    race_id = request.path_params["race"]
    race = rt.event.races.get(race_id)
    if race is None:
        raise HTTPException(404, f"No race {race_id!r} at this event.")
    raw = request.query_params.get("panels", "")
    panels = [p for p in dict.fromkeys(raw.split(",")) if p in PANELS] if raw else []
    panels = panels or default_panels(rt.state, race_id)
    try:
        rotate = float(request.query_params.get("rotate", "12"))
    except ValueError:
        rotate = 12.0
    rotate = min(120.0, max(4.0, rotate))
    kind_of = {
        "feed": SFEED, "board": SBOARDS, "record": SRECORD, "charity": SCHARITY,
        "rounds": meets.SROUNDS,
    }  # fmt: skip
    names = [race_topic(race_id), *(kind_of[p](race_id) for p in panels)]
    st = rt.state
    html = r.page(
        "screen.html",
        rs=safe(race_status, st, race, clock(rt)),
        header=Markup(
            safe_html(lambda: r.block("race.html", "header", rs=race_status(st, race, clock(rt))))
        ),
        panels=panels,
        rotate=rotate,
        topics=names,
        sf=safe(feed_view, st, race_id),
        sb=safe(boards_view, st, race_id),
        rw=safe(formats.record_view, st, race_id),
        ch=safe(formats.charity_view, st, race_id),
        sr=safe(meets_views.screen_view, st, race_id),
    )
    return HTMLResponse(html)


def screen_index(request: Request) -> HTMLResponse:
    rt: Runtime = request.state.runtime
    links = "".join(
        f'<li><a href="/screen/{escape(r.id)}">{escape(r.name)}</a></li>'
        for r in rt.event.races.values()
    )
    return HTMLResponse(f"<!doctype html><title>Big screens</title><ul>{links}</ul>")


ROUTES = [Route("/screen", screen_index), Route("/screen/{race}", screen_page)]


REGIONS = [
    race_summary(SFEED, "screen.html", "feed", "sf", feed_view, keyed=True),
    race_summary(SBOARDS, "screen.html", "boards", "sb", boards_view, keyed=True),
    race_summary(SRECORD, "screen.html", "record", "rw", formats.record_view, keyed=True),
    race_summary(SCHARITY, "screen.html", "charity", "ch", formats.charity_view, keyed=True),
]

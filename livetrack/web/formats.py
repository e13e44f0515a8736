"""Race formats beyond the plain timed race: team standings, a team's page, relay legs,
charity totals, the championship and the course record watch.

Routes: ``/races/{race}/teams``, ``/races/{race}/teams/{team}``, ``/races/{race}/relay``,
``/races/{race}/charity``, ``/races/{race}/championship``. Live regions (topics, each
``kind:race`` and marked dirty by the hub whenever their race changes): ``teams``, ``relay``,
``charity``, ``champ`` and ``record``; and ``team:<race>:<key>`` (one team's own page, dirty
when one of its members changes or the race's finish boards move, see :func:`team_topic`).
Each region is one template block, used by the page and the pushed fragment alike.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection
from typing import Any
from urllib.parse import quote, unquote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from livetrack.domain import topics
from livetrack.domain.alerts import ordinal, race_over
from livetrack.domain.charity import charity_totals, has_charity
from livetrack.domain.ranking import ALL
from livetrack.domain.records_watch import record_watch
from livetrack.domain.relay import leg_rankings, legs_of, relay_standings
from livetrack.domain.standards import eligible
from livetrack.domain.state import RaceState, race_topic
from livetrack.domain.teams import TeamResult, has_teams, team_standings
from livetrack.domain.topics import Topic
from livetrack.service.runtime import Runtime, clock
from livetrack.web.regions import Ctx, Region, is_race
from livetrack.web.render import Renderer, race_summary
from livetrack.web.views import fmt_elapsed


def money(amount: float) -> str:
    """``£1,250`` (pennies only when there are some)."""
    return f"£{amount:,.2f}" if amount != int(amount) else f"£{int(amount):,}"


# -- view models -----------------------------------------------------------------------------


def shows_teams(state: RaceState, race_id: str) -> bool:
    race = state.event.races[race_id]
    return race.kind == "team" or (race.kind != "relay" and has_teams(state, race_id))


_STANDINGS: weakref.WeakKeyDictionary[RaceState, tuple[int, dict[str, list[TeamResult]]]] = (
    weakref.WeakKeyDictionary()
)


def standings(state: RaceState, race_id: str) -> list[TeamResult]:
    """:func:`team_standings`, computed once per race for as long as the fold applies nothing
    new (a tick renders the standings and every watched team page from one computation)."""
    cached = _STANDINGS.get(state)
    if cached is None or cached[0] != state.applied:
        cached = _STANDINGS[state] = (state.applied, {})
    by_race = cached[1]
    if race_id not in by_race:
        by_race[race_id] = team_standings(state, race_id)
    return by_race[race_id]


TEAMS = topics.declare("teams", ("race",))
RELAY = topics.declare("relay", ("race",))
CHARITY = topics.declare("charity", ("race",))
CHAMP = topics.declare("champ", ("race",))
RECORD = topics.declare("record", ("race",))
TEAM = topics.declare("team", ("race", "key"))


def team_topic(race_id: str, team: str) -> str:
    """The live region of one team's page: ``team:<race>:<key>``, the key being the team's
    name percent-encoded with nothing left safe, so that it round-trips (:func:`team_name`)
    whatever the name holds (commas would split a topic list, spaces and ``%`` a URL)."""
    return TEAM(race_id, quote(team, safe=""))


def team_name(key: str) -> str | None:
    """The team a topic key names; None unless the key is in the form :func:`team_topic`
    writes (another spelling of the same name would be a topic nobody marks dirty)."""
    name = unquote(key, errors="replace")
    return name if name and quote(name, safe="") == key else None


def teams_view(state: RaceState, race_id: str, limit: int | None = None) -> dict[str, Any]:
    """Team standings: rows with position (None while provisional), score and scorers."""
    race = state.event.races[race_id]
    rule = race.team
    rows = []
    for t in standings(state, race_id)[:limit]:
        scorers = [m for m in t.members if m.scoring]
        rows.append(
            {
                "team": t.team,
                "position": t.position,
                "score": fmt_elapsed(t.score_ms),
                "complete": t.complete,
                "counted": t.counted,
                "needed": t.needed,
                "scorers": [{"name": m.name, "time": fmt_elapsed(m.elapsed_ms)} for m in scorers],
                "members": len(t.members),
            }
        )
    gender_rule = []
    if rule.min_women:
        gender_rule.append(f"at least {rule.min_women} women")
    if rule.min_men:
        gender_rule.append(f"at least {rule.min_men} men")
    return {
        "race": race_id,
        "race_name": race.name,
        "method": rule.method,
        "counting": rule.counting,
        "counting_nth": ordinal(rule.counting),
        "gender_rule": " and ".join(gender_rule),
        "rows": rows,
    }


def team_view(state: RaceState, race_id: str, team: str) -> dict[str, Any] | None:
    """One team: its standing and every member, with ``topic`` its live region; None when
    the race has no such team."""
    for t in standings(state, race_id):
        if t.team == team:
            return {
                "topic": team_topic(race_id, t.team),
                "race": race_id,
                "team": t.team,
                "position": t.position,
                "score": fmt_elapsed(t.score_ms),
                "complete": t.complete,
                "counted": t.counted,
                "needed": t.needed,
                "members": [
                    {
                        "bib": m.bib,
                        "name": m.name,
                        "gender": m.gender,
                        "time": fmt_elapsed(m.elapsed_ms),
                        "status": m.status,
                        "scoring": m.scoring,
                        "position": state.position(state.runners[m.bib], _finish(state, race_id)),
                    }
                    for m in t.members
                ],
            }
    return None


def _finish(state: RaceState, race_id: str) -> str:
    return state.event.races[race_id].course.checkpoints[-1].id


def _team_valid(state: RaceState, t: Topic) -> bool:
    if t["race"] not in state.event.races:
        return False
    team = team_name(t["key"])
    return team is not None and any(x.team == team for x in standings(state, t["race"]))


def _team_model(c: Ctx, t: Topic) -> dict[str, Any]:
    race_id = t["race"]
    team = team_name(t["key"]) or ""
    model = team_view(c.state, race_id, team)
    if model is None:  # the team's last member left it after the page subscribed
        model = {"topic": t.name, "race": race_id, "team": team, "members": []}
    return model


def _team_dirty(c: Ctx, dirty: set[str], watched: Collection[str]) -> set[str]:
    """The watched team pages a tick's changes touch: a member's own topic (its passings,
    status or entry changed), the team a runner's entry took them out of (the fold's
    :data:`~livetrack.domain.topics.TEAM_LEFT` signal), or a finish board of the team's race
    (a finisher anywhere may move other teams past this one, or a member down the field).
    Looks only at the dirty topics and, when a finish board moved, the watched ones; never at
    the whole field."""
    state = c.state
    out: set[str] = set()
    races: set[str] = set()
    runners = state.runners
    for name in dirty:
        kind = name.partition(":")[0]
        if kind == "runner":
            runner = runners.get(topics.parse(name)["bib"])
            if runner is not None and runner.p.team:
                t = team_topic(runner.race.id, runner.p.team)
                if t in watched:
                    out.add(t)
        elif kind == topics.TEAM_LEFT.name:
            left = topics.parse(name)
            t = team_topic(left["race"], left["team"])
            if t in watched:
                out.add(t)
        elif kind == "board":
            board = topics.parse(name)
            race = state.event.races.get(board["race"])
            if race is not None and board["checkpoint"] == race.course.checkpoints[-1].id:
                races.add(race.id)
    if races:
        for name in watched:
            if name.startswith("team:") and topics.parse(name)["race"] in races:
                out.add(name)
    return out


def relay_view(state: RaceState, race_id: str) -> dict[str, Any]:
    race = state.event.races[race_id]
    teams = relay_standings(state, race_id)
    cps = {cp.id: cp.name for cp in race.course.checkpoints}
    legs = legs_of(race)
    rows = []
    for t in teams:
        rows.append(
            {
                "bib": t.bib,
                "name": t.name,
                "category": t.category,
                "position": t.position,
                "elapsed": fmt_elapsed(t.elapsed_ms),
                "finished": t.finished,
                "legs_done": t.legs_done,
                "legs": [
                    {
                        "number": leg.number,
                        "runner": leg.runner,
                        "chip": leg.chip,
                        "state": leg.state,
                        "split": fmt_elapsed(leg.split_ms),
                        "rank": leg.rank,
                        "attribution": leg.attribution,
                    }
                    for leg in t.legs
                ],
            }
        )
    leg_tables = []
    for leg in legs:
        best = leg_rankings(teams, leg.number)[:5]
        leg_tables.append(
            {
                "number": leg.number,
                "from": cps[leg.start],
                "to": cps[leg.end],
                "rows": [
                    {"team": t.name, "runner": lr.runner, "split": fmt_elapsed(lr.split_ms)}
                    for t, lr in best
                ],
            }
        )
    return {
        "race": race_id,
        "race_name": race.name,
        "legs": [{"number": leg.number, "to": cps[leg.end]} for leg in legs],
        "rows": rows,
        "leg_tables": leg_tables,
    }


def charity_view(state: RaceState, race_id: str) -> dict[str, Any]:
    """Totals raised (by finishers) and pledged (by all entrants); ``share`` is each
    charity's raised amount as a percentage of the largest (for bars)."""
    totals = charity_totals(state, race_id)
    top = max((c.raised for c in totals.charities), default=0.0)
    return {
        "race": race_id,
        "raised": money(totals.raised),
        "pledged": money(totals.pledged),
        "raised_value": totals.raised,
        "finishers": totals.finishers,
        "entrants": totals.entrants,
        "rows": [
            {
                "charity": c.charity,
                "raised": money(c.raised),
                "pledged": money(c.pledged),
                "finishers": c.finishers,
                "entrants": c.entrants,
                "share": 0 if not top else round(100 * c.raised / top),
            }
            for c in totals.charities
        ],
    }


def champ_view(
    state: RaceState, race_id: str, limit: int = 50, now: int | None = None
) -> dict[str, Any]:
    """The championship: finishers the race's rule admits, ranked among themselves; the
    overall position is shown alongside (the champion need not win the race)."""
    race = state.event.races[race_id]
    rule = race.championship
    finish = _finish(state, race_id)
    rows: list[dict[str, Any]] = []
    if rule is not None:
        for elapsed, bib in state.boards.top(race_id, finish, ALL, 10**9):
            r = state.runners[bib]
            if not rule.admits(r.p.nationality, r.p.club):
                continue
            if not eligible(race, r.p.gender, r.category, r.p.entry_ms):
                continue
            rows.append(
                {
                    "position": len(rows) + 1,
                    "overall": state.position(r, finish),
                    "bib": bib,
                    "name": r.name,
                    "club": r.p.club,
                    "nationality": r.p.nationality,
                    "category": r.category,
                    "time": fmt_elapsed(elapsed),
                }
            )
            if len(rows) >= limit:
                break
    rules = []
    if rule is not None and rule.nationality:
        rules.append("nationality " + ", ".join(rule.nationality))
    if rule is not None and rule.clubs:
        rules.append("clubs: " + ", ".join(rule.clubs))
    if rule is not None and rule.standard:
        rules.append("a qualifying performance within the standard")
    # the champion: the first eligible finisher, once the race is over (leading until then)
    champion = rows[0]["name"] if rows else ""
    over = race_over(state, race, state.now_ms if now is None else now)
    return {
        "race": race_id,
        "race_name": race.name,
        "rule": "; ".join(rules),
        "rows": rows,
        "champion": champion,
        "decided": over,
    }


def record_view(state: RaceState, race_id: str) -> dict[str, Any]:
    w = record_watch(state, race_id)
    if w is None:
        return {"race": race_id, "has_record": False}
    return {
        "race": race_id,
        "has_record": True,
        "record": fmt_elapsed(w.record_ms),
        "new": None
        if w.new_record is None
        else {
            "bib": w.new_record[0],
            "name": w.new_record[1],
            "time": fmt_elapsed(w.new_record[2]),
        },
        "on_pace": [
            {
                "bib": p.bib,
                "name": p.name,
                "expected": fmt_elapsed(p.expected_ms),
                "margin": fmt_elapsed(abs(p.margin_ms)),
                "ahead": p.margin_ms > 0,
                "chance": p.chance,
            }
            for p in w.on_pace
        ],
    }


def formats_of(state: RaceState, race_id: str) -> list[tuple[str, str]]:
    """Links (label, path) to the format views that apply to ``race_id``."""
    race = state.event.races[race_id]
    out: list[tuple[str, str]] = []
    if race.kind == "relay":
        out.append(("Relay legs", f"/races/{race_id}/relay"))
    if shows_teams(state, race_id):
        out.append(("Teams", f"/races/{race_id}/teams"))
    if race.championship is not None:
        out.append(("Championship", f"/races/{race_id}/championship"))
    if race.kind == "fun" or has_charity(state, race_id):
        out.append(("Charity totals", f"/races/{race_id}/charity"))
    out.append(("Big screen", f"/screen/{race_id}"))
    return out


# -- pages -----------------------------------------------------------------------------------


def _race(request: Request) -> tuple[Runtime, Renderer, str]:
    rt: Runtime = request.state.runtime
    race_id = request.path_params["race"]
    if race_id not in rt.event.races:
        raise HTTPException(404, f"No race {race_id!r} at this event.")
    return rt, request.state.renderer, race_id


def _page(request: Request, template: str, topics: list[str], **ctx: Any) -> HTMLResponse:
    """A page of the race's: its live regions (``topics``), and the race's header, hidden,
    which keeps the page's freshness notice told of the race's status."""
    rt, r, race_id = _race(request)
    head = race_topic(race_id)
    links = formats_of(rt.state, race_id)
    page = r.page(template, rs=r.model(head), links=links, topics=[*topics, head], **ctx)
    return HTMLResponse(page)


def teams_page(request: Request) -> HTMLResponse:
    rt, _, race_id = _race(request)
    return _page(request, "teams.html", [TEAMS(race_id)], tv=teams_view(rt.state, race_id))


def team_page(request: Request) -> HTMLResponse:
    rt, _, race_id = _race(request)
    team = unquote(request.path_params["team"])
    data = team_view(rt.state, race_id, team)
    if data is None:
        raise HTTPException(404, f"No team {team!r} in this race.")
    return _page(
        request,
        "teams.html",
        [data["topic"], TEAMS(race_id)],
        t=data,
        tv=teams_view(rt.state, race_id),
    )


def relay_page(request: Request) -> HTMLResponse:
    rt, _, race_id = _race(request)
    if rt.event.races[race_id].kind != "relay":
        raise HTTPException(404, "This race is not a relay.")
    return _page(request, "relay.html", [RELAY(race_id)], rl=relay_view(rt.state, race_id))


def charity_page(request: Request) -> HTMLResponse:
    rt, _, race_id = _race(request)
    return _page(request, "charity.html", [CHARITY(race_id)], ch=charity_view(rt.state, race_id))


def champ_page(request: Request) -> HTMLResponse:
    rt, _, race_id = _race(request)
    if rt.event.races[race_id].championship is None:
        raise HTTPException(404, "This race has no championship.")
    return _page(
        request,
        "teams.html",
        [CHAMP(race_id), RECORD(race_id)],
        cv=champ_view(rt.state, race_id, now=clock(rt)),
        rw=record_view(rt.state, race_id),
    )


ROUTES = [
    Route("/races/{race}/teams", teams_page),
    Route("/races/{race}/teams/{team:path}", team_page),
    Route("/races/{race}/relay", relay_page),
    Route("/races/{race}/charity", charity_page),
    Route("/races/{race}/championship", champ_page),
]


REGIONS = [
    race_summary(TEAMS, "teams.html", "teams", "tv", teams_view, keyed=True),
    race_summary(RELAY, "relay.html", "relay", "rl", relay_view, keyed=True),
    race_summary(CHARITY, "charity.html", "charity", "ch", charity_view, keyed=True),
    # drawn again now and then while watched: a race ends (and its leader becomes the
    # champion) also when nobody has passed a mat for a while, with no record to say so
    Region(
        CHAMP,
        "teams.html",
        "champ",
        "cv",
        lambda c, t: champ_view(c.state, t["race"], now=c.now),
        is_race,
        per_race=True,
        touch_s=15.0,
        keyed=True,
    ),
    race_summary(RECORD, "teams.html", "record", "rw", record_view),
    Region(
        TEAM, "team.html", "team", "t", _team_model, _team_valid, derive=_team_dirty, keyed=True
    ),
]

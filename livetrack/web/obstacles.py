"""Obstacle judgements: the marshal's write, and what the pages show of penalties.

Route:

- ``POST /api/v1/judgements``: ``[{"id", "point", "bib", "outcome", "time"?}]`` (or one
  object, or ``{"judgements": [...]}``); a marshal of ``point`` (or the timer). ``outcome``
  is ``cleared``, ``failed`` or ``missed``; ``time`` (optional, default the server's clock)
  is when the marshal judged. Idempotent by ``id`` (a UUID made on the phone). Every item is
  checked before any is stored: 422 for a field that is wrong (no obstacle at ``point`` in
  the runner's race, an unknown outcome or bib), 409 for a runner who has not reached the
  obstacle (no passing there or at any later checkpoint), each naming the item's index.

A judgement is undone like a sighting: ``POST /api/v1/corrections`` ``{"kind": "undo",
"target": "judgement:<id>"}``, by the marshal who made it or the timer. For one runner and
obstacle the latest judgement counts (:mod:`livetrack.domain.obstacles`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livetrack.domain.obstacles import OUTCOMES, Obstacle, fmt_seconds, obstacle_at, reached
from livetrack.domain.records import Judgement, Record
from livetrack.domain.state import RaceState, Runner
from livetrack.service.runtime import now_ms
from livetrack.web.auth import require
from livetrack.web.guards import (
    Invalid,
    checkpoint,
    guard,
    ident,
    in_window,
    invalid,
    items_of,
    json_body,
    runtime,
    store,
    text,
    when,
    who,
)


class NotReached(Invalid):
    """The runner has not reached the obstacle yet (409)."""


def obstacle_for(st: RaceState, point: str) -> Obstacle | None:
    """The obstacle at checkpoint ``point`` in any race (the first race's, if several)."""
    for race in st.event.races.values():
        found = obstacle_at(race.obstacles, point)
        if found is not None:
            return found
    return None


def obstacle_info(st: RaceState, point: str) -> dict[str, Any] | None:
    """What a marshal's page shows of the obstacle at ``point``: its name and each
    outcome's penalty; None when ``point`` has no obstacle."""
    o = obstacle_for(st, point)
    if o is None:
        return None
    return {"name": o.name, "outcomes": {x: o.penalty(x).text() for x in OUTCOMES}}


def check(st: RaceState, point: str, bib: str, outcome: str) -> Runner:
    """The runner a judgement at ``point`` is for, or :class:`Invalid` saying why not."""
    if outcome not in OUTCOMES:
        raise Invalid(f"outcome: one of {', '.join(OUTCOMES)}")
    runner = st.runners.get(bib)
    if runner is None:
        raise Invalid(f"bib: no runner with bib {bib!r}")
    obstacle = obstacle_at(runner.race.obstacles, point)
    if obstacle is None:
        raise Invalid(f"point: {runner.race.name} has no obstacle at {point!r}")
    if not reached(runner.race.course, runner.passings, point):
        raise NotReached(
            f"bib {bib} has not reached {obstacle.name} yet (no passing at {point} or after it)"
        )
    return runner


async def post_judgements(request: Request) -> Response:
    rt = runtime(request)
    require(request, rt.state, ("marshal",))  # 401 before looking at the body
    data = await json_body(request)
    try:
        items = items_of(data, "judgements")
    except Invalid as exc:
        return invalid(exc)
    received = now_ms()
    records: list[Record] = []
    for i, d in enumerate(items):
        try:
            point = checkpoint(rt, d)
            grant = guard(request, ("marshal",), point)
            bib = text(d, "bib", 32)
            outcome = text(d, "outcome", 16)
            check(rt.state, point, bib, outcome)
            t = in_window(rt, when(d) if d.get("time") is not None else received)
            records.append(Judgement(ident(d), point, bib, outcome, t, received, who(grant)))
        except NotReached as exc:
            return JSONResponse({"error": str(exc), "index": i}, status_code=409)
        except Invalid as exc:
            return invalid(exc, i)
    return JSONResponse({"results": await store(rt, records)})


# -- what pages show -----------------------------------------------------------------------


def penalty_text(r: Runner) -> str:
    """``+0:30`` for a runner's time penalty ("" without one)."""
    return "+" + fmt_seconds(r.penalty.ms / 1000) if r.penalty.ms else ""


def judgement_here(r: Runner, point: str) -> str:
    """The outcome that counts for ``r`` at ``point`` ("" when not judged there)."""
    items = r.judgements.get(point)
    return items[-1][1] if items else ""


ROUTES: list[BaseRoute] = [Route("/api/v1/judgements", post_judgements, methods=["POST"])]

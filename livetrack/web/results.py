"""Official results: ``GET /results/{race}`` (a printable page), ``/results/{race}.csv`` and
``/results/{race}.json``; ``?division=`` picks a gender or category (default overall). A race
run in rounds gives every round's heats instead (lanes, places, times, Q/q; see
:func:`livetrack.web.meets_views.rounds_csv` for its CSV).

Public and read-only. The CSV's columns are documented in :mod:`livetrack.domain.results`;
its ``split_`` columns load as next year's predictor history.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livetrack.domain import results as res
from livetrack.domain.ranking import ALL
from livetrack.domain.state import RaceState
from livetrack.service.runtime import Runtime
from livetrack.web.meets_views import rounds_csv, rounds_view
from livetrack.web.render import Renderer


def divisions(st: RaceState, race_id: str) -> list[str]:
    present = {d for r in st.runners.values() if r.race.id == race_id for d in r.divisions}
    return [ALL, *sorted(present - {ALL}, key=lambda d: (len(d) > 1, d))]


def accuracy_view(st: RaceState) -> dict[str, Any]:
    """The timer console's panel: today's prediction accuracy per race with finishers."""
    races = []
    for race in st.event.races.values():
        rows = res.prediction_accuracy(st, race.id)
        if rows:
            races.append({"id": race.id, "name": race.name, "rows": rows})
    return {"races": races}


def results(request: Request) -> Response:
    rt: Runtime = request.state.runtime
    name: str = request.path_params["name"]
    race_id, dot, fmt = name.rpartition(".")
    if not dot:
        race_id, fmt = name, "html"
    if race_id not in rt.event.races or fmt not in ("html", "csv", "json"):
        raise HTTPException(404, f"No results {name!r} at this event.")
    if rt.event.races[race_id].rounds is not None:  # heats and finals
        return _rounds(request, rt.state, race_id, fmt)
    division = request.query_params.get("division", ALL)
    known = divisions(rt.state, race_id)
    if division not in known:
        division = ALL
    table = res.table(rt.state, race_id, division)
    if fmt == "csv":
        suffix = "" if division == ALL else f"-{division}"
        return Response(
            res.to_csv(table),
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": f'attachment; filename="{race_id}{suffix}-results.csv"'
            },
        )
    accuracy = res.prediction_accuracy(rt.state, race_id)
    if fmt == "json":
        return JSONResponse({**res.to_json(table), "prediction_accuracy": accuracy})
    r: Renderer = request.state.renderer
    html = r.page(
        "results.html",
        t=table,
        rows=res.to_json(table)["results"],
        divisions=known,
        division=division,
        fmt=res.fmt_hms,
        accuracy=accuracy,
        topics=[],  # not live: the page says when its data last changed
    )
    return HTMLResponse(html)


def _rounds(request: Request, st: RaceState, race_id: str, fmt: str) -> Response:
    """A race in rounds: every round's heats with lanes, places, times and Q/q."""
    if fmt == "csv":
        return Response(
            rounds_csv(st, race_id),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{race_id}-results.csv"'},
        )
    if fmt == "json":
        return JSONResponse(rounds_view(st, race_id))
    r: Renderer = request.state.renderer
    return HTMLResponse(r.page("results_rounds.html", ro=rounds_view(st, race_id)))


ROUTES: list[BaseRoute] = [Route("/results/{name}", results)]

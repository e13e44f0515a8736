"""Staff access and the marshal's page.

Staff (marshals and the timer) sign in with a link whose token sits in the URL fragment
(``/signin#token=...``), which the browser never sends; the page keeps the token in
localStorage and sends it only as ``Authorization: Bearer`` from JavaScript. No cookie is ever
set, so a cross-site page cannot make a browser write on a marshal's behalf; writes whose
``Origin`` header names another site are refused anyway.

Routes:

- ``GET /signin``, ``GET /marshal``: pages (no data until the token is presented).
- ``GET /marshal/sw.js``: the marshal page's service worker, so that a phone that opened the
  page once with signal can open it again without (see :func:`marshal_worker`).
- ``GET /api/v1/whoami``: the caller's grant and the topics its console shows.
- ``POST /api/v1/sightings``: ``[{"id", "point", "bib", "time"}]`` (marshal of ``point``);
  idempotent by ``id`` (a UUID made on the phone).
- ``POST /api/v1/sweeps``: ``{"id", "point", "time"}``: the sweep has passed ``point``.
- ``WS /ws/staff`` (:mod:`livetrack.web.live`): first message ``{"token": ..., "topics":
  [...]}``; then pushes the topics (a marshal may watch its own checkpoint's; the timer any).

Live region ``marshal:<checkpoint>`` (staff): expected soon, overdue and recent passings
there. The fold marks it when passings there change; while anyone watches it, it is also
drawn again every two seconds, because the mere passing of time makes runners overdue.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livetrack.domain import topics
from livetrack.domain.alerts import race_over
from livetrack.domain.expect import expected, next_checkpoint, overdue_ms
from livetrack.domain.obstacles import obstacle_at
from livetrack.domain.records import Record, Sighting, Sweep, TokenRecord
from livetrack.domain.state import RaceState, Runner, marshal_topic
from livetrack.domain.topics import dom_id
from livetrack.service.runtime import now_ms
from livetrack.web import timer
from livetrack.web.auth import require, same_origin
from livetrack.web.guards import (
    Invalid,
    checkpoint,
    guard,
    ident,
    in_window,
    invalid,
    items_of,
    json_body,
    json_object,
    passing_time,
    runtime,
    store,
    text,
    when,
    who,
)
from livetrack.web.obstacles import judgement_here, obstacle_info
from livetrack.web.regions import Region
from livetrack.web.render import STATIC, Renderer
from livetrack.web.views import fmt_clock, fmt_elapsed

log = logging.getLogger("livetrack.marshal")

#: "Expected soon": runners predicted here within this long.
SOON_MS = 5 * 60_000
#: The marshal page, the service worker that lets it open without signal, and its source.
SHELL = "/marshal"
WORKER_SOURCE = STATIC / "marshal-sw.js"
#: The prefix of the worker's cache names (the worker deletes other releases' caches by it).
CACHE_PREFIX = "livetrack-marshal-"
_STATIC_URL = re.compile(r'(?:src|href)="(/static/[^"]+)"')


# -- pages and the API --------------------------------------------------------------------


def _renderer(request: Request) -> Renderer:
    r: Renderer = request.state.renderer
    return r


def signin_page(request: Request) -> HTMLResponse:
    return HTMLResponse(_renderer(request).page("signin.html"))


def marshal_page(request: Request) -> HTMLResponse:
    # topics: its script subscribes them once signed in; the page says how fresh they are
    return HTMLResponse(_renderer(request).page("marshal.html", topics=[]))


def _static_file(url: str) -> Path | None:
    """The file behind a ``/static/...`` URL of ours (None if there is none)."""
    rel = urlsplit(url).path.removeprefix("/static/")
    path = (STATIC / rel).resolve()
    return path if path.is_file() and path.is_relative_to(STATIC.resolve()) else None


def worker_config(r: Renderer) -> dict[str, Any]:
    """What the marshal page's service worker precaches, and the name of its cache.

    The assets are the ``/static`` URLs the page itself loads (as the templates write them,
    version query included), so the list follows the templates. The cache name carries a
    digest of the page, the assets' URLs and contents and the worker, so any change makes a
    new worker (the browser compares the script byte for byte) whose cache replaces the old."""
    shell = r.page("marshal.html")
    assets: list[str] = []
    digest = hashlib.sha256(WORKER_SOURCE.read_bytes())
    digest.update(shell.encode())
    for found in _STATIC_URL.findall(shell):
        url = html.unescape(found)
        path = _static_file(url)
        if path is None or url in assets:
            continue
        assets.append(url)
        digest.update(url.encode() + b"\0" + path.read_bytes())
    return {
        "cache": f"{CACHE_PREFIX}{digest.hexdigest()[:16]}",
        "prefix": CACHE_PREFIX,
        "shell": SHELL,
        "assets": assets,
    }


def marshal_worker(request: Request) -> Response:
    """The marshal page's service worker: ``static/marshal-sw.js`` after a first line that
    sets ``CONFIG`` (:func:`worker_config`). Served from under ``/marshal`` and allowed the
    scope ``/marshal`` itself; ``no-cache``, so a phone with signal always gets the current
    release's worker."""
    config = json.dumps(worker_config(_renderer(request)), separators=(",", ":"))
    source = WORKER_SOURCE.read_text(encoding="utf-8")
    return Response(
        f"var CONFIG = {config};\n{source}",
        media_type="text/javascript",
        headers={"cache-control": "no-cache", "service-worker-allowed": SHELL},
    )


#: The timer console's panels.
TIMER_TOPICS = tuple(region.kind() for region in timer.REGIONS)


def whoami(request: Request) -> Response:
    """The caller's grant and the topics its console subscribes to (with their element ids)."""
    rt = runtime(request)
    grant = require(request, rt.state, ("reader", "marshal", "timer"))
    topics: list[str] = []
    point = grant.point
    if grant.role == "marshal":
        topics = [marshal_topic(grant.point)]
    elif grant.role == "timer":
        topics = list(TIMER_TOPICS)
        wanted = request.query_params.get("point", "")
        if wanted in rt.event.checkpoint_ids():
            point = wanted
            topics.append(marshal_topic(wanted))
    answer = {
        "role": grant.role,
        "point": point,
        "point_name": checkpoint_name(rt.state, point) if point else "",
        "label": grant.label,
        "topics": {t: dom_id(t) for t in topics},
    }
    obstacle = obstacle_info(rt.state, point) if point else None
    if obstacle is not None:  # an obstacle's marshal judges there (livetrack.web.obstacles)
        answer["obstacle"] = obstacle
    return JSONResponse(answer)


async def post_sightings(request: Request) -> Response:
    """Marshal sightings; all are checked before any is stored (nothing half-way)."""
    rt = runtime(request)
    if not same_origin(request):
        raise HTTPException(403, "cross-site request refused: Origin is not this server")
    require(request, rt.state, ("marshal",))  # 401 before looking at the body
    data = await json_body(request)
    try:
        items = items_of(data, "sightings")
    except Invalid as exc:
        return invalid(exc)
    received = now_ms()
    records: list[Record] = []
    grant: TokenRecord | None = None
    for i, d in enumerate(items):
        try:
            point = checkpoint(rt, d)
            grant = guard(request, ("marshal",), point)
            bib = text(d, "bib", 32)
            t = passing_time(rt.state, bib, when(d))
            records.append(Sighting(ident(d), point, bib, t, received, who(grant)))
        except Invalid as exc:
            return invalid(exc, i)
    return JSONResponse({"results": await store(rt, records)})


async def post_sweep(request: Request) -> Response:
    rt = runtime(request)
    require(request, rt.state, ("marshal",))
    data = await json_object(request, 10_000)
    try:
        point = checkpoint(rt, data)
        grant = guard(request, ("marshal",), point)
        t = in_window(rt, when(data) if data.get("time") is not None else now_ms())
        record = Sweep(ident(data), point, t, who(grant))
    except Invalid as exc:
        return invalid(exc)
    return JSONResponse({"results": await store(rt, [record])})


# -- the marshal's lists -------------------------------------------------------------------


def checkpoint_name(state: RaceState, cp_id: str) -> str:
    for course in state.event.courses.values():
        for cp in course.checkpoints:
            if cp.id == cp_id:
                return cp.name
    return cp_id


def _runners_at(state: RaceState, cp_id: str) -> list[Runner]:
    races = {
        r.id
        for r in state.event.races.values()
        if any(cp.id == cp_id for cp in r.course.checkpoints)
    }
    return [r for r in state.runners.values() if r.race.id in races]


def marshal_view(state: RaceState, cp_id: str, now: int) -> dict[str, Any]:
    """What a marshal at ``cp_id`` needs: who is expected soon, who is overdue (most overdue
    first), who passed recently, and whether the sweep has gone by."""
    soon: list[tuple[int, dict[str, Any]]] = []
    late: list[tuple[int, dict[str, Any]]] = []
    passed: list[tuple[int, dict[str, Any]]] = []
    for r in _runners_at(state, cp_id):
        here = r.passings.get(cp_id)
        base = {"bib": r.bib, "name": r.name, "race": r.race.name}
        if here is not None:
            passed.append(
                (
                    here.time_ms,
                    {
                        **base,
                        "clock": fmt_clock(state, here.time_ms),
                        "source": here.source,
                        "confirmed": here.confirmed,
                        "flag": here.contradiction,
                        # only runners whose race has its obstacle here are judged here
                        "judge": obstacle_at(r.race.obstacles, cp_id) is not None,
                        "judged": judgement_here(r, cp_id) if r.race.obstacles else "",
                    },
                )
            )
            continue
        if r.status != "ok" or next_checkpoint(r) != cp_id:
            continue
        late_ms = overdue_ms(state, r, cp_id, now)
        if late_ms is not None:
            cps = r.race.course.checkpoints
            last = next((cp for cp in reversed(cps) if cp.id in r.passings), cps[0])
            seen = r.passings.get(last.id)
            late.append(
                (
                    late_ms,
                    {
                        **base,
                        "overdue": "+" + fmt_elapsed(late_ms),
                        "last_seen": last.name,
                        "last_clock": fmt_clock(state, seen.time_ms) if seen else "",
                    },
                )
            )
            continue
        exp = expected(state, r, cp_id)
        if exp is not None and exp.at_ms <= now + SOON_MS:
            due = exp.at_ms - now
            eta = "due now" if due <= 30_000 else f"in {fmt_elapsed(due)}"
            soon.append((exp.at_ms, {**base, "eta": eta, "clock": fmt_clock(state, exp.at_ms)}))
    sweep = state.sweeps.get(cp_id)
    through = [
        race
        for race in state.event.races.values()
        if any(cp.id == cp_id for cp in race.course.checkpoints)
    ]
    return {
        # a race through here is on: its silence can be news (the page's freshness notice)
        "running": any(
            state.started(race.id) and not race_over(state, race, now) for race in through
        ),
        "obstacle": obstacle_info(state, cp_id),
        "checkpoint": cp_id,
        "name": checkpoint_name(state, cp_id),
        "now": fmt_clock(state, now),
        "soon": [v for _, v in sorted(soon, key=lambda x: x[0])[:40]],
        "overdue": [v for _, v in sorted(late, key=lambda x: -x[0])[:60]],
        "overdue_count": len(late),
        "passed": [v for _, v in sorted(passed, key=lambda x: -x[0])[:8]],
        "passed_count": len(passed),
        "sweep": {"clock": fmt_clock(state, sweep.time_ms), "by": sweep.by} if sweep else None,
    }


ROUTES: list[BaseRoute] = [
    Route("/signin", signin_page),
    Route("/marshal", marshal_page),
    Route("/marshal/sw.js", marshal_worker),
    Route("/api/v1/whoami", whoami),
    Route("/api/v1/sightings", post_sightings, methods=["POST"]),
    Route("/api/v1/sweeps", post_sweep, methods=["POST"]),
]

#: The marshal's lists: a marshal may watch its own checkpoint's (the timer any); drawn
#: again every two seconds while watched, because the mere passing of time makes runners
#: overdue.
REGIONS: list[Region] = [
    Region(
        topics.MARSHAL,
        "marshal.html",
        "lists",
        "m",
        lambda c, t: marshal_view(c.state, t["checkpoint"], c.now),
        lambda st, t: t["checkpoint"] in st.event.checkpoint_ids(),
        roles=("marshal",),
        point="checkpoint",
        touch_s=2.0,
        keyed=True,
    )
]

"""The JSON API: ingest of reads, the start gun, and read-only standings for scripts."""

from __future__ import annotations

import os
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from livetrack.domain import topics, window
from livetrack.domain.ranking import ALL
from livetrack.domain.records import GunStart, Record
from livetrack.ingest.reads import BodyError, parse_body, parse_time
from livetrack.service.conflicts import read_conflicts
from livetrack.service.runtime import clock, now_ms
from livetrack.web import views
from livetrack.web.auth import identity, reader_refusal, require
from livetrack.web.guards import error, read_body, runtime
from livetrack.web.render import Renderer


async def post_reads(request: Request) -> Response:
    rt = runtime(request)
    grant = require(request, rt.state, ("reader",))
    try:
        body = await read_body(request)
        verdicts = parse_body(body, rt.event, now_ms())
    except BodyError as exc:
        return error(exc.status, str(exc))
    if grant.readers or grant.point:  # a bound reader token: reads outside it are refused
        for v in verdicts:
            if v.record is not None:
                why = reader_refusal(grant, v.record.reader, v.record.point)
                if why:
                    v.record, v.reason = None, why
    records: list[Record] = [v.record for v in verdicts if v.record is not None]
    appended = await rt.append(records) if records else []
    conflicts = await read_conflicts(rt.log, records, appended) if records else {}
    results: list[dict[str, Any]] = []
    accepted = duplicate = rejected = 0
    stored = iter(enumerate(appended))
    for v in verdicts:
        if v.record is None:
            rejected += 1
            results.append({"index": v.index, "status": "rejected", "reason": v.reason})
            continue
        i, res = next(stored)
        if i in conflicts:
            rejected += 1
            reader = v.record.reader
            rt.state.read_conflicts[reader] = rt.state.read_conflicts.get(reader, 0) + 1
            results.append({"index": v.index, "status": "rejected", "reason": conflicts[i]})
        elif res.duplicate:
            duplicate += 1
            results.append({"index": v.index, "status": "duplicate", "key": res.key})
        else:
            accepted += 1
            results.append({"index": v.index, "status": "accepted", "key": res.key})
    if conflicts:
        rt.hub.mark({"readers"})
    rt.counters.reads_accepted += accepted
    rt.counters.reads_duplicate += duplicate
    rt.counters.reads_rejected += rejected
    status = 422 if rejected and not (accepted or duplicate) else 200
    summary = {"accepted": accepted, "duplicate": duplicate, "rejected": rejected}
    answer = orjson.dumps({**summary, "results": results})  # readers post often: keep it cheap
    return Response(answer, status_code=status, media_type="application/json")


async def post_gun(request: Request) -> Response:
    rt = runtime(request)
    race_id = request.path_params["race"]
    grant = require(request, rt.state, ("timer",))
    if race_id not in rt.event.races:
        return error(404, f"unknown race {race_id!r}")
    try:
        data = orjson.loads(await read_body(request, 10_000) or b"{}")
    except BodyError as exc:
        return error(exc.status, str(exc))
    except (ValueError, UnicodeDecodeError) as exc:
        return error(400, f"body is not JSON: {exc}")
    if not isinstance(data, dict):
        return error(400, "body must be a JSON object")
    wave = data.get("wave", "")
    race = rt.event.races[race_id]
    if not isinstance(wave, str) or (wave and wave not in {w.id for w in race.waves}):
        return error(422, f"wave: unknown wave {wave!r} in {race_id!r}")
    try:
        time_ms = parse_time(data["time"]) if data.get("time") is not None else now_ms()
    except ValueError as exc:
        return error(422, f"time: {exc}")
    why = window.outside(rt.event, time_ms)
    if why:
        return error(422, f"time: {why}")
    gun = GunStart(race_id, time_ms, wave, str(uuid.uuid4()), identity(grant))
    [res] = await rt.append([gun])
    return JSONResponse({"race": race_id, "wave": wave, "time_ms": time_ms, "key": res.key})


def get_races(request: Request) -> Response:
    rt = runtime(request)
    return JSONResponse({"races": views.races(rt.state, clock(rt))})


def get_standings(request: Request) -> Response:
    rt = runtime(request)
    race_id = request.path_params["race"]
    race = rt.event.races.get(race_id)
    if race is None:
        return error(404, f"unknown race {race_id!r}")
    point = request.query_params.get("point", race.course.checkpoints[-1].id)
    if point not in {cp.id for cp in race.course.checkpoints[1:]}:
        return error(404, f"unknown checkpoint {point!r} for race {race_id!r}")
    division = request.query_params.get("division", ALL)
    limit_text = request.query_params.get("limit", "100")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 10_000:
        return error(400, "limit must be a whole number from 1 to 10000")
    return JSONResponse(views.board(rt.state, race_id, point, division, int(limit_text)))


def get_runner(request: Request) -> Response:
    rt = runtime(request)
    bib = request.path_params["bib"]
    renderer: Renderer = request.state.renderer
    data = views.runner(rt.state, bib, medians=renderer.cache(topics.RUNNER.name))
    if data is None:
        return error(404, f"no runner with bib {bib!r}")
    topic = topics.RUNNER(bib)  # the runner's live region, for a page that follows them
    return JSONResponse({**data, "topic": topic, "topic_id": topics.dom_id(topic)})


def get_search(request: Request) -> Response:
    rt = runtime(request)
    return JSONResponse({"results": views.search(rt.state, request.query_params.get("q", ""))})


def healthz(request: Request) -> Response:
    """200 only when this process has caught up with the log: it replayed what the log held
    at start, and has applied everything up to the head as read at the last check (once a
    second). 503 otherwise, also while the log's head cannot be read. The body says how far
    behind it is (``lag``, records) and what snapshot it started from or saved last."""
    rt = runtime(request)
    caught_up = rt.caught_up
    healthy = caught_up and not rt.head_error
    snap = rt.snapshot
    age = snap.age_s()
    body = {
        "ready": healthy,
        "pid": os.getpid(),
        "caught_up": caught_up,
        "offset": rt.offset,
        "head": rt.head,
        "lag": 0 if caught_up else max(rt.lag, 1),
        "applied": rt.state.applied,
        "log_error": rt.head_error or None,
        "snapshot": {
            "offset": snap.offset,
            "loaded": snap.loaded,
            "age_s": None if age is None else round(age, 1),
            "records_behind": max(0, rt.state.applied - snap.applied),
        },
    }
    return JSONResponse(body, status_code=200 if healthy else 503)

"""The Starlette application: ``create_app(settings)``; the lifespan owns every resource."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from livetrack.domain.event import Event
from livetrack.domain.records import ParticipantRecord, Record
from livetrack.domain.state import RaceState
from livetrack.live.hub import Hub
from livetrack.service import entries
from livetrack.service.entries import EntriesFile
from livetrack.service.readers import ReaderManager
from livetrack.service.runtime import Runtime, restore
from livetrack.service.snapshots import SnapshotInfo
from livetrack.store.base import EventLog, LogUnavailable, open_log
from livetrack.web import api, features, metrics, pages
from livetrack.web.live import live
from livetrack.web.render import STATIC, Renderer, make_env

log = logging.getLogger("livetrack.web")


@dataclass
class Settings:
    """What a server needs: the event, where its log lives, and what to seed it with."""

    event: Event
    log_url: str
    participants: list[ParticipantRecord] = field(default_factory=list)
    #: A participants file to seed the log with once caught up; parsed only when the log's
    #: snapshot store has no note that all its entries are in the log (``web.entries``).
    entries: EntriesFile | None = None
    seed: list[Record] = field(default_factory=list)
    tick_s: float = 0.25
    #: How long the first replay may take before the process gives up (a million records
    #: without a snapshot take about a minute of one core).
    ready_timeout_s: float = 600.0
    log_factory: Callable[[str], EventLog] = open_log
    #: Restore the fold from the newest snapshot at start; save one every this many records
    #: or seconds (0: never periodically) and on shutdown. See ``livetrack.service.snapshots``.
    snapshots: bool = True
    snapshot_every_records: int = 250_000
    snapshot_every_s: float = 600.0


class CachedStatic(StaticFiles):
    """Static files with long cache lifetimes (URLs carry a version query)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    body = f"<!doctype html><title>{exc.status_code}</title><h1>{exc.status_code}</h1>"
    from html import escape

    return HTMLResponse(body + f"<p>{escape(str(exc.detail))}</p>", status_code=exc.status_code)


async def _log_down(request: Request, exc: Exception) -> Response:
    """The log cannot take writes (Redis down past its retries): 503, nothing acknowledged."""
    log.error("event log unavailable: %s", exc)
    return JSONResponse(
        {"error": f"the event log is unavailable, nothing was stored: {exc}"},
        status_code=503,
        headers={"retry-after": "2"},
    )


def create_app(settings: Settings) -> Starlette:
    registry, collector = metrics.make_registry()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        event_log = settings.log_factory(settings.log_url)
        snap = SnapshotInfo()
        offset = None
        try:
            if settings.snapshots:
                offset, state = await restore(event_log, settings.event, snap)
            else:
                state = RaceState(settings.event)
        except BaseException:
            await event_log.close()
            raise
        renderer = Renderer(make_env(), state)
        for kind in features.topics():
            renderer.register(kind)
        hub = Hub(
            renderer.topic,
            is_topic=renderer.is_topic,
            tick_s=settings.tick_s,
            derive=renderer.derive,
        )
        rt = Runtime(
            settings.event,
            event_log,
            state,
            hub,
            offset=offset,
            snapshot=snap,
            snapshot_every_records=settings.snapshot_every_records if settings.snapshots else 0,
            snapshot_every_s=settings.snapshot_every_s if settings.snapshots else 0,
            snapshot_on_stop=settings.snapshots,
        )
        app.state.runtime = rt
        collector.runtime = rt
        app.state.readers = readers = ReaderManager(rt)
        try:
            if settings.seed:
                await event_log.append(settings.seed)
            await rt.start()
            await rt.wait_ready(settings.ready_timeout_s)
            if settings.participants:
                await rt.seed_participants(settings.participants, settings.ready_timeout_s)
            if settings.entries is not None:
                await entries.seed(rt, settings.entries, settings.ready_timeout_s)
            await readers.start()
            log.info("ready: %d records applied", state.applied)
            yield {"runtime": rt, "renderer": renderer}
        finally:
            await readers.stop()
            await rt.stop()

    routes = [
        Route("/", pages.home),
        Route("/search", pages.search),
        Route("/races/{race}", pages.race),
        Route("/runners/{bib}", pages.runner),
        Route("/me", pages.me),
        Route("/races/{race}/map", pages.course_map),
        Route("/healthz", api.healthz),
        Route("/metrics", metrics.metrics),
        Route("/api/v1/reads", api.post_reads, methods=["POST"]),
        Route("/api/v1/races", api.get_races),
        Route("/api/v1/races/{race}/standings", api.get_standings),
        Route("/api/v1/races/{race}/gun", api.post_gun, methods=["POST"]),
        Route("/api/v1/runners/{bib}", api.get_runner),
        Route("/api/v1/search", api.get_search),
        WebSocketRoute("/live", live),
        *features.routes(),
        Mount("/static", CachedStatic(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(GZipMiddleware, minimum_size=500)],
        exception_handlers={HTTPException: _http_error, LogUnavailable: _log_down},
    )
    app.state.metrics = registry
    return app

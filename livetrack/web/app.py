"""The Starlette application: ``create_app(settings)``; the lifespan owns every resource."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from livetrack.config import Settings as Settings
from livetrack.domain.state import RaceState
from livetrack.live import wire
from livetrack.live.hub import Hub
from livetrack.service import entries, linkwire, stopping
from livetrack.service.alerting import PushCollector, start_push
from livetrack.service.link import SiteLink
from livetrack.service.lynx import LifWatcher
from livetrack.service.readers import ReaderManager
from livetrack.service.runtime import Runtime, clock, restore
from livetrack.service.snapshots import SnapshotInfo
from livetrack.store.base import Leases, LogUnavailable
from livetrack.store.outbox import open_outbox
from livetrack.store.subscriptions import subscriptions_for
from livetrack.web import api, features, follow, metrics, pages
from livetrack.web.follow import Follower, Queued, SiteKeys
from livetrack.web.guards import client_left
from livetrack.web.live import live, staff
from livetrack.web.render import STATIC

log = logging.getLogger("livetrack.web")


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
    push_metrics = PushCollector()
    registry.register(push_metrics)

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
        renderer = features.renderer(state)
        hub = Hub(
            renderer.topic,
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
        collector.direct_write = not (problem := wire.probe())
        if problem:
            log.warning(
                "websocket direct write not in use (%s): every frame goes through ASGI", problem
            )
        else:
            log.info("websocket direct write in use where a connection allows it")
        app.state.readers = readers = ReaderManager(rt)
        follower = site_link = None
        watcher: LifWatcher | None = None
        if settings.site_keys is not None:
            follower = Follower(event_log, open_outbox(event_log), SiteKeys(settings.site_keys))
            rt.forward = follower.forward
            app.state.follower = follower
        try:
            if settings.seed:
                await event_log.append(settings.seed)
            await rt.start()
            await rt.wait_ready(settings.ready_timeout_s)
            if settings.participants:
                await rt.seed_participants(settings.participants, settings.ready_timeout_s)
            if settings.entries is not None:
                await entries.seed(rt, settings.entries, settings.ready_timeout_s)
            if follower is not None:
                follower.start()  # the public end has no decoders: its reads come from the site
            else:
                await readers.start()
                if settings.lif_dir:
                    watcher = LifWatcher(rt, Path(settings.lif_dir))
                    app.state.lif_watcher = watcher
                    watcher.start()
            if settings.upstream:
                site_link = SiteLink(
                    rt, settings.upstream, settings.upstream_token, cafile=settings.upstream_ca
                )
                app.state.link = site_link
                site_link.start()
            app.state.push = None
            if settings.push:
                app.state.push = await start_push(
                    state,
                    subscriptions_for(event_log),
                    rt.append,
                    lambda: clock(rt),
                    lambda: rt.caught_up,
                    settings.push_contact,
                    settings.alert_every_s,
                    event_log if isinstance(event_log, Leases) else None,
                    settings.push_sender_process,
                )
                push_metrics.push = app.state.push
            log.info("ready: %d records applied", state.applied)
            yield {"runtime": rt, "renderer": renderer}
        finally:
            # each step within a bound: a worker that never stops is killed, final snapshot
            # and all (livetrack.service.stopping)
            if getattr(app.state, "push", None) is not None:
                await stopping.within("the push service", app.state.push.stop())
            if site_link is not None:
                await stopping.within("the site link", site_link.stop())
            if follower is not None:
                await stopping.within("the follower", follower.stop())
            if watcher is not None:
                await stopping.within("the photo-finish watcher", watcher.stop())
            await stopping.within("the readers", readers.stop())
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
        WebSocketRoute("/ws/staff", staff),
        WebSocketRoute(linkwire.PATH, follow.link_socket),
        Route("/api/v1/link", follow.get_link),
        Route("/api/v1/freshness", follow.get_freshness),
        *features.routes(),
        Mount("/static", CachedStatic(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(GZipMiddleware, minimum_size=500)],
        exception_handlers={
            HTTPException: _http_error,
            LogUnavailable: _log_down,
            Queued: follow.queued_response,
            ClientDisconnect: client_left,
        },
    )
    app.state.metrics = registry
    return app

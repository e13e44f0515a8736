"""The websocket endpoints, both served by one subscription path (:func:`subscribe`).

- ``WS /live?topics=a,b`` (or a first message ``{"topics": [...]}``): the public pages.
- ``WS /ws/staff``, first message ``{"token": "...", "topics": [...]}``: the consoles. A
  socket from another site's page is refused (403) before it opens; the token must be live,
  and the socket is closed when it is revoked.

A subscription is admitted whole or refused whole, closing with 1008 and the reason: each name
must be a topic of a live region here (:meth:`~livetrack.web.render.Renderer.find`), at most
:data:`~livetrack.domain.topics.MAX_TOPICS` of them, and, where the endpoint checks it, one the
caller may watch (``Region.refusal``: public regions anyone, staff regions by their roles and
checkpoint). Once admitted, the subscriber is registered with the hub, which delivers on its
tick (directly to the transport where :mod:`livetrack.live.wire` allows it); this coroutine
then re-marks the time-dependent regions on their period (``Region.touch_s``), watches the
token, and waits for the client to go away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from livetrack.domain.records import TokenRecord
from livetrack.domain.topics import MAX_TOPICS, BadTopic
from livetrack.live.hub import Subscriber
from livetrack.live.wire import attach
from livetrack.service.runtime import Runtime
from livetrack.web.auth import lookup, same_origin
from livetrack.web.render import Renderer

log = logging.getLogger("livetrack.live")

#: Close code for a subscription the server cannot serve (the reason says why).
POLICY = 1008
#: How long a client has to send its first message.
FIRST_MESSAGE_S = 10.0
#: How often a subscription looks at its touch periods and its token.
KEEP_S = 0.25


class Refused(ValueError):
    """A subscription the server will not serve; the message is the close reason."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What one websocket endpoint asks of a subscription."""

    #: The first message carries a staff token (``{"token": ..., "topics": [...]}``).
    token: bool
    #: Check each topic against its region's rules (``Region.refusal``) for the caller's
    #: grant (None without a token: public regions only).
    authorise: bool
    #: Refuse sockets opened by another site's page.
    same_origin: bool


#: ``/live``: the public pages' socket, from any site and with no token: public regions only
#: (a staff topic is refused, 1008, "... is for staff: sign in first").
PUBLIC = Endpoint(token=False, authorise=True, same_origin=False)
#: ``/ws/staff``: the consoles' socket.
STAFF = Endpoint(token=True, authorise=True, same_origin=True)


def admit(
    renderer: Renderer, names: Iterable[str], grant: TokenRecord | None, authorise: bool
) -> list[str]:
    """The topics asked for, checked (see the module doc); :class:`Refused` naming the first
    problem."""
    out = list(dict.fromkeys(n for n in names if n))
    if not out:
        raise Refused("no topics given")
    if len(out) > MAX_TOPICS:
        raise Refused(f"too many topics ({len(out)} > {MAX_TOPICS})")
    for name in out:
        try:
            region, topic = renderer.find(name)
        except BadTopic as exc:
            raise Refused(str(exc)) from None
        if authorise:
            why = region.refusal(topic, grant)
            if why:
                raise Refused(why)
    return out


async def live(ws: WebSocket) -> None:
    await subscribe(ws, PUBLIC)


async def staff(ws: WebSocket) -> None:
    await subscribe(ws, STAFF)


async def subscribe(ws: WebSocket, endpoint: Endpoint) -> None:
    """Serve one websocket subscription on ``endpoint`` until the client goes away."""
    if endpoint.same_origin and not same_origin(ws):
        await ws.close(code=POLICY, reason="cross-site socket refused")
        return
    rt: Runtime = ws.state.runtime
    renderer: Renderer = ws.state.renderer
    await ws.accept()
    try:
        token, names = await _request(ws, endpoint)
        grant = None
        if token is not None:
            grant = lookup(rt.state, token)
            if grant is None:
                raise Refused("unknown or revoked token")
        topics = admit(renderer, names, grant, endpoint.authorise)
    except (Refused, ValueError, TimeoutError) as exc:
        with contextlib.suppress(Exception):
            await ws.close(code=POLICY, reason=str(exc)[:120])
        return
    except WebSocketDisconnect:
        return
    write, why = attach(ws)
    if write is not None:
        rt.counters.ws_direct += 1
    else:
        rt.counters.ws_asgi += 1
        if rt.counters.ws_asgi == 1:
            log.warning("websocket frames go through ASGI sends, not the direct write: %s", why)
    sub = Subscriber(ws.send_text, topics, write)
    rt.hub.subscribe(sub)
    periods = renderer.touch_periods(topics)
    keeper = None
    if periods or token is not None:
        keeper = asyncio.create_task(_keep(rt, ws, sub, periods, token))
    try:
        while not sub.closed:  # the client sends nothing we need; wait for it to go away
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
    except WebSocketDisconnect:
        pass
    finally:
        rt.hub.unsubscribe(sub)
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper


async def _request(ws: WebSocket, endpoint: Endpoint) -> tuple[str | None, list[str]]:
    """The token (None when the endpoint takes none) and the topic names asked for: from
    ``?topics=`` on a public socket that has them, else from the first message."""
    raw = ws.query_params.get("topics", "")
    if raw and not endpoint.token:
        return None, raw.split(",")
    shape = '{"token": "...", "topics": [...]}' if endpoint.token else '{"topics": ["..."]}'
    data: Any = orjson.loads(await asyncio.wait_for(ws.receive_text(), FIRST_MESSAGE_S))
    if not isinstance(data, dict):
        raise Refused(f"first message must be {shape}")
    token = data.get("token") if endpoint.token else None
    if endpoint.token and not isinstance(token, str):
        raise Refused(f"first message must be {shape}")
    items = data.get("topics")
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise Refused("topics must be a list of strings")
    return token, items


async def _keep(
    rt: Runtime, ws: WebSocket, sub: Subscriber, periods: dict[str, float], token: str | None
) -> None:
    """Mark this client's time-dependent topics dirty on their own period, and drop the
    connection when its token is revoked."""
    loop = asyncio.get_running_loop()
    due = {name: loop.time() + period for name, period in periods.items()}
    while not sub.closed:
        await asyncio.sleep(KEEP_S)
        if token is not None and lookup(rt.state, token) is None:
            with contextlib.suppress(Exception):
                await ws.close(code=POLICY, reason="token revoked")
            return
        now = loop.time()
        ready = [name for name, at in due.items() if at <= now]
        for name in ready:
            due[name] = now + periods[name]
        if ready:
            rt.hub.mark(ready)

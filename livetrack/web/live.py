"""The websocket endpoint: ``/live?topics=a,b`` (or a first message ``{"topics": [...]}``).

One task per connection (the server's): after the handshake the subscriber is registered with
the hub, which delivers on its tick (directly to the transport where :mod:`livetrack.live.wire`
allows it), and this coroutine only waits for the client to go away.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from livetrack.live.hub import Hub, Subscriber, UnknownTopic
from livetrack.live.wire import direct_writer

#: Close code for a subscription the server cannot serve (the reason says why).
POLICY = 1008


async def live(ws: WebSocket) -> None:
    hub: Hub = ws.state.runtime.hub
    await ws.accept()
    raw = ws.query_params.get("topics", "")
    try:
        if not raw:
            first = await asyncio.wait_for(ws.receive_text(), 10)
            data = orjson.loads(first)
            items = data.get("topics") if isinstance(data, dict) else None
            if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
                raise UnknownTopic('first message must be {"topics": ["..."]}')
            topics = hub.validate(items)
        else:
            topics = hub.validate(raw.split(","))
    except (UnknownTopic, ValueError, TimeoutError) as exc:
        await ws.close(code=POLICY, reason=str(exc)[:120])
        return
    except WebSocketDisconnect:
        return
    sub = Subscriber(ws.send_text, topics, direct_writer(ws))
    hub.subscribe(sub)
    try:
        while not sub.closed:  # the client sends nothing we need; wait for it to go away
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(sub)

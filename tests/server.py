"""A real uvicorn server on a free port, in a thread of its own, for tests that cross a socket.

The reads and gun APIs answer once the records are durable in the log; the fold applies them
a moment later. A test that looks at the result right after such a write first calls
:meth:`Running.settle` (or ``await srv.asettle()``), which returns once the fold has applied
everything in the log.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
import websockets
from conftest import PATIENCE_S

from livetrack.domain.event import Event
from livetrack.domain.records import ParticipantRecord, Record
from livetrack.web.app import Settings, create_app
from livetrack.web.auth import issue
from livetrack.web.wsdeflate import WS_PROTOCOL


@dataclass
class Running:
    url: str
    port: int
    tokens: dict[str, str]
    app: object
    loop: asyncio.AbstractEventLoop

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    async def _settled(self, timeout: float) -> None:
        rt = self.app.state.runtime  # type: ignore[attr-defined]
        head = await rt.log.head()
        if head is not None:
            await rt.wait_applied(head, timeout)

    def settle(self, timeout: float = PATIENCE_S) -> None:
        """Wait until the fold has applied every record the log holds now."""
        done = asyncio.run_coroutine_threadsafe(self._settled(timeout), self.loop)
        done.result(timeout + 5)

    async def asettle(self, timeout: float = PATIENCE_S) -> None:
        """:meth:`settle` for async tests (their own loop keeps running meanwhile)."""
        done = asyncio.run_coroutine_threadsafe(self._settled(timeout), self.loop)
        await asyncio.wait_for(asyncio.wrap_future(done), timeout + 5)


async def recv_until(
    ws: websockets.ClientConnection, needle: str, timeout: float = PATIENCE_S
) -> str:
    """The first text message on a live socket that holds ``needle`` (fails after
    ``timeout``)."""

    async def loop() -> str:
        while True:
            msg = await ws.recv()
            assert isinstance(msg, str)
            if needle in msg:
                return msg

    return await asyncio.wait_for(loop(), timeout)


def tokens_for(points: tuple[str, ...] = ("half",)) -> tuple[dict[str, str], list[Record]]:
    tokens: dict[str, str] = {}
    records: list[Record] = []
    for role in ("reader", "timer"):
        tokens[role], rec = issue(role, label=f"test {role}")
        records.append(rec)
    for point in points:
        tokens[f"marshal:{point}"], rec = issue("marshal", point, label=f"marshal {point}")
        records.append(rec)
    return tokens, records


@contextmanager
def serve(
    event: Event,
    db: Path | str,
    participants: list[ParticipantRecord] | None = None,
    *,
    tick_s: float = 0.05,
    port: int | None = None,
    tokens: tuple[dict[str, str], list[Record]] | None = None,
    **more: Any,
) -> Iterator[Running]:
    """Serve ``event`` with its log at ``db`` until the block ends (``more``: other
    :class:`Settings` fields)."""
    toks, seed = tokens or tokens_for()
    settings = Settings(
        event=event,
        log_url=str(db),
        participants=participants or [],
        seed=seed,
        tick_s=tick_s,
        **more,
    )
    app = create_app(settings)
    # Bound here and handed to uvicorn, so no other process can take the port in between.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port or 0))
    except OSError:
        sock.close()
        raise
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws=WS_PROTOCOL,
        ws_per_message_deflate=False,
        lifespan="on",
    )  # fmt: skip
    server = uvicorn.Server(config)
    loops: list[asyncio.AbstractEventLoop] = []

    async def run() -> None:
        loops.append(asyncio.get_running_loop())
        await server.serve(sockets=[sock])

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + PATIENCE_S
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("server failed to start")
        if time.monotonic() > deadline:
            server.should_exit = True
            thread.join(PATIENCE_S)
            sock.close()
            raise TimeoutError(f"server did not start in {PATIENCE_S} s")
        time.sleep(0.025)
    try:
        yield Running(f"http://127.0.0.1:{port}", port, toks, app, loops[0])
    finally:
        server.should_exit = True
        thread.join(PATIENCE_S)
        sock.close()

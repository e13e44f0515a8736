"""A real uvicorn server on a free port, in a thread of its own, for tests that cross a socket."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from conftest import free_port

from livetrack.domain.event import Event
from livetrack.domain.records import ParticipantRecord, Record
from livetrack.web.app import Settings, create_app
from livetrack.web.auth import issue


@dataclass
class Running:
    url: str
    port: int
    tokens: dict[str, str]
    app: object

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")


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
) -> Iterator[Running]:
    """Serve ``event`` with its log at ``db`` until the block ends."""
    toks, seed = tokens or tokens_for()
    settings = Settings(
        event=event, log_url=str(db), participants=participants or [], seed=seed, tick_s=tick_s
    )
    app = create_app(settings)
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=False,
        lifespan="on",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        if not thread.is_alive():
            raise RuntimeError("server failed to start")
        threading.Event().wait(0.025)
    else:
        raise TimeoutError("server did not start in 10 s")
    try:
        yield Running(f"http://127.0.0.1:{port}", port, toks, app)
    finally:
        server.should_exit = True
        thread.join(10)

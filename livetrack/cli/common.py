"""What the ``livetrack`` commands share: reading the event and the entries, naming and
checking the log, serving an app. A problem ends the command with one line."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys
import time

from livetrack import config
from livetrack.config import ConfigProblem
from livetrack.domain.event import Event
from livetrack.domain.participants import parse_participants
from livetrack.domain.records import ParticipantRecord, Record

log = logging.getLogger("livetrack")


def demo_event() -> Event:
    """The built-in event, dated today (see :mod:`livetrack.demo.run`)."""
    from livetrack.demo.run import demo_event as dated

    return dated()


def load_event(path: str) -> Event:
    """The event in ``path`` (a problem with it ends the command with one line)."""
    return config.read_event(path)


def read_participants(path: str) -> str:
    """The text of a participants CSV (a problem with it ends the command with one line)."""
    return config.read_participants(path)


def load_participants(path: str, event: Event) -> list[ParticipantRecord]:
    people, errors = parse_participants(read_participants(path), event)
    for e in errors:
        print(f"{path}: {e}", file=sys.stderr)
    if errors:
        print(f"{path}: {len(people)} participants loaded, {len(errors)} rows skipped",
              file=sys.stderr)  # fmt: skip
    return people


def log_url(args: argparse.Namespace, event: Event | None = None) -> str:
    """The log named by ``--redis URL`` or else ``--db FILE``. A Redis URL without
    ``?stream=`` gets the event's stream, ``livetrack:<event id>`` (the event from ``event``
    or ``--event``), so ``serve`` and ``token`` on the same event share one stream."""
    from livetrack.config import is_redis, with_default_stream

    url = getattr(args, "redis", None)
    if not url:
        return str(args.db)
    url = str(url)
    if not is_redis(url):
        raise SystemExit(f"livetrack: --redis needs a redis://, rediss:// or unix:// URL: {url!r}")
    if with_default_stream(url, "-") == url:
        return url  # it names its stream
    if event is None and getattr(args, "event", None):
        event = load_event(args.event)
    if event is None:
        raise SystemExit(
            "livetrack: the Redis URL names no stream: add ?stream=NAME, or give --event "
            "EVENT.toml to use the event's stream (livetrack:<event id>)"
        )
    return with_default_stream(url, event.id)


def log_down(exc: Exception) -> SystemExit:
    """One line on stderr and exit status 2: the log cannot be reached."""
    print(f"livetrack: {exc}", file=sys.stderr)
    return SystemExit(2)


async def append_records(url: str, records: list[Record]) -> None:
    from livetrack.store import open_log

    event_log = open_log(url)
    try:
        await event_log.append(records)
    finally:
        await event_log.close()


def append_or_exit(url: str, records: list[Record]) -> None:
    from livetrack.store.base import LogUnavailable

    try:
        asyncio.run(append_records(url, records))
    except LogUnavailable as exc:
        raise log_down(exc) from None


def check_log(url: str) -> None:
    """Exit (status 2, one line) unless the log at ``url`` can be opened and read."""
    from livetrack.store import open_log
    from livetrack.store.base import LogUnavailable

    async def probe() -> None:
        event_log = open_log(url)
        try:
            await event_log.head()
        finally:
            await event_log.close()

    try:
        asyncio.run(probe())
    except (LogUnavailable, ValueError) as exc:
        raise log_down(exc) from None


def now_ms() -> int:
    return int(time.time() * 1000)


def sim_start(event: Event, now_ms: int) -> int:
    """When a simulated race starts: ``now_ms`` on the event's day, or the same time of day
    on the event's day when today is another (a gun far from the event's day is refused)."""
    now = dt.datetime.fromtimestamp(now_ms / 1000, event.tz)
    shift = (event.date - now.date()).days
    return now_ms + shift * 86_400_000 if shift else now_ms


GRACEFUL_S = 10
"""Seconds requests and live connections still open at SIGTERM are given to end before
they are cancelled and the application shuts down (uvicorn otherwise waits for them)."""


def serve_app(app: object, host: str, port: int) -> None:
    import uvicorn

    from livetrack.web.wsdeflate import WS_PROTOCOL

    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        ws=WS_PROTOCOL,
        ws_per_message_deflate=False,  # WS_PROTOCOL negotiates its own
        ws_ping_interval=20,
        ws_ping_timeout=20,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_S,
    )


def tick_arg(text: str) -> float:
    """``--tick``: seconds between the hub's renders (see :func:`livetrack.config.tick`)."""
    try:
        return config.tick(text)
    except ConfigProblem as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None

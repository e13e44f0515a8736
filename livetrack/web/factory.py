"""An ASGI app factory configured from the environment, for any number of server processes.

    LIVETRACK_EVENT=event.toml LIVETRACK_LOG='redis://redis:6379/0' \\
        uvicorn --factory livetrack.web.factory:create_from_env --workers 4 --port 8000

Environment:

``LIVETRACK_EVENT``
    the event's TOML file (required).
``LIVETRACK_PARTICIPANTS``
    a participants CSV, appended to the log once caught up (a rerun stores nothing new, and
    with the same file does not parse it again: see ``livetrack.service.entries``); optional.
``LIVETRACK_LOG``
    where the log lives: a SQLite file path (default ``livetrack.db``) or a ``redis://`` URL.
    A Redis URL without ``?stream=`` uses the stream ``livetrack:<event id>``.
``LIVETRACK_TICK``
    seconds between the hub's renders (default 0.25; ``serve --tick``).
``LIVETRACK_SITE_KEYS``
    follow a site's log: the file of accepted site tokens' hashes (``serve --site-keys``).
``LIVETRACK_SNAPSHOT_EVERY``
    save a snapshot of the fold every this many records (default 250000; 0: not by count,
    only every five minutes and on shutdown).

Every process folds the same log, accepts ingest (appends go to the log), and serves its own
websocket clients from its own fold; none of them is special.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette

from livetrack.domain.event import Event


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


def default_stream(event_id: str) -> str:
    return f"livetrack:{event_id}"


def with_default_stream(url: str, event_id: str) -> str:
    """``url`` with ``stream=livetrack:<event_id>`` added when it is a Redis URL that names no
    stream; any other URL (or a SQLite path) unchanged."""
    if not is_redis(url):
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "stream" and value for name, value in query):
        return url
    query = [(n, v) for n, v in query if n != "stream"] + [("stream", default_stream(event_id))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _load(event_path: str) -> Event:
    from livetrack.cli import load_event

    return load_event(event_path)


def create_from_env() -> Starlette:
    """The app for the event and log named by the environment (see the module docstring)."""
    from livetrack.cli import read_participants
    from livetrack.service.entries import EntriesFile
    from livetrack.web.app import Settings, create_app

    event_path = os.environ.get("LIVETRACK_EVENT")
    if not event_path:
        raise SystemExit("livetrack: LIVETRACK_EVENT must name the event's TOML file")
    event = _load(event_path)
    people_path = os.environ.get("LIVETRACK_PARTICIPANTS")
    entries = EntriesFile(people_path, read_participants(people_path)) if people_path else None
    url = with_default_stream(os.environ.get("LIVETRACK_LOG") or "livetrack.db", event.id)
    every_text = os.environ.get("LIVETRACK_SNAPSHOT_EVERY", "250000")
    if not every_text.isdigit():
        raise SystemExit("livetrack: LIVETRACK_SNAPSHOT_EVERY must be a whole number")
    tick_text = os.environ.get("LIVETRACK_TICK", "0.25")
    try:
        tick = float(tick_text)
    except ValueError:
        raise SystemExit("livetrack: LIVETRACK_TICK must be a number of seconds") from None
    if not 0.01 <= tick <= 10:
        raise SystemExit("livetrack: LIVETRACK_TICK must be between 0.01 and 10 seconds")
    settings = Settings(
        event=event,
        log_url=url,
        entries=entries,
        snapshot_every_records=int(every_text),
        tick_s=tick,
        site_keys=os.environ.get("LIVETRACK_SITE_KEYS") or None,
    )
    return create_app(settings)

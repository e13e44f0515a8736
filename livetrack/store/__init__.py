"""Event logs: the contract (:mod:`~livetrack.store.base`) and its backends, one module each
(:mod:`~livetrack.store.sqlite`, :mod:`~livetrack.store.redis`), opened by URL with
:func:`open_log`."""

from __future__ import annotations

from livetrack.store.base import EventLog


def open_log(url: str) -> EventLog:
    """A log for ``url``: ``sqlite:///path/to/file.db`` or a path, or ``redis://host:port/db``
    (``?stream=NAME`` names the event's stream). The Redis driver is imported only here."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from livetrack.store.redis import RedisEventLog

        return RedisEventLog.from_url(url)
    from livetrack.store.sqlite import SqliteEventLog

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SqliteEventLog(path)

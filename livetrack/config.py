"""A server's configuration, in one place for the CLI and the app factory alike.

:class:`Settings` is what :func:`livetrack.web.app.create_app` needs. ``livetrack serve`` builds
it from its arguments; ``uvicorn --factory livetrack.web.factory:create_from_env`` (and the
workers of ``serve --workers N``) from the environment with :func:`from_env`, which
:func:`to_env` writes. Every value is checked here, once, by the same functions: a value that
cannot be used raises :class:`ConfigProblem` saying which and why (the CLI prints it and exits;
nothing else exits the process).

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
    seconds between the hub's renders (default 0.25, from 0.01 to 10; ``serve --tick``).
``LIVETRACK_SNAPSHOT_EVERY``
    save a snapshot of the fold every this many records (default 250000; 0: not by count,
    only every ten minutes and on shutdown).
``LIVETRACK_SITE_KEYS``
    follow a site's log: the file of accepted site tokens' hashes (``serve --site-keys``).
``LIVETRACK_LIF_DIR``
    import the photo-finish system's ``.lif`` files from this folder as they appear
    (``serve --lif-dir``; see ``livetrack.service.lynx``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from livetrack.domain.event import ConfigError, Event, load_event_text
from livetrack.domain.records import ParticipantRecord, Record
from livetrack.service.entries import EntriesFile
from livetrack.store import open_log
from livetrack.store.base import EventLog

#: The hub's tick: from this many seconds ...
TICK_MIN_S = 0.01
#: ... to this many.
TICK_MAX_S = 10.0


class ConfigProblem(ValueError):
    """A setting that cannot be used; the message says which and why."""


@dataclass
class Settings:
    """What a server needs: the event, where its log lives, and what to seed it with."""

    event: Event
    log_url: str
    participants: list[ParticipantRecord] = field(default_factory=list)
    #: A participants file to seed the log with once caught up; parsed only when the log's
    #: snapshot store has no note that all its entries are in the log (``service.entries``).
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
    #: Follow a site's log (``serve --site-keys``): the file of accepted site tokens' hashes.
    site_keys: str | None = None
    #: Push this log to the public server at ``upstream`` (``livetrack site``).
    upstream: str | None = None
    upstream_token: str = ""
    upstream_ca: str | None = None
    #: Web Push alerts: on unless False; the contact a push service may write to about this
    #: server (a mailto: or https: URL, in every VAPID token); how often alerts are decided.
    push: bool = True
    push_contact: str = "mailto:timing@livetrack.invalid"
    alert_every_s: float = 1.0
    #: Send push messages from a process of its own (off the loop serving the pages).
    push_sender_process: bool = True
    #: A folder the photo-finish system writes its ``.lif`` files to (``serve --lif-dir``).
    lif_dir: str | None = None

    def __post_init__(self) -> None:
        self.tick_s = tick(self.tick_s)
        if self.snapshot_every_records < 0:
            raise ConfigProblem("the snapshot interval must be 0 or more records")


def tick(value: str | float, name: str = "the tick") -> float:
    """Seconds between the hub's renders, from :data:`TICK_MIN_S` to :data:`TICK_MAX_S`."""
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigProblem(f"{name}: {value!r} is not a number of seconds") from None
    if not TICK_MIN_S <= seconds <= TICK_MAX_S:
        raise ConfigProblem(f"{name} must be between {TICK_MIN_S:g} and {TICK_MAX_S:g} seconds")
    return seconds


def whole(value: str, name: str) -> int:
    """A whole number of 0 or more."""
    if not value.strip().isdigit():
        raise ConfigProblem(f"{name} must be a whole number, not {value!r}")
    return int(value)


def read_event(path: str) -> Event:
    """The event in the TOML file at ``path``."""
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigProblem(f"cannot read {path}: {exc.strerror}") from None
    try:
        return load_event_text(text)
    except ConfigError as exc:
        raise ConfigProblem(f"{path}: {exc}") from None


def lif_folder(path: str) -> str:
    """A folder of photo-finish files: it must exist (the CLI creates none)."""
    if not Path(path).is_dir():
        raise ConfigProblem(f"--lif-dir {path}: not a folder")
    return str(Path(path).resolve())


def read_participants(path: str) -> str:
    """The text of a participants CSV."""
    try:
        return Path(path).read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigProblem(f"cannot read {path}: {exc}") from None


def entries_file(path: str) -> EntriesFile:
    """A participants file to seed the log with (read now, parsed once caught up)."""
    return EntriesFile(path, read_participants(path))


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


def from_env(environ: Mapping[str, str] = os.environ) -> Settings:
    """The settings named by the environment (see the module doc)."""
    event_path = environ.get("LIVETRACK_EVENT")
    if not event_path:
        raise ConfigProblem("LIVETRACK_EVENT must name the event's TOML file")
    event = read_event(event_path)
    people = environ.get("LIVETRACK_PARTICIPANTS")
    return Settings(
        event=event,
        log_url=with_default_stream(environ.get("LIVETRACK_LOG") or "livetrack.db", event.id),
        entries=entries_file(people) if people else None,
        snapshot_every_records=whole(
            environ.get("LIVETRACK_SNAPSHOT_EVERY", "250000"), "LIVETRACK_SNAPSHOT_EVERY"
        ),
        tick_s=tick(environ.get("LIVETRACK_TICK", "0.25"), "LIVETRACK_TICK"),
        site_keys=environ.get("LIVETRACK_SITE_KEYS") or None,
        lif_dir=lif_folder(lif) if (lif := environ.get("LIVETRACK_LIF_DIR")) else None,
    )


def to_env(
    event_path: str,
    log_url: str,
    *,
    participants: str | None,
    snapshot_every: int,
    tick_s: float,
    site_keys: str | None,
    lif_dir: str | None = None,
) -> dict[str, str]:
    """The environment :func:`from_env` reads these settings back from (``serve --workers``);
    paths made absolute. A variable mapped to "" is to be removed."""
    return {
        "LIVETRACK_EVENT": str(Path(event_path).resolve()),
        "LIVETRACK_PARTICIPANTS": str(Path(participants).resolve()) if participants else "",
        "LIVETRACK_LOG": log_url,
        "LIVETRACK_SNAPSHOT_EVERY": str(snapshot_every),
        "LIVETRACK_TICK": str(tick_s),
        "LIVETRACK_SITE_KEYS": str(Path(site_keys).resolve()) if site_keys else "",
        "LIVETRACK_LIF_DIR": str(Path(lif_dir).resolve()) if lif_dir else "",
    }

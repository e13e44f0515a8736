"""When a time may lie: the one window every time entering the log is checked against.

The event window runs from :data:`BEFORE_DAY_MS` before the event's day begins (in the event's
time zone) to :data:`AFTER_DAY_MS` after it ends. A gun, a sweep, a sighting or a correction's
time must lie in it. A runner's passing (a sighting, a correction's time) may moreover not lie
before the runner's gun, less :data:`EARLY_MS` for a phone whose clock is a little behind.
Chip reads keep their own rule (:func:`read_bounds`: within three days of the event's day, or
of their receipt), the one the reads API and the decoders have always applied, because a
decoder's clock is not the timer's to fix.

The edge (the HTTP API, the CLI) answers 422 naming the field for a time outside the window;
the fold skips any stored record whose time is outside it (:func:`unusable`), so a record that
reached the log by another way can never take a page down.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from livetrack.domain.event import Event

#: A time may lie this long before the event's day begins (set-up, a test gun the day before).
BEFORE_DAY_MS = 24 * 3600 * 1000
#: A time may lie this long after the event's day ends (a long race, late corrections).
AFTER_DAY_MS = 48 * 3600 * 1000
#: A runner's passing may lie this long before the runner's gun (a marshal's phone clock).
EARLY_MS = 5 * 60 * 1000
#: A chip read is usable this near the start of the event's day, or this near the time the
#: server received it: the rule the reads API and the decoders have always applied, so every
#: read an earlier release stored is still folded.
READ_DISTANCE_MS = 3 * 24 * 3600 * 1000


def read_bounds(event: Event) -> tuple[int, int]:
    """The chip reads' window by the event's day: its midnight ± :data:`READ_DISTANCE_MS`."""
    centre = int(datetime.combine(event.date, datetime.min.time(), event.tz).timestamp() * 1000)
    return centre - READ_DISTANCE_MS, centre + READ_DISTANCE_MS


def bounds(event: Event) -> tuple[int, int]:
    """The event window as epoch ms ``(first, last)``."""
    begin = datetime.combine(event.date, datetime.min.time(), event.tz)
    end = begin + timedelta(days=1)
    return (
        int(begin.timestamp() * 1000) - BEFORE_DAY_MS,
        int(end.timestamp() * 1000) + AFTER_DAY_MS,
    )


def outside(event: Event, ms: int, window: tuple[int, int] | None = None) -> str:
    """Why ``ms`` is outside the event window ("" when it is inside)."""
    first, last = window or bounds(event)
    if first <= ms <= last:
        return ""
    day = event.date.isoformat()
    return f"{_show(ms)} is outside the event's window (the day before {day} to two days after)"


def read_outside(ms: int) -> str:
    """Why a chip read at ``ms`` cannot be used (see :func:`read_usable`)."""
    return f"{_show(ms)} is more than three days from the event's day and from its receipt"


def before_gun(gun_ms: int | None, ms: int, race_name: str) -> str:
    """Why a passing at ``ms`` cannot be (before the runner's gun), or ""."""
    if gun_ms is None or ms >= gun_ms - EARLY_MS:
        return ""
    return f"{_show(ms)} is before {race_name}'s gun ({_show(gun_ms)})"


def read_usable(window: tuple[int, int], time_ms: int, received_ms: int) -> bool:
    """A stored chip read's time can be used: in the reads' ``window`` (:func:`read_bounds`)
    or near its receipt."""
    first, last = window
    return first <= time_ms <= last or abs(time_ms - received_ms) <= READ_DISTANCE_MS


def _show(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"

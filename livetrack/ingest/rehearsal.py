"""Rehearsing the timing hardware: an event served with one decoder reader per timing point,
and the race played to it by ``livetrack simulate --protocol`` as those decoders.

A gun marker from a start mat names no race. When several races start at one mat the server
starts the ones scheduled nearest the marker (see :func:`~livetrack.ingest.readers.gun_races`),
so a rehearsal whose races have scheduled starts plays its guns at them, and one whose markers
could not name their race says so before it starts. ``livetrack demo --readers PROTOCOL``
serves the demo event that way: each race scheduled at the demo's own start times, a reader
per timing point speaking the protocol, and the ``livetrack simulate`` command that plays the
decoders printed for the timer to run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping

from livetrack.domain.event import Event, Reader
from livetrack.ingest.readers import gun_races

__all__ = [
    "CONNECTING",
    "DEFAULT_PORTS",
    "ipico_tag",
    "marker_problems",
    "rehearsal_event_text",
    "scheduled_guns",
]

#: Hardware that connects to the scoring software (its readers listen; the rehearsal's
#: decoders connect with ``--connect``).
CONNECTING = frozenset({"ctp01", "mylaps"})
#: The first decoder's port in a rehearsal, per protocol (the protocol's usual one).
DEFAULT_PORTS = {"raceresult": 3601, "ctp01": 61611, "ipico": 10000, "mylaps": 7000}

_HEX12 = re.compile(r"^[0-9A-Fa-f]{12}$")


def scheduled_guns(event: Event, races: Iterable[str]) -> dict[str, int] | None:
    """Each race's scheduled start, when every one of ``races`` has one (else ``None``)."""
    guns: dict[str, int] = {}
    for race in races:
        scheduled = event.races[race].scheduled_ms
        if scheduled is None:
            return None
        guns[race] = scheduled
    return guns


def marker_problems(event: Event, point: str, guns: Mapping[str, int]) -> list[str]:
    """Why the gun markers the start mat at ``point`` sends at ``guns`` would not start
    exactly their races on a server with ``event`` (one line per race; none when they do)."""
    reader = Reader(f"mat-{point}", point=point)
    problems = []
    for race, at in guns.items():
        started, why = gun_races(event, reader, at)
        if started != [race]:
            stamp = dt.datetime.fromtimestamp(at / 1000, event.tz).strftime("%H:%M:%S")
            reason = why or f"it would start {', '.join(started)}"
            problems.append(f"the {race} marker at {stamp} will not start it: {reason}")
    return problems


def ipico_tag(chip: str) -> str:
    """A 12-hex IPICO tag id for ``chip`` (the chip itself when it is one already): the demo's
    entrants get these in an IPICO rehearsal, on the server and in the simulator alike."""
    if _HEX12.match(chip):
        return chip
    return hashlib.sha1(chip.encode()).hexdigest()[:12]


def rehearsal_event_text(
    text: str,
    event: Event,
    *,
    protocol: str,
    guns: Mapping[str, int],
    first_port: int,
    host: str = "127.0.0.1",
) -> str:
    """``text`` (the ``EVENT.toml`` of ``event``) for a rehearsal: dated on the day of the
    first gun, every race in ``guns`` scheduled at its gun, and a ``protocol`` reader
    ``mat-<point>`` per timing point on ``first_port`` and the ports after it. The readers
    connect to the decoders, or listen for those that connect (:data:`CONNECTING`)."""
    day = dt.datetime.fromtimestamp(min(guns.values()) / 1000, event.tz).date()
    out, count = re.subn(r'(?m)^date = ".*"$', f'date = "{day.isoformat()}"', text, count=1)
    if count != 1:
        raise ValueError("the event has no date line")
    for race, at in guns.items():
        start = dt.datetime.fromtimestamp(at / 1000, event.tz).replace(tzinfo=None)
        pattern = rf'(?m)^(\[\[race\]\]\nid = "{re.escape(race)}"\n)(start = .*\n)?'
        out, count = re.subn(pattern, rf'\g<1>start = "{start.isoformat()}"\n', out, count=1)
        if count != 1:
            raise ValueError(f"race {race!r} is not written [[race]] then its id")
    listen = str(protocol in CONNECTING).lower()
    for i, point in enumerate(event.points):
        if "." in point:  # a backup alias made by a reader's role, not a mat of its own
            continue
        out += (
            f'\n[[reader]]\nid = "mat-{point}"\nprotocol = "{protocol}"\npoint = "{point}"\n'
            f'host = "{host}"\nport = {first_port + i}\nlisten = {listen}\n'
        )
    return out

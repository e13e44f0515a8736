"""Timing-decoder protocols as sans-I/O parsers, with asyncio connectors and simulators.

``PROTOCOLS`` maps a protocol name to its parser class; :func:`make_parser`
builds one.  Parsers share the interface of
:class:`~livetrack.ingest.decoders.base.DecoderProtocol`:
``receive_data`` / ``receive_eof`` in, ``reads_received`` / ``errors_received`` /
``data_to_send`` out, plus ``connection_made``, ``resume_from`` and ``keepalive``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from .base import BACKLOG, CLOCK_UNSET, DecodedRead, DecodeError, DecoderProtocol
from .ctp01 import Ctp01Protocol
from .generic import GenericProtocol
from .ipico import IpicoProtocol
from .mylaps import MylapsProtocol
from .raceresult import RaceResultProtocol

__all__ = [
    "BACKLOG",
    "CLOCK_UNSET",
    "PROTOCOLS",
    "Ctp01Protocol",
    "DecodeError",
    "DecodedRead",
    "DecoderProtocol",
    "GenericProtocol",
    "IpicoProtocol",
    "MylapsProtocol",
    "RaceResultProtocol",
    "make_parser",
]

PROTOCOLS: dict[str, type[DecoderProtocol]] = {
    "raceresult": RaceResultProtocol,
    "ctp01": Ctp01Protocol,
    "ipico": IpicoProtocol,
    "mylaps": MylapsProtocol,
    "generic": GenericProtocol,
}


def make_parser(
    name: str,
    *,
    source_id: str,
    tz: ZoneInfo,
    date: dt.date | None = None,
    **kw: Any,
) -> DecoderProtocol:
    """Build the parser registered under ``name``; raises ``KeyError`` if unknown.

    Extra keyword arguments go to the protocol class (for example
    ``fetch_chunk`` for RACE RESULT or ``locations`` for CTP01).
    """
    try:
        cls = PROTOCOLS[name.lower()]
    except KeyError:
        known = ", ".join(sorted(PROTOCOLS))
        raise KeyError(f"unknown decoder protocol {name!r} (known: {known})") from None
    return cls(source_id=source_id, tz=tz, date=date, **kw)

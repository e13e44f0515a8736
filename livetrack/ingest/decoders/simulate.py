"""Decoder simulators: asyncio TCP peers that play a list of reads like a decoder.

:class:`DecoderSimulator` speaks one protocol.  It can listen (:meth:`start`,
the connector connects to it, as with a RACE RESULT decoder on port 3601) or
connect out (:meth:`connect`, as MYLAPS software or an IPICO reader pushing to
a server).  It honours the protocol's commands:

* ``raceresult`` -- ``SETPROTOCOL``, ``SETPUSHPASSINGS;1;0`` (push the passings
  that happen from then on), ``PASSINGS`` (count), ``<first>:<count>`` and
  ``<n>`` (fetch by range / number), ``PING``, ``GETTIME``.  Passings "happen"
  on a timeline (one every ``interval_s``) that starts with the first push
  request and keeps running while nobody is connected, like a real decoder:
  what happened during a drop can only be had by fetching it.
* ``ctp01`` -- greets with ``<name>~<version>~CTP01``, reads the client's
  greeting and settings; answers ``ping`` and ``getlocations``.  Its lines happen on a
  timeline like RACE RESULT's passings (started by the first ``start``); a plain
  ``start`` plays every line it holds from the first, ``start~<location>~<n>`` from line
  ``n`` (inclusive), then the new ones as they happen.
* ``ipico`` -- streams read lines as soon as a connection is up; resumes after
  the last line it wrote.
* ``mylaps`` -- greets with ``<loc>@Pong@$``, sends ``Passing`` messages of
  ``batch`` records (gun reads as ``Marker`` messages) and waits for each
  ``AckPassing``; an unacknowledged message is sent again after a reconnect.

``drop_after=N`` closes the connection right after the N-th read line written
on it, ``drops`` times in total, so connector tests can exercise reconnection.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from .base import DecodedRead
from .sim.core import SimulatorBase
from .sim.mylaps import MylapsPlayer
from .sim.raceresult import RaceResultPlayer
from .sim.streams import StreamPlayer

__all__ = ["DecoderSimulator", "SimulatorBase", "make_demo_reads", "serve_decoder", "split_plan"]


class DecoderSimulator(RaceResultPlayer, StreamPlayer, MylapsPlayer):
    """Plays ``reads`` as the named protocol's decoder would.

    Attributes for tests: ``connections`` (count), ``fetch_requests`` (range /
    number requests received, RACE RESULT), ``drops_done``, ``sent`` (every read
    written to a socket, duplicates included) and ``finished`` (set once every
    read has been produced and written at least once, pushed or fetched -- for MYLAPS,
    also acknowledged).
    """

    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: list[int]
    ) -> None:
        handler = {
            "raceresult": self._raceresult,
            "ctp01": self._ctp01,
            "ipico": self._ipico,
            "mylaps": self._mylaps,
        }[self.protocol]
        await handler(reader, writer, counter)


async def serve_decoder(
    protocol_name: str,
    reads: Sequence[DecodedRead],
    host: str = "127.0.0.1",
    port: int = 0,
    tz: ZoneInfo | None = None,
    drop_after: int | None = None,
    **options: object,
) -> tuple[DecoderSimulator, int]:
    """Start a listening simulator; return it (call ``await sim.close()``) and its port.

    ``options`` go to :class:`DecoderSimulator` (``interval_s``, ``drops``,
    ``name``, ``location``, ``batch``, ``clock_unset``, ``lose``, ``swap``).
    """
    sim = DecoderSimulator(
        protocol_name,
        reads,
        tz=tz if tz is not None else ZoneInfo("UTC"),
        drop_after=drop_after,
        **options,  # type: ignore[arg-type]
    )
    bound = await sim.start(host, port)
    return sim, bound


def make_demo_reads(
    protocol_name: str,
    count: int,
    *,
    start_ms: int,
    spacing_ms: int = 1000,
    source: str = "SIM-1",
    gun: bool = True,
) -> list[DecodedRead]:
    """Build ``count`` plausible reads for a protocol (for ``livetrack simulate``).

    Chips are 12 hex characters for IPICO, 7 characters for MYLAPS and numbers
    otherwise; times are multiples of 10 ms so every protocol can carry them.
    With ``gun`` the first read is a gun-time marker.
    """
    reads: list[DecodedRead] = []
    for i in range(count):
        time_ms = start_ms + i * spacing_ms
        time_ms -= time_ms % 10
        if gun and i == 0 and protocol_name != "ipico":
            reads.append(DecodedRead(chip="", time_ms=time_ms, seq=1, source=source, kind="gun"))
            continue
        if protocol_name == "ipico":
            chip = f"{0x058003000000 + i:012x}"
        elif protocol_name == "mylaps":
            chip = f"KV{10000 + i:05d}"
        else:
            chip = str(1000 + i)
        reads.append(DecodedRead(chip=chip, time_ms=time_ms, seq=i + 1, source=source))
    return reads


def split_plan(
    actions: Iterable[Any], *, markers_at: str | None = None
) -> dict[str, list[DecodedRead]]:
    """Turn a simulated race plan (``livetrack.sim.plan`` actions) into each reader's reads.

    Read actions go to their ``reader`` in time order, numbered 1, 2, ... per reader. With
    ``markers_at`` (a reader id), each race's first gun becomes a gun marker in that reader's
    stream (one per race: a marker starts the whole race, whose waves follow by offset).
    """
    out: dict[str, list[DecodedRead]] = {}
    guns: dict[str, int] = {}
    for a in actions:
        if a.kind == "gun":
            guns[a.race] = min(guns.get(a.race, a.at_ms), a.at_ms)
            continue
        body = a.read
        reader = str(body["reader"])
        out.setdefault(reader, []).append(
            DecodedRead(
                chip=str(body["chip"]),
                time_ms=int(body["time"]),
                seq=int(body["seq"]) if body.get("seq") is not None else None,
                source=reader,
            )
        )
    if markers_at is not None:
        stream = out.setdefault(markers_at, [])
        stream.extend(
            DecodedRead(chip="", time_ms=t, seq=None, source=markers_at, kind="gun")
            for t in guns.values()
        )
    for reader, reads in out.items():
        reads.sort(key=lambda r: (r.time_ms, r.kind != "gun"))
        # The decoder numbers its own passings, markers included.
        out[reader] = [dataclasses.replace(r, seq=i) for i, r in enumerate(reads, start=1)]
    return out

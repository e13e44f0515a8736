"""What every decoder simulator shares: its reads, settings, connections and timeline.

:class:`SimulatorBase` listens or connects out, runs one session per connection (the
protocol's own :meth:`~SimulatorBase._session`), paces reads on the race clock, counts what it
wrote and drops a connection where told. Passings "happen" on a timeline (RACE RESULT, CTP01).
The protocols are in this package's other modules; :mod:`..simulate` puts them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Self
from zoneinfo import ZoneInfo

from .. import PROTOCOLS
from ..base import DecodedRead


def local_time(read: DecodedRead, tz: ZoneInfo) -> dt.datetime:
    base = dt.datetime.fromtimestamp(read.time_ms // 1000, tz)
    return base.replace(microsecond=(read.time_ms % 1000) * 1000)


class Dropped(Exception):
    """Raised inside a session when the configured drop point is reached."""


class SimulatorBase(ABC):
    """The state and lifecycle of a simulated decoder (see ``DecoderSimulator``)."""

    def __init__(
        self,
        protocol_name: str,
        reads: Sequence[DecodedRead],
        *,
        tz: ZoneInfo,
        interval_s: float = 0.002,
        drop_after: int | None = None,
        drops: int = 1,
        name: str = "SIM-1",
        location: str = "finish",
        batch: int = 5,
        clock_unset: bool = False,
        speed: float | None = None,
        epoch: tuple[int, float] | None = None,
        new_file_at: int | None = None,
        lose: Sequence[int] = (),
        swap: Sequence[int] = (),
    ) -> None:
        if protocol_name not in PROTOCOLS or protocol_name == "generic":
            raise ValueError(f"no simulator for protocol {protocol_name!r}")
        self.protocol = protocol_name
        self.reads = list(reads)
        self.tz = tz
        self.interval_s = interval_s
        self.drop_after = drop_after
        self.drops = drops
        self.name = name
        self.location = location
        self.batch = max(1, batch)
        self.clock_unset = clock_unset
        #: With ``speed``, read ``i`` is produced when the race clock reaches its time, the race
        #: running ``speed`` times faster than real time from ``epoch`` = (race ms, loop time);
        #: without an ``epoch`` the first read defines it. Share one epoch between simulators
        #: of one race so that they stay in step.
        self.speed = speed
        self.epoch = epoch
        #: RACE RESULT: from read ``new_file_at`` on, the decoder writes a new passing file
        #: (file 2), numbered from 1 again; fetches and counts refer to the current file.
        self.new_file_at = new_file_at
        #: CTP01: lines (by sequence number) lost on the wire the first time they are pushed;
        #: the controller keeps them, so a ``start`` from their number plays them.
        self.lose = set(lose)
        #: CTP01: lines pushed one line late (after the line numbered one above them), as
        #: lines of one location may arrive out of order.
        self.swap = set(swap)

        self.connections = 0
        self.drops_done = 0
        self.fetch_requests: list[str] = []
        #: CTP01: every ``start`` command received, as sent.
        self.start_requests: list[str] = []
        self.sent: list[DecodedRead] = []
        self.finished = asyncio.Event()

        # Streaming protocols: index of the next read to write.
        self._cursor = 0
        # RACE RESULT: number of passings that have happened so far, and those written.
        self._produced = 0
        self._rr_written: set[int] = set()
        self._produced_changed = asyncio.Condition()
        self._timeline: asyncio.Task[None] | None = None
        # MYLAPS: the message in flight (number, first index, end index, text).
        self._msg_no = 0
        self._pending: tuple[int, int, int, str] | None = None
        # CTP01: time format asked for by the client's settings.
        self._ctp_time_format = "iso"

        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    # -- lifecycle -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen for connectors; return the bound port."""
        self._server = await asyncio.start_server(self._accepted, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def connect(self, host: str, port: int, *, retry_s: float = 0.05) -> None:
        """Connect out (reconnecting after drops) until every read was delivered.

        Returns when ``finished`` is set and the last connection ended, or when
        :meth:`close` is called.
        """
        while not self._closing:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(retry_s)
                continue
            await self._run_session(reader, writer)
            if self.finished.is_set():
                return
            await asyncio.sleep(retry_s)

    async def close(self) -> None:
        """Stop listening, end every session and the timeline; idempotent."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = list(self._tasks)
        if self._timeline is not None:
            tasks.append(self._timeline)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _pace(self, index: int) -> None:
        """Wait until read ``index`` is due (only with ``speed``)."""
        if self.speed is None or index >= len(self.reads):
            return
        loop = asyncio.get_running_loop()
        if self.epoch is None:
            self.epoch = (self.reads[index].time_ms, loop.time())
        race0, wall0 = self.epoch
        due = wall0 + (self.reads[index].time_ms - race0) / 1000 / self.speed
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)

    # -- sessions --------------------------------------------------------------

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._run_session(reader, writer)
        except asyncio.CancelledError:
            # Closing: end quietly (the stream machinery inspects this task).
            pass
        finally:
            self._tasks.discard(task)

    @abstractmethod
    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: list[int]
    ) -> None:
        """Speak the protocol on one connection (each protocol's player has its own)."""

    async def _run_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        self._writers.add(writer)
        counter = [0]
        try:
            await self._session(reader, writer, counter)
        except (Dropped, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _count_line(self, counter: list[int], read: DecodedRead, *, check: bool = True) -> None:
        """Record a written read; raise :class:`Dropped` at the drop point."""
        self.sent.append(read)
        counter[0] += 1
        if check:
            self._check_drop(counter)

    def _check_drop(self, counter: list[int]) -> None:
        if (
            self.drop_after is not None
            and self.drops_done < self.drops
            and counter[0] >= self.drop_after
        ):
            self.drops_done += 1
            raise Dropped

    @staticmethod
    async def _lines(reader: asyncio.StreamReader) -> str | None:
        raw = await reader.readline()
        if not raw:
            return None
        return raw.decode("latin-1").strip()

    async def _run_timeline(self) -> None:
        for index in range(len(self.reads)):
            if self.speed is None:
                await asyncio.sleep(self.interval_s)
            else:
                await self._pace(index)
            async with self._produced_changed:
                self._produced += 1
                self._produced_changed.notify_all()

    def _beyond(self, cursor: int) -> bool:
        return self._produced > cursor

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
import contextlib
import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from . import PROTOCOLS
from .base import FIRST_SEEN, LAST_SEEN, DecodedRead
from .ctp01 import format_tag_line
from .ipico import format_read as format_ipico_read
from .mylaps import format_marker_record, format_passing_record
from .raceresult import file_seq, format_passing

__all__ = ["DecoderSimulator", "make_demo_reads", "serve_decoder", "split_plan"]

_RANGE_RE = re.compile(r"^(\d+):(\d+)$")


def _local(read: DecodedRead, tz: ZoneInfo) -> dt.datetime:
    base = dt.datetime.fromtimestamp(read.time_ms // 1000, tz)
    return base.replace(microsecond=(read.time_ms % 1000) * 1000)


class _Dropped(Exception):
    """Raised inside a session when the configured drop point is reached."""


class DecoderSimulator:
    """Plays ``reads`` as the named protocol's decoder would.

    Attributes for tests: ``connections`` (count), ``fetch_requests`` (range /
    number requests received, RACE RESULT), ``drops_done``, ``sent`` (every read
    written to a socket, duplicates included) and ``finished`` (set once every
    read has been produced and written at least once, pushed or fetched -- for MYLAPS,
    also acknowledged).
    """

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

    async def __aenter__(self) -> DecoderSimulator:
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

    async def _run_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        self._writers.add(writer)
        counter = [0]
        handler = {
            "raceresult": self._raceresult,
            "ctp01": self._ctp01,
            "ipico": self._ipico,
            "mylaps": self._mylaps,
        }[self.protocol]
        try:
            await handler(reader, writer, counter)
        except (_Dropped, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _count_line(self, counter: list[int], read: DecodedRead, *, check: bool = True) -> None:
        """Record a written read; raise :class:`_Dropped` at the drop point."""
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
            raise _Dropped

    @staticmethod
    async def _lines(reader: asyncio.StreamReader) -> str | None:
        raw = await reader.readline()
        if not raw:
            return None
        return raw.decode("latin-1").strip()

    # -- RACE RESULT -----------------------------------------------------------

    def _rr_file(self, index: int) -> tuple[int, int]:
        """(file, passing number) of read ``index``."""
        if self.new_file_at is None or index < self.new_file_at:
            return 1, index + 1
        return 2, index - self.new_file_at + 1

    def _rr_current(self) -> tuple[int, int, int]:
        """The current file, the index of its first read and how many it holds so far."""
        if self.new_file_at is not None and self._produced > self.new_file_at:
            return 2, self.new_file_at, self._produced - self.new_file_at
        return 1, 0, self._produced

    def _rr_read(self, index: int) -> DecodedRead:
        read = self.reads[index]
        return DecodedRead(
            chip=read.chip,
            time_ms=read.time_ms,
            seq=file_seq(*self._rr_file(index)),
            source=self.name,
            loop=read.loop,
            kind=read.kind,
            flags=read.flags,
        )

    def _rr_record(self, index: int) -> str:
        read = self.reads[index]
        chip = read.chip if read.kind == "read" else "99999"
        file, number = self._rr_file(index)
        return format_passing(
            number,
            chip,
            _local(read, self.tz),
            box_name=self.name,
            loop=read.loop,
            file_number=file,
            clock_unset=self.clock_unset,
        )

    async def _run_timeline(self) -> None:
        for index in range(len(self.reads)):
            if self.speed is None:
                await asyncio.sleep(self.interval_s)
            else:
                await self._pace(index)
            async with self._produced_changed:
                self._produced += 1
                self._produced_changed.notify_all()

    def _rr_written_at(self, index: int) -> None:
        """Passing ``index`` went to a connector: once every passing has, ``finished``."""
        self._rr_written.add(index)
        if len(self._rr_written) == len(self.reads):
            self.finished.set()

    def _beyond(self, cursor: int) -> bool:
        return self._produced > cursor

    async def _rr_push(self, writer: asyncio.StreamWriter, counter: list[int], cursor: int) -> None:
        """Push the passings from ``cursor`` (the count when push was asked for) on."""
        while True:
            async with self._produced_changed:
                await self._produced_changed.wait_for(partial(self._beyond, cursor))
                upto = self._produced
            while cursor < upto:
                writer.write(f"#P;{self._rr_record(cursor)}\r\n".encode("latin-1"))
                self._rr_written_at(cursor)
                try:
                    self._count_line(counter, self._rr_read(cursor))
                except _Dropped:
                    writer.close()
                    return
                cursor += 1
            await writer.drain()

    async def _raceresult(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: list[int]
    ) -> None:
        pusher: asyncio.Task[None] | None = None
        try:
            while True:
                line = await self._lines(reader)
                if line is None:
                    return
                if not line:
                    continue
                parts = line.split(";")
                cmd = parts[0].upper()
                out: list[str] = []
                m = _RANGE_RE.match(line)
                if m is not None or line.isdigit():
                    self.fetch_requests.append(line)
                    first = int(m.group(1)) if m else int(line)
                    count = int(m.group(2)) if m else 1
                    _, offset, held = self._rr_current()
                    for seq in range(first, first + count):
                        if not 1 <= seq <= held:
                            break
                        index = offset + seq - 1
                        writer.write((self._rr_record(index) + "\r\n").encode("latin-1"))
                        self._rr_written_at(index)
                        self._count_line(counter, self._rr_read(index))
                    if m is not None:
                        out.append("")
                elif cmd == "SETPROTOCOL":
                    out.append(f"SETPROTOCOL;{parts[1] if len(parts) > 1 else '2.0'}")
                elif cmd == "SETPUSHPASSINGS":
                    out.append(line)
                    if len(parts) > 1 and parts[1] == "1" and pusher is None:
                        if self._timeline is None:
                            self._timeline = asyncio.ensure_future(self._run_timeline())
                        pusher = asyncio.ensure_future(
                            self._rr_push(writer, counter, self._produced)
                        )
                elif cmd == "PASSINGS":
                    file, _, held = self._rr_current()
                    out.append(f"PASSINGS;{held};{file}")
                elif cmd == "PING":
                    out.append("PING")
                elif cmd == "GETTIME":
                    now = dt.datetime.now(self.tz)
                    out.append(f"GETTIME;{now:%Y-%m-%d};{now:%H:%M:%S}.000")
                else:
                    out.append(f"{cmd};ERROR")
                for text in out:
                    writer.write((text + "\r\n").encode("latin-1"))
                await writer.drain()
        finally:
            if pusher is not None:
                pusher.cancel()
                await asyncio.gather(pusher, return_exceptions=True)

    # -- streaming helpers (CTP01, IPICO) ----------------------------------------

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        counter: list[int],
        fmt: str,
    ) -> None:
        while self._cursor < len(self.reads):
            index = self._cursor
            await self._pace(index)
            read = self.reads[index]
            line = self._ctp01_line(index, read) if fmt == "ctp01" else self._ipico_line(read)
            writer.write((line + "\r\n").encode("latin-1"))
            self._cursor += 1
            if self._cursor >= len(self.reads):
                self.finished.set()
            try:
                self._count_line(counter, self._stream_read(index, read))
            except _Dropped:
                writer.close()
                return
            await writer.drain()
            await asyncio.sleep(self.interval_s)

    def _stream_read(self, index: int, read: DecodedRead) -> DecodedRead:
        if self.protocol == "ctp01":
            return DecodedRead(
                chip=read.chip if read.kind == "read" else "",
                time_ms=read.time_ms,
                seq=read.seq if read.seq is not None else index + 1,
                source=self.name,
                loop=self.location,
                kind=read.kind,
            )
        return DecodedRead(
            chip=read.chip,
            time_ms=read.time_ms,
            seq=None,
            source=read.source,
            loop=read.loop or "00",
            flags=read.flags,
        )

    def _ctp01_line(self, index: int, read: DecodedRead) -> str:
        seq = read.seq if read.seq is not None else index + 1
        tag = read.chip if read.kind == "read" else "guntime"
        return format_tag_line(
            seq,
            self.location,
            tag,
            _local(read, self.tz),
            reader_id=self.name,
            time_format=self._ctp_time_format,
        )

    def _ipico_line(self, read: DecodedRead) -> str:
        suffix = ""
        if FIRST_SEEN in read.flags:
            suffix = "FS"
        elif LAST_SEEN in read.flags:
            suffix = "LS"
        return format_ipico_read(
            read.chip,
            _local(read, self.tz),
            reader=read.loop or "00",
            suffix=suffix,
            clock_unset=self.clock_unset,
        )

    async def _ctp01(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: list[int]
    ) -> None:
        writer.write(f"{self.name}~1.0~CTP01\r\n".encode("latin-1"))
        await writer.drain()
        line = await self._lines(reader)
        if line is None:
            return
        parts = line.split("~")
        settings = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
        ack = False
        for _ in range(settings):
            setting = await self._lines(reader)
            if setting is None:
                return
            key, _, value = setting.partition("=")
            if key == "time-format":
                self._ctp_time_format = "iso" if value == "iso" else "normal"
            elif key == "pushmode-ack":
                ack = value == "true"
        streamer: asyncio.Task[None] | None = None
        try:
            while True:
                cmd = await self._lines(reader)
                if cmd is None:
                    return
                fields = cmd.split("~")
                if fields[0] == "start":
                    if len(fields) > 1 and fields[1] not in ("", self.location):
                        writer.write(f"err~start~unknown location {fields[1]}\r\n".encode())
                        await writer.drain()
                        continue
                    if ack:
                        writer.write(f"ack~start~{self.location}\r\n".encode("latin-1"))
                    # a plain start plays the controller's whole memory from its first line;
                    # start~<location>~<n> plays it from line n (inclusive)
                    first = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 1
                    self.start_requests.append(cmd)
                    if self._timeline is None:
                        self._timeline = asyncio.ensure_future(self._run_timeline())
                    if streamer is None:
                        streamer = asyncio.ensure_future(
                            self._ctp_push(writer, counter, self._ctp_index(first))
                        )
                elif fields[0] == "stop":
                    if streamer is not None:
                        streamer.cancel()
                        streamer = None
                    writer.write(b"ack~stop\r\n")
                elif fields[0] == "ping":
                    writer.write(b"ack~ping\r\n")
                elif fields[0] == "getlocations":
                    writer.write(f"ack~getlocations~{self.location}\r\n".encode("latin-1"))
                elif fields[0] == "ack" or not cmd:
                    continue
                else:
                    writer.write(f"err~{fields[0]}~unknown command\r\n".encode("latin-1"))
                await writer.drain()
        finally:
            if streamer is not None:
                streamer.cancel()
                await asyncio.gather(streamer, return_exceptions=True)

    def _ctp_seq(self, index: int) -> int:
        read = self.reads[index]
        return read.seq if read.seq is not None else index + 1

    def _ctp_index(self, first_seq: int) -> int:
        """Index of the first read numbered ``first_seq`` or more."""
        for index in range(len(self.reads)):
            if self._ctp_seq(index) >= first_seq:
                return index
        return len(self.reads)

    async def _ctp_push(
        self, writer: asyncio.StreamWriter, counter: list[int], cursor: int
    ) -> None:
        """Write the controller's lines from ``cursor`` on: those it holds at once, the others
        as they happen on the timeline (which runs whether or not anyone is connected)."""
        while cursor < len(self.reads):
            async with self._produced_changed:
                await self._produced_changed.wait_for(partial(self._beyond, cursor))
                upto = self._produced
            while cursor < upto:
                read = self.reads[cursor]
                writer.write((self._ctp01_line(cursor, read) + "\r\n").encode("latin-1"))
                if cursor + 1 >= len(self.reads):
                    self.finished.set()
                try:
                    self._count_line(counter, self._stream_read(cursor, read))
                except _Dropped:
                    writer.close()
                    return
                cursor += 1
            await writer.drain()

    async def _ipico(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: list[int]
    ) -> None:
        streamer = asyncio.ensure_future(self._stream(writer, counter, "ipico"))
        try:
            while await reader.read(4096):
                pass  # the reader ignores anything sent to it
        finally:
            streamer.cancel()
            await asyncio.gather(streamer, return_exceptions=True)

    # -- MYLAPS --------------------------------------------------------------------

    def _mylaps_next(self) -> tuple[int, int, int, str] | None:
        start = self._cursor
        if start >= len(self.reads):
            return None
        loc = self.location
        self._msg_no += 1
        if self.reads[start].kind == "gun":
            record = format_marker_record(_local(self.reads[start], self.tz))
            return self._msg_no, start, start + 1, f"{loc}@Marker@{record}@{self._msg_no}@$"
        end = start
        records: list[str] = []
        while end < len(self.reads) and end - start < self.batch:
            read = self.reads[end]
            if read.kind != "read":
                break
            records.append(
                format_passing_record(read.chip, _local(read, self.tz), antenna=read.loop)
            )
            end += 1
        body = "@".join(records)
        return self._msg_no, start, end, f"{loc}@Passing@{body}@{self._msg_no}@$"

    async def _mylaps(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: list[int]
    ) -> None:
        writer.write(f"{self.location}@Pong@$".encode("latin-1"))
        await writer.drain()
        greeted = False
        while True:
            if greeted:
                if self._pending is None:
                    await self._pace(self._cursor)
                    self._pending = self._mylaps_next()
                    if self._pending is None:
                        self.finished.set()
                if self._pending is not None:
                    _number, start, end, text = self._pending
                    writer.write(text.encode("latin-1"))
                    for index in range(start, end):
                        read = self.reads[index]
                        self._count_line(
                            counter,
                            DecodedRead(
                                chip=read.chip if read.kind == "read" else "",
                                time_ms=read.time_ms,
                                seq=None,
                                source=self.location,
                                loop=read.loop if read.kind == "read" else None,
                                kind=read.kind,
                            ),
                            check=False,
                        )
                    self._check_drop(counter)
                    await writer.drain()
            # Wait for the answer to the greeting / the acknowledgement.
            while True:
                raw = await reader.readuntil(b"$")
                parts = raw.decode("latin-1").strip("\r\n\x00 $").split("@")
                function = parts[1] if len(parts) > 1 else ""
                if function in ("AckPong", "AckPing") and not greeted:
                    greeted = True
                    break
                if function == "Ping":
                    writer.write(f"{self.location}@AckPing@$".encode("latin-1"))
                    await writer.drain()
                    continue
                if (
                    function in ("AckPassing", "AckMarker")
                    and self._pending is not None
                    and len(parts) > 2
                    and parts[2] == str(self._pending[0])
                ):
                    self._cursor = self._pending[2]
                    self._pending = None
                    if self._cursor >= len(self.reads):
                        self.finished.set()
                    await asyncio.sleep(self.interval_s)
                    break
                if self._pending is None and greeted and self.finished.is_set():
                    continue


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
    ``name``, ``location``, ``batch``, ``clock_unset``).
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

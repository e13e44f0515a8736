"""The streaming decoder simulators: CTP01 (greeting, settings, ``start`` from a line) and
IPICO (read lines as soon as a connection is up)."""

from __future__ import annotations

import asyncio
from functools import partial

from ..base import FIRST_SEEN, LAST_SEEN, DecodedRead
from ..ctp01 import format_tag_line
from ..ipico import format_read as format_ipico_read
from .core import Dropped, SimulatorBase, local_time


class StreamPlayer(SimulatorBase):
    """Speaks CTP01's and IPICO's protocols (see ``DecoderSimulator``)."""

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
            except Dropped:
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
            local_time(read, self.tz),
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
            local_time(read, self.tz),
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
            # a line to be sent late waits for the line after it
            late = self._ctp_seq(cursor) in self.swap and cursor + 1 < len(self.reads)
            async with self._produced_changed:
                await self._produced_changed.wait_for(partial(self._beyond, cursor + late))
                upto = self._produced
            while cursor < upto:
                seq = self._ctp_seq(cursor)
                if seq in self.swap and cursor + 1 < upto:
                    self.swap.discard(seq)
                    order = [cursor + 1, cursor]
                else:
                    order = [cursor]
                for index in order:
                    if self._ctp_seq(index) in self.lose:
                        self.lose.discard(self._ctp_seq(index))  # lost once, kept in memory
                        continue
                    read = self.reads[index]
                    writer.write((self._ctp01_line(index, read) + "\r\n").encode("latin-1"))
                    if index == order[-1] and index + 1 >= len(self.reads):
                        self.finished.set()
                    try:
                        self._count_line(counter, self._stream_read(index, read))
                    except Dropped:
                        writer.close()
                        return
                cursor += len(order)
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

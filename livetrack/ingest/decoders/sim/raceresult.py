"""The RACE RESULT decoder simulator: passings on a timeline, pushed and fetched by number."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from functools import partial

from ..base import DecodedRead
from ..raceresult import file_seq, format_passing
from .core import Dropped, SimulatorBase, local_time

_RANGE_RE = re.compile(r"^(\d+):(\d+)$")


class RaceResultPlayer(SimulatorBase):
    """Speaks RACE RESULT's protocol (see ``DecoderSimulator``)."""

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
            local_time(read, self.tz),
            box_name=self.name,
            loop=read.loop,
            file_number=file,
            clock_unset=self.clock_unset,
        )

    def _rr_written_at(self, index: int) -> None:
        """Passing ``index`` went to a connector: once every passing has, ``finished``."""
        self._rr_written.add(index)
        if len(self._rr_written) == len(self.reads):
            self.finished.set()

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
                except Dropped:
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

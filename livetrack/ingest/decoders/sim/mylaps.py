"""The MYLAPS decoder simulator: ``Passing`` messages of ``batch`` records, each acknowledged."""

from __future__ import annotations

import asyncio

from ..base import DecodedRead
from ..mylaps import format_marker_record, format_passing_record
from .core import SimulatorBase, local_time


class MylapsPlayer(SimulatorBase):
    """Speaks the MYLAPS protocol (see ``DecoderSimulator``)."""

    # -- MYLAPS --------------------------------------------------------------------

    def _mylaps_next(self) -> tuple[int, int, int, str] | None:
        start = self._cursor
        if start >= len(self.reads):
            return None
        loc = self.location
        self._msg_no += 1
        if self.reads[start].kind == "gun":
            record = format_marker_record(local_time(self.reads[start], self.tz))
            return self._msg_no, start, start + 1, f"{loc}@Marker@{record}@{self._msg_no}@$"
        end = start
        records: list[str] = []
        while end < len(self.reads) and end - start < self.batch:
            read = self.reads[end]
            if read.kind != "read":
                break
            records.append(
                format_passing_record(read.chip, local_time(read, self.tz), antenna=read.loop)
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

"""Importing a decoder's saved reads (a USB-stick dump) into the event log.

The file is decoded with the same parsers as the live connectors
(:func:`~livetrack.ingest.decoders.files.read_file_numbered`) and turned into records by the
same :class:`~livetrack.ingest.readers.ReaderChannel`, so a read imported from a dump has the
same key as the same read received live from that reader: importing a dump of a decoder that
was also connected, or importing one file twice, stores nothing new.

A read whose decoder clock was unset cannot be re-based on a receipt time here (there is none),
so it is rejected with the reason; so is a gun marker that does not name one race.
Imported reads carry ``received_ms = 0`` (not received live).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

from livetrack.domain.event import Event, Reader
from livetrack.domain.records import Record
from livetrack.ingest.decoders.files import read_file_numbered
from livetrack.ingest.readers import ReaderChannel
from livetrack.store.base import EventLog

__all__ = ["ImportReport", "import_reads", "plan_import"]

#: Records per append.
CHUNK = 1000


@dataclass
class ImportReport:
    """What became of a file: counts, and each rejected line as (line number, reason, text)."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    problems: list[tuple[int, str, str]] = field(default_factory=list)


def plan_import(
    path_or_text: str | os.PathLike[str] | bytes,
    event: Event,
    *,
    protocol: str,
    reader: str,
    point: str,
    date: dt.date | None = None,
) -> tuple[list[Record], ImportReport]:
    """Decode a file into the records to append, and a report of the rejected lines.

    ``reader`` is the reader id the reads are stored under (its configured clock offset and
    role apply when it is one of the event's readers); ``point`` must be a timing point of the
    event; ``date`` (default: the event's day) is used by formats that carry only a time of day.
    Raises ``ValueError`` for an unknown point or protocol, ``OSError`` for an unreadable file.
    """
    if point not in event.points:
        raise ValueError(f"unknown timing point {point!r} (known: {', '.join(event.points)})")
    configured = event.readers.get(reader)
    offset = configured.clock_offset_ms if configured is not None else 0
    role = configured.role if configured is not None else None
    channel = ReaderChannel(
        event,
        Reader(reader, protocol, point, clock_offset_ms=offset, role=role),
        keep_seq=True,
    )
    reads, errors = read_file_numbered(
        path_or_text, protocol, source_id=reader, tz=event.tz, date=date or event.date
    )
    report = ImportReport()
    for line, err in errors:
        report.problems.append((line, err.reason, err.raw))
    records: list[Record] = []
    for line, read in reads:
        conv = channel.convert([read], None)
        records.extend(conv.records)
        report.problems.extend((line, text, read.raw) for text in conv.problems)
    report.problems.sort(key=lambda p: p[0])
    report.rejected = len(report.problems)
    return records, report


async def import_reads(
    event_log: EventLog,
    path_or_text: str | os.PathLike[str] | bytes,
    event: Event,
    *,
    protocol: str,
    reader: str,
    point: str,
    date: dt.date | None = None,
) -> ImportReport:
    """Decode a file (see :func:`plan_import`) and append its reads idempotently."""
    records, report = plan_import(
        path_or_text, event, protocol=protocol, reader=reader, point=point, date=date
    )
    for i in range(0, len(records), CHUNK):
        for res in await event_log.append(records[i : i + CHUNK]):
            if res.duplicate:
                report.duplicate += 1
            else:
                report.accepted += 1
    return report

"""Telling a resent read from a different read under the same key.

A numbered read's key is (reader, seq) (plus the decoder's ``session`` where it sends one), so
that a reader may resend freely. The same key with another chip, time or timing point is not a
resend: it is a decoder that numbered its reads again (and did not say so), or a client posting
under another reader's id. Such a read is a conflict: it is refused with a reason, never
answered ``duplicate`` (which would tell the reader all is well while the read is gone).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from livetrack.domain.records import ChipRead, Record, RecordError, decode
from livetrack.store.base import AppendResult, EventLog, StoredLookup


async def read_conflicts(
    log: EventLog, records: Sequence[Record], results: Sequence[AppendResult]
) -> dict[int, str]:
    """For each numbered read that the log called a duplicate but whose stored read differs
    in what was read: its index in ``records`` and the reason to refuse it."""
    doubtful = [
        i
        for i, (rec, res) in enumerate(zip(records, results, strict=True))
        if res.duplicate and type(rec) is ChipRead and rec.seq is not None
    ]
    if not doubtful or not isinstance(log, StoredLookup):
        return {}
    held = await log.stored([records[i].key for i in doubtful])
    out: dict[int, str] = {}
    for i in doubtful:
        new = records[i]
        assert isinstance(new, ChipRead)
        found = held.get(new.key)
        if found is None:
            continue
        try:
            old = decode(found[1])
        except RecordError:
            continue
        if not isinstance(old, ChipRead) or (old.chip, old.time_ms, old.point) != (
            new.chip,
            new.time_ms,
            new.point,
        ):
            out[i] = describe(new, old)
    return out


def describe(new: ChipRead, old: Record) -> str:
    what = (
        f"chip {old.chip} at {old.point} {_iso(old.time_ms)}"
        if isinstance(old, ChipRead)
        else f"a {old.TYPE} record"
    )
    return (
        f"conflict: seq {new.seq} of reader {new.reader!r} is stored already as {what}; this "
        f"read says chip {new.chip} at {new.point} {_iso(new.time_ms)}. A decoder that numbers "
        "its reads again from the start (new file, power cycle) sends a new 'session'"
    )


def _iso(ms: int) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"

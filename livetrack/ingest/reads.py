"""Validation of posted chip reads (``POST /api/v1/reads``), sans I/O.

A body that cannot be read at all raises :class:`BodyError` (the caller answers 4xx and stores
nothing). Inside a readable body each read is judged on its own: good reads become
:class:`ChipRead` records, bad ones are rejected with the field and the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from livetrack.domain.event import Event
from livetrack.domain.records import ChipRead
from livetrack.domain.window import READ_DISTANCE_MS

MAX_BODY_BYTES = 1_000_000
MAX_BATCH = 5000
#: Reads further than this from the event's day are refused as a wrong clock or a typo.
MAX_DISTANCE_MS = READ_DISTANCE_MS
_FIELDS = {"reader", "point", "chip", "time", "seq", "session"}


class BodyError(ValueError):
    """The whole body is unusable; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)  # not frozen: made for every posted read, and frozen init is slow
class Verdict:
    """One read's fate before it reaches the log: a record, or the reason it was rejected."""

    index: int
    record: ChipRead | None
    reason: str = ""


def parse_body(body: bytes, event: Event, now_ms: int) -> list[Verdict]:
    """Decode and validate a JSON body of reads (an array, or ``{"reads": [...]}``)."""
    if len(body) > MAX_BODY_BYTES:
        raise BodyError(f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}", 413)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        data = orjson.loads(text)
    except json.JSONDecodeError as exc:  # orjson's error is one of these
        raise BodyError(
            f"body is not JSON: {exc.msg} at line {exc.lineno} col {exc.colno}"
        ) from None
    if isinstance(data, dict):
        if set(data) != {"reads"}:
            raise BodyError('an object body must be {"reads": [...]} and nothing else')
        data = data["reads"]
    if not isinstance(data, list):
        raise BodyError('body must be a JSON array of reads or {"reads": [...]}')
    if not data:
        raise BodyError("no reads in the body")
    if len(data) > MAX_BATCH:
        raise BodyError(f"{len(data)} reads in one body; the limit is {MAX_BATCH}", 413)
    centre = int(datetime.combine(event.date, datetime.min.time(), event.tz).timestamp() * 1000)
    return [_read(i, item, event, now_ms, centre) for i, item in enumerate(data)]


def _read(i: int, item: Any, event: Event, now_ms: int, centre_ms: int) -> Verdict:
    if not isinstance(item, dict):
        return Verdict(i, None, f"read must be an object, not {_kind(item)}")
    if not item.keys() <= _FIELDS:
        unknown = sorted(set(item) - _FIELDS)[0]
        return Verdict(i, None, f"unknown field {unknown!r}")
    for name in ("reader", "point", "chip"):
        value = item.get(name)
        if not isinstance(value, str) or not value.strip():
            return Verdict(i, None, f"{name}: must be a non-empty string, not {_kind(value)}")
        if len(value) > 64:
            return Verdict(i, None, f"{name}: longer than 64 characters")
    point = item["point"]
    if point not in event.points:
        return Verdict(i, None, f"point: unknown timing point {point!r}")
    seq = item.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
        return Verdict(i, None, f"seq: must be a non-negative integer or null, not {_kind(seq)}")
    session = item.get("session", "")
    if not isinstance(session, str) or len(session) > 64 or any(ord(c) < 32 for c in session):
        return Verdict(i, None, "session: the decoder's numbering run, a string of at most 64 "
                                f"printable characters, not {_kind(session)}")  # fmt: skip
    try:
        time_ms = parse_time(item.get("time"))
    except ValueError as exc:
        return Verdict(i, None, f"time: {exc}")
    if abs(time_ms - centre_ms) > MAX_DISTANCE_MS and abs(time_ms - now_ms) > MAX_DISTANCE_MS:
        return Verdict(i, None, "time: too far from the event's day and from now (reader clock?)")
    record = ChipRead(
        reader=item["reader"].strip(),
        point=point,
        chip=item["chip"].strip(),
        time_ms=time_ms,
        seq=seq,
        received_ms=now_ms,
        session=session.strip(),
    )
    return Verdict(i, record)


def parse_time(value: Any) -> int:
    """ISO-8601 with an offset, or integer epoch milliseconds, as epoch ms."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"must be ISO-8601 with an offset or epoch ms, not {_kind(value)}")
    if isinstance(value, int):
        if value < 10**11:
            raise ValueError("epoch milliseconds expected (this looks like seconds)")
        return value
    if isinstance(value, float):
        raise ValueError("epoch milliseconds must be a whole number")
    if not isinstance(value, str):
        raise ValueError(f"must be ISO-8601 with an offset or epoch ms, not {_kind(value)}")
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO-8601 date-time") from None
    if dt.tzinfo is None:
        raise ValueError(f"{value[:40]!r} has no UTC offset (add Z or +01:00)")
    return int(dt.timestamp() * 1000)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)  # fmt: skip

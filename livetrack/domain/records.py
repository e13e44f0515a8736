"""Immutable log records: every input to a race is one of these.

Each record carries its own idempotency ``key``: appending the same key twice is a no-op, so
readers and phones may resend freely. Records serialise to compact JSON with a type tag and a
version, so that a log written today can be replayed by tomorrow's code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

import orjson

from livetrack.domain.meet_records import DrawRound, HeatResult, RoundAdjust

VERSION = 1

Status = Literal["ok", "DNS", "DNF", "DQ"]
CorrectionKind = Literal["void", "edit", "add", "undo"]


@dataclass(frozen=True, slots=True)
class ChipRead:
    """One chip seen by one reader at one timing point (times are UTC epoch ms)."""

    TYPE: ClassVar[str] = "read"
    reader: str
    point: str
    chip: str
    time_ms: int
    seq: int | None = None
    received_ms: int = 0
    #: The decoder's numbering run (its boot, or its file) when it numbers its reads again
    #: from the start: part of the key with ``seq``, so a new run keeps its reads. Empty for
    #: every read before it existed, whose keys and bytes are as they were.
    session: str = ""

    @property
    def key(self) -> str:
        if self.seq is not None:
            if self.session:
                return f"read:{self.reader}:{self.seq}@{self.session}"
            return f"read:{self.reader}:{self.seq}"
        return f"read:{self.reader}:{self.chip}:{self.time_ms}"


@dataclass(frozen=True, slots=True)
class Sighting:
    """A marshal saw ``bib`` at checkpoint ``point``; ``id`` is the UUID the phone made."""

    TYPE: ClassVar[str] = "sighting"
    id: str
    point: str
    bib: str
    time_ms: int
    received_ms: int = 0
    by: str = ""

    @property
    def key(self) -> str:
        return f"sighting:{self.id}"


@dataclass(frozen=True, slots=True)
class Sweep:
    """The last runner (the sweep) has passed checkpoint ``point``, as a marshal saw it."""

    TYPE: ClassVar[str] = "sweep"
    id: str
    point: str
    time_ms: int
    by: str = ""

    @property
    def key(self) -> str:
        return f"sweep:{self.id}"


@dataclass(frozen=True, slots=True)
class GunStart:
    """The gun for ``race`` (one ``wave`` of it, or every wave when ``wave`` is empty)."""

    TYPE: ClassVar[str] = "gun"
    race: str
    time_ms: int
    wave: str = ""
    id: str = ""
    by: str = ""

    @property
    def key(self) -> str:
        return f"gun:{self.race}:{self.wave}:{self.id or self.time_ms}"


@dataclass(frozen=True, slots=True)
class Correction:
    """A timer's (or marshal's) correction; never a deletion.

    ``void`` removes the passing of ``bib`` at ``point``; ``edit`` and ``add`` set it to
    ``time_ms``; ``undo`` cancels the earlier record whose key is ``target``.
    """

    TYPE: ClassVar[str] = "correction"
    id: str
    kind: CorrectionKind
    bib: str = ""
    point: str = ""
    time_ms: int | None = None
    target: str = ""
    reason: str = ""
    by: str = ""
    at_ms: int = 0

    @property
    def key(self) -> str:
        return f"correction:{self.id}"


@dataclass(frozen=True, slots=True)
class StatusChange:
    """Sets a participant's status (DNS, DNF, DQ, or back to ok)."""

    TYPE: ClassVar[str] = "status"
    id: str
    bib: str
    status: Status
    reason: str = ""
    by: str = ""
    at_ms: int = 0

    @property
    def key(self) -> str:
        return f"status:{self.id}"


@dataclass(frozen=True, slots=True)
class ParticipantRecord:
    """A participant as entered (a whole row: a later record for the same bib replaces it)."""

    TYPE: ClassVar[str] = "participant"
    bib: str
    race: str
    first_name: str = ""
    last_name: str = ""
    chips: tuple[str, ...] = ()
    gender: str = ""
    birth_year: int | None = None
    age: int | None = None
    club: str = ""
    team: str = ""
    wave: str = ""
    charity: str = ""
    pledged: float = 0.0
    hide_name: bool = False
    category: str = ""
    nationality: str = ""
    #: A relay team's leg runners' names in leg order; ``chips[i]`` is leg ``i + 1``'s chip.
    legs: tuple[str, ...] = ()
    #: The entry's declared or qualifying performance (ms), which seeds a race run in rounds.
    entry_ms: int | None = None

    @property
    def key(self) -> str:
        return f"participant:{self.bib}:{hashlib.sha256(encode(self)).hexdigest()[:16]}"


@dataclass(frozen=True, slots=True)
class ChipAssign:
    """Assigns ``chip`` to ``bib`` (e.g. an unmatched chip claimed by the timer)."""

    TYPE: ClassVar[str] = "assign"
    id: str
    chip: str
    bib: str
    by: str = ""

    @property
    def key(self) -> str:
        return f"assign:{self.id}"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A bearer token was issued (only its hash is kept) or revoked."""

    TYPE: ClassVar[str] = "token"
    token_hash: str
    role: str
    point: str = ""
    label: str = ""
    revoked: bool = False
    at_ms: int = 0
    #: A reader token's binding: the reader ids it may post for (any when empty); its
    #: ``point``, when set, is the only timing point it may post for.
    readers: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        state = "revoked" if self.revoked else "issued"
        return f"token:{self.token_hash[:24]}:{state}"


@dataclass(frozen=True, slots=True)
class AlertSent:
    """An alert (``kind`` about runner ``bib``) was claimed for push ``supporter`` at
    ``at_ms``: appended before it is sent, so that its key makes it go out once, whichever
    process decided it (see :mod:`livetrack.domain.alerts`). It carries the message (its
    moment ``due_ms``, ``title``, ``body``, ``url``) and ``expires_ms``, after which it is not
    worth sending, so that a process can send it again after the claimer stopped before the
    push service answered (an :class:`AlertOutcome` says it did). Claims from before these
    fields existed have them empty and are never sent again."""

    TYPE: ClassVar[str] = "alert"
    supporter: str
    bib: str
    kind: str
    at_ms: int
    due_ms: int = 0
    expires_ms: int = 0
    title: str = ""
    body: str = ""
    url: str = ""

    @property
    def key(self) -> str:
        return f"alert:{self.supporter}:{self.bib}:{self.kind}"


#: What became of a claimed alert (:class:`AlertOutcome`).
ALERT_OUTCOMES: tuple[str, ...] = ("delivered", "gone", "given-up", "refused", "expired", "dropped")


@dataclass(frozen=True, slots=True)
class AlertOutcome:
    """What became of the alert claimed by the :class:`AlertSent` with the same supporter,
    runner and kind, appended once the push service answered (or the alert was let go):
    ``outcome`` is one of :data:`ALERT_OUTCOMES`. A claim with no outcome is sent again by the
    process holding the alerts' lease, or marked ``expired`` once its moment has passed."""

    TYPE: ClassVar[str] = "alert-outcome"
    supporter: str
    bib: str
    kind: str
    outcome: str
    at_ms: int

    @property
    def key(self) -> str:
        return f"alert-outcome:{self.supporter}:{self.bib}:{self.kind}"

    @property
    def claim(self) -> str:
        """The key of the claim this is the outcome of."""
        return f"alert:{self.supporter}:{self.bib}:{self.kind}"


@dataclass(frozen=True, slots=True)
class Judgement:
    """A marshal judged runner ``bib`` at the obstacle at checkpoint ``point``: ``outcome`` is
    ``cleared``, ``failed`` or ``missed`` (see :mod:`livetrack.domain.obstacles`); ``id`` is
    the UUID the marshal's page made. For one runner and obstacle the latest counts."""

    TYPE: ClassVar[str] = "judgement"
    id: str
    point: str
    bib: str
    outcome: str
    time_ms: int
    received_ms: int = 0
    by: str = ""

    @property
    def key(self) -> str:
        return f"judgement:{self.id}"


Record = (
    ChipRead
    | Sighting
    | Sweep
    | GunStart
    | Correction
    | StatusChange
    | ParticipantRecord
    | ChipAssign
    | TokenRecord
    | AlertSent
    | AlertOutcome
    | DrawRound
    | HeatResult
    | RoundAdjust
    | Judgement
)

_TYPES: dict[str, type[Any]] = {
    cls.TYPE: cls
    for cls in (
        ChipRead,
        Sighting,
        Sweep,
        GunStart,
        Correction,
        StatusChange,
        ParticipantRecord,
        ChipAssign,
        TokenRecord,
        AlertSent,
        AlertOutcome,
        DrawRound,
        HeatResult,
        RoundAdjust,
        Judgement,
    )
}


class RecordError(ValueError):
    """A serialised record could not be decoded."""


@dataclass(frozen=True, slots=True)
class Encoded:
    key: str
    type: str
    body: bytes = field(repr=False)


def encode(record: Record) -> bytes:
    """Serialise ``record`` as compact JSON: ``{"t": type, "v": version, ...fields}`` (fields
    left out when empty: None, "", (), False)."""
    if type(record) is ChipRead:  # the bulk of every log: the same output, sooner
        read: dict[str, Any] = {"t": "read", "v": VERSION}
        for name in ("reader", "point", "chip"):
            value = getattr(record, name)
            if value:
                read[name] = value
        read["time_ms"] = record.time_ms
        if record.seq is not None:
            read["seq"] = record.seq
        read["received_ms"] = record.received_ms
        if record.session:
            read["session"] = record.session
        return orjson.dumps(read)
    data: dict[str, Any] = {"t": record.TYPE, "v": VERSION}
    for name in _NAMES[record.TYPE]:
        value = getattr(record, name)
        if value is None or value == "" or value == () or value is False:
            continue
        data[name] = list(value) if isinstance(value, tuple) else value
    if record.TYPE == "participant":  # its key hashes these bytes: keep them as they were
        return _DUMPS(data).encode()
    return orjson.dumps(data)


_NAMES: dict[str, tuple[str, ...]] = {
    name: tuple(f.name for f in fields(cls)) for name, cls in _TYPES.items()
}
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def decode(body: bytes | str) -> Record:
    """Inverse of :func:`encode`; raises :class:`RecordError` on anything it cannot read."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:  # or JSON only the standard library reads (NaN)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordError(f"record is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RecordError("record is not a JSON object")
    type_name = data.pop("t", None)
    version = data.pop("v", None)
    cls = _TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise RecordError(f"unknown record type {type_name!r}")
    if not isinstance(version, int) or version > VERSION:
        raise RecordError(f"unsupported record version {version!r} for {type_name!r}")
    try:
        for name in ("chips", "legs", "readers"):
            if name in data:
                data[name] = tuple(data[name])
        record: Record = cls(**data)
    except TypeError as exc:
        raise RecordError(f"bad {type_name!r} record: {exc}") from exc
    return record

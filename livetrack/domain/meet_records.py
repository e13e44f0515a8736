"""The log records of a race run in rounds (see :mod:`livetrack.domain.rounds`).

* :class:`DrawRound`: the timer draws a round (the first round's heats; or a round again),
  with a seed made when it was asked for. Every later round is drawn by the fold itself when
  the round before it is complete, from a seed derived from this one.
* :class:`HeatResult`: one heat's result, from a photo-finish file or typed by hand. Its key
  is a hash of its content, so the same file imported twice is one record; a re-exported file
  with other content is a new record that replaces the earlier one in the fold. A result
  that puts back content the log held before (a file uploaded again after a wrong one)
  names the result it replaces (``after``), so it is a new record and counts again.
* :class:`RoundAdjust`: the timer adjusts a draw (a late scratch, an athlete added to a lane,
  the winner of lots drawn by hand for a tie), or undoes such an adjustment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

AdjustKind = Literal["scratch", "add", "lot", "undo"]
ADJUST_KINDS: tuple[str, ...] = ("scratch", "add", "lot", "undo")

#: A row of a heat's result: (bib, lane, place, status, time_ms, reaction_ms); lane, place,
#: time and reaction may be None; status is ``ok``, ``DNS``, ``DNF`` or ``DQ``.
Row = tuple[str, int | None, int | None, str, int | None, int | None]


@dataclass(frozen=True, slots=True)
class DrawRound:
    """Draw round ``round`` of ``race`` with ``seed``."""

    TYPE: ClassVar[str] = "draw"
    id: str
    race: str
    round: str
    seed: str
    by: str = ""
    at_ms: int = 0

    @property
    def key(self) -> str:
        return f"draw:{self.race}:{self.round}:{self.id}"


@dataclass(frozen=True, slots=True)
class HeatResult:
    """Heat ``heat`` of round ``round`` of ``race``: every athlete's result (``rows``)."""

    TYPE: ClassVar[str] = "heat"
    race: str
    round: str
    heat: int
    rows: tuple[Row, ...]
    #: Where it came from: ``lif:<file name>`` or ``hand``.
    source: str = ""
    wind: str = ""
    by: str = ""
    at_ms: int = 0
    #: The lines of the file that were left out, each ``file:line: why`` (shown as problems).
    notes: tuple[str, ...] = ()
    #: The key of the result this one replaces, when its content was in the log before.
    after: str = ""

    def __post_init__(self) -> None:  # rows arrive as lists from JSON
        rows: Any = tuple(tuple(r) for r in self.rows)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def content(self) -> str:
        """A hash of what the result says (rows and wind), whatever replaced what."""
        body = json.dumps([self.rows, self.wind], separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    @property
    def key(self) -> str:
        digest = self.content
        if self.after:
            digest = hashlib.sha256(f"{digest}:{self.after}".encode()).hexdigest()[:16]
        return f"heat:{self.race}:{self.round}:{self.heat}:{digest}"


@dataclass(frozen=True, slots=True)
class RoundAdjust:
    """A timer's change to round ``round``'s draw: ``scratch`` takes ``bib`` out (the lane
    stays empty), ``add`` seats ``bib`` in ``heat`` and ``lane``, ``lot`` names ``bib`` the
    winner of lots drawn for a tie in ``round``'s qualifying, ``undo`` cancels ``target``."""

    TYPE: ClassVar[str] = "adjust"
    id: str
    race: str
    round: str
    kind: AdjustKind
    bib: str = ""
    heat: int = 0
    lane: int = 0
    target: str = ""
    reason: str = ""
    by: str = ""
    at_ms: int = 0

    @property
    def key(self) -> str:
        return f"adjust:{self.id}"


MEET_RECORDS: tuple[type[Any], ...] = (DrawRound, HeatResult, RoundAdjust)

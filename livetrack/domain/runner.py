"""What the fold holds per runner, the problems it lists, and the topic names it reports.

:class:`Runner` is one participant's live state; :class:`Problem` a record the fold could not
use as it stands; the ``*_topic`` helpers name the live topics a change touches (see
:mod:`livetrack.domain.topics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import NamedTuple

from livetrack.domain import topics as tk
from livetrack.domain.event import Race
from livetrack.domain.obstacles import NONE as NO_PENALTY
from livetrack.domain.obstacles import Assessment
from livetrack.domain.participants import display_name
from livetrack.domain.passings import Inputs, Passing
from livetrack.domain.records import ParticipantRecord, Record


@cache
def race_board_topics(race: str, checkpoint: str, divisions: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(tk.BOARD(race, checkpoint, d) for d in divisions)


def runner_topic(bib: str) -> str:
    return tk.RUNNER(bib)


def feed_topic(race: str) -> str:
    return tk.FEED(race)


def race_topic(race: str) -> str:
    return tk.RACE(race)


def map_topic(race: str) -> str:
    return tk.MAP(race)


def shift_topic(race: str, checkpoint: str, elapsed_ms: int) -> str:
    """The :data:`~livetrack.domain.tk.SHIFT` signal; :func:`parse_shift` reads it back."""
    return tk.SHIFT(race, checkpoint, str(elapsed_ms))


def parse_shift(topic: str) -> tuple[str, str, int] | None:
    """``(race, checkpoint, elapsed_ms)`` of a :func:`shift_topic`, else None."""
    if not topic.startswith("shift:"):
        return None
    race, checkpoint, elapsed = tk.parse(topic).values
    return race, checkpoint, int(elapsed)


@cache
def marshal_topic(checkpoint: str) -> str:
    return tk.MARSHAL(checkpoint)


RACES_TOPIC = tk.RACES()
UNMATCHED_TOPIC = tk.UNMATCHED()
PROBLEMS_TOPIC = tk.PROBLEMS()


@dataclass(slots=True)
class Runner:
    """One participant's live state: inputs, derived passings, and what the boards hold."""

    p: ParticipantRecord
    race: Race
    divisions: tuple[str, ...]
    category: str
    inputs: Inputs = field(default_factory=Inputs)
    passings: dict[str, Passing] = field(default_factory=dict)
    ranked: dict[str, int] = field(default_factory=dict)  # checkpoint -> elapsed on the boards
    status: str = "ok"
    status_reason: str = ""
    contradiction: bool = False
    statuses: list[tuple[str, str, str]] = field(default_factory=list)  # (key, status, reason)
    corrections: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)
    history: list[Record] = field(default_factory=list)
    #: Obstacle judgements by checkpoint, in log order: (record key, outcome); the last counts.
    judgements: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: What they cost (:func:`livetrack.domain.obstacles.assess`): added to the finish time.
    penalty: Assessment = NO_PENALTY

    @property
    def bib(self) -> str:
        return self.p.bib

    def board_topics(self, checkpoint: str) -> tuple[str, ...]:
        """The board topics this runner appears on at ``checkpoint``."""
        return race_board_topics(self.race.id, checkpoint, self.divisions)

    @property
    def name(self) -> str:
        return display_name(self.p)


class RaceTopics(NamedTuple):
    """A race's fixed topic names and checkpoint ids, for the fold's inner loop."""

    map: str
    feed: str
    race: str
    start: str
    finish: str
    later: tuple[tuple[str, str], ...]  # (checkpoint, its marshal topic) after the start


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    bib: str
    point: str
    detail: str
    key: str
    #: The author of the record (for records that carry one).
    by: str = ""

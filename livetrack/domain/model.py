"""The event's configuration as values: courses, races, waves, categories, timing points,
readers and their read rules (:mod:`livetrack.domain.event` reads them from ``EVENT.toml``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from livetrack.domain.obstacles import Obstacle
    from livetrack.domain.rounds import Rounds
    from livetrack.domain.standards import Standards

RaceKind = Literal["timed", "team", "fun", "relay"]
Role = Literal["main", "backup"]
Pick = Literal["first", "last"]


class ConfigError(ValueError):
    """An event file is wrong; ``str(err)`` names the key and what is wrong."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: str
    name: str
    distance_m: float
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class Course:
    id: str
    checkpoints: tuple[Checkpoint, ...]
    polyline: tuple[tuple[float, float], ...] = ()

    def index(self, checkpoint_id: str) -> int:
        for i, cp in enumerate(self.checkpoints):
            if cp.id == checkpoint_id:
                return i
        raise KeyError(checkpoint_id)

    @property
    def finish(self) -> Checkpoint:
        return self.checkpoints[-1]

    @property
    def length_m(self) -> float:
        return self.checkpoints[-1].distance_m


@dataclass(frozen=True, slots=True)
class Wave:
    id: str
    name: str
    offset_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Categories:
    """Age categories by sex: under ``junior_under`` a junior (``MU20``), from each age in
    ``bands`` a veteran band (``FV40``), otherwise senior (``MSEN``). Empty ``bands`` and no
    junior age means no categories at all."""

    bands: tuple[int, ...] = (35, 40, 45, 50, 55, 60, 65, 70, 75, 80)
    junior_under: int | None = 20

    @property
    def enabled(self) -> bool:
        return bool(self.bands) or self.junior_under is not None


UK_MASTERS = Categories()
NO_CATEGORIES = Categories((), None)


@dataclass(frozen=True, slots=True)
class TeamScoring:
    method: Literal["sum", "average"] = "sum"
    counting: int = 3
    min_women: int = 0
    min_men: int = 0


@dataclass(frozen=True, slots=True)
class Championship:
    """Who may win the championship within an open race: every rule given must hold (an
    empty rule admits everyone). ``nationality``: ISO codes such as ``GBR``; ``clubs``: club
    names as entered; ``standard``: the entrant's qualifying performance must meet the race's
    qualifying standard (:func:`livetrack.domain.standards.eligible`). A race without a
    ``[race.championship]`` table has no championship."""

    nationality: tuple[str, ...] = ()
    clubs: tuple[str, ...] = ()
    standard: bool = False

    def admits(self, nationality: str, club: str) -> bool:
        if self.nationality and nationality.strip().upper() not in self.nationality:
            return False
        return not self.clubs or club.strip().lower() in {c.lower() for c in self.clubs}


@dataclass(frozen=True, slots=True)
class Race:
    id: str
    name: str
    course: Course
    kind: RaceKind = "timed"
    waves: tuple[Wave, ...] = (Wave("", "All"),)
    course_record_s: float | None = None
    rank_by: Literal["gun", "chip"] = "gun"
    categories: Categories = UK_MASTERS
    scheduled_ms: int | None = None
    max_speed_mps: float = 7.0
    ranked: bool = True
    team: TeamScoring = field(default_factory=TeamScoring)
    championship: Championship | None = None
    #: A relay's handover checkpoints in course order: leg ``i`` ends at ``handovers[i]``,
    #: the last leg at the finish (so a relay has ``len(handovers) + 1`` legs).
    handovers: tuple[str, ...] = ()
    #: Heats, semi-finals and a final (a track race timed by a photo-finish camera).
    rounds: Rounds | None = None
    #: Obstacles judged by marshals (:mod:`livetrack.domain.obstacles`), in course order.
    obstacles: tuple[Obstacle, ...] = ()
    #: Qualifying standards, this year's and next (:mod:`livetrack.domain.standards`).
    standards: Standards | None = None

    def wave(self, wave_id: str) -> Wave:
        for w in self.waves:
            if w.id == wave_id:
                return w
        return self.waves[0]


@dataclass(frozen=True, slots=True)
class ReadRules:
    """How reads at one timing point become passings.

    ``dedup_s``: reads of one chip closer together than this are one passing.
    ``pick``: ``first`` read of a passing counts (splits, finish) or the ``last`` (start mat).
    ``min_gap_s``: a passing sooner than this after the previous checkpoint is implausible;
    when ``None`` it is derived from distance / the race's ``max_speed_mps``.
    ``ignore_before_start``: reads before the runner's gun are not passings.
    """

    dedup_s: float = 10.0
    pick: Pick = "first"
    min_gap_s: float | None = None
    ignore_before_start: bool = True


@dataclass(frozen=True, slots=True)
class TimingPoint:
    """A mat: reads naming ``id`` feed ``checkpoints`` (several when a loop passes it again)."""

    id: str
    checkpoints: tuple[str, ...]
    role: Role = "main"
    rules: ReadRules = field(default_factory=ReadRules)


@dataclass(frozen=True, slots=True)
class Reader:
    id: str
    protocol: str = "http"
    point: str = ""
    host: str = ""
    port: int = 0
    listen: bool = False
    role: Role | None = None
    clock_offset_ms: int = 0
    #: The zone of the decoder's own times: "local" (the event's time zone) or "utc".
    times: str = "local"


#: Protocols whose hardware connects to the scoring software: their readers listen by default.
LISTEN_BY_DEFAULT = frozenset({"ctp01"})


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    name: str
    venue: str
    date: date
    timezone: str
    courses: Mapping[str, Course]
    races: Mapping[str, Race]
    points: Mapping[str, TimingPoint]
    readers: Mapping[str, Reader]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def point_for(self, reader: str, point: str) -> str:
        """The timing point a read from ``reader`` at ``point`` counts at (a reader configured
        as backup on a main mat feeds that mat's backup alias)."""
        r = self.readers.get(reader)
        if r is not None and r.role and r.point == point and self.points[point].role != r.role:
            return f"{point}.{r.role}"
        return point

    def checkpoint_ids(self) -> set[str]:
        return {cp.id for c in self.courses.values() for cp in c.checkpoints}

"""Obstacle courses: obstacles at checkpoints, the marshals' judgements there, and the
penalties they add.

A race lists its obstacles in the event file (``obstacles = [{ point = "wall", name = "The
Wall", failed = "0:30", missed = "DQ" }]``): each sits at a checkpoint of the race's course and
gives, per outcome (``cleared``, ``failed``, ``missed``), seconds added to the runner's time or
a disqualification. Marshals at that checkpoint judge each runner (a
:class:`~livetrack.domain.records.Judgement` record); for one runner and one obstacle the
latest judgement in the log counts (an undone one does not). :func:`assess` turns a runner's
judgements into the penalty the fold adds to its finish time. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from livetrack.domain.durations import parse_hms
from livetrack.domain.model import ConfigError, Course

Outcome = Literal["cleared", "failed", "missed"]
OUTCOMES: tuple[Outcome, ...] = ("cleared", "failed", "missed")


@dataclass(frozen=True, slots=True)
class Penalty:
    """What one outcome costs: ``seconds`` added to the time, or disqualification."""

    seconds: float = 0.0
    dq: bool = False

    def text(self) -> str:
        if self.dq:
            return "DQ"
        return f"+{fmt_seconds(self.seconds)}" if self.seconds else "no penalty"


@dataclass(frozen=True, slots=True)
class Obstacle:
    """An obstacle at checkpoint ``point`` and the penalty of each outcome there."""

    point: str
    name: str
    cleared: Penalty = Penalty()
    failed: Penalty = Penalty()
    missed: Penalty = Penalty(dq=True)

    def penalty(self, outcome: str) -> Penalty:
        if outcome == "cleared":
            return self.cleared
        if outcome == "failed":
            return self.failed
        if outcome == "missed":
            return self.missed
        raise ValueError(f"{outcome!r} is not one of {', '.join(OUTCOMES)}")


@dataclass(frozen=True, slots=True)
class Assessment:
    """A runner's penalties so far: ``ms`` added to the finish time, and ``dq`` the reason of
    a disqualification ("" when none); ``judged`` is (obstacle, outcome, penalty) per obstacle
    judged, in course order."""

    ms: int = 0
    dq: str = ""
    judged: tuple[tuple[Obstacle, str, Penalty], ...] = ()


NONE = Assessment()


def fmt_seconds(seconds: float) -> str:
    """``0:30``, ``2:05``, ``0:07.5`` (tenths only when there are some)."""
    whole, frac = divmod(round(seconds * 10), 10)
    m, s = divmod(int(whole), 60)
    return f"{m}:{s:02d}" + (f".{frac}" if frac else "")


def obstacle_at(obstacles: Sequence[Obstacle], point: str) -> Obstacle | None:
    return next((o for o in obstacles if o.point == point), None)


def latest(judgements: Mapping[str, Sequence[tuple[str, str]]]) -> dict[str, str]:
    """The outcome that counts per obstacle point: the last of its (key, outcome) entries."""
    return {point: items[-1][1] for point, items in judgements.items() if items}


def assess(
    obstacles: Sequence[Obstacle], judgements: Mapping[str, Sequence[tuple[str, str]]]
) -> Assessment:
    """The penalty of a runner's judgements (point -> [(record key, outcome)] in log order)."""
    if not judgements:
        return NONE
    counted = latest(judgements)
    total = 0.0
    dq = ""
    judged = []
    for o in obstacles:
        outcome = counted.get(o.point)
        if outcome is None:
            continue
        p = o.penalty(outcome)
        judged.append((o, outcome, p))
        if p.dq and not dq:
            dq = f"{outcome} {o.name}"
        total += p.seconds
    return Assessment(round(total * 1000), dq, tuple(judged))


# -- the event file ------------------------------------------------------------------------


def _penalty(value: Any, path: str) -> Penalty:
    if isinstance(value, str) and value.strip().upper() == "DQ":
        return Penalty(dq=True)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(path, "must be seconds (30 or '0:30') or 'DQ'")
    if isinstance(value, str):
        try:
            seconds = parse_hms(value)
        except ValueError as exc:
            raise ConfigError(path, f"{exc} (seconds such as '0:30', or 'DQ')") from None
    else:
        seconds = float(value)
    if not 0 <= seconds <= 24 * 3600:
        raise ConfigError(path, "must be from 0 seconds to a day")
    return Penalty(seconds)


def parse_obstacles(value: Any, path: str, course: Course) -> tuple[Obstacle, ...]:
    """A race's ``obstacles`` list: each ``{ point, name, cleared, failed, missed }`` at a
    checkpoint between the start and the finish of ``course``, each point once, in course
    order. ``cleared`` defaults to no penalty; ``failed`` and ``missed`` are required."""
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise ConfigError(path, "must be a non-empty list of tables ({ point = ..., ... })")
    inner = [cp.id for cp in course.checkpoints[1:-1]]
    out: list[Obstacle] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        unknown = sorted(set(item) - {"point", "name", *OUTCOMES})
        if unknown:
            raise ConfigError(
                f"{where}.{unknown[0]}",
                "unknown key (expected one of: cleared, failed, missed, name, point)",
            )
        point = item.get("point")
        if not isinstance(point, str) or point not in inner:
            raise ConfigError(
                f"{where}.point",
                f"{point!r} is not a checkpoint between the start and the finish of "
                f"course {course.id!r}",
            )
        if any(o.point == point for o in out):
            raise ConfigError(f"{where}.point", f"a second obstacle at {point!r}")
        if out and inner.index(point) < inner.index(out[-1].point):
            raise ConfigError(f"{where}.point", "obstacles must be listed in course order")
        name = item.get("name", point)
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}.name", "must be a non-empty string")
        for required in ("failed", "missed"):
            if required not in item:
                raise ConfigError(
                    f"{where}.{required}", "is required (seconds such as '0:30', or 'DQ')"
                )
        out.append(
            Obstacle(
                point,
                name.strip(),
                _penalty(item.get("cleared", 0), f"{where}.cleared"),
                _penalty(item["failed"], f"{where}.failed"),
                _penalty(item["missed"], f"{where}.missed"),
            )
        )
    return tuple(out)


def reached(course: Course, passings: Mapping[str, object], point: str) -> bool:
    """Whether a runner with ``passings`` has reached checkpoint ``point`` of ``course``: a
    passing there or at any later checkpoint (a missed mat read still counts as reached once
    the runner is seen further on)."""
    ids = [cp.id for cp in course.checkpoints]
    if point not in ids:
        return False
    return any(cp in passings for cp in ids[ids.index(point) :])


def describe(a: Assessment) -> str:
    """The obstacles that cost something: ``The Wall failed +0:30; Cargo Net missed DQ``."""
    return "; ".join(
        f"{o.name} {outcome} {p.text()}" for o, outcome, p in a.judged if p.dq or p.seconds
    )

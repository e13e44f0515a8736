"""Reading an event: :func:`load_event_text` and :func:`parse_event` build the values of
:mod:`livetrack.domain.model` (re-exported here) from ``EVENT.toml``.

Built from the dictionary that ``EVENT.toml`` parses to; every error names the key that is
wrong and says why (``race[1].course: unknown course 'mile2'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from livetrack.domain.durations import parse_hms
from livetrack.domain.event_fields import check_keys, identifier, num, req, string, table_list
from livetrack.domain.event_points import parse_point, parse_reader
from livetrack.domain.model import (
    LISTEN_BY_DEFAULT as LISTEN_BY_DEFAULT,
)
from livetrack.domain.model import (
    NO_CATEGORIES as NO_CATEGORIES,
)
from livetrack.domain.model import (
    UK_MASTERS as UK_MASTERS,
)
from livetrack.domain.model import (
    Categories as Categories,
)
from livetrack.domain.model import (
    Championship as Championship,
)
from livetrack.domain.model import (
    Checkpoint as Checkpoint,
)
from livetrack.domain.model import (
    ConfigError as ConfigError,
)
from livetrack.domain.model import (
    Course as Course,
)
from livetrack.domain.model import (
    Event as Event,
)
from livetrack.domain.model import (
    Pick as Pick,
)
from livetrack.domain.model import (
    Race as Race,
)
from livetrack.domain.model import (
    RaceKind as RaceKind,
)
from livetrack.domain.model import (
    Reader as Reader,
)
from livetrack.domain.model import (
    ReadRules as ReadRules,
)
from livetrack.domain.model import (
    Role as Role,
)
from livetrack.domain.model import (
    TeamScoring as TeamScoring,
)
from livetrack.domain.model import (
    TimingPoint as TimingPoint,
)
from livetrack.domain.model import (
    Wave as Wave,
)
from livetrack.domain.obstacles import Obstacle, parse_obstacles
from livetrack.domain.rounds import parse_rounds
from livetrack.domain.standards import Standards, parse_standards


def parse_duration(text: str | float | int, path: str) -> float:
    """``"6:58"``, ``"1:02:03.5"`` or a number of seconds, as seconds."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ConfigError(path, "must be a duration like '6:58' or seconds")
    if isinstance(text, int | float):
        return float(text)
    try:
        return parse_hms(text)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None


def _course(data: Mapping[str, Any], path: str) -> Course:
    check_keys(data, {"id", "checkpoints", "polyline"}, path)
    cid = identifier(data, "id", path)
    cps: list[Checkpoint] = []
    for i, cp in enumerate(table_list(data, "checkpoints", path)):
        where = f"{path}.checkpoints[{i}]"
        check_keys(cp, {"id", "name", "distance", "lat", "lon"}, where)
        dist = num(cp, "distance", where)
        if dist < 0:
            raise ConfigError(f"{where}.distance", "must not be negative")
        if cps and dist <= cps[-1].distance_m:
            raise ConfigError(f"{where}.distance", "checkpoints must be in increasing distance")
        ident = identifier(cp, "id", where)
        if any(c.id == ident for c in cps):
            raise ConfigError(f"{where}.id", f"duplicate checkpoint {ident!r}")
        lat = num(cp, "lat", where) if "lat" in cp else None
        lon = num(cp, "lon", where) if "lon" in cp else None
        cps.append(Checkpoint(ident, string(cp, "name", where, ident), dist, lat, lon))
    if len(cps) < 2:
        raise ConfigError(f"{path}.checkpoints", "needs at least a start and a finish")
    poly_raw = data.get("polyline", [])
    if not isinstance(poly_raw, list):
        raise ConfigError(f"{path}.polyline", "must be a list of [lat, lon] pairs")
    poly: list[tuple[float, float]] = []
    for i, pt in enumerate(poly_raw):
        ok = isinstance(pt, list) and len(pt) == 2
        if not ok or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pt):
            raise ConfigError(f"{path}.polyline[{i}]", "must be a [lat, lon] pair of numbers")
        poly.append((float(pt[0]), float(pt[1])))
    return Course(cid, tuple(cps), tuple(poly))


def parse_categories(value: Any, path: str) -> Categories:
    """``"uk-masters"``, ``"none"`` or a table ``{ bands = [40, 50, 60], junior_under = 18 }``."""
    if value == "uk-masters":
        return UK_MASTERS
    if value == "none":
        return NO_CATEGORIES
    if isinstance(value, Categories):
        return value
    if not isinstance(value, dict):
        raise ConfigError(path, "must be 'uk-masters', 'none' or a table with bands")
    check_keys(value, {"bands", "junior_under"}, path)
    bands = value.get("bands", [])
    if not isinstance(bands, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) and 20 <= b < 120 for b in bands
    ):
        raise ConfigError(f"{path}.bands", "must be a list of whole ages from 20 to 119")
    if sorted(set(bands)) != bands:
        raise ConfigError(f"{path}.bands", "must be in increasing order, each age once")
    junior = value.get("junior_under")
    if junior is not None and (
        not isinstance(junior, int) or isinstance(junior, bool) or not 5 <= junior <= 25
    ):
        raise ConfigError(f"{path}.junior_under", "must be a whole age from 5 to 25")
    if bands and junior is not None and junior > bands[0]:
        raise ConfigError(f"{path}.junior_under", "must not be above the first band")
    return Categories(tuple(bands), junior)


def _race(
    data: Mapping[str, Any],
    path: str,
    courses: Mapping[str, Course],
    tz: ZoneInfo,
    default_categories: Any = "uk-masters",
) -> Race:
    allowed = {
        "id", "name", "course", "kind", "waves", "course_record", "rank_by", "categories",
        "start", "max_speed_mps", "ranked", "team", "championship", "handovers",
        "obstacles", "rounds", "standards",
    }  # fmt: skip
    check_keys(data, allowed, path)
    rid = identifier(data, "id", path)
    course_id = string(data, "course", path)
    if course_id not in courses:
        raise ConfigError(f"{path}.course", f"unknown course {course_id!r}")
    kind = string(data, "kind", path, "timed")
    if kind not in ("timed", "team", "fun", "relay"):
        raise ConfigError(f"{path}.kind", f"{kind!r} is not one of timed, team, fun, relay")
    waves: list[Wave] = []
    for i, w in enumerate(table_list(data, "waves", path)):
        where = f"{path}.waves[{i}]"
        check_keys(w, {"id", "name", "offset"}, where)
        wid = identifier(w, "id", where)
        offset = parse_duration(w.get("offset", 0), f"{where}.offset")
        waves.append(Wave(wid, string(w, "name", where, wid), offset))
    record = None
    if "course_record" in data:
        record = parse_duration(data["course_record"], f"{path}.course_record")
    rank_by = string(data, "rank_by", path, "gun")
    if rank_by not in ("gun", "chip"):
        raise ConfigError(f"{path}.rank_by", "must be 'gun' or 'chip'")
    cats = parse_categories(data.get("categories", default_categories), f"{path}.categories")
    scheduled = None
    if "start" in data:
        scheduled = parse_time(data["start"], tz, f"{path}.start")
    speed = num(data, "max_speed_mps", path, 7.0)
    if speed <= 0:
        raise ConfigError(f"{path}.max_speed_mps", "must be positive")
    ranked = data.get("ranked", kind != "fun")
    if not isinstance(ranked, bool):
        raise ConfigError(f"{path}.ranked", "must be true or false")
    team = TeamScoring()
    if "team" in data:
        t = data["team"]
        where = f"{path}.team"
        if not isinstance(t, dict):
            raise ConfigError(where, "must be a table")
        check_keys(t, {"method", "counting", "min_women", "min_men"}, where)
        method = string(t, "method", where, "sum")
        if method not in ("sum", "average"):
            raise ConfigError(f"{where}.method", "must be 'sum' or 'average'")
        team = TeamScoring(
            method="sum" if method == "sum" else "average",
            counting=int(num(t, "counting", where, 3)),
            min_women=int(num(t, "min_women", where, 0)),
            min_men=int(num(t, "min_men", where, 0)),
        )
    championship = _championship(data, path) if "championship" in data else None
    handovers = _handovers(data, path, courses[course_id], kind)
    obstacles: tuple[Obstacle, ...] = ()
    if "obstacles" in data:
        obstacles = parse_obstacles(data["obstacles"], f"{path}.obstacles", courses[course_id])
    return Race(
        id=rid,
        name=string(data, "name", path, rid),
        course=courses[course_id],
        kind=kind,  # type: ignore[arg-type]
        waves=tuple(waves) or (Wave("", "All"),),
        course_record_s=record,
        rank_by="gun" if rank_by == "gun" else "chip",
        categories=cats,
        scheduled_ms=scheduled,
        max_speed_mps=speed,
        ranked=ranked,
        team=team,
        championship=championship,
        handovers=handovers,
        rounds=parse_rounds(data["rounds"], f"{path}.rounds") if "rounds" in data else None,
        obstacles=obstacles,
        standards=_standards(data, path),
    )


def _codes(data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{path}.{key}", "must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _championship(data: Mapping[str, Any], path: str) -> Championship:
    where = f"{path}.championship"
    c = data["championship"]
    if not isinstance(c, dict):
        raise ConfigError(where, 'must be a table (e.g. { nationality = ["GBR"] })')
    check_keys(c, {"nationality", "clubs", "standard"}, where)
    nats = tuple(n.upper() for n in _codes(c, "nationality", where))
    standard = c.get("standard", False)
    if not isinstance(standard, bool):
        raise ConfigError(f"{where}.standard", "must be true or false")
    if standard and not (
        isinstance(data.get("standards"), dict) and data["standards"].get("qualifying")
    ):
        raise ConfigError(f"{where}.standard", "needs the race's standards.qualifying times")
    return Championship(nationality=nats, clubs=_codes(c, "clubs", where), standard=standard)


def _standards(data: Mapping[str, Any], path: str) -> Standards | None:
    if "standards" not in data:
        return None
    return parse_standards(data["standards"], f"{path}.standards")


def _handovers(data: Mapping[str, Any], path: str, course: Course, kind: str) -> tuple[str, ...]:
    where = f"{path}.handovers"
    if "handovers" not in data:
        if kind == "relay":
            raise ConfigError(where, 'a relay needs its handover checkpoints (e.g. ["hall"])')
        return ()
    if kind != "relay":
        raise ConfigError(where, "only a race of kind 'relay' has handovers")
    value = data["handovers"]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(where, "must be a non-empty list of checkpoint ids")
    inner = [cp.id for cp in course.checkpoints[1:-1]]
    last = -1
    for v in value:
        if v not in inner:
            raise ConfigError(where, f"{v!r} is not a checkpoint between start and finish")
        if inner.index(v) <= last:
            raise ConfigError(where, "handovers must be in course order, each once")
        last = inner.index(v)
    return tuple(value)


def parse_time(value: Any, tz: ZoneInfo, path: str) -> int:
    """A TOML datetime or ISO-8601 string (local to ``tz`` when it has no offset) as epoch ms."""
    from datetime import datetime

    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(path, f"{value!r} is not an ISO-8601 date-time") from None
    if not isinstance(value, datetime):
        raise ConfigError(path, "must be a date-time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return int(value.timestamp() * 1000)


def parse_event(data: Mapping[str, Any]) -> Event:
    """Build an :class:`Event` from a parsed ``EVENT.toml``; raises :class:`ConfigError`."""
    check_keys(data, {"event", "course", "race", "timing_point", "reader"}, "")
    ev = req(data, "event", "")
    if not isinstance(ev, dict):
        raise ConfigError("event", "must be a table ([event])")
    check_keys(ev, {"id", "name", "venue", "date", "timezone", "categories"}, "event")
    event_categories = parse_categories(ev.get("categories", "uk-masters"), "event.categories")
    tzname = string(ev, "timezone", "event", "Europe/London")
    try:
        tz = ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("event.timezone", f"unknown time zone {tzname!r}") from None
    raw_date = req(ev, "date", "event")
    if isinstance(raw_date, str):
        try:
            raw_date = date.fromisoformat(raw_date)
        except ValueError:
            raise ConfigError("event.date", f"{raw_date!r} is not a date (YYYY-MM-DD)") from None
    if not isinstance(raw_date, date):
        raise ConfigError("event.date", "must be a date (YYYY-MM-DD)")
    courses: dict[str, Course] = {}
    for i, c in enumerate(table_list(data, "course")):
        course = _course(c, f"course[{i}]")
        if course.id in courses:
            raise ConfigError(f"course[{i}].id", f"duplicate course {course.id!r}")
        courses[course.id] = course
    if not courses:
        raise ConfigError("course", "at least one [[course]] is required")
    races: dict[str, Race] = {}
    for i, r in enumerate(table_list(data, "race")):
        race = _race(r, f"race[{i}]", courses, tz, event_categories)
        if race.id in races:
            raise ConfigError(f"race[{i}].id", f"duplicate race {race.id!r}")
        races[race.id] = race
    if not races:
        raise ConfigError("race", "at least one [[race]] is required")
    cp_ids = {cp.id for c in courses.values() for cp in c.checkpoints}
    points: dict[str, TimingPoint] = {}
    for i, p in enumerate(table_list(data, "timing_point")):
        point = parse_point(p, f"timing_point[{i}]", cp_ids)
        if point.id in points:
            raise ConfigError(f"timing_point[{i}].id", f"duplicate timing point {point.id!r}")
        points[point.id] = point
    for cp in sorted(cp_ids):
        if not any(cp in p.checkpoints for p in points.values()) and cp not in points:
            points[cp] = parse_point({"id": cp, "checkpoint": cp}, f"checkpoint {cp}", cp_ids)
    readers: dict[str, Reader] = {}
    for i, r in enumerate(table_list(data, "reader")):
        reader = parse_reader(r, f"reader[{i}]", points)
        if reader.id in readers:
            raise ConfigError(f"reader[{i}].id", f"duplicate reader {reader.id!r}")
        readers[reader.id] = reader
        if reader.role and reader.point and points[reader.point].role != reader.role:
            base = points[reader.point]
            alias = f"{base.id}.{reader.role}"
            points.setdefault(alias, TimingPoint(alias, base.checkpoints, reader.role, base.rules))
    return Event(
        id=identifier(ev, "id", "event") if "id" in ev else "event",
        name=string(ev, "name", "event"),
        venue=string(ev, "venue", "event", ""),
        date=raw_date,
        timezone=tzname,
        courses=courses,
        races=races,
        points=points,
        readers=readers,
    )


def load_event_text(text: str) -> Event:
    """Parse TOML text into an :class:`Event`; TOML syntax errors become ConfigError too."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("EVENT.toml", f"not valid TOML: {exc}") from None
    return parse_event(data)

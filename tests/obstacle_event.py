"""A small obstacle course event for tests (built with :mod:`eventfiles`)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from eventfiles import START, course, event_file, header, race

from livetrack.domain.event import Event, load_event_text
from livetrack.domain.records import ChipRead, GunStart, Judgement, ParticipantRecord

OBSTACLE_TOML = event_file(
    header("ocr", "Backward Obstacle Course"),
    course(
        "ocr",
        [START, ("wall", "The Wall", 400), ("net", "Cargo Net", 800), ("finish", "Finish", 1200)],
    ),
    race("ocr", "Obstacle Course", "ocr", max_speed_mps=4.0)
    + "obstacles = [\n"
    + '  { point = "wall", name = "The Wall", failed = "0:30", missed = "DQ" },\n'
    + '  { point = "net", name = "Cargo Net", cleared = 0, failed = 60, missed = "2:00" },\n'
    + "]\n",
)

GUN = int(datetime(2026, 6, 14, 9, 0, tzinfo=UTC).timestamp() * 1000)


def event() -> Event:
    return load_event_text(OBSTACLE_TOML)


def event_today() -> Event:
    today = datetime.now(ZoneInfo("Europe/London")).date().isoformat()
    return load_event_text(OBSTACLE_TOML.replace('date = "2026-06-14"', f'date = "{today}"'))


def person(bib: str, **kw: object) -> ParticipantRecord:
    base: dict[str, object] = {
        "bib": bib,
        "race": "ocr",
        "first_name": f"First{bib}",
        "last_name": f"Last{bib}",
        "chips": (f"C{bib}",),
        "gender": "F",
        "age": 30,
    }
    base.update(kw)
    return ParticipantRecord(**base)  # type: ignore[arg-type]


def gun(at_s: float = 0) -> GunStart:
    return GunStart("ocr", GUN + int(at_s * 1000), id=f"g-ocr-{at_s}")


def read(chip: str, point: str, at_s: float) -> ChipRead:
    return ChipRead("r1", point, chip, GUN + int(at_s * 1000))


def judge(jid: str, bib: str, point: str, outcome: str, at_s: float, by: str = "m1") -> Judgement:
    return Judgement(f"judge-{jid}", point, bib, outcome, GUN + int(at_s * 1000), by=by)

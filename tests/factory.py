"""Small events and records for tests, built the way a user would write them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from livetrack import sim
from livetrack.domain.event import Event, load_event_text
from livetrack.domain.records import ChipRead, GunStart, ParticipantRecord

EVENT_TOML = """
[event]
id = "test"
name = "Test Backward Run"
venue = "Heaton Park"
date = "2026-06-14"
timezone = "Europe/London"

[[course]]
id = "mile"
checkpoints = [
  { id = "start", name = "Start", distance = 0 },
  { id = "half", name = "Halfway", distance = 800 },
  { id = "finish", name = "Finish", distance = 1600 },
]

[[course]]
id = "loop"
checkpoints = [
  { id = "start", name = "Start", distance = 0 },
  { id = "lap1", name = "Lap 1", distance = 1000 },
  { id = "finish", name = "Finish", distance = 2000 },
]

[[race]]
id = "mile"
name = "The Mile"
course = "mile"
course_record = "6:58"
max_speed_mps = 4.0
waves = [ { id = "A", name = "A" }, { id = "B", name = "B", offset = "1:00" } ]

[[race]]
id = "chip"
name = "Chip-timed mile"
course = "mile"
rank_by = "chip"
max_speed_mps = 4.0

[[race]]
id = "loop"
name = "Two laps"
course = "loop"
max_speed_mps = 4.0

[[timing_point]]
id = "start"
checkpoint = "start"

[[timing_point]]
id = "half"
checkpoint = "half"
rules = { dedup_s = 5 }

[[timing_point]]
id = "finish"
checkpoint = "finish"

[[timing_point]]
id = "finish-b"
checkpoint = "finish"
role = "backup"

[[timing_point]]
id = "line"
checkpoints = ["lap1"]

[[reader]]
id = "slow-clock"
point = "half"
clock_offset_ms = 2000

[[reader]]
id = "spare"
point = "finish"
role = "backup"
"""

#: 10:00:00 on the event's day, UTC+1 (British Summer Time).
GUN = int(datetime(2026, 6, 14, 9, 0, tzinfo=UTC).timestamp() * 1000)


def event() -> Event:
    return load_event_text(EVENT_TOML)


def event_today() -> Event:
    """:func:`event` dated today (London), for tests that post times from the wall clock: a
    time far from the event's day is refused."""
    today = datetime.now(ZoneInfo("Europe/London")).date().isoformat()
    return load_event_text(EVENT_TOML.replace('date = "2026-06-14"', f'date = "{today}"'))


def person(bib: str, race: str = "mile", **kw: object) -> ParticipantRecord:
    base: dict[str, object] = {
        "bib": bib,
        "race": race,
        "first_name": f"First{bib}",
        "last_name": f"Last{bib}",
        "chips": (f"C{bib}",),
        "gender": "F" if int("0" + "".join(c for c in bib if c.isdigit())) % 2 else "M",
        "age": 30,
    }
    base.update(kw)
    return ParticipantRecord(**base)  # type: ignore[arg-type]


def read(
    chip: str, point: str, at_s: float, reader: str = "r1", seq: int | None = None
) -> ChipRead:
    """A read ``at_s`` seconds after :data:`GUN`."""
    return ChipRead(reader, point, chip, GUN + int(at_s * 1000), seq)


def gun(race: str = "mile", at_s: float = 0, wave: str = "") -> GunStart:
    return GunStart(race, GUN + int(at_s * 1000), wave, id=f"g-{race}-{wave}-{at_s}")


def write_entries(path: Path, event: Event, race: str, runners: int, seed: int = 3) -> Path:
    """A participants CSV of ``runners`` simulated entrants of ``race``, as a timer exports it."""
    people = sim.make_participants(event, {race: runners}, seed=seed)
    lines = ["bib,chip,first_name,last_name,gender,age,club,race"]
    lines += [
        f'{p.bib},{p.chips[0]},{p.first_name},"{p.last_name}",{p.gender},{p.age},"{p.club}",{race}'
        for p in people
    ]
    path.write_text("\n".join(lines) + "\n")
    return path

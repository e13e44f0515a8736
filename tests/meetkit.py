"""A small championship meet for tests: a backward 100 m in heats and a final, its entries,
and ``.lif`` files written the way a FinishLynx system writes them."""

from __future__ import annotations

from collections.abc import Sequence

from factory import EVENT_TOML

from livetrack.domain.event import Event, load_event_text
from livetrack.domain.meet_records import DrawRound
from livetrack.domain.participants import parse_participants
from livetrack.domain.records import ParticipantRecord
from livetrack.domain.state import RaceState

TRACK = """
[[course]]
id = "track100"
checkpoints = [
  { id = "start", name = "Start", distance = 0 },
  { id = "finish", name = "Finish", distance = 100 },
]

[[race]]
id = "b100"
name = "Backward 100 m"
course = "track100"
max_speed_mps = 12.0

[race.rounds]
lanes = 8
lynx_event = 7

[[race.rounds.round]]
id = "heats"
name = "Heats"
advance = { place = 2, time = 2 }

[[race.rounds.round]]
id = "final"
name = "Final"
"""

#: Twenty entrants with entry times 14.00, 14.10, … (bib 101 fastest).
ENTRIES = "bib,race,first_name,last_name,gender,club,entry_time\n" + "".join(
    f"{100 + i},b100,Ath{i},Lete{i},{'MF'[i % 2]},Club {i % 4},{14 + (i - 1) / 10:.2f}\n"
    for i in range(1, 21)
)


def meet_event(extra: str = "") -> Event:
    return load_event_text(EVENT_TOML + TRACK + extra)


def entries(event: Event) -> list[ParticipantRecord]:
    people, errors = parse_participants(ENTRIES, event)
    assert errors == []
    return people


def drawn_state(seed: str = "s33d") -> RaceState:
    """A state with the entries in and the heats drawn."""
    ev = meet_event()
    st = RaceState(ev)
    st.apply_all(entries(ev))
    st.apply(DrawRound("draw-heats-1", "b100", "heats", seed, "timer", 0))
    return st


def lif(
    heat: int, rows: Sequence[tuple[str, str, int | None, str, str]], *, event: int = 7,
    round_no: int = 1, wind: str = "+1.2",
) -> str:  # fmt: skip
    """A ``.lif`` file: ``rows`` are (place, bib, lane, time, reaction)."""
    out = [f"{event},{round_no},{heat},Backward 100m Heat {heat},{wind},m/s,,,,100,13:05:00.000"]
    for place, bib, lane, time, reaction in rows:
        lane_s = "" if lane is None else str(lane)
        out.append(f"{place},{bib},{lane_s},Lete{bib},Ath,Club,{time},,{time},{reaction}")
    return "\r\n".join(out) + "\r\n"


def heat_rows(
    st: RaceState, round_id: str, heat: int, base_ms: int = 14_000
) -> list[tuple[str, str, int | None, str, str]]:
    """Results for every athlete of a heat, in lane order finishing 0.1 s apart."""
    rr = st.meet.get("b100")
    assert rr is not None
    d = rr.state(round_id).draw
    assert d is not None
    out = []
    for place, (bib, lane) in enumerate(d.heat(heat), start=1):
        ms = base_ms + (place - 1) * 100
        out.append((str(place), bib, lane, f"{ms // 1000}.{ms % 1000:03d}", "0.150"))
    return out

"""Relays: one participant per team, a chip per leg; splits, attribution, leg rankings."""

from __future__ import annotations

import pytest
from factory import EVENT_TOML, gun, read

from livetrack.domain.event import ConfigError, load_event_text
from livetrack.domain.participants import parse_participants
from livetrack.domain.records import ParticipantRecord, decode, encode
from livetrack.domain.relay import relay_standings
from livetrack.domain.state import RaceState

RELAY = """
[[race]]
id = "relay"
name = "2 x 800 m"
course = "mile"
kind = "relay"
max_speed_mps = 4.0
handovers = ["half"]
"""

CSV = """bib,race,team,leg,first_name,last_name,chip,gender
10,relay,Salford A,2,Bea,Two,A2,F
10,relay,Salford A,1,Al,One,A1,M
11,relay,Sale B,1,Cy,One,B1,M
11,relay,Sale B,2,Di,Two,B2,M
"""


def _event():  # type: ignore[no-untyped-def]
    return load_event_text(EVENT_TOML + RELAY)


def _state() -> RaceState:
    ev = _event()
    people, errors = parse_participants(CSV, ev)
    assert errors == []
    st = RaceState(ev)
    st.apply_all(people)
    st.apply(gun("relay"))
    return st


def test_leg_rows_of_the_csv_become_one_team_with_each_legs_chip_in_order() -> None:
    people, errors = parse_participants(CSV, _event())
    assert errors == []
    team = next(p for p in people if p.bib == "10")
    assert team.chips == ("A1", "A2")
    assert team.legs == ("Al One", "Bea Two")
    assert (team.first_name, team.team, team.category) == ("Salford A", "Salford A", "Mixed")
    assert decode(encode(team)) == team


def test_missing_leg_and_leg_outside_a_relay_are_row_errors() -> None:
    ev = _event()
    _, errors = parse_participants("bib,race,team,leg,chip\n12,relay,X,1,X1\n", ev)
    assert [str(e) for e in errors] == ["row 2, leg: team '12' has no leg 2"]
    _, errors = parse_participants("bib,race,leg,chip\n13,mile,1,Y1\n", ev)
    assert errors[0].field == "leg" and "not a relay" in errors[0].message
    _, errors = parse_participants("bib,race,leg,chip\n14,relay,3,Z1\n", ev)
    assert "has legs 1 to 2" in errors[0].message


def test_a_relay_needs_handovers_on_its_course() -> None:
    with pytest.raises(ConfigError, match=r"race\[3\].handovers"):
        load_event_text(EVENT_TOML + RELAY.replace('handovers = ["half"]\n', ""))
    with pytest.raises(ConfigError, match="not a checkpoint between start and finish"):
        load_event_text(EVENT_TOML + RELAY.replace('["half"]', '["finish"]'))


def test_splits_come_from_the_handover_and_the_incoming_chip_is_credited() -> None:
    st = _state()
    st.apply(read("A1", "half", 300))  # leg 1 hands over at 5:00
    st.apply(read("A2", "half", 302))  # the outgoing runner crosses the mat too
    st.apply(read("A2", "finish", 620))
    (team, other) = relay_standings(st, "relay")
    assert (team.name, team.position, team.finished, team.elapsed_ms) == (
        "Salford A",
        1,
        True,
        620_000,
    )
    leg1, leg2 = team.legs
    assert (leg1.runner, leg1.split_ms, leg1.attribution, leg1.read_chip) == (
        "Al One",
        300_000,
        "own",
        "A1",
    )
    assert (leg2.runner, leg2.split_ms, leg2.attribution) == ("Bea Two", 320_000, "own")
    assert other.legs[0].state == "running" and other.position is None


def test_only_the_outgoing_chip_read_at_the_handover_is_attributed_to_the_next_leg() -> None:
    st = _state()
    st.apply(read("B2", "half", 280))  # leg 1's chip was missed; leg 2's crossed the mat
    team = next(t for t in relay_standings(st, "relay") if t.bib == "11")
    assert team.legs[0].attribution == "next" and team.legs[0].split_ms == 280_000
    assert team.legs[1].state == "running"


def test_leg_rankings_order_each_leg_by_its_split() -> None:
    st = _state()
    st.apply(read("A1", "half", 300))
    st.apply(read("B1", "half", 250))
    st.apply(read("A2", "finish", 600))  # leg 2: 300 s
    st.apply(read("B2", "finish", 610))  # leg 2: 360 s
    a, b = relay_standings(st, "relay")
    assert (a.bib, b.bib) == ("10", "11")  # Salford first home
    assert (a.legs[0].rank, b.legs[0].rank) == (2, 1)
    assert (a.legs[1].rank, b.legs[1].rank) == (1, 2)


def test_an_ordinary_participant_record_keeps_no_legs() -> None:
    p = ParticipantRecord("1", "mile")
    assert decode(encode(p)) == p and p.legs == ()

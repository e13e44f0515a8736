"""Qualifying standards: the event file's syntax, which standard applies to whom, entries
below their standard reported by ``livetrack check-event`` with file and line, results marking
next year's standard, and the championship's standard rule naming the national champion."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from factory import EVENT_TOML, gun, person, read

from livetrack.cli import main
from livetrack.domain import results as res
from livetrack.domain.event import ConfigError, load_event_text
from livetrack.domain.records import ParticipantRecord
from livetrack.domain.standards import Standards, eligible, meets_next
from livetrack.domain.state import RaceState
from livetrack.service.entries import EntriesFile
from livetrack.web.app import Settings, create_app
from livetrack.web.formats import champ_view

MILE = 'waves = [ { id = "A", name = "A" }, { id = "B", name = "B", offset = "1:00" } ]'
STANDARDS = (
    MILE
    + '\nchampionship = { nationality = ["GBR"], standard = true }'
    + '\nstandards = { qualifying = { F = "9:30", M = "8:30", MV40 = "9:00" },'
    + ' next = { F = "9:00", M = "8:00", all = "10:00" } }'
)
TOML = EVENT_TOML.replace(MILE, STANDARDS)
ENTRIES = (
    "bib,race,first_name,last_name,gender,age,qualifying_time\n"
    "1,mile,Ann,Lee,F,30,9:29.5\n"  # inside the F standard
    "2,mile,Bea,Moss,F,33,9:45\n"  # 15 s slower than 9:30
    "3,mile,Cal,Ng,M,44,8:59.99\n"  # MV40: 9:00
    "4,mile,Dan,Orr,M,25,\n"  # no qualifying time
    "5,mile,Eli,Pugh,M,25,8:30.01\n"  # a hundredth slower than 8:30
    "6,chip,Fay,Quin,F,25,12:00\n"  # a race without standards
)


def entrant(
    bib: str, gender: str, age: int, entry: float | None, nat: str = "GBR"
) -> ParticipantRecord:
    ms = None if entry is None else int(entry * 1000)
    return person(bib, gender=gender, age=age, entry_ms=ms, nationality=nat)


def test_a_race_declares_standards_by_gender_and_category() -> None:
    race = load_event_text(TOML).races["mile"]
    assert race.standards == Standards(
        (("F", 570.0), ("M", 510.0), ("MV40", 540.0)),
        (("F", 540.0), ("M", 480.0), ("all", 600.0)),
    )
    assert race.championship is not None and race.championship.standard
    # the category's standard, else the gender's, else "all"
    assert race.standards.qualifying_for("M", "MV40") == ("MV40", 540.0)
    assert race.standards.qualifying_for("M", "MSEN") == ("M", 510.0)
    assert race.standards.qualifying_for("X", "") is None
    assert race.standards.next_for("X", "") == ("all", 600.0)


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ('qualifying = { F = "soon" }', "race[0].standards.qualifying.F"),
        ("qualifying = { F = 0 }", "race[0].standards.qualifying.F"),
        ('fastest = { F = "9:00" }', "race[0].standards.fastest"),
        ("qualifying = []", "race[0].standards.qualifying"),
    ],
)
def test_a_wrong_standard_is_refused_naming_its_key(bad: str, where: str) -> None:
    text = EVENT_TOML.replace(MILE, MILE + f"\nstandards = {{ {bad} }}")
    with pytest.raises(ConfigError) as err:
        load_event_text(text)
    assert err.value.path == where


def test_a_championship_standard_rule_needs_qualifying_times() -> None:
    text = EVENT_TOML.replace(MILE, MILE + "\nchampionship = { standard = true }")
    with pytest.raises(ConfigError, match=r"needs the race's standards\.qualifying"):
        load_event_text(text)


def test_check_event_reports_entries_below_their_standard_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = tmp_path / "event.toml"
    event.write_text(TOML)
    entries = tmp_path / "entries.csv"
    entries.write_text(ENTRIES)
    assert main(["check-event", str(event), "--participants", str(entries)]) == 0
    out = capsys.readouterr().out.splitlines()
    below = [line for line in out if "slower than" in line]
    assert below == [
        f"{entries}: line 3: bib 2 (mile): qualifying time 9:45.00 is 15.00 slower than the F "
        "standard 9:30.00",
        f"{entries}: line 6: bib 5 (mile): qualifying time 8:30.01 is 0.01 slower than the M "
        "standard 8:30.00",
    ]
    assert (
        "  qualifying standards: 2 entries below their standard, 1 without a qualifying time" in out
    )


async def test_serve_logs_the_entries_below_their_standard_when_it_loads_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        event=load_event_text(TOML),
        log_url=str(tmp_path / "log.db"),
        entries=EntriesFile("entries.csv", ENTRIES),
    )
    app = create_app(settings)
    with caplog.at_level(logging.INFO, logger="livetrack.entries"):
        async with app.router.lifespan_context(app):
            pass
    logged = [r.getMessage() for r in caplog.records if r.name == "livetrack.entries"]
    assert logged == [
        "entries.csv: line 3: bib 2 (mile): qualifying time 9:45.00 is 15.00 slower than the F "
        "standard 9:30.00",
        "entries.csv: line 6: bib 5 (mile): qualifying time 8:30.01 is 0.01 slower than the M "
        "standard 8:30.00",
        "qualifying standards: 2 entries below their standard, 1 without a qualifying time",
    ]


def finished(*people: tuple[ParticipantRecord, float]) -> RaceState:
    st = RaceState(load_event_text(TOML))
    for p, _ in people:
        st.apply(p)
    st.apply(gun())
    for p, t in people:
        st.apply(read(p.chips[0], "finish", t))
    return st


def test_results_mark_finishes_that_meet_next_years_standard() -> None:
    st = finished(
        (entrant("1", "F", 30, 560), 539),  # under 9:00
        (entrant("2", "F", 30, 560), 541),
        (entrant("3", "M", 30, 500), 480),  # equal to 8:00 meets it
        (entrant("4", "X", 30, None), 599),  # "all": 10:00
    )
    table = res.table(st, "mile")
    assert {r.bib: r.next_standard for r in table.rows} == {
        "1": True,
        "2": False,
        "3": True,
        "4": True,
    }
    lines = res.to_csv(table).splitlines()
    assert lines[0].split(",")[12] == "next_standard"
    assert {ln.split(",")[1]: ln.split(",")[12] for ln in lines[1:]} == {
        "1": "yes",
        "2": "",
        "3": "yes",
        "4": "yes",
    }
    assert [r["meets_next_standard"] for r in res.to_json(table)["results"]][:2] == [True, True]
    race = st.event.races["mile"]
    assert meets_next(race, "F", "FSEN", 540_000) and not meets_next(race, "F", "FSEN", 540_001)


def test_the_champion_is_the_first_finisher_of_the_nation_who_met_the_standard() -> None:
    st = finished(
        (entrant("1", "F", 30, 560, nat="IRL"), 500),  # wins the race, not of the nation
        (entrant("2", "M", 30, 520), 505),  # slower than the M standard 8:30 to enter
        (entrant("3", "M", 30, None), 510),  # no qualifying time
        (entrant("4", "F", 30, 569), 515),  # the champion
        (entrant("5", "M", 30, 505), 520),
    )
    race = st.event.races["mile"]
    assert not eligible(race, "M", "MSEN", 520_000) and eligible(race, "M", "MSEN", 510_000)
    view = champ_view(st, "mile")
    assert [(r["bib"], r["position"], r["overall"]) for r in view["rows"]] == [
        ("4", 1, 4),
        ("5", 2, 5),
    ]
    assert view["champion"] == "First4 Last4" and view["decided"] is True
    assert view["rule"] == "nationality GBR; a qualifying performance within the standard"

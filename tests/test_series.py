"""A series across events: points by place, best N of M, athletes matched across events by
identity (never bib), ties, the ``livetrack series`` command, and bad input named by file and
line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from factory import EVENT_TOML, event, gun, person, read

from livetrack.cli import main
from livetrack.domain import results as res
from livetrack.domain.series import (
    Placing,
    SeriesError,
    identity,
    parse_series,
    placings_from_csv,
    standings,
)
from livetrack.domain.state import RaceState
from livetrack.store import open_log

SERIES = """
[series]
name = "Backward Marathon Series"

[points]
by_place = [10, 6, 4]
finisher = 1
best = 2

[[event]]
name = "Manchester"
date = "2026-04-12"
results = "manchester.csv"

[[event]]
name = "Leeds"
date = "2026-06-07"
results = "leeds.json"

[[event]]
name = "York"
date = "2026-09-20"
results = "york.csv"
"""


def csv_text(*rows: tuple[int | str, str, str, str]) -> str:
    """A results CSV as the project exports it (position, bib, name, gender, ..., status)."""
    lines = ["position,bib,name,gender,category,club,status,gun_time,chip_time"]
    for pos, bib, name, gender in rows:
        status = "finished" if pos != "DNF" else "DNF"
        lines.append(f"{pos if status == 'finished' else ''},{bib},{name},{gender},,,{status},,")
    return "\n".join(lines) + "\n"


def write_series(tmp_path: Path, text: str = SERIES) -> Path:
    (tmp_path / "manchester.csv").write_text(
        csv_text((1, "7", "Ada Byrne", "F"), (2, "9", "Cal Dent", "M"), (3, "4", "Eve Ford", "F"))
    )
    leeds = {
        "results": [
            {"position": 1, "bib": "31", "name": "Cal Dent", "gender": "M", "status": "finished"},
            {"position": 2, "bib": "12", "name": "ADA  BYRNE", "gender": "F", "status": "finished"},
            {"position": None, "bib": "5", "name": "Eve Ford", "gender": "F", "status": "DNF"},
        ]
    }
    (tmp_path / "leeds.json").write_text(json.dumps(leeds))
    (tmp_path / "york.csv").write_text(
        csv_text((1, "2", "Eve Ford", "F"), (2, "3", "Ada Byrne", "F"), (3, "8", "Cal Dent", "M"))
        + "4,6,Gil Hart,M,,,finished,,\n"
    )
    path = tmp_path / "series.toml"
    path.write_text(text)
    return path


def test_points_count_the_best_two_of_three_and_athletes_match_by_name_not_bib(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_series(tmp_path)
    assert main(["series", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in out["events"]] == ["Manchester", "Leeds", "York"]
    table = [(s["position"], s["name"], s["points"], s["wins"]) for s in out["standings"]]
    # Ada 10 + 6 (an equal 6 dropped: the more recent counts), Cal 6 + 10 (4 dropped): 16
    # each, one win each, best place 1st each; Ada placed better in the most recent event
    # (York: 2nd against 3rd)
    assert table == [
        (1, "Ada Byrne", 16, 1),
        (2, "Cal Dent", 16, 1),
        (3, "Eve Ford", 14, 1),
        (4, "Gil Hart", 1, 0),
    ]
    ada = out["standings"][0]["results"]
    assert [(r["place"], r["points"], r["counted"]) for r in ada] == [
        (1, 10, True),
        (2, 6, False),
        (2, 6, True),
    ]
    eve = out["standings"][2]["results"]
    assert eve[1] is None  # a DNF scores nothing
    assert main(["series", str(path)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == "Backward Marathon Series: best 2 of 3 events"
    assert text[2].split() == ["1", "Ada", "Byrne", "(F)", "16", "1", "10", "(6)", "6"]


def test_athletes_equal_on_everything_share_the_position() -> None:
    series = parse_series(SERIES, "s.toml")
    dead_heat = [Placing(1, "Ann Lee", "F"), Placing(1, "Bo Ray", "M"), Placing(3, "Cy", "M")]
    table = standings(series, [dead_heat, [], [Placing(1, "Cy", "M")]])
    assert [(s.name, s.position, s.points) for s in table] == [
        ("Cy", 1, 14),
        ("Ann Lee", 2, 10),
        ("Bo Ray", 2, 10),
    ]


def test_more_wins_break_a_tie_on_points_before_the_most_recent_event() -> None:
    series = parse_series(SERIES.replace("best = 2", "best = 3").replace("finisher = 1", ""), "s")
    table = standings(
        series,
        [
            [Placing(1, "Ann", "F"), Placing(2, "Bo", "M")],
            [Placing(1, "Ann", "F"), Placing(3, "Bo", "M")],
            [Placing(1, "Bo", "M")],
        ],
    )
    # 20 points each; Bo won the most recent event, but Ann won two
    assert [(s.name, s.points, s.wins, s.position) for s in table] == [
        ("Ann", 20, 2, 1),
        ("Bo", 20, 1, 2),
    ]


def test_identity_prefers_the_athlete_id_then_name_gender_and_birth_year() -> None:
    assert identity(Placing(1, "Zoë  O'Neil", "F")) == identity(Placing(4, "zoe oneil", "F"))
    assert identity(Placing(1, "Zoë O'Neil", "F")) != identity(Placing(1, "Zoë O'Neil", "M"))
    assert identity(Placing(1, "A B", "F", birth_year=1980)) != identity(
        Placing(1, "A B", "F", birth_year=1991)
    )
    assert identity(Placing(1, "A B", "F", athlete_id="UKA123")) == identity(
        Placing(9, "Alice B", "F", athlete_id="UKA123")
    )


def test_a_declared_athlete_id_column_matches_athletes_whose_names_differ(tmp_path: Path) -> None:
    text = SERIES.replace('name = "Backward Marathon Series"', 'athlete_id = "runner_id"')
    path = write_series(tmp_path, text)
    header = "position,bib,name,gender,status,runner_id\n"
    (tmp_path / "manchester.csv").write_text(header + "1,7,Ada Byrne,F,finished,R1\n")
    (tmp_path / "york.csv").write_text(header + "1,3,Ada Byrne-Hale,F,finished,R1\n")
    leeds = {"results": [{"position": 1, "name": "Cal Dent", "runner_id": "R2"}]}
    (tmp_path / "leeds.json").write_text(json.dumps(leeds))
    from livetrack.cli.series import load

    series, placings = load(str(path))
    table = standings(series, placings)
    assert [(s.name, s.points) for s in table] == [("Ada Byrne-Hale", 20), ("Cal Dent", 10)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("by_place = [10, 6, 4]", "by_place = [10, 12, 4]"),
            "series.toml: line 6: points.by_place must not give a lower place more points",
        ),
        (
            ("by_place = [10, 6, 4]", 'by_place = "10,6,4"'),
            "series.toml: line 6: points.by_place must be a non-empty list",
        ),
        (
            ("best = 2", "best = 5"),
            "series.toml: line 8: points.best must be a whole number from 1 to 3",
        ),
        (("finisher = 1", "finishers = 1"), "series.toml: line 7: unknown key 'finishers'"),
        (
            ('date = "2026-06-07"', 'date = "June"'),
            "series.toml: line 15: event 'Leeds': date must be a date",
        ),
        (
            ('[[event]]\nname = "York"', '[[event]\nname = "York"'),
            "series.toml: line 20: not valid TOML",
        ),
    ],
)
def test_a_malformed_series_file_is_refused_naming_the_file_and_line(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = write_series(tmp_path, SERIES.replace(*change))
    with pytest.raises(SystemExit) as err:
        main(["series", str(path)])
    assert str(err.value).startswith(f"livetrack series: {tmp_path}/{message}")


def test_a_missing_results_file_and_an_unknown_column_are_named(tmp_path: Path) -> None:
    path = write_series(tmp_path)
    (tmp_path / "york.csv").unlink()
    with pytest.raises(SystemExit) as err:
        main(["series", str(path)])
    assert str(err.value) == (
        f"livetrack series: {path}: line 20: event 'York': no such file '{tmp_path}/york.csv'"
    )
    (tmp_path / "york.csv").write_text("place,bib,runner\n1,2,Eve Ford\n")
    with pytest.raises(SystemExit) as err:
        main(["series", str(path)])
    assert str(err.value) == (
        f"livetrack series: {tmp_path}/york.csv: line 1: no column 'name', 'position' "
        "(columns: place, bib, runner)"
    )
    (tmp_path / "york.csv").write_text(
        csv_text((1, "2", "Eve Ford", "F")) + "first,3,Al,M,,,finished,,\n"
    )
    with pytest.raises(SystemExit) as err:
        main(["series", str(path)])
    assert str(err.value).endswith("york.csv: line 3: position 'first' is not a whole number")


def test_an_event_may_be_read_from_its_log_and_event_file(tmp_path: Path) -> None:
    """The York round as its log: folded, its finish order scores the same as its export."""
    (tmp_path / "york.toml").write_text(EVENT_TOML)
    records = [person("1", first_name="Eve", last_name="Ford", gender="F")]
    records += [person("2", first_name="Ada", last_name="Byrne", gender="F"), gun()]
    records += [read("C1", "finish", 500), read("C2", "finish", 520)]

    async def write() -> None:
        log = open_log(str(tmp_path / "york.db"))
        await log.append(records)
        await log.close()

    asyncio.run(write())
    text = SERIES.replace(
        'results = "york.csv"', 'log = "york.db"\nevent = "york.toml"\nrace = "mile"'
    )
    path = write_series(tmp_path, text)
    from livetrack.cli.series import load

    series, placings = load(str(path))
    assert [(p.place, p.name) for p in placings[2]] == [(1, "Eve Ford"), (2, "Ada Byrne")]
    # the same as reading the results export of that log
    state = RaceState(event())
    state.apply_all(records)
    export = placings_from_csv(res.to_csv(res.table(state, "mile")), series, "york.csv")
    assert [(p.place, p.name) for p in export] == [(p.place, p.name) for p in placings[2]]


def test_an_unknown_race_in_a_log_event_is_named(tmp_path: Path) -> None:
    (tmp_path / "york.toml").write_text(EVENT_TOML)
    (tmp_path / "york.db").write_bytes(b"")
    text = SERIES.replace(
        'results = "york.csv"', 'log = "york.db"\nevent = "york.toml"\nrace = "ten"'
    )
    path = write_series(tmp_path, text)
    with pytest.raises(SeriesError, match="line 20: event 'York': race 'ten' is not one of mile"):
        from livetrack.cli.series import load

        load(str(path))


def test_the_standings_can_be_written_as_a_page(tmp_path: Path) -> None:
    from html.parser import HTMLParser

    path = write_series(tmp_path)
    page = tmp_path / "standings.html"
    assert main(["series", str(path), "--html", str(page)]) == 0

    class Rows(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self.cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag in ("td", "th") and self.cell is not None:
                self.rows[-1].append(" ".join("".join(self.cell).split()))
                self.cell = None

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

    parser = Rows()
    parser.feed(page.read_text())
    assert parser.rows[0][:4] == ["Pos", "Athlete", "Points", "Wins"]
    assert parser.rows[1] == ["1", "Ada Byrne (F)", "16", "1", "10 (1)", "[6]", "6 (2)"]
    assert [r[0] for r in parser.rows[1:]] == ["1", "2", "3", "4"]

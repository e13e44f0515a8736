"""Participants CSV: bad rows reported by row and field, good rows kept, bibs stay strings."""

from __future__ import annotations

from factory import event

from livetrack.domain.participants import category, parse_participants

HEADER = "bib,chip,first_name,last_name,gender,dob,club,team,race,wave,charity,pledged,hide_name\n"


def test_good_rows_are_kept_and_bibs_stay_strings() -> None:
    text = HEADER + (
        "007,C7;C7b,Ada,Lovelace,F,1980-03-02,Salford Harriers,,mile,A,,,no\n"
        "12,,Bob,Brown,m,,,,mile,B,,,yes\n"
    )
    people, errors = parse_participants(text, event())
    assert errors == []
    ada, bob = people
    assert ada.bib == "007" and ada.chips == ("C7", "C7b") and ada.age == 46
    assert bob.chips == ("12",)  # no chip column value: the bib is the chip
    assert bob.gender == "M" and bob.hide_name


def test_a_bad_row_is_reported_by_row_and_field_and_the_rest_survive() -> None:
    text = HEADER + (
        "1,C1,Ann,A,F,,,,mile,,,,\n"
        "2,C2,Ben,B,Q,,,,mile,,,,\n"  # bad gender
        "3,C3,Cat,C,F,31/02/1990,,,mile,,,,\n"  # bad date
        "4,C4,Dan,D,M,,,,marathon,,,,\n"  # unknown race
        "1,C5,Eve,E,F,,,,mile,,,,\n"  # duplicate bib
        "6,C1,Fay,F,F,,,,mile,,,,\n"  # duplicate chip
        "7,C7,Gus,G,M,,,,mile,Z,,,\n"  # unknown wave
        "8,C8,Hal,H,M,,,,mile,,,lots,\n"  # bad pledge
        "9,C9,Ivy,I,F,,,,mile,,,,\n"
        "10,C10,Jo,J,F,,,,mile,,,nan,\n"  # not a number either
    )
    people, errors = parse_participants(text, event())
    assert [p.bib for p in people] == ["1", "9"]
    assert [(e.row, e.field) for e in errors] == [
        (3, "gender"), (4, "dob"), (5, "race"), (6, "bib"), (7, "chips"), (8, "wave"),
        (9, "pledged"), (11, "pledged"),
    ]  # fmt: skip
    assert "row 5, race: unknown race 'marathon'" in str(errors[2])


def test_missing_required_columns_are_named() -> None:
    people, errors = parse_participants("name,club\nAnn,X\n", event())
    assert people == []
    assert "missing column(s): bib" in str(errors[0])


def test_uk_masters_categories_by_age_and_sex() -> None:
    assert category("F", 34) == "FSEN"
    assert category("F", 35) == "FV35"
    assert category("M", 49) == "MV45"
    assert category("M", 17) == "MU20"
    assert category("M", 90) == "MV80"
    assert category("", 40) == ""


def test_categories_can_be_configured_per_event_and_per_race() -> None:
    from factory import EVENT_TOML

    from livetrack.domain.event import load_event_text

    text = EVENT_TOML.replace(
        'timezone = "Europe/London"',
        'timezone = "Europe/London"\ncategories = { bands = [40, 50, 60], junior_under = 18 }',
    ).replace('rank_by = "chip"', 'rank_by = "chip"\ncategories = "none"')
    ev = load_event_text(text)
    mile, chip = ev.races["mile"].categories, ev.races["chip"].categories
    assert category("F", 45, mile) == "FV40"
    assert category("F", 39, mile) == "FSEN"
    assert category("M", 17, mile) == "MU18"
    assert category("M", 70, mile) == "MV60"
    assert category("M", 70, chip) == ""


def test_bad_category_bands_name_the_key() -> None:
    import pytest
    from factory import EVENT_TOML

    from livetrack.domain.event import ConfigError, load_event_text

    text = EVENT_TOML.replace(
        'timezone = "Europe/London"',
        'timezone = "Europe/London"\ncategories = { bands = [50, 40] }',
    )
    with pytest.raises(ConfigError, match=r"event\.categories\.bands: must be in increasing"):
        load_event_text(text)

"""The one H:MM:SS parser: event configuration, results files and published results share it."""

from __future__ import annotations

import pytest

from livetrack.domain.durations import fmt_hms, parse_hms
from livetrack.domain.event import ConfigError, parse_duration
from livetrack.domain.results import parse_hms as parse_results_cell
from livetrack.evaluation.formats import parse_clock


def test_hours_minutes_seconds_and_fractions_are_read_as_seconds() -> None:
    assert parse_hms("1:02:03.5") == 3723.5
    assert parse_hms("6:58") == 418.0
    assert parse_hms(" 42 ") == 42.0


@pytest.mark.parametrize("text", ["", "1:2:3:4", "a:00", "-1:00", "1:-5", "nan", "1::2"])
def test_malformed_duration_says_what_it_expected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration like"):
        parse_hms(text)


def test_a_negative_duration_is_read_only_when_signed() -> None:
    assert parse_hms("-0:01:30", signed=True) == -90.0
    with pytest.raises(ValueError):
        parse_hms("-0:01:30")


def test_formatted_times_read_back_to_the_same_seconds() -> None:
    for ms in (0, 59_000, 418_000, 3_723_000, -90_000):
        assert parse_hms(fmt_hms(ms), signed=True) * 1000 == ms


def test_every_reader_of_durations_agrees() -> None:
    assert parse_duration("1:02:03", "race.course_record") == 3723.0
    assert parse_results_cell("1:02:03") == 3723.0
    assert parse_clock("1:02:03") == 3723.0
    assert parse_results_cell("  ") is None


def test_configuration_names_the_key_of_a_bad_duration() -> None:
    with pytest.raises(ConfigError) as err:
        parse_duration("6:5x", "race.mile.course_record")
    assert "race.mile.course_record" in str(err.value)
    assert "'6:5x' is not a duration" in str(err.value)

"""EVENT.toml: a wrong file gets an error naming the key and what is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from factory import EVENT_TOML

from livetrack.domain.event import ConfigError, load_event_text


def test_the_example_event_loads_with_its_races_points_and_rules() -> None:
    ev = load_event_text(EVENT_TOML)
    assert list(ev.races) == ["mile", "chip", "loop"]
    assert ev.races["mile"].course_record_s == 418.0
    assert ev.points["start"].rules.pick == "last"
    assert ev.points["half"].rules.dedup_s == 5
    assert ev.points["finish-b"].role == "backup"
    assert ev.points["line"].checkpoints == ("lap1",)
    assert ev.readers["slow-clock"].clock_offset_ms == 2000
    assert ev.races["mile"].waves[1].offset_s == 60


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            ('course = "mile"\ncourse_record', 'course = "nope"\ncourse_record'),
            "race[0].course",
            "unknown course",
        ),
        (('rank_by = "chip"', 'kind = "sprint"'), "race[1].kind", "not one of timed"),
        (
            ("distance = 800", 'distance = "far"'),
            "course[0].checkpoints[1].distance",
            "must be a number",
        ),
        (
            ('timezone = "Europe/London"', 'timezone = "Mars/Olympus"'),
            "event.timezone",
            "unknown time zone",
        ),
        (('date = "2026-06-14"', 'date = "14/06/2026"'), "event.date", "not a date"),
        (
            ('checkpoints = ["lap1"]', 'checkpoints = ["lap9"]'),
            "timing_point[4].checkpoints",
            "unknown checkpoint",
        ),
        (
            ('course_record = "6:58"', 'course_record = "fast"'),
            "race[0].course_record",
            "not a duration",
        ),
        (
            ("clock_offset_ms = 2000", "clock_offset_ms = 2.5"),
            "reader[0].clock_offset_ms",
            "whole number",
        ),
        (
            ("rules = { dedup_s = 5 }", 'rules = { dedup_s = 5, pick = "middle" }'),
            "timing_point[1].rules.pick",
            "first",
        ),
        (
            ('venue = "Heaton Park"', 'venue = "Heaton Park"\ncolour = "red"'),
            "event.colour",
            "unknown key",
        ),
    ],
)
def test_a_wrong_file_names_the_key_and_what_is_wrong(
    change: tuple[str, str], path: str, words: str
) -> None:
    old, new = change
    assert old in EVENT_TOML
    text = EVENT_TOML.replace(old, new, 1)
    with pytest.raises(ConfigError) as err:
        load_event_text(text)
    assert str(err.value).startswith(path), str(err.value)
    assert words in str(err.value)


def test_checkpoints_out_of_order_are_refused() -> None:
    text = EVENT_TOML.replace("distance = 800", "distance = 1700", 1)
    with pytest.raises(ConfigError, match="increasing distance"):
        load_event_text(text)


def test_toml_syntax_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_event_text("[event\nname=")


def test_check_event_command_validates_without_serving(tmp_path: Path) -> None:
    good = tmp_path / "event.toml"
    good.write_text(EVENT_TOML)
    ok = subprocess.run(
        [sys.executable, "-m", "livetrack.cli", "check-event", str(good)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout and "race mile" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(
        EVENT_TOML.replace('course = "mile"\ncourse_record', 'course = "x"\ncourse_record')
    )
    res = subprocess.run(
        [sys.executable, "-m", "livetrack.cli", "check-event", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode != 0
    assert "race[0].course: unknown course 'x'" in res.stderr

"""One configuration module: the CLI and the app factory read and check settings the same way,
and a value that cannot be used says which and why without exiting the process."""

from __future__ import annotations

from pathlib import Path

import pytest

from livetrack.cli import build_parser, main
from livetrack.config import ConfigProblem, Settings, from_env, to_env
from livetrack.demo.run import demo_event

REPO = Path(__file__).resolve().parents[1]
EVENT = REPO / "livetrack" / "demo" / "heaton.toml"


def test_the_environment_gives_the_settings_serve_would_use(tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_text("bib,race,first_name,last_name\n1,mile,Ada,Lovelace\n")
    env = to_env(
        str(EVENT),
        "redis://localhost:6379/0",
        participants=str(people),
        snapshot_every=1000,
        tick_s=0.5,
        site_keys=None,
    )
    assert env["LIVETRACK_SITE_KEYS"] == ""  # to be removed from the environment
    settings = from_env({k: v for k, v in env.items() if v})
    assert settings.event.id == demo_event().id
    assert settings.log_url == f"redis://localhost:6379/0?stream=livetrack%3A{settings.event.id}"
    assert settings.entries is not None and "Lovelace" in settings.entries.text
    assert (settings.snapshot_every_records, settings.tick_s, settings.site_keys) == (
        1000,
        0.5,
        None,
    )


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({}, "LIVETRACK_EVENT must name the event's TOML file"),
        ({"LIVETRACK_EVENT": "/nonexistent/e.toml"}, "cannot read /nonexistent/e.toml"),
        ({"LIVETRACK_TICK": "11"}, "LIVETRACK_TICK must be between 0.01 and 10 seconds"),
        ({"LIVETRACK_TICK": "soon"}, "LIVETRACK_TICK: 'soon' is not a number of seconds"),
        ({"LIVETRACK_SNAPSHOT_EVERY": "-5"}, "LIVETRACK_SNAPSHOT_EVERY must be a whole number"),
        ({"LIVETRACK_PARTICIPANTS": "/nonexistent/p.csv"}, "cannot read /nonexistent/p.csv"),
    ],
)
def test_a_setting_that_cannot_be_used_is_named_and_nothing_exits(
    env: dict[str, str], why: str
) -> None:
    full = {"LIVETRACK_EVENT": str(EVENT), **env} if env else {}
    with pytest.raises(ConfigProblem, match=why):
        from_env(full)


def test_the_tick_is_checked_once_for_every_way_in(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigProblem, match=r"between 0\.01 and 10 seconds"):
        Settings(event=demo_event(), log_url="x.db", tick_s=0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--event", str(EVENT), "--tick", "0"])
    assert "--tick: the tick must be between 0.01 and 10 seconds" in capsys.readouterr().err


def test_the_cli_turns_a_configuration_problem_into_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[event]\nid = 'x'\n")
    with pytest.raises(SystemExit) as exc:
        main(["check-event", str(bad)])
    assert str(exc.value.code).startswith(f"livetrack: {bad}: ")

"""Snapshots of the fold: exact round trips, refusal of foreign snapshots, and a real process
that starts from a snapshot serving what a process that replayed everything serves."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from factory import EVENT_TOML, GUN, event, gun, person, read
from test_multiprocess import (
    Server,
    cleanup,
    fire_gun,
    make_event,
    post,
    race_reads,
    start,
    token,
    wait_same,
)

from livetrack.domain import snapshot
from livetrack.domain.event import load_event_text
from livetrack.domain.records import Correction, Sighting, StatusChange
from livetrack.domain.state import RaceState
from livetrack.web import views


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    yield from cleanup()


def folded() -> tuple[RaceState, list[object]]:
    """A state with participants, guns, reads, a sighting, a correction and a status, and
    the records still to come."""
    state = RaceState(event())
    people = [person(str(i), race=("mile", "chip", "loop")[i % 3]) for i in range(1, 40)]
    first: list[object] = [*people, gun("mile"), gun("chip"), gun("loop")]
    first += [read(f"C{i}", "half", 240 + i) for i in range(1, 40)]
    first += [Sighting("s-1", "half", "3", GUN + 250_000, by="m1")]
    later: list[object] = [read(f"C{i}", "finish", 480 + i, seq=i) for i in range(1, 40)]
    later += [
        Correction("c-1", "edit", "5", "finish", GUN + 470_000, reason="mat fault"),
        StatusChange("st-1", "7", "DQ", "cut the course"),
        read("C99", "finish", 600),  # a chip nobody has
    ]
    for r in first:
        state.apply(r)  # type: ignore[arg-type]
    return state, later


def everything(state: RaceState) -> str:
    out = {
        f"{race}/{cp}/{div}": views.board(state, race, cp, div, 1000)
        for race in ("mile", "chip", "loop")
        for cp in ("half", "lap1", "finish")
        for div in ("all", "F", "M")
        if cp in {c.id for c in state.event.races[race].course.checkpoints}
    }
    out["runners"] = [views.runner(state, str(i)) for i in range(1, 40)]
    out["races"] = views.races(state, GUN + 3_600_000)
    return json.dumps(out, sort_keys=True, default=str)


def test_round_trip_answers_and_folds_exactly_like_the_original() -> None:
    state, later = folded()
    body = snapshot.dumps(state, "123", "v1", 1)
    loaded = snapshot.loads(body, event(), "v1")
    assert loaded is not None
    offset, copy = loaded
    assert offset == "123" and copy.applied == state.applied
    assert everything(copy) == everything(state)
    for r in later:
        assert copy.apply(r) == state.apply(r)  # type: ignore[arg-type]
    assert everything(copy) == everything(state)
    assert copy.runners["7"].race is copy.event.races["chip"]  # re-linked, not copied


def test_snapshot_of_another_event_or_code_version_is_ignored() -> None:
    state, _ = folded()
    body = snapshot.dumps(state, "9", "v1")
    assert snapshot.loads(body, event(), "v2") is None
    other = load_event_text(EVENT_TOML.replace("distance = 800", "distance = 801"))
    assert snapshot.loads(body, other, "v1") is None
    assert snapshot.compatible(snapshot.read_header(body), other, "v1") is not None
    with pytest.raises(snapshot.SnapshotError):
        snapshot.loads(b"not a snapshot", event(), "v1")
    with pytest.raises(snapshot.SnapshotError):
        snapshot.loads(body[:-50], event(), "v1")  # truncated


def test_process_started_from_a_snapshot_serves_what_a_full_replay_serves(
    tmp_path: Path, servers: list[Server]
) -> None:
    """(SQLite; the Redis snapshot store passes the same contract suite as SQLite's.)"""
    ev = make_event(tmp_path, ["--db", str(tmp_path / "log.db")])
    reader, timer = token(ev, "reader"), token(ev, "timer")
    a = start(ev, "--snapshot-every", "200")
    servers.append(a)
    fire_gun(a, timer)
    reads = race_reads()
    half = len(reads) // 2
    for i in range(0, half, 100):
        assert post(a, reader, reads[i : i + 100]).status_code == 200
    a.stop()  # graceful: the last snapshot covers everything so far
    assert a.proc.returncode in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown
    assert "snapshot saved" in a.errlog.read_text()

    b = start(ev)  # from the snapshot
    servers.append(b)
    snap = b.health().json()["snapshot"]
    assert snap["loaded"] is True and snap["offset"] is not None
    assert "snapshot loaded" in b.errlog.read_text()
    c = start(ev, "--no-snapshots")  # replays everything
    servers.append(c)
    assert c.health().json()["snapshot"]["loaded"] is False
    wait_same([b, c])
    # the race goes on: both fold what follows the snapshot the same way
    for i in range(half, len(reads), 100):
        assert post((b, c)[i % 2], reader, reads[i : i + 100]).status_code == 200
    final = wait_same([b, c])
    board = final["mile/finish"]
    assert isinstance(board, dict) and len(board["rows"]) == 100


def test_objects_are_rebuilt_with_their_stored_values_even_where_init_does_more() -> None:
    """Runners and their parts are rebuilt through ``__init__`` only where it just assigns
    the fields; a class whose ``__init__`` computes something gets its values as stored."""

    @dataclasses.dataclass(slots=True)
    class Counted:
        n: int
        doubled: int = 0

        def __post_init__(self) -> None:
            self.doubled = self.n * 2

    @dataclasses.dataclass(frozen=True, slots=True)
    class Later:
        a: int
        b: int = dataclasses.field(default=0, kw_only=True)

    counted = snapshot._maker(Counted)(3, 5)
    assert (counted.n, counted.doubled) == (3, 5)
    later = snapshot._maker(Later)(1, 2)
    assert (later.a, later.b) == (1, 2)

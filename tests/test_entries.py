"""Seeding the log with a participants file: a restart with the same file does not parse it
again, and anything that could make the old note wrong makes the service read the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from factory import event, gun

from livetrack.domain import participants
from livetrack.domain.event import Event
from livetrack.domain.participants import RowError
from livetrack.domain.records import ParticipantRecord
from livetrack.service import entries
from livetrack.service.entries import EntriesFile
from livetrack.service.runtime import Runtime
from livetrack.service.snapshots import code_version
from livetrack.store.sqlite import SqliteEventLog
from livetrack.web.app import Settings, create_app

CSV = """bib,chip,first_name,last_name,gender,age,race,wave
1,C1,Ann,Adams,F,31,mile,A
2,C2,Bob,Brown,M,40,mile,B
3,C3,Cat,Cole,F,25,loop,
4,C4,Dan,Dunn,M,,nowhere,
"""


async def start(db: Path, text: str, snapshots: bool = True) -> tuple[Runtime, int]:
    """Serve the test event on ``db`` seeded with ``text`` until ready; stop; return the
    runtime (to look at its fold) and how many records the log then holds."""
    settings = Settings(
        event=event(),
        log_url=str(db),
        entries=EntriesFile("people.csv", text),
        snapshots=snapshots,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        rt: Runtime = app.state.runtime
        assert rt.caught_up
    log = SqliteEventLog(db)
    try:
        head = await log.head()
    finally:
        await log.close()
    return rt, int(head or 0)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the parses of a participants file."""
    calls: list[int] = []
    real = participants.parse_participants

    def counting(text: str, ev: Event) -> tuple[list[ParticipantRecord], list[RowError]]:
        calls.append(1)
        return real(text, ev)

    monkeypatch.setattr(entries, "parse_participants", counting)
    return calls


async def test_restart_with_the_same_file_neither_parses_it_nor_stores_anything(
    tmp_path: Path, parses: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "log.db"
    first, stored = await start(db, CSV)
    assert stored == 3 and set(first.state.runners) == {"1", "2", "3"}
    assert "people.csv: row 5, race: unknown race 'nowhere'" in capsys.readouterr().err

    again, head = await start(db, CSV)
    assert len(parses) == 1  # the first start only
    assert head == stored
    assert again.state.runners["2"].p == first.state.runners["2"].p
    # the row it skipped is still reported, as on the first start
    assert "people.csv: row 5, race: unknown race 'nowhere'" in capsys.readouterr().err


async def test_a_changed_file_is_parsed_and_its_changed_row_stored(
    tmp_path: Path, parses: list[int]
) -> None:
    db = tmp_path / "log.db"
    _, stored = await start(db, CSV)
    rt, head = await start(db, CSV.replace("Bob,Brown", "Bob,Browne"))
    assert len(parses) == 2
    assert head == stored + 1
    assert rt.state.runners["2"].p.last_name == "Browne"


async def test_a_note_the_fold_has_not_reached_is_not_trusted(
    tmp_path: Path, parses: list[int]
) -> None:
    """A note copied along with a log that was then replaced by a shorter one (or any note
    ahead of the log) does not stop the file being seeded."""
    db = tmp_path / "log.db"
    log = SqliteEventLog(db)
    await log.append([gun()])
    name = entries.note_name(EntriesFile("people.csv", CSV), event(), code_version())
    await log.save_snapshot(name, "1000", b'{"entries": 3, "problems": []}')
    await log.close()
    rt, head = await start(db, CSV)
    assert len(parses) == 1 and head == 4 and set(rt.state.runners) == {"1", "2", "3"}


async def test_with_snapshots_off_the_file_is_still_seeded_once(
    tmp_path: Path, parses: list[int]
) -> None:
    db = tmp_path / "log.db"
    await start(db, CSV, snapshots=False)
    rt, head = await start(db, CSV, snapshots=False)
    assert len(parses) == 1 and head == 3 and len(rt.state.runners) == 3

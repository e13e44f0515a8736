"""What the link needs of a store, on every backend: records read back by key with their
offsets and bodies, and the durable outbox of writes waiting for the site. And the link's edge:
a batch with a record that cannot be read is refused whole, nothing stored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Opener
from linkrig import RaceDay
from websockets.sync.client import connect

from livetrack.domain.records import ChipRead, Sighting, encode
from livetrack.service import linkwire
from livetrack.store.base import StoredLookup
from livetrack.store.outbox import open_outbox


async def test_stored_reads_records_back_by_key(open_log: Opener) -> None:
    log: Any = open_log()
    assert isinstance(log, StoredLookup)
    a = ChipRead("r1", "finish", "C1", 1000, seq=1)
    b = Sighting("abc12345", "lake", "7", 2000)
    res = await log.append([a, b])
    got = await log.stored([a.key, b.key, "read:nobody:1", a.key])
    assert set(got) == {a.key, b.key}
    assert got[a.key] == (res[0].offset, encode(a))
    assert got[b.key] == (res[1].offset, encode(b))
    assert await log.stored([]) == {}


async def test_outbox_keeps_writes_in_order_until_done(open_log: Opener) -> None:
    log: Any = open_log()
    box = open_outbox(log)
    try:
        one = [Sighting("id-one-1", "lake", "7", 1000)]
        two = [Sighting("id-two-2", "lake", "8", 2000), Sighting("id-two-3", "lake", "9", 3000)]
        first = await box.put(one)
        second = await box.put(two)
        assert await box.count() == 2
        items = await box.peek()
        assert [i for i, _, _ in items] == [first, second]
        assert items[1][2] == [encode(r) for r in two]
        await box.done([first])
        assert [i for i, _, _ in await box.peek()] == [second]
        await box.done([second, "0"])  # an id already gone is harmless
        assert await box.count() == 0
    finally:
        await box.close()


async def test_outbox_survives_a_reopen(tmp_path: Path) -> None:
    from livetrack.store.sqlite import SqliteEventLog

    log = SqliteEventLog(tmp_path / "public.db")
    box = open_outbox(log)
    ident = await box.put([Sighting("kept-1234", "lake", "7", 1000)])
    await box.close()
    await log.close()
    log = SqliteEventLog(tmp_path / "public.db")
    box = open_outbox(log)
    try:
        assert [i for i, _, _ in await box.peek()] == [ident]
    finally:
        await box.close()
        await log.close()


@pytest.fixture
def day(tmp_path: Path) -> Any:
    d = RaceDay(tmp_path)
    try:
        yield d
    finally:
        d.close()


def test_a_batch_with_an_unreadable_record_is_refused_whole(day: RaceDay) -> None:
    day.wait_equal()
    before = day.public_keys()
    url = day.public.url.replace("http://", "ws://") + linkwire.PATH
    day.proxy.cut()  # the site's own link stays away meanwhile
    time.sleep(0.5)
    good = encode(ChipRead("x", "finish", "C1", 1000, seq=1)).decode()
    with connect(url, additional_headers={"Authorization": f"Bearer {day.site_token}"}) as ws:
        hello = linkwire.unpack(ws.recv(timeout=10))
        assert hello["t"] == "hello"
        ws.send(linkwire.pack("batch", recs=[["900001", good], ["900002", '{"t":"read"']]))
        refused = linkwire.unpack(ws.recv(timeout=10))
        assert refused["t"] == "refused" and "900002" in refused["detail"]
        with pytest.raises(Exception):  # noqa: B017 - closed by the server, 4400
            ws.recv(timeout=10)
        assert ws.close_code == linkwire.MALFORMED
    assert day.public_keys() == before
    day.proxy.heal()
    day.wait_equal()

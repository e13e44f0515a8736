"""A read's key covers what was read: the same (reader, seq) with another chip or time is a
conflict, answered ``rejected`` with a reason and counted on the timer's console, never a
silent duplicate; a decoder that restarts its numbering says so with a new ``session`` and
keeps its reads; logs written before keep their keys and bytes, so they fold identically."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import websockets
from conftest import PATIENCE_S
from factory import GUN, event, person
from server import serve

from livetrack.domain.records import ChipRead, decode, encode


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def read(seq: int, chip: str, at_s: float, **kw: Any) -> dict[str, Any]:
    return {"reader": "mat-x", "point": "finish", "chip": chip, "seq": seq,
            "time": GUN + int(at_s * 1000), **kw}  # fmt: skip


async def readers_panel(url: str, token: str, needle: str) -> str:
    async with websockets.connect(url + "/ws/staff", open_timeout=PATIENCE_S) as ws:
        await ws.send(json.dumps({"token": token, "topics": ["readers"]}))

        async def until() -> str:
            while True:
                msg = await ws.recv()
                assert isinstance(msg, str)
                if needle in msg:
                    return msg

        return await asyncio.wait_for(until(), PATIENCE_S)


def test_the_same_seq_with_another_chip_is_rejected_with_a_reason_and_counted(
    tmp_path: Path,
) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1900"), person("1901")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        reader = bearer(srv.tokens["reader"])
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=bearer(srv.tokens["timer"]))
        first = http.post("/api/v1/reads", json=[read(5, "C1900", 430)], headers=reader).json()
        assert first["results"][0]["status"] == "accepted"
        other = http.post("/api/v1/reads", json=[read(5, "C1901", 431)], headers=reader)
        assert other.status_code == 422, other.text
        verdict = other.json()["results"][0]
        assert verdict["status"] == "rejected"
        assert "seq 5" in verdict["reason"] and "C1900" in verdict["reason"]
        assert other.json()["rejected"] == 1 and other.json()["duplicate"] == 0
        again = http.post("/api/v1/reads", json=[read(5, "C1900", 430)], headers=reader).json()
        assert again["results"][0]["status"] == "duplicate"
        # the same seq twice in one body, with other chips: the second is the conflict
        both = http.post(
            "/api/v1/reads", json=[read(6, "C1901", 440), read(6, "C1900", 441)], headers=reader
        ).json()
        assert [r["status"] for r in both["results"]] == ["accepted", "rejected"]
        panel = asyncio.run(readers_panel(srv.ws_url, srv.tokens["timer"], "conflict"))
        assert "2 conflicting" in panel, panel


def test_a_decoder_that_restarts_its_numbering_keeps_its_reads_with_a_new_session(
    tmp_path: Path,
) -> None:
    people = [person(str(b)) for b in range(1, 7)]
    with (
        serve(event(), tmp_path / "log.db", people) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        reader = bearer(srv.tokens["reader"])
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=bearer(srv.tokens["timer"]))
        before = [read(s, f"C{s}", 420 + s, session="boot-1") for s in (1, 2, 3)]
        after = [read(s, f"C{s + 3}", 430 + s, session="boot-2") for s in (1, 2, 3)]
        for batch in (before, after):
            r = http.post("/api/v1/reads", json=batch, headers=reader).json()
            assert r["accepted"] == 3, r
        resent = http.post("/api/v1/reads", json=after, headers=reader).json()
        assert resent["duplicate"] == 3, resent
        srv.settle()
        rows = http.get("/api/v1/races/mile/standings").json()["rows"]
        assert sorted(r["bib"] for r in rows) == ["1", "2", "3", "4", "5", "6"]
        bad = http.post("/api/v1/reads", json=[read(9, "C1", 450, session=7)], headers=reader)
        assert bad.json()["results"][0]["reason"].startswith("session:")


def test_reads_written_before_keep_their_keys_and_bytes() -> None:
    """A log written by earlier releases: the same key, the same bytes, the same record."""
    stored = b'{"t":"read","v":1,"reader":"mat-x","point":"finish","chip":"C1900",' \
             b'"time_ms":1781427600000,"seq":5,"received_ms":1781427600100}'  # fmt: skip
    record = decode(stored)
    assert isinstance(record, ChipRead)
    assert record.key == "read:mat-x:5"
    assert encode(record) == stored
    unnumbered = ChipRead("mat-x", "finish", "C1900", 1781427600000)
    assert unnumbered.key == "read:mat-x:C1900:1781427600000"
    with_session = ChipRead("mat-x", "finish", "C1900", 1781427600000, 5, session="boot-2")
    assert with_session.key == "read:mat-x:5@boot-2"
    assert decode(encode(with_session)) == with_session

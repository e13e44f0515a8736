"""POST /api/v1/reads and the read API, against a real server on a free port."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import PATIENCE_S
from factory import GUN, event, person
from server import Running, serve

from livetrack.store.sqlite import SqliteEventLog


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Running]:
    people = [person("1"), person("2"), person("007", chips=("C7",))]
    with serve(event(), tmp_path / "log.db", people) as running:
        yield running


def post(srv: Running, body: object, role: str = "reader", **kw: object) -> httpx.Response:
    headers = {"authorization": f"Bearer {srv.tokens[role]}"} if role else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        srv.url + "/api/v1/reads", content=content, headers=headers, timeout=PATIENCE_S
    )


def good(chip: str = "C1", at_s: int = 500, point: str = "finish", seq: int | None = None) -> dict:
    return {"reader": "r1", "point": point, "chip": chip, "time": GUN + at_s * 1000, "seq": seq}


def stored(tmp: Path) -> int:
    import asyncio

    async def count() -> int:
        log = SqliteEventLog(tmp / "log.db")
        try:
            return await log.count()
        finally:
            await log.close()

    return asyncio.run(count())


def wait_for(predicate, timeout: float = PATIENCE_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_reads_are_accepted_then_duplicates_reported(srv: Running) -> None:
    r = post(srv, [good("C1", seq=1), good("C2", 510, seq=2)])
    assert r.status_code == 200
    assert [x["status"] for x in r.json()["results"]] == ["accepted", "accepted"]
    again = post(srv, {"reads": [good("C1", seq=1), good("C2", 510, seq=2)]})
    assert [x["status"] for x in again.json()["results"]] == ["duplicate", "duplicate"]


def test_reads_with_iso_times_and_no_seq_are_keyed_by_reader_chip_and_time(srv: Running) -> None:
    body = [{"reader": "r1", "point": "finish", "chip": "C1", "time": "2026-06-14T10:08:20+01:00"}]
    assert post(srv, body).json()["results"][0]["status"] == "accepted"
    assert post(srv, body).json()["results"][0]["status"] == "duplicate"


def test_gun_then_reads_show_in_standings_and_runner(srv: Running) -> None:
    gun = httpx.post(
        srv.url + "/api/v1/races/mile/gun",
        json={"time": GUN},
        headers={"authorization": f"Bearer {srv.tokens['timer']}"},
        timeout=PATIENCE_S,
    )
    assert gun.status_code == 200, gun.text
    post(srv, [good("C2", 480), good("C1", 500), good("C7", 490)])

    def standings() -> list[str]:
        r = httpx.get(srv.url + "/api/v1/races/mile/standings?point=finish", timeout=PATIENCE_S)
        return [row["bib"] for row in r.json()["rows"]]

    wait_for(lambda: len(standings()) == 3)
    assert standings() == ["2", "007", "1"]
    runner = httpx.get(srv.url + "/api/v1/runners/007", timeout=PATIENCE_S).json()
    finish = runner["splits"][-1]
    assert finish["gun"] == "8:10" and finish["position"] == 2
    races = httpx.get(srv.url + "/api/v1/races", timeout=PATIENCE_S).json()["races"]
    assert races[0]["status"] == "finished"  # everyone who started is in
    assert races[0]["clock"] == "8:20"  # stopped at the last finish, not running on for ever


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not JSON"),
        (b"\xff\xfe[1]", 400, "not UTF-8"),
        (b'{"reads": 5}', 400, "JSON array"),
        (b"[]", 400, "no reads"),
        (b'{"reads": [], "extra": 1}', 400, "nothing else"),
    ],
)
def test_unreadable_bodies_get_a_4xx_and_store_nothing(
    srv: Running, tmp_path: Path, body: bytes, status: int, words: str
) -> None:
    before = stored(tmp_path)
    r = post(srv, body)
    assert r.status_code == status
    assert words in r.json()["error"]
    assert stored(tmp_path) == before


def test_body_over_the_size_limit_is_refused(srv: Running, tmp_path: Path) -> None:
    before = stored(tmp_path)
    r = post(srv, b"[" + b" " * 1_100_000 + b"]")
    assert r.status_code == 413
    assert stored(tmp_path) == before


def test_more_than_the_maximum_batch_is_refused(srv: Running, tmp_path: Path) -> None:
    before = stored(tmp_path)
    r = post(srv, [good("C1", seq=i) for i in range(5001)])
    assert r.status_code == 413 and "limit is 5000" in r.json()["error"]
    assert stored(tmp_path) == before


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"reader": "r1", "point": "moon", "chip": "C1", "time": GUN}, "unknown timing point"),
        (
            {"reader": "r1", "point": "finish", "chip": "C1", "time": "2026-06-14T10:00:00"},
            "no UTC offset",
        ),
        ({"reader": "r1", "point": "finish", "chip": "C1", "time": 0}, "epoch milliseconds"),
        (
            {"reader": "r1", "point": "finish", "chip": "C1", "time": "2001-01-01T00:00:00Z"},
            "too far",
        ),
        ({"reader": "r1", "point": "finish", "chip": 42, "time": GUN}, "chip: must be"),
        ({"reader": "r1", "point": "finish", "chip": "C1", "time": GUN, "seq": "7"}, "seq:"),
        (
            {"reader": "r1", "point": "finish", "chip": "C1", "time": GUN, "colour": 1},
            "unknown field",
        ),
        ("a string", "must be an object"),
    ],
)
def test_a_bad_read_is_rejected_with_its_reason_and_the_good_ones_kept(
    srv: Running, tmp_path: Path, bad: object, reason: str
) -> None:
    before = stored(tmp_path)
    r = post(srv, [good("C1", seq=99), bad])
    assert r.status_code == 200
    first, second = r.json()["results"]
    assert first["status"] == "accepted"
    assert second["status"] == "rejected" and reason in second["reason"]
    assert stored(tmp_path) == before + 1


def test_a_body_of_only_bad_reads_is_422(srv: Running, tmp_path: Path) -> None:
    before = stored(tmp_path)
    r = post(srv, [{"reader": "r1", "point": "moon", "chip": "C1", "time": GUN}])
    assert r.status_code == 422
    assert r.json()["rejected"] == 1
    assert stored(tmp_path) == before


@pytest.mark.parametrize(("role", "status"), [("", 401), ("marshal:half", 403)])
def test_ingest_needs_a_reader_token(srv: Running, tmp_path: Path, role: str, status: int) -> None:
    before = stored(tmp_path)
    r = post(srv, [good()], role=role)
    assert r.status_code == status and r.json()["error"]
    assert stored(tmp_path) == before


def test_an_unknown_token_is_401(srv: Running) -> None:
    r = httpx.post(
        srv.url + "/api/v1/reads",
        json=[good()],
        headers={"authorization": "Bearer lt_nope"},
        timeout=PATIENCE_S,
    )
    assert r.status_code == 401 and "unknown or revoked" in r.json()["error"]


def test_gun_needs_a_timer_token(srv: Running) -> None:
    headers = {"authorization": f"Bearer {srv.tokens['reader']}"}
    r = httpx.post(srv.url + "/api/v1/races/mile/gun", json={}, headers=headers, timeout=PATIENCE_S)
    assert r.status_code == 403


def test_read_api_answers_404_for_what_does_not_exist(srv: Running) -> None:
    with httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http:
        assert http.get("/api/v1/runners/999").status_code == 404
        assert http.get("/api/v1/races/nope/standings").status_code == 404
        assert http.get("/api/v1/races/mile/standings?point=moon").status_code == 404
        assert http.get("/api/v1/races/mile/standings?limit=x").status_code == 400


def test_a_cross_site_origin_is_refused_on_ingest_and_gun(srv: Running, tmp_path: Path) -> None:
    before = stored(tmp_path)
    evil = {"origin": "https://evil.example"}
    r = post(srv, [good()])
    assert r.status_code == 200
    reader = {"authorization": f"Bearer {srv.tokens['reader']}", **evil}
    r = httpx.post(
        srv.url + "/api/v1/reads", json=[good("C2", seq=77)], headers=reader, timeout=PATIENCE_S
    )
    assert r.status_code == 403 and "cross-site" in r.json()["error"]
    timer = {"authorization": f"Bearer {srv.tokens['timer']}", **evil}
    r = httpx.post(srv.url + "/api/v1/races/mile/gun", json={}, headers=timer, timeout=PATIENCE_S)
    assert r.status_code == 403
    assert stored(tmp_path) == before + 1

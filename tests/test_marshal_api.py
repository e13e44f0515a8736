"""The marshal's API over real sockets: sightings, sweeps, undo, the staff socket, and what
every write path refuses (missing, wrong and other-role tokens; other sites)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from conftest import PATIENCE_S
from factory import GUN, event, person
from server import recv_until, serve, tokens_for


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def sighting(bib: str, at_s: float, point: str = "half", ident: str = "") -> dict[str, Any]:
    return {
        "id": ident or str(uuid.uuid4()),
        "point": point,
        "bib": bib,
        "time": GUN + int(at_s * 1000),
    }


def applied(http: httpx.Client) -> int:
    count: int = http.get("/healthz").json()["applied"]
    return count


def test_a_sighting_is_stored_once_with_the_server_time_and_the_marshals_name(
    tmp_path: Path,
) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        marshal = bearer(srv.tokens["marshal:half"])
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=bearer(srv.tokens["timer"]))
        s = sighting("1", 300)
        first = http.post("/api/v1/sightings", json=[s], headers=marshal)
        assert first.status_code == 200, first.text
        assert first.json()["results"] == [{"key": f"sighting:{s['id']}", "status": "accepted"}]
        again = http.post("/api/v1/sightings", json=[s], headers=marshal)
        assert again.json()["results"][0]["status"] == "duplicate"
        split = http.get("/api/v1/runners/1").json()["splits"][1]
        assert split["source"] == "manual" and split["time_ms"] == GUN + 300_000
        history = http.get("/api/v1/history/1", headers=bearer(srv.tokens["timer"])).text
        assert "marshal half" in history and history.count("seen at half") == 1


def test_a_marshal_can_undo_its_own_sighting_but_not_another_checkpoints(tmp_path: Path) -> None:
    toks = tokens_for(("half", "finish"))
    with (
        serve(event(), tmp_path / "log.db", [person("1")], tokens=toks) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=bearer(srv.tokens["timer"]))
        s = sighting("1", 300)
        http.post("/api/v1/sightings", json=[s], headers=bearer(srv.tokens["marshal:half"]))
        undo = {"id": str(uuid.uuid4()), "kind": "undo", "target": f"sighting:{s['id']}"}
        other = http.post(
            "/api/v1/corrections", json=undo, headers=bearer(srv.tokens["marshal:finish"])
        )
        assert other.status_code == 403
        assert http.get("/api/v1/runners/1").json()["splits"][1].get("source") == "manual"
        mine = http.post(
            "/api/v1/corrections", json=undo, headers=bearer(srv.tokens["marshal:half"])
        )
        assert mine.status_code == 200, mine.text
        assert "source" not in http.get("/api/v1/runners/1").json()["splits"][1]


def test_a_malformed_batch_stores_nothing_and_says_which_item(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        before = applied(http)
        bad = [sighting("1", 300), {**sighting("2", 310), "time": "yesterday"}]
        r = http.post("/api/v1/sightings", json=bad, headers=bearer(srv.tokens["marshal:half"]))
        assert r.status_code == 422 and r.json()["index"] == 1 and "time" in r.json()["error"]
        r = http.post(
            "/api/v1/sightings", content=b"{not json", headers=bearer(srv.tokens["marshal:half"])
        )
        assert r.status_code == 400
        assert applied(http) == before


def _writes(points: tuple[str, ...] = ("half",)) -> list[tuple[str, dict[str, Any] | list[Any]]]:
    ident = str(uuid.uuid4())
    return [
        ("/api/v1/sightings", [sighting("1", 300, "finish")]),
        ("/api/v1/sweeps", {"id": ident, "point": "finish", "time": GUN + 900_000}),
        (
            "/api/v1/corrections",
            {"id": ident, "kind": "void", "bib": "1", "point": "finish", "reason": "x"},
        ),
        ("/api/v1/status", {"id": ident, "bib": "1", "status": "DQ", "reason": "x"}),
        ("/api/v1/assign", {"id": ident, "chip": "X9", "bib": "1"}),
        ("/api/v1/races/mile/gun", {"time": GUN}),
    ]


@pytest.mark.parametrize("who", ["missing", "wrong", "reader", "marshal:half"])
def test_every_write_path_refuses_missing_wrong_and_other_role_tokens(
    tmp_path: Path, who: str
) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        before = applied(http)
        headers = {
            "missing": {},
            "wrong": bearer("lt_not-a-real-token"),
            "reader": bearer(srv.tokens["reader"]),
            "marshal:half": bearer(srv.tokens["marshal:half"]),
        }[who]
        for path, body in _writes():
            r = http.post(path, json=body, headers=headers)
            expected = 401 if who in ("missing", "wrong") else 403
            assert r.status_code == expected, (path, r.status_code, r.text)
            assert r.json()["error"], path
        assert applied(http) == before


def test_a_marshal_may_report_dnf_but_not_disqualify(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        m = bearer(srv.tokens["marshal:half"])
        body = {"id": str(uuid.uuid4()), "bib": "1", "status": "DQ", "reason": "cut"}
        assert http.post("/api/v1/status", json=body, headers=m).status_code == 403
        body = {"id": str(uuid.uuid4()), "bib": "1", "status": "DNF", "reason": "knee"}
        assert http.post("/api/v1/status", json=body, headers=m).status_code == 200
        assert http.get("/api/v1/runners/1").json()["status"] == "DNF"


def test_a_revoked_token_can_no_longer_write(tmp_path: Path) -> None:
    from livetrack.domain.records import TokenRecord
    from livetrack.web.auth import token_hash

    toks, seed = tokens_for()
    seed.append(TokenRecord(token_hash(toks["marshal:half"]), "revoked", revoked=True))
    with (
        serve(event(), tmp_path / "log.db", [person("1")], tokens=(toks, seed)) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        r = http.post(
            "/api/v1/sightings", json=[sighting("1", 3)], headers=bearer(toks["marshal:half"])
        )
        assert r.status_code == 401


def test_a_cross_site_origin_is_refused_and_the_own_origin_accepted(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        before = applied(http)
        m = bearer(srv.tokens["marshal:half"])
        t = bearer(srv.tokens["timer"])
        for origin in ("https://evil.example", "null", f"http://127.0.0.1:{srv.port + 1}"):
            for path, body, headers in [
                ("/api/v1/sightings", [sighting("1", 300)], m),
                ("/api/v1/sweeps", {"id": str(uuid.uuid4()), "point": "half", "time": GUN}, m),
                (
                    "/api/v1/status",
                    {"id": str(uuid.uuid4()), "bib": "1", "status": "DNF", "reason": "x"},
                    t,
                ),
                ("/api/v1/assign", {"id": str(uuid.uuid4()), "chip": "Z", "bib": "1"}, t),
                (
                    "/api/v1/corrections",
                    {
                        "id": str(uuid.uuid4()),
                        "kind": "void",
                        "bib": "1",
                        "point": "half",
                        "reason": "x",
                    },
                    t,
                ),
            ]:
                r = http.post(path, json=body, headers={**headers, "origin": origin})
                assert r.status_code == 403 and "cross-site" in r.json()["error"], (path, origin)
        assert applied(http) == before
        ok = http.post(
            "/api/v1/sightings", json=[sighting("1", 300)], headers={**m, "origin": srv.url}
        )
        assert ok.status_code == 200


async def test_staff_socket_refuses_other_sites_and_other_checkpoints(tmp_path: Path) -> None:
    with serve(event(), tmp_path / "log.db", [person("1")]) as srv:
        url = srv.ws_url + "/ws/staff"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(
                url, origin="https://evil.example", open_timeout=PATIENCE_S
            ):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
        hello = {"token": srv.tokens["marshal:half"], "topics": ["marshal:finish"]}
        async with websockets.connect(url, origin=srv.url, open_timeout=PATIENCE_S) as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps(hello))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), PATIENCE_S)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with websockets.connect(url, origin=srv.url, open_timeout=PATIENCE_S) as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"token": "lt_nope", "topics": ["marshal:half"]}))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), PATIENCE_S)


async def test_marshal_lists_show_the_overdue_runner_until_a_marshal_sees_them(
    tmp_path: Path,
) -> None:
    people = [person("1", first_name="Ada"), person("2", first_name="Bo")]
    toks = tokens_for(("finish",))
    with serve(event(), tmp_path / "log.db", people, tokens=toks) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=PATIENCE_S) as http:
            await http.post(
                "/api/v1/races/mile/gun", json={"time": GUN}, headers=bearer(srv.tokens["timer"])
            )
            reads = [  # Ada passed half at 3:20 (due at the finish near 7:00); Bo finished
                {"reader": "r1", "point": "half", "chip": "C1", "time": GUN + 200_000},
                {"reader": "r1", "point": "half", "chip": "C2", "time": GUN + 190_000},
                {"reader": "r1", "point": "finish", "chip": "C2", "time": GUN + 1_000_000},
            ]
            r = await http.post("/api/v1/reads", json=reads, headers=bearer(srv.tokens["reader"]))
            assert r.json()["accepted"] == 3
            hello = {"token": srv.tokens["marshal:finish"], "topics": ["marshal:finish"]}
            async with websockets.connect(srv.ws_url + "/ws/staff", open_timeout=PATIENCE_S) as ws:
                await ws.send(json.dumps(hello))

                # The reads were acknowledged when durable; the fold may apply them a moment
                # later, so read frames until the region shows them (or time out and fail).
                def overdue_of(msg: str) -> str:
                    return msg.split("Overdue", 1)[1].split("Expected soon", 1)[0]

                async def until_overdue() -> str:
                    while True:
                        msg = await recv_until(ws, 'id="t-marshal-finish"')
                        if "#1" in overdue_of(msg):
                            return overdue_of(msg)

                overdue = await asyncio.wait_for(until_overdue(), PATIENCE_S)
                assert "Ada" in overdue and "#2" not in overdue
                r = await http.post(
                    "/api/v1/sightings",
                    json=[sighting("1", 1_010, "finish")],
                    headers=bearer(srv.tokens["marshal:finish"]),
                )
                assert r.status_code == 200
                frag = await recv_until(ws, "Nobody overdue")
                passed = frag.split("Passed here", 1)[1]
                assert "#1" in passed and "manual" in passed

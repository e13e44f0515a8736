"""Obstacle judgements over real sockets: a marshal judges at its own obstacle, the boards
and results rank by final time, a runner who has not reached the obstacle is refused with the
reason, and undo follows the marshal's author rules."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from conftest import PATIENCE_S
from obstacle_event import GUN, event, person
from server import serve, tokens_for


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def reads(*items: tuple[str, str, float]) -> list[dict[str, Any]]:
    return [
        {"reader": "r1", "point": point, "chip": chip, "time": GUN + int(at_s * 1000), "seq": None}
        for chip, point, at_s in items
    ]


def judgement(bib: str, outcome: str, point: str = "wall", at_s: float = 120) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "point": point,
        "bib": bib,
        "outcome": outcome,
        "time": GUN + int(at_s * 1000),
    }


def order(http: httpx.Client) -> list[tuple[str, str, str]]:
    board = http.get("/api/v1/races/ocr/standings").json()
    return [(r["bib"], r["gun"], r["penalty"]) for r in board["rows"]]


def race_day(srv_url: str, http: httpx.Client, tokens: dict[str, str]) -> None:
    """Two runners past the wall and home: 2 finishes ten seconds behind 1."""
    http.post("/api/v1/races/ocr/gun", json={"time": GUN}, headers=bearer(tokens["timer"]))
    body = reads(("C1", "wall", 100), ("C2", "wall", 104), ("C1", "finish", 300))
    body += reads(("C2", "finish", 310))
    answer = http.post("/api/v1/reads", json=body, headers=bearer(tokens["reader"]))
    assert answer.status_code == 200, answer.text


def test_a_failed_judgement_reranks_the_board_and_shows_raw_penalty_and_final_time(
    tmp_path: Path,
) -> None:
    toks = tokens_for(("wall", "net"))
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")], tokens=toks) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        race_day(srv.url, http, srv.tokens)
        assert order(http) == [("1", "5:00", ""), ("2", "5:10", "")]
        j = judgement("1", "failed")
        answer = http.post(
            "/api/v1/judgements", json=[j], headers=bearer(srv.tokens["marshal:wall"])
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"] == [{"key": f"judgement:{j['id']}", "status": "accepted"}]
        assert order(http) == [("2", "5:10", ""), ("1", "5:30", "+0:30")]
        results = http.get("/results/ocr.json").json()["results"]
        first = {r["bib"]: r for r in results}["1"]
        assert (first["position"], first["gun_time"], first["penalty"]) == (2, "0:05:30", "0:00:30")
        assert first["raw_gun_ms"] == 300_000 and first["penalties"] == "The Wall failed +0:30"
        csv = http.get("/results/ocr.csv").text.splitlines()
        assert csv[0].startswith(
            "position,bib,name,gender,category,club,status,gun_time,chip_time,raw_time,penalty,penalties"
        )
        assert csv[2].split(",")[1] == "1" and "0:05:00,0:00:30,The Wall failed +0:30" in csv[2]
        card = http.get("/api/v1/runners/1").json()
        finish = card["splits"][-1]
        assert (finish["gun"], finish["raw"], finish["penalty"]) == ("5:30", "5:00", "+0:30")
        assert card["penalties"] == "The Wall failed +0:30"
        history = http.get("/api/v1/history/1", headers=bearer(srv.tokens["timer"])).text
        assert "judged failed at The Wall (+0:30)" in history and "marshal wall #" in history


def test_a_runner_who_has_not_reached_the_obstacle_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    toks = tokens_for(("wall", "net"))
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")], tokens=toks) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        http.post("/api/v1/races/ocr/gun", json={"time": GUN}, headers=bearer(srv.tokens["timer"]))
        http.post(
            "/api/v1/reads", json=reads(("C1", "wall", 100)), headers=bearer(srv.tokens["reader"])
        )
        before = http.get("/healthz").json()["applied"]
        net = bearer(srv.tokens["marshal:net"])
        # both in one request: the first is fine, the second refused, so neither is stored
        body = [judgement("1", "cleared", "wall"), judgement("1", "failed", "net")]
        refused = http.post("/api/v1/judgements", json=body, headers=bearer(srv.tokens["timer"]))
        assert refused.status_code == 409
        assert refused.json() == {
            "error": "bib 1 has not reached Cargo Net yet (no passing at net or after it)",
            "index": 1,
        }
        alone = http.post("/api/v1/judgements", json=[judgement("2", "failed", "net")], headers=net)
        assert alone.status_code == 409 and "bib 2 has not reached" in alone.json()["error"]
        assert http.get("/healthz").json()["applied"] == before
        # once the runner is seen further on (the net's mat missed him), he may be judged there
        http.post(
            "/api/v1/reads", json=reads(("C1", "finish", 300)), headers=bearer(srv.tokens["reader"])
        )
        later = http.post("/api/v1/judgements", json=[judgement("1", "failed", "net")], headers=net)
        assert later.status_code == 200, later.text
        assert order(http) == [("1", "6:00", "+1:00")]


def test_judgements_are_checked_at_the_edge(tmp_path: Path) -> None:
    toks = tokens_for(("wall", "net"))
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")], tokens=toks) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        race_day(srv.url, http, srv.tokens)
        wall = bearer(srv.tokens["marshal:wall"])
        post = lambda body, h=wall: http.post("/api/v1/judgements", json=body, headers=h)  # noqa: E731
        at_net = post([judgement("1", "failed", "net")])
        assert at_net.status_code == 403 and "for 'wall', not 'net'" in at_net.text
        bad = post([judgement("1", "fell in")])
        assert bad.status_code == 422 and bad.json()["error"].startswith("outcome: one of cleared")
        nobody = post([judgement("77", "failed")])
        assert (
            nobody.status_code == 422 and nobody.json()["error"] == "bib: no runner with bib '77'"
        )
        finish = post([judgement("1", "failed", "finish")], bearer(srv.tokens["timer"]))
        assert finish.json()["error"] == "point: Obstacle Course has no obstacle at 'finish'"
        no_token = http.post("/api/v1/judgements", json=[judgement("1", "failed")])
        assert no_token.status_code == 401
        reader = post([judgement("1", "failed")], bearer(srv.tokens["reader"]))
        assert reader.status_code == 403
        assert order(http) == [("1", "5:00", ""), ("2", "5:10", "")]


def test_a_marshal_undoes_its_own_judgement_and_the_latest_judgement_wins(tmp_path: Path) -> None:
    toks = tokens_for(("wall", "net"))
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")], tokens=toks) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        race_day(srv.url, http, srv.tokens)
        wall = bearer(srv.tokens["marshal:wall"])
        missed = judgement("1", "missed")
        http.post("/api/v1/judgements", json=[missed], headers=wall)
        assert [b for b, _, _ in order(http)] == ["2"]
        assert http.get("/api/v1/runners/1").json()["status"] == "DQ"
        failed = judgement("1", "failed", at_s=125)
        http.post("/api/v1/judgements", json=[failed], headers=wall)
        assert order(http) == [("2", "5:10", ""), ("1", "5:30", "+0:30")]
        undo = {"id": str(uuid.uuid4()), "kind": "undo", "target": f"judgement:{failed['id']}"}
        other = http.post(
            "/api/v1/corrections", json=undo, headers=bearer(srv.tokens["marshal:net"])
        )
        assert other.status_code == 403
        mine = http.post("/api/v1/corrections", json=undo, headers=wall)
        assert mine.status_code == 200, mine.text
        assert [b for b, _, _ in order(http)] == ["2"]  # the missed judgement counts again
        history = http.get("/api/v1/history/1", headers=bearer(srv.tokens["timer"])).text
        assert "judged missed at The Wall (DQ)" in history and "undone" in history

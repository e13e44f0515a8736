"""Each token is its own author: marshals undo only their own entries and report DNF only for
unfinished runners of races through their checkpoint; reader tokens may be bound to reader ids
and timing points, and reads outside the binding are refused."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from conftest import PATIENCE_S, REPO
from factory import GUN, event, person
from server import serve, tokens_for

from livetrack.web.auth import issue


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def new_id() -> str:
    return str(uuid.uuid4())


def two_unlabelled_marshals() -> tuple[dict[str, str], list[Any]]:
    toks, records = tokens_for(())
    for name in ("a", "b"):
        toks[name], rec = issue("marshal", "half")  # no label: the default
        records.append(rec)
    return toks, records


def test_two_unlabelled_marshals_at_one_point_undo_only_their_own_entries(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")],
              tokens=two_unlabelled_marshals()) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):  # fmt: skip
        a, b = bearer(srv.tokens["a"]), bearer(srv.tokens["b"])
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=bearer(srv.tokens["timer"]))
        seen = {"id": new_id(), "point": "half", "bib": "1", "time": GUN + 300_000}
        assert http.post("/api/v1/sightings", json=[seen], headers=a).status_code == 200
        dnf = {"id": new_id(), "bib": "2", "status": "DNF", "reason": "stopped at the lake"}
        assert http.post("/api/v1/status", json=dnf, headers=a).status_code == 200
        history = http.get("/api/v1/history/1", headers=bearer(srv.tokens["timer"])).text
        for target in (f"sighting:{seen['id']}", f"status:{dnf['id']}"):
            undo = {"id": new_id(), "kind": "undo", "target": target}
            other = http.post("/api/v1/corrections", json=undo, headers=b)
            assert other.status_code == 403, (target, other.text)
            mine = http.post("/api/v1/corrections", json={**undo, "id": new_id()}, headers=a)
            assert mine.status_code == 200, (target, mine.text)
        srv.settle()
        runner = http.get("/api/v1/runners/2").json()
        assert runner["status"] == "ok"
        # the author is the token, not its role: the two marshals are told apart
        b_seen = {"id": new_id(), "point": "half", "bib": "1", "time": GUN + 301_000}
        http.post("/api/v1/sightings", json=[b_seen], headers=b)
        srv.settle()
        history = http.get("/api/v1/history/1", headers=bearer(srv.tokens["timer"])).text
        authors = {line.split("·")[-1].strip() for line in history.splitlines() if "·" in line}
        assert len({x for x in authors if x.startswith("marshal")}) >= 2, history


def test_a_marshal_reports_dnf_only_for_unfinished_runners_of_races_through_its_point(
    tmp_path: Path,
) -> None:
    people = [person("1"), person("2"), person("3", race="loop")]
    with (
        serve(event(), tmp_path / "log.db", people) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        timer = bearer(srv.tokens["timer"])
        marshal = bearer(srv.tokens["marshal:half"])
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=timer)
        http.post("/api/v1/races/loop/gun", json={"time": GUN}, headers=timer)
        reads = [{"reader": "r1", "point": "finish", "chip": "C1", "time": GUN + 430_000}]
        http.post("/api/v1/reads", json=reads, headers=bearer(srv.tokens["reader"]))
        srv.settle()

        def dnf(bib: str) -> httpx.Response:
            body = {"id": new_id(), "bib": bib, "status": "DNF", "reason": "seen stopping"}
            return http.post("/api/v1/status", json=body, headers=marshal)

        finished = dnf("1")
        assert finished.status_code == 403 and "finished" in finished.text
        other_course = dnf("3")
        assert other_course.status_code == 403 and "half" in other_course.text
        assert dnf("2").status_code == 200
        srv.settle()
        assert [http.get(f"/api/v1/runners/{b}").json()["status"] for b in "123"] == [
            "ok", "DNF", "ok"
        ]  # fmt: skip
        # the timer may still do what a marshal may not
        body = {"id": new_id(), "bib": "3", "status": "DNF", "reason": "retired"}
        assert http.post("/api/v1/status", json=body, headers=timer).status_code == 200


def test_a_reader_token_bound_by_the_cli_posts_only_its_readers_at_its_points(
    tmp_path: Path,
) -> None:
    db = tmp_path / "log.db"
    made = subprocess.run(
        [sys.executable, "-m", "livetrack.cli", "token", "create", "--role", "reader",
         "--reader", "mat-x", "--reader", "mat-y", "--point", "finish", "--db", str(db)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    bound = bearer(made.stdout.split()[0])
    with (
        serve(event(), db, [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        reads = [
            {"reader": "mat-x", "point": "finish", "chip": "C1", "time": GUN + 430_000},
            {"reader": "mat-y", "point": "finish", "chip": "C1", "time": GUN + 430_100},
            {"reader": "mat-z", "point": "finish", "chip": "C1", "time": GUN + 430_200},
            {"reader": "mat-x", "point": "half", "chip": "C1", "time": GUN + 200_000},
        ]
        r = http.post("/api/v1/reads", json=reads, headers=bound)
        assert r.status_code == 200, r.text
        verdicts = [(x["status"], x.get("reason", "")) for x in r.json()["results"]]
        assert [v[0] for v in verdicts] == ["accepted", "accepted", "rejected", "rejected"]
        assert verdicts[2][1].startswith("reader:") and "mat-z" in verdicts[2][1]
        assert verdicts[3][1].startswith("point:") and "half" in verdicts[3][1]
        # an unbound reader token may still post for any reader
        free = http.post("/api/v1/reads", json=reads[2:3], headers=bearer(srv.tokens["reader"]))
        assert free.json()["accepted"] == 1

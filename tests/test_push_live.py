"""Push alerts through real servers: subscriptions over HTTP, a simulated mile played in over
the reads API, alerts decided by two processes sharing one log, and a local push service over
real HTTP that checks every VAPID signature and decrypts every payload."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from pushservice import Browser, PushService
from server import serve

from livetrack import sim
from livetrack.domain.event import Event, load_event_text
from livetrack.domain.records import ParticipantRecord

LEAD_S = 120


def today_event() -> Event:
    text = resources.files("livetrack.demo").joinpath("heaton.toml").read_text("utf-8")
    day = datetime.now(load_event_text(text).tz).date()
    return load_event_text(text.replace('date = "2026-11-23"', f'date = "{day}"'))


def mile_field(event: Event, n: int = 30) -> list[ParticipantRecord]:
    return [p for p in sim.make_participants(event, {"mile": n}) if p.race == "mile"]


def put(url: str, browser: Browser, follows: list[dict[str, Any]], **kw: Any) -> httpx.Response:
    body = {"subscription": browser.json(), "follows": follows, **kw}
    return httpx.put(f"{url}/api/v1/push/subscription", json=body, timeout=10)


def test_subscription_is_checked_at_the_edge(tmp_path: Path) -> None:
    event = today_event()
    with PushService() as svc, serve(event, tmp_path / "log.db", mile_field(event)) as srv:
        key = httpx.get(f"{srv.url}/api/v1/push").json()["key"]
        b = svc.subscribe(key)
        ok = put(srv.url, b, [{"bib": "1", "checkpoint": "finish", "lead_s": 120}])
        assert ok.status_code == 200, ok.text
        bad = {
            "no runner with bib": [{"bib": "nobody"}],
            "not on the course": [{"bib": "1", "checkpoint": "lake"}],
            "lead_s": [{"bib": "1", "lead_s": 5}],
            "not both": [{"bib": "1", "checkpoint": "half", "distance_m": 300}],
        }
        for why, follows in bad.items():
            resp = put(srv.url, b, follows)
            assert resp.status_code == 400 and why in resp.json()["error"], (why, resp.text)
        broken = dict(b.json(), keys={"p256dh": "AAAA", "auth": b.json()["keys"]["auth"]})
        resp = httpx.put(
            f"{srv.url}/api/v1/push/subscription", json={"subscription": broken, "follows": []}
        )
        assert resp.status_code == 400 and "P-256" in resp.json()["error"]
        plain = dict(b.json(), endpoint="http://push.example.org/x")
        resp = httpx.put(f"{srv.url}/api/v1/push/subscription", json={"subscription": plain})
        assert resp.status_code == 400 and "https" in resp.json()["error"]
        assert httpx.put(f"{srv.url}/api/v1/push/subscription", content=b"{").status_code == 400
        where = httpx.get(f"{srv.url}/api/v1/runners/1/where?checkpoint=finish").json()
        assert [c["id"] for c in where["checkpoints"]] == ["half", "finish"]
        assert where["eta"] is None  # not started: nothing to go on yet
        for q, status in (("distance=abc", 400), ("distance=99999", 400), ("checkpoint=lake", 400)):
            assert httpx.get(f"{srv.url}/api/v1/runners/1/where?{q}").status_code == status, q
        assert httpx.get(f"{srv.url}/api/v1/runners/nobody/where").status_code == 404
        # unfollowing everyone removes the subscription; DELETE says whether one was there
        gone = put(srv.url, b, [])
        assert gone.json()["removed"] is True
        resp = httpx.request(
            "DELETE", f"{srv.url}/api/v1/push/subscription", json={"endpoint": b.endpoint}
        )
        assert resp.json() == {"removed": False}


def _play(srv: Any, actions: list[sim.Action], step_ms: int, pause_s: float) -> None:
    reader = {"authorization": f"Bearer {srv.tokens['reader']}"}
    timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
    i = 0
    now = actions[0].at_ms
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        while i < len(actions):
            now += step_ms
            reads = []
            while i < len(actions) and actions[i].at_ms <= now:
                a = actions[i]
                if a.kind == "gun":
                    body = {"wave": a.wave, "time": a.at_ms}
                    assert c.post(
                        f"/api/v1/races/{a.race}/gun", json=body, headers=timer
                    ).is_success
                else:
                    reads.append(a.read)
                i += 1
            if reads:
                assert c.post("/api/v1/reads", json=reads, headers=reader).is_success
            srv.settle()
            time.sleep(pause_s)


def test_two_processes_send_each_alert_once_at_the_right_moment(tmp_path: Path) -> None:
    event = today_event()
    people = mile_field(event)
    gun = int(time.time() * 1000) + 60_000  # ahead of the wall clock: the race's clock leads
    actions = sim.plan(event, people, {"mile": gun}, seed=5, miss_rate=0.0)
    # runner 4 stops after halfway: none of their finish reads come
    chip4 = next(p.chips[0] for p in people if p.bib == "4")
    actions = [
        a
        for a in actions
        if not (a.read and a.read["chip"] == chip4 and str(a.read["point"]).startswith("finish"))
    ]
    db = tmp_path / "log.db"
    with (
        PushService() as svc,
        serve(event, db, people, alert_every_s=0.05) as a,
        serve(event, db, alert_every_s=0.05, tokens=(a.tokens, [])) as b,
    ):
        key = httpx.get(f"{a.url}/api/v1/push").json()["key"]
        assert httpx.get(f"{b.url}/api/v1/push").json()["key"] == key  # one VAPID identity
        followed = ["2", "4", "9", "13"]
        browsers = {bib: svc.subscribe(key) for bib in followed}
        for bib, br in browsers.items():
            follows = [{"bib": bib, "checkpoint": "finish", "lead_s": LEAD_S}]
            assert put(b.url, br, follows).status_code == 200
        _play(a, actions, step_ms=5_000, pause_s=0.12)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not svc.to(browsers["4"].endpoint):
            time.sleep(0.1)
        state = a.app.state.runtime.state  # type: ignore[attr-defined]
        metrics = httpx.get(f"{a.url}/metrics").text + httpx.get(f"{b.url}/metrics").text
    assert svc.rejected == []
    for bib, br in browsers.items():
        got = svc.to(br.endpoint)
        tags = [m["tag"] for m in got]
        assert len(tags) == len(set(tags)), (bib, tags)  # never twice, two deciders or not
        finish = state.runners[bib].passings.get("finish")
        if bib == "4":
            assert finish is None
            assert tags.count("4:overdue:finish") == 1, tags
            assert not any(t.endswith(":finished") for t in tags)
            continue
        assert finish is not None
        assert f"{bib}:near:finish" in tags and f"{bib}:passed:half" in tags, tags
        near = next(m for m in got if m["tag"] == f"{bib}:near:finish")
        assert " minute" in near["title"] and near["title"].endswith("from you")
        assert near["body"].startswith("Expected at Finish at")
        # its moment: before the runner arrived, within a minute of arrival minus the lead
        assert near["at"] < finish.time_ms
        assert abs(near["at"] - (finish.time_ms - LEAD_S * 1000)) < 60_000, near
    assert 'livetrack_push_alerts_total{outcome="sent"}' in metrics


def test_a_subscription_the_push_service_says_is_gone_is_removed(tmp_path: Path) -> None:
    event = today_event()
    people = mile_field(event)
    with (
        PushService() as svc,
        serve(event, tmp_path / "log.db", people, alert_every_s=0.05) as srv,
    ):
        key = httpx.get(f"{srv.url}/api/v1/push").json()["key"]
        kept, gone = svc.subscribe(key), svc.subscribe(key)
        for b in (kept, gone):
            assert put(srv.url, b, [{"bib": "3", "checkpoint": "finish"}]).status_code == 200
        svc.gone(gone.endpoint)  # the browser unsubscribed, or the push service dropped it
        now = int(time.time() * 1000)
        timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
        reader = {"authorization": f"Bearer {srv.tokens['reader']}"}
        chip = next(p.chips[0] for p in people if p.bib == "3")
        gun = {"time": now - 300_000}
        assert httpx.post(f"{srv.url}/api/v1/races/mile/gun", json=gun, headers=timer).is_success
        read = [{"reader": "mat-half", "point": "half", "chip": chip, "time": now - 5000}]
        assert httpx.post(f"{srv.url}/api/v1/reads", json=read, headers=reader).is_success
        push = srv.app.state.push  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        left: list[Any] = []
        while time.monotonic() < deadline:
            left = asyncio.run_coroutine_threadsafe(push.store.all(), srv.loop).result(10)
            if len(left) == 1 and svc.to(kept.endpoint):
                break
            time.sleep(0.1)
        assert [s.endpoint for s in left] == [kept.endpoint]
        assert [m["tag"] for m in svc.to(kept.endpoint)] == ["3:passed:half"]
        assert push.sender.counters.gone == 1


def test_a_sprint_in_rounds_has_nowhere_to_stand_and_a_kept_spot_is_dropped(
    tmp_path: Path,
) -> None:
    """A track race in rounds (start and finish only) offers no "Where I stand": its runner
    page has no panel, ``where`` says so, and a spot a supporter's page kept from before is
    dropped from the subscription (the athlete is still followed)."""
    from factory import person
    from meetkit import entries, meet_event

    event = meet_event()
    with (
        PushService() as svc,
        serve(event, tmp_path / "log.db", [*entries(event), person("1")]) as srv,
    ):
        sprint = httpx.get(f"{srv.url}/api/v1/runners/101/where?checkpoint=finish")
        assert sprint.status_code == 200
        assert sprint.json()["stands"] is False and sprint.json()["checkpoints"] == []
        assert sprint.json()["eta"] is None
        road = httpx.get(f"{srv.url}/api/v1/runners/1/where").json()
        assert road["stands"] is True
        assert [c["id"] for c in road["checkpoints"]] == ["half", "finish"]
        assert "data-stands=" not in httpx.get(f"{srv.url}/runners/101").text
        assert 'data-stands="1"' in httpx.get(f"{srv.url}/runners/1").text

        key = httpx.get(f"{srv.url}/api/v1/push").json()["key"]
        b = svc.subscribe(key)
        follows = [
            {"bib": "101", "checkpoint": "finish", "lead_s": 120},
            {"bib": "1", "checkpoint": "half", "lead_s": 120},
        ]
        resp = put(srv.url, b, follows)
        assert resp.status_code == 200 and resp.json()["follows"] == 2, resp.text
        push = srv.app.state.push  # type: ignore[attr-defined]
        [sub] = asyncio.run_coroutine_threadsafe(push.store.all(), srv.loop).result(10)
        kept = {f.bib: (f.checkpoint, f.distance_m) for f in sub.follows}
        assert kept == {"101": ("", None), "1": ("half", None)}

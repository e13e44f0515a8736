"""Push alerts across a crash: real ``livetrack serve`` processes on one log (SQLite, or a
redis-server of the test's own), killed with SIGKILL while their alerts wait for a push service
that answers 503, and started again. The stand-in push service (real HTTP) checks every VAPID
signature and decrypts every payload."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import PATIENCE_S, RedisServer
from factory import EVENT_TOML
from pushservice import Browser, PushService
from test_multiprocess import PROCESS_WAIT_S, Event, Server, cleanup, cli, make_event, start, token

from livetrack.domain.records import AlertOutcome, AlertSent, decode

#: The mile's runners in the test event (bib i runs the mile when i % 3 == 1).
MILE = ["1", "4", "7", "10"]


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    yield from cleanup()


@pytest.fixture(params=["sqlite", "redis"])
def log_args(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    if request.param == "sqlite":
        return ["--db", str(tmp_path / "log.db")]
    server: RedisServer = request.getfixturevalue("redis_server")
    return ["--redis", server.url]


def today_event(tmp: Path, log_args: list[str]) -> Event:
    ev = make_event(tmp, log_args, runners=30)
    today = datetime.now(ZoneInfo("Europe/London")).date().isoformat()
    ev.toml.write_text(EVENT_TOML.replace('date = "2026-06-14"', f'date = "{today}"'))
    return ev


def alert_records(ev: Event) -> tuple[list[AlertSent], list[AlertOutcome]]:
    """The claims and outcomes in the event's log, read from the store itself (the test
    event's Redis stream is ``livetrack:test``)."""
    flag, where = ev.log_args
    if flag == "--db":
        conn = sqlite3.connect(where)
        try:
            rows = conn.execute(
                "SELECT body FROM records WHERE type IN ('alert', 'alert-outcome') ORDER BY seq"
            ).fetchall()
        finally:
            conn.close()
        bodies = [body for (body,) in rows]
    else:
        import redis

        client = redis.Redis.from_url(where)
        try:
            bodies = [fields[b"b"] for _, fields in client.xrange("livetrack:test")]
        finally:
            client.close()
    found = [decode(body) for body in bodies]
    return (
        [r for r in found if isinstance(r, AlertSent)],
        [r for r in found if isinstance(r, AlertOutcome)],
    )


def metric(server: Server, outcome: str) -> float:
    """``livetrack_push_alerts_total`` for ``outcome``, or the gauge ``livetrack_push_NAME``."""
    text = httpx.get(f"{server.url}/metrics", timeout=PATIENCE_S).text
    line = (
        f"livetrack_push_{outcome} "
        if outcome in ("leading", "unsettled")
        else f'livetrack_push_alerts_total{{outcome="{outcome}"}} '
    )
    return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])


def wait_for(what: str, ok: object) -> None:
    deadline = time.monotonic() + PROCESS_WAIT_S
    while time.monotonic() < deadline:
        if ok():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not in {PROCESS_WAIT_S}s: {what}")


def kill_with_alerts_queued(
    ev: Event, servers: list[Server], svc: PushService, standby: bool = False
) -> dict[str, Browser]:
    """One process claims a "passed halfway" alert for each of the mile's runners and keeps
    retrying them (the push service answers 503) until it is killed with SIGKILL. With
    ``standby``, a second process started just after it runs beside it all along (the
    servers' last)."""
    a = start(ev)
    servers.append(a)
    if standby:
        wait_for("the first process sending alerts", lambda: metric(a, "leading") == 1)
        servers.append(start(ev))
    timer, reader = token(ev, "timer"), token(ev, "reader")
    key = httpx.get(f"{a.url}/api/v1/push", timeout=PATIENCE_S).json()["key"]
    browsers = {bib: svc.subscribe(key) for bib in MILE}
    for bib, b in browsers.items():
        svc.script(b.endpoint, [503] * 100)
        body = {"subscription": b.json(), "follows": [{"bib": bib}], "kinds": ["passed"]}
        r = httpx.put(f"{a.url}/api/v1/push/subscription", json=body, timeout=PATIENCE_S)
        assert r.status_code == 200, r.text
    now = int(time.time() * 1000)
    r = httpx.post(
        f"{a.url}/api/v1/races/mile/gun",
        json={"time": now - 300_000},
        headers={"authorization": f"Bearer {timer}"},
        timeout=PATIENCE_S,
    )
    assert r.status_code == 200, r.text
    reads = [
        {"reader": "mat-half", "point": "half", "chip": f"C{bib}", "time": now - 5000, "seq": i}
        for i, bib in enumerate(MILE)
    ]
    r = httpx.post(
        f"{a.url}/api/v1/reads",
        json=reads,
        headers={"authorization": f"Bearer {reader}"},
        timeout=PATIENCE_S,
    )
    assert r.is_success, r.text
    wait_for(
        "every alert tried once and refused with 503",
        lambda: all(svc.tried.get(b.endpoint, 0) >= 1 for b in browsers.values()),
    )
    if standby:
        assert metric(servers[-1], "leading") == 0  # it decides and sends nothing meanwhile
    a.kill9()
    for b in browsers.values():
        svc.script(b.endpoint, [])  # the push service is well again
    claims, outcomes = alert_records(ev)
    assert sorted(c.bib for c in claims) == sorted(MILE) and outcomes == []
    assert svc.delivered == []
    return browsers


@pytest.mark.parametrize("next_one", ["started after the kill", "running beside it"])
def test_alerts_queued_when_a_process_is_killed_are_sent_once_by_the_next(
    tmp_path: Path, log_args: list[str], servers: list[Server], next_one: str
) -> None:
    ev = today_event(tmp_path, log_args)
    with PushService() as svc:
        if next_one == "running beside it":
            browsers = kill_with_alerts_queued(ev, servers, svc, standby=True)
            b = servers[-1]
        else:
            browsers = kill_with_alerts_queued(ev, servers, svc)
            b = start(ev)
            servers.append(b)
        wait_for("an outcome for every claim", lambda: len(alert_records(ev)[1]) == len(MILE))
        resent = metric(b, "resent")
        # a second restart finds every claim settled: nothing is sent again
        b.stop()
        c = start(ev)
        servers.append(c)
        wait_for("the next process sending alerts", lambda: metric(c, "leading") == 1)
        again = [metric(c, name) for name in ("unsettled", "resent", "expired")]
        c.stop()
    assert svc.rejected == []
    for bib, br in browsers.items():
        assert [m["tag"] for m in svc.to(br.endpoint)] == [f"{bib}:passed:half"]
        assert svc.to(br.endpoint)[0]["title"].endswith("passed Halfway")
    claims, outcomes = alert_records(ev)
    assert len(claims) == len(MILE)
    assert sorted((o.bib, o.kind, o.outcome) for o in outcomes) == sorted(
        (bib, "passed:half", "delivered") for bib in MILE
    )
    assert resent == len(MILE)
    assert again == [0, 0, 0]


def test_an_alert_whose_moment_passed_while_no_process_ran_is_marked_expired_not_sent(
    tmp_path: Path, log_args: list[str], servers: list[Server]
) -> None:
    ev = today_event(tmp_path, log_args)
    with PushService() as svc:
        browsers = kill_with_alerts_queued(ev, servers, svc)
        tried = dict(svc.tried)
        # while no process runs, a read ten minutes on is imported: the event's clock is past
        # the alerts' moment (a passing is news for five minutes) when the next one starts
        dump = tmp_path / "later.csv"
        dump.write_text(f"C999,{int(time.time() * 1000) + 600_000}\n")
        out = cli(
            "import-reads", str(dump), "--protocol", "generic", "--point", "half",
            "--reader", "usb-half", "--event", str(ev.toml), *ev.log_args,
        )  # fmt: skip
        assert out.returncode == 0 and "1 accepted" in out.stdout, out.stdout + out.stderr
        b = start(ev)
        servers.append(b)
        wait_for("an outcome for every claim", lambda: len(alert_records(ev)[1]) == len(MILE))
        expired = metric(b, "expired")
        b.stop()
    assert all(svc.to(br.endpoint) == [] for br in browsers.values())
    assert svc.tried == tried  # nothing was tried after the kill
    _, outcomes = alert_records(ev)
    assert sorted((o.bib, o.outcome) for o in outcomes) == sorted((bib, "expired") for bib in MILE)
    assert expired == len(MILE)

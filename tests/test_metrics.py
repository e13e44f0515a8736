"""/metrics (Prometheus text) and /healthz, against real servers on free ports."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from conftest import PATIENCE_S
from factory import GUN, event, person
from prometheus_client.parser import text_string_to_metric_families
from server import Running, serve


def scrape(srv: Running) -> dict[str, float]:
    r = httpx.get(srv.url + "/metrics", timeout=PATIENCE_S)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return out


def post(srv: Running, reads: list[dict[str, object]]) -> httpx.Response:
    return httpx.post(
        srv.url + "/api/v1/reads",
        json=reads,
        headers={"authorization": f"Bearer {srv.tokens['reader']}"},
        timeout=PATIENCE_S,
    )


def finish(chip: str, seq: int) -> dict[str, object]:
    return {"reader": "r1", "point": "finish", "chip": chip, "time": GUN + 500_000, "seq": seq}


def test_metrics_count_this_apps_reads_and_two_apps_do_not_clash(tmp_path: Path) -> None:
    people = [person("1"), person("2")]
    with (
        serve(event(), tmp_path / "a.db", people) as a,
        serve(event(), tmp_path / "b.db", people) as b,
    ):
        before = scrape(a)
        assert before["livetrack_reads_total{status=accepted}"] == 0
        assert before["livetrack_log_lag_records"] == 0
        assert before["livetrack_caught_up"] == 1
        assert before["livetrack_records_applied_total"] >= 2
        assert post(a, [finish("C1", 1), finish("C2", 2)]).json()["accepted"] == 2
        assert post(a, [finish("C1", 1), {"reader": "r1"}]).status_code == 200
        after = scrape(a)
        assert after["livetrack_reads_total{status=accepted}"] == 2
        assert after["livetrack_reads_total{status=duplicate}"] == 1
        assert after["livetrack_reads_total{status=rejected}"] == 1
        applied = before["livetrack_records_applied_total"]
        deadline = time.monotonic() + PATIENCE_S
        while scrape(a)["livetrack_records_applied_total"] < applied + 2:
            assert time.monotonic() < deadline, "the two new reads were never applied"
            time.sleep(0.05)
        other = scrape(b)  # a second app in the same process: its own registry, its own counts
        assert other["livetrack_reads_total{status=accepted}"] == 0
        for name in (
            "livetrack_ws_clients",
            "livetrack_topics",
            "livetrack_tick_render_seconds",
            "livetrack_frames_skipped_total",
            "livetrack_snapshot_age_seconds",
            "livetrack_renders_total",
            "livetrack_hub_ticks_total",
            "livetrack_hub_messages_total",
            "livetrack_hub_flush_seconds_total",
        ):
            assert name in after, name


def test_healthz_is_200_with_zero_lag_when_caught_up(tmp_path: Path) -> None:
    with serve(event(), tmp_path / "a.db", [person("1")]) as a:
        r = httpx.get(a.url + "/healthz", timeout=PATIENCE_S)
        assert r.status_code == 200
        body = r.json()
        assert body["caught_up"] is True and body["lag"] == 0 and body["log_error"] is None


async def test_metrics_say_whether_websockets_are_written_directly(tmp_path: Path) -> None:
    import websockets

    with serve(event(), tmp_path / "log.db", [person("1")]) as srv:
        before = scrape(srv)
        assert before["livetrack_ws_direct_write_available"] == 1  # this uvicorn and Starlette
        url = srv.ws_url + "/live?topics=race:mile"
        async with websockets.connect(url, compression=None, open_timeout=PATIENCE_S) as ws:
            await ws.recv()  # the region's first frame
            after = scrape(srv)
        direct = "livetrack_ws_subscriptions_total{write=direct}"
        assert after[direct] == before[direct] + 1
        assert after["livetrack_ws_subscriptions_total{write=asgi}"] == 0

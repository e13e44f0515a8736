"""The fan-out benchmark's load and one livetrack configuration's phases (see
``fanout.py``)."""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from benchkit import free_port, wait_ready
from fanout_clients import Clients
from fanout_setup import (
    HIST_MS,
    RACE,
    TOPICS,
    children,
    cpu_s,
    hub_counters,
    own_cpu_s,
    rss_kb,
    start_server,
    token,
)

# -- load ---------------------------------------------------------------------------------------


async def post_reads(
    url: str,
    tok: str,
    start: int,
    count: int,
    rate: float,
    posted: Any,
    bibs: list[str],
    stats: dict[str, Any] | None = None,
    batch: int = 1,
    age_ms: int = 0,
) -> float:
    """Post finish reads of runners ``start..start+count`` at ``rate``/s, ``batch`` reads to a
    request, each with a chip time ``age_ms`` before it is posted; returns the rate achieved.
    Each read's wall time goes into ``posted`` just before its request is sent; the requests'
    own p50/p99 round trips (the durable append included) go into ``stats``."""
    stats = {} if stats is None else stats
    headers = {"authorization": f"Bearer {tok}"}
    took: list[float] = []
    inflight: set[asyncio.Task[None]] = set()
    errors = 0

    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers, limits=limits) as http:

        def read(k: int, now: float) -> dict[str, Any]:
            chip = f"LT{int(bibs[k]):05d}"
            return {"reader": "bench", "point": "finish", "chip": chip,
                    "time": int(now * 1000) - age_ms, "seq": k + 1}  # fmt: skip

        async def one(first: int, n: int) -> None:
            nonlocal errors
            now = time.time()
            reads = [read(k, now) for k in range(first, first + n)]
            for k in range(first, first + n):
                posted[k] = now
            try:
                r = await http.post("/api/v1/reads", json=reads)
                ok = r.status_code == 200 and r.json().get("accepted") == n
            except httpx.HTTPError:
                ok = False
            took.append(time.time() - now)
            if not ok:
                errors += 1

        t0 = time.monotonic()
        for i in range(0, count, batch):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(start + i, min(batch, count - i)))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        await asyncio.gather(*inflight)
        elapsed = time.monotonic() - t0
    if errors:
        print(f"fanout: {errors} posts not accepted", file=sys.stderr)
    took.sort()
    if took:
        stats["post_p50_ms"] = round(took[len(took) // 2] * 1000)
        stats["post_p99_ms"] = round(took[int(len(took) * 0.99)] * 1000)
    return count / elapsed if elapsed > 0 else 0.0


def percentile(hist: array.array[int], q: float) -> float:
    total = sum(hist)
    if not total:
        return float("nan")
    want = q * total
    acc = 0
    for ms, n in enumerate(hist):
        acc += n
        if acc >= want:
            return float(ms)
    return float(HIST_MS)


# -- one livetrack configuration ----------------------------------------------------------------


@dataclass
class Phase:
    """One load on one server: the hub's tick (``None``: serve's own), reads per second,
    for how long, and reads per request."""

    tick: float | None
    rate: float
    seconds: float
    batch: int = 1
    #: Time each runner's first showing (else the clients only count frames and bytes, as
    #: they do against the ceiling, so that both cost the clients the same per frame).
    latency: bool = True
    #: Push subscriptions stored before the clients connect, with endpoints on the stand-in
    #: push service (``push``: its pipe), each following one of the runners who finish in
    #: the phase.
    push_subs: int = 0
    #: The server sends push messages from its own process (``serve --push-in-process``).
    push_in_process: bool = False
    push: Connection | None = None
    #: How many runners the subscriptions follow, one each in turn (the phase's finishers
    #: first); no fewer than the phase's finishers.
    push_field: int = 0
    #: How old each read's chip time is when posted (ms): finish alerts are due once a finish
    #: has stood a minute, so reads a minute old make them due during the phase.
    read_age_ms: int = 0
    #: Where the phase's log goes (None: the run's folder).
    log_dir: Path | None = None


def run_livetrack(
    args: argparse.Namespace,
    clients: Clients,
    posted: Any,
    bibs: list[str],
    processes: int,
    redis: str | None,
    tmp: Path,
    people: Path,
    phase: Phase,
) -> dict[str, Any]:
    """Start the server(s) with ``phase``'s tick, connect the clients, post ``phase``'s load,
    and measure what the clients got."""
    for k in range(len(posted)):
        posted[k] = 0.0
    run_id = time.monotonic_ns()
    if phase.log_dir is not None:
        tmp = phase.log_dir
    if redis and "stream=" not in redis:  # a fresh stream for every run
        redis += ("&" if "?" in redis else "?") + f"stream=livetrack-fanout-{run_id}"
    log_args = ["--redis", redis] if redis else ["--db", str(tmp / f"log-{run_id}.db")]
    reader, timer = token(log_args, "reader"), token(log_args, "timer")
    ports = [free_port() for _ in range(processes)]
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:  # one at a time: the first seeds the participants, the rest find them
            extra = ("--push-in-process",) if phase.push_in_process else ()
            servers.append(start_server(log_args, people, port, args.ws, phase.tick, extra))
            wait_ready(f"http://127.0.0.1:{port}")
        base_url = f"http://127.0.0.1:{ports[0]}"
        gun_ms = int(time.time() * 1000) - 3_600_000  # an hour ago: any finish now is plausible
        httpx.post(
            base_url + f"/api/v1/races/{RACE}/gun", json={"time": gun_ms},
            headers={"authorization": f"Bearer {timer}"}, timeout=30,
        ).raise_for_status()  # fmt: skip
        if phase.push_subs:
            t_store = time.monotonic()
            store_subscriptions(tmp / f"log-{run_id}.db", phase, bibs, base_url)
            out_push: dict[str, Any] = {"store_s": round(time.monotonic() - t_store, 1)}
        # a few finishers first, so the snapshot shows a board
        asyncio.run(
            post_reads(base_url, reader, 0, 5, 50.0, posted, bibs, age_ms=phase.read_age_ms)
        )
        time.sleep(1.0)
        before = [rss_kb(s.pid) for s in servers]
        urls = [f"ws://127.0.0.1:{p}/live?topics={TOPICS}" for p in ports]
        t_connect = time.monotonic()
        got = clients.connect(urls, args.clients)
        connect_s = time.monotonic() - t_connect
        time.sleep(2.0)
        after = [rss_kb(s.pid) for s in servers]
        share = args.clients / processes
        per_conn = [(a - b) / share for a, b in zip(after, before, strict=True)]
        out: dict[str, Any] = {
            "processes": processes,
            "log": "redis" if redis else "sqlite",
            "clients": args.clients,
            "connected": got["snapshots"],
            "connect_failed": got["failed"],
            "connect_s": round(connect_s, 1),
            "server_kb_per_conn": round(max(per_conn), 1),
            "server_rss_mb": [round(a / 1024) for a in after],
        }
        if args.connect_only:
            clients.ask("close")
            return out
        start = 5
        clients.ask("track", [start if phase.latency else None] * len(clients.pipes))
        count = int(phase.rate * phase.seconds)
        http_urls = [f"http://127.0.0.1:{p}" for p in ports]
        hub0 = hub_counters(http_urls)
        t0 = clients.tally()
        cpu0 = [cpu_s(x.pid) for x in servers]
        kids0 = sum(own_cpu_s(c) for x in servers for c in children(x.pid))
        posting: dict[str, Any] = {}
        if phase.push is not None:
            phase.push.send(("stats", None))
            push0 = phase.push.recv()
        rate = asyncio.run(
            post_reads(
                base_url, reader, start, count, phase.rate, posted, bibs, posting, phase.batch,
                phase.read_age_ms,
            )
        )  # fmt: skip
        if not phase.latency:  # throughput while offered the load, not the wind-down after
            t1, cpu1 = clients.tally(), [cpu_s(x.pid) for x in servers]
            hub1 = hub_counters(http_urls)
        time.sleep(2.0)  # the last tick, the sockets
        if phase.latency:
            t1, cpu1 = clients.tally(), [cpu_s(x.pid) for x in servers]
            hub1 = hub_counters(http_urls)
        reports = clients.ask("report")
        clients.ask("close")
        kids1 = sum(own_cpu_s(c) for x in servers for c in children(x.pid))
        metrics_text = httpx.get(base_url + "/metrics", timeout=30).text if phase.push_subs else ""
        if phase.push_subs:  # of server_cpu_s: the push sender's process
            out_push["sender_cpu_s"] = round(kids1 - kids0, 1)
        if phase.push is not None:
            phase.push.send(("stats", None))
            push1 = phase.push.recv()
            out_push["service"] = {
                k: push1[k] - push0[k] for k in ("requests", "accepted", "rejected", "cpu_s")
            }
            out_push["service"]["cpu_s"] = round(out_push["service"]["cpu_s"], 1)
            if push1["reasons"]:
                out_push["service"]["reasons"] = push1["reasons"]
    finally:
        for s in servers:
            s.terminate()
        for s in servers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.wait(30)
    if phase.push_subs:
        out["push"] = {**out_push, **push_counters(metrics_text)}
    hist = array.array("q", bytes(8 * HIST_MS))
    ups: list[int] = []
    sample = b""
    kept: list[bytes] = []
    first = b""
    for r in reports:
        if len(r["kept"]) > len(kept):
            kept = r["kept"]
        first = first or r["first"]
        h = array.array("q")
        h.frombytes(r["hist"])
        for i, v in enumerate(h):
            if v:
                hist[i] += v
        ups.extend(r["upto"])
        if len(r["sample"]) > len(sample):
            sample = r["sample"]
    last = start + count - 1
    latency: dict[str, float] = {}
    if phase.latency:
        latency = {q: percentile(hist, v) for q, v in (("p50_ms", 0.5), ("p99_ms", 0.99))}
        latency["max_ms"] = percentile(hist, 1.0)
    frames = t1["frames"] - t0["frames"]
    span = t1["t"] - t0["t"]
    per_client_min = max(1, got["snapshots"]) * span / 60
    out.update(
        {
            "passings_per_s": round(rate, 1),
            # what each spectator downloaded: wire bytes (frame headers included, compressed
            # where the connection negotiated it) and the messages' own size, per minute
            "kb_per_spectator_minute": round((t1["wire"] - t0["wire"]) / 1000 / per_client_min, 1),
            "payload_kb_per_spectator_minute": round(
                (t1["bytes"] - t0["bytes"]) / 1000 / per_client_min, 1
            ),
            "delivered_frames_per_s": round(frames / span),
            "delivered_mb_per_s": round((t1["bytes"] - t0["bytes"]) / span / 1e6, 1),
            "mean_frame_bytes": round((t1["bytes"] - t0["bytes"]) / max(1, frames)),
            "server_cpu_s": round(sum(cpu1) - sum(cpu0), 1),
            "server_cpu_us_per_frame": round((sum(cpu1) - sum(cpu0)) * 1e6 / max(1, frames), 1),
            **posting,
            **latency,
            "renders_per_s": round((hub1["renders"] - hub0["renders"]) / span),
            # the hub's ticks and the messages it built for the clients' topic set (one group
            # here): a client can get at most one a tick; and the share of the phase the
            # hub's tick spent rendering and writing
            "ticks_per_s": round((hub1["ticks"] - hub0["ticks"]) / span, 1),
            "messages_per_s": round((hub1["messages"] - hub0["messages"]) / span, 1),
            "hub_busy": round((hub1["flush_s"] - hub0["flush_s"]) / span, 2),
            # fragments the hub had for a client but replaced by a newer one before the client
            # could take it: above zero, the hub offered more than the clients read
            "skipped_per_s": round((hub1["skipped"] - hub0["skipped"]) / span),
            "shown_all": sum(u >= last for u in ups),
            "_sample": sample,
            "_kept": kept,
            "_first": first,
        }
    )
    return out


#: What the latency phase reports under its own names once the saturation phase's figures take
#: the plain ones (the ratio compares the saturation phase with the ceiling).
LATENCY_RENAMES = {
    "delivered_frames_per_s": "latency_phase_frames_per_s",
    "delivered_mb_per_s": "latency_phase_mb_per_s",
    "mean_frame_bytes": "latency_phase_mean_frame_bytes",
    "server_cpu_s": "latency_phase_server_cpu_s",
    "server_cpu_us_per_frame": "latency_phase_cpu_us_per_frame",
}
SATURATION_KEYS = (
    "passings_per_s", "delivered_frames_per_s", "delivered_mb_per_s", "mean_frame_bytes",
    "server_cpu_s", "server_cpu_us_per_frame", "post_p50_ms", "post_p99_ms", "renders_per_s",
    "kb_per_spectator_minute", "payload_kb_per_spectator_minute",
    "ticks_per_s", "messages_per_s", "hub_busy", "skipped_per_s", "shown_all", "connected",
)  # fmt: skip


def store_subscriptions(db: Path, phase: Phase, bibs: list[str], base_url: str) -> None:
    """``phase.push_subs`` subscriptions in the log's file, each following one of the runners
    who finish during the phase, made by the stand-in push service for the server's VAPID key
    (read from ``GET /api/v1/push`` as a page does): each has its own P-256 key pair and auth
    secret there, so the service can check the signature and decrypt every message."""
    from livetrack.store.subscriptions import Follow, SqliteSubscriptions, Subscription

    assert phase.push is not None
    server_key = httpx.get(base_url + "/api/v1/push", timeout=30).raise_for_status().json()["key"]
    phase.push.send(("subscribe", (server_key, phase.push_subs)))
    made: list[dict[str, Any]] = phase.push.recv()
    # the field they follow: its first runners finish in the phase, the rest later
    field = bibs[5 : 5 + max(phase.push_field, int(phase.rate * phase.seconds))]

    async def put_all() -> None:
        store = SqliteSubscriptions(str(db))
        try:
            for i, browser in enumerate(made):
                sub = Subscription(
                    browser["endpoint"],
                    browser["keys"]["p256dh"],
                    browser["keys"]["auth"],
                    (Follow(field[i % len(field)], "finish", None, 180),),
                )
                await store.put(sub)
        finally:
            await store.close()

    asyncio.run(put_all())


def push_counters(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in re.finditer(
        r'^livetrack_push_alerts_total\{outcome="(\w+)"\} ([0-9.e+]+)$', text, re.M
    ):
        out[m.group(1)] = float(m.group(2))
    m = re.search(r"^livetrack_push_watches ([0-9.e+]+)$", text, re.M)
    if m:
        out["watches"] = float(m.group(1))
    return out

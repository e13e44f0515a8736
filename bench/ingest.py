"""Ingest benchmark: durable reads/s over HTTP, fold records/s, and restart time.

Starts a real ``livetrack serve`` process on a fresh SQLite log, posts reads in batches of 100
from concurrent clients, then folds the stored log in-process (as a restarting service does,
and one record at a time as a live one does), then restarts the server on the full log and
times how long until ``/healthz`` says ready. Then the same ingest and restart
into a Redis stream: ``--redis URL``, or by default a private ``redis-server`` on a free port
with ``appendonly yes`` and ``appendfsync always`` (every acknowledged read fsynced). Prints one
JSON object last.

    python bench/ingest.py [--reads 250000] [--clients 8] [--redis URL | --no-redis]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from benchkit import free_port, start_redis, wait_ready

from livetrack.cli import demo_event
from livetrack.domain.records import Record, decode
from livetrack.domain.state import RaceState
from livetrack.service.runtime import CATCH_UP_RECORDS
from livetrack.sim import make_participants, plan

ROOT = Path(__file__).resolve().parents[1]


def write_participants(path: Path, n: int) -> None:
    event = demo_event()
    people = make_participants(event, {"tenk": n}, seed=3)
    lines = ["bib,chip,first_name,last_name,gender,age,club,race,wave"]
    for p in people:
        age = "" if p.age is None else p.age
        lines.append(
            f"{p.bib},{p.chips[0]},{p.first_name},{p.last_name},{p.gender},{age},"
            f'"{p.club}",{p.race},{p.wave}'
        )
    path.write_text("\n".join(lines) + "\n")


def make_reads(total: int, runners: int, gun_ms: int) -> list[dict[str, object]]:
    """About ``total`` reads of a simulated 10K in race order (double reads, a backup mat,
    the occasional miss), from ``runners`` entrants."""
    event = demo_event()
    people = make_participants(event, {"tenk": runners}, seed=3)
    actions = plan(event, people, {"tenk": gun_ms}, seed=5)
    return [a.read for a in actions if a.read is not None][:total]


def start_server(
    log_args: list[str], event: Path, people: Path, port: int
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "livetrack.cli", "serve", "--event", str(event),
            "--participants", str(people), *log_args, "--port", str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )  # fmt: skip


def token(log_args: list[str], event: Path, role: str) -> str:
    out = subprocess.run(
        [
            sys.executable, "-m", "livetrack.cli", "token", "create", "--role", role,
            "--event", str(event), *log_args,
        ],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return out.stdout.split()[0]


def run(
    log_args: list[str], event: Path, people: Path, args: argparse.Namespace
) -> tuple[int, float, float, float]:
    """Ingest ``args.reads`` reads into a fresh log; then restart on it, replaying it all and
    then from the snapshot the first server saved. Returns reads posted, durable reads/s, and
    seconds until each restarted server is ready."""
    reader = token(log_args, event, "reader")
    timer = token(log_args, event, "timer")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(log_args, event, people, port)
    try:
        wait_ready(url, timeout=600)
        gun = int(time.time() * 1000)
        httpx.post(
            url + "/api/v1/races/tenk/gun", json={"time": gun},
            headers={"authorization": f"Bearer {timer}"},
        ).raise_for_status()  # fmt: skip
        reads = make_reads(args.reads, args.runners, gun)
        elapsed = asyncio.run(post_all(url, reader, reads, args.clients))
    finally:
        server.terminate()
        server.wait(60)
    port2 = free_port()
    server = start_server([*log_args, "--no-snapshots"], event, people, port2)
    try:
        ready = wait_ready(f"http://127.0.0.1:{port2}", timeout=600)
    finally:
        server.terminate()
        server.wait(60)
    port3 = free_port()  # the first server saved a snapshot of its fold when it stopped
    server = start_server(log_args, event, people, port3)
    try:
        ready_snapshot = wait_ready(f"http://127.0.0.1:{port3}", timeout=600)
    finally:
        server.terminate()
        server.wait(60)
    return len(reads), len(reads) / elapsed, ready, ready_snapshot


async def post_all(url: str, tok: str, reads: list[dict[str, object]], clients: int) -> float:
    """Post ``reads`` in batches of 100 from ``clients`` keep-alive connections; every answer
    is checked. The requests are encoded before the clock starts and the client speaks plain
    HTTP/1.1 over asyncio streams, so the load generator (on the same two cores) takes as
    little CPU from the server as it can."""
    host, _, port = url.removeprefix("http://").partition(":")
    bodies = [orjson.dumps(reads[i : i + 100]) for i in range(0, len(reads), 100)]
    requests = [
        (
            f"POST /api/v1/reads HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {tok}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(b)}\r\n\r\n"
        ).encode()
        + b
        for b in bodies
    ]
    queue = list(reversed(requests))
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while queue:
                writer.write(queue.pop())
                status = await reader.readline()
                if not status.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"server answered {status!r}")
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                answer = orjson.loads(await reader.readexactly(length))
                accepted += answer["accepted"]
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    if accepted != len(reads):
        raise RuntimeError(f"accepted {accepted} of {len(reads)}")
    return elapsed


def fold_rate(db: Path) -> tuple[int, float, float, float]:
    """Records in the log; fold records/s as the service folds a log it catches up with
    (``apply_all`` over pages of ``CATCH_UP_RECORDS``); the same with decoding; and records/s
    folded one at a time (``apply``, as a live process folds each new record)."""
    import sqlite3

    conn = sqlite3.connect(db)
    bodies = [row[0] for row in conn.execute("SELECT body FROM records ORDER BY seq")]
    conn.close()
    t0 = time.perf_counter()
    records = [decode(b) for b in bodies]
    t_decode = time.perf_counter() - t0
    t_fold = min(_catch_up(records) for _ in range(3))
    state = RaceState(demo_event())
    t0 = time.perf_counter()
    for r in records:
        state.apply(r)
    t_one = time.perf_counter() - t0
    n = len(records)
    return n, n / t_fold, n / (t_fold + t_decode), n / t_one


def _catch_up(records: list[Record]) -> float:
    state = RaceState(demo_event())
    t0 = time.perf_counter()
    for i in range(0, len(records), CATCH_UP_RECORDS):
        state.apply_all(records[i : i + CATCH_UP_RECORDS])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=250_000)
    ap.add_argument("--runners", type=int, default=27_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--redis", help="a Redis URL (default: a private redis-server with AOF)")
    ap.add_argument("--no-redis", action="store_true", help="measure the SQLite log only")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="livetrack-bench-"))
    db = tmp / "log.db"
    from livetrack.demo.run import write_event

    event = write_event(tmp / "heaton.toml")  # dated today: guns fire now
    people = tmp / "people.csv"
    write_participants(people, args.runners)
    n_reads, durable, ready, ready_snap = run(["--db", str(db)], event, people, args)
    print(f"sqlite: posted {n_reads} reads: {durable:,.0f} durable reads/s")
    n, fold, decode_fold, one_by_one = fold_rate(db)
    print(f"fold: {n} records, {fold:,.0f} records/s ({decode_fold:,.0f}/s with decoding)")
    print(f"fold one record at a time: {one_by_one:,.0f} records/s")
    print(f"sqlite: restart on {n} records (no snapshot): ready in {ready:.2f} s")
    print(f"sqlite: restart on {n} records from the shutdown snapshot: ready in {ready_snap:.2f} s")
    redis_result: dict[str, object] = {}
    if not args.no_redis:
        redis_proc = None
        url = args.redis
        if not url:
            (tmp / "redis").mkdir()
            redis_proc, url = start_redis(tmp / "redis")
        stream = f"livetrack:bench-{int(time.time())}"  # a fresh stream on a shared Redis
        try:
            log_args = ["--redis", f"{url}?stream={stream}"]
            _, r_durable, r_ready, r_ready_snap = run(log_args, event, people, args)
        finally:
            if redis_proc is not None:
                redis_proc.terminate()
                redis_proc.wait(30)
        print(f"redis: {r_durable:,.0f} durable reads/s; restart ready in {r_ready:.2f} s")
        redis_result = {
            "redis_durable_reads_per_s": round(r_durable),
            "redis_restart_ready_s": round(r_ready, 2),
            "redis_restart_ready_snapshot_s": round(r_ready_snap, 2),
            "redis_appendfsync": "always" if not args.redis else "as configured",
        }
    print(
        json.dumps(
            {
                "bench": "ingest",
                "reads": n_reads,
                "batch": 100,
                "clients": args.clients,
                "durable_reads_per_s": round(durable),
                "log_records": n,
                "fold_records_per_s": round(fold),
                "decode_fold_records_per_s": round(decode_fold),
                "fold_one_at_a_time_records_per_s": round(one_by_one),
                "restart_ready_s": round(ready, 2),
                "restart_ready_snapshot_s": round(ready_snap, 2),
                **redis_result,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()

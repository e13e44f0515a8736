"""Link benchmark: how fast a public server catches up with the site, and how far it lags.

Starts a real ``livetrack site`` and a real ``livetrack serve --site-keys`` (SQLite both) as
processes on this machine:

* catch-up: the site takes ``--backlog`` reads (60,000: ten minutes at 100 reads/s) while the
  public server is not running, then the public server starts; measured are the seconds from
  its start, and from the link's connection, until it holds every record the site has, and
  the records per second over the link;
* steady lag: the site takes ``--rate`` reads/s (200) for ``--seconds`` (30) in batches of
  ``rate/10`` every 100 ms; each read's lag is from the moment the site acknowledged it until
  the public server's log holds it (its log file polled every 5 ms); p50 and p99.

Baselines measured in the same run: bare SQLite appends of the same records in batches of
2000 (records/s; the link's records/s is given as a ratio of it) and the time of one durable
append of one batch of the steady rate (the lag ratios are of it). Prints one JSON line last.

    python bench/link.py [--backlog 60000] [--rate 200] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from benchkit import free_port

from livetrack.domain.records import ChipRead, Record, TokenRecord
from livetrack.store.sqlite import SqliteEventLog
from livetrack.web.auth import issue, new_token, token_hash

ROOT = Path(__file__).resolve().parents[1]
EVENT = ROOT / "livetrack" / "demo" / "heaton.toml"


class Proc:
    def __init__(self, args: list[str], port: int, log: Path, env: dict[str, str]) -> None:
        self.args, self.port, self.log, self.env = args, port, log, env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start; the monotonic time it answered /healthz."""
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from livetrack.cli import main; raise SystemExit(main())",
                 *self.args, "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return time.monotonic()
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"{self.args[0]} did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def reads(n: int, start: int) -> list[dict[str, Any]]:
    t0 = int(time.time() * 1000)
    return [
        {"reader": "fin", "point": "finish", "chip": f"C{i % 500}", "time": t0, "seq": i}
        for i in range(start, start + n)
    ]


async def bare_baseline(workdir: Path, n: int, steady_batch: int) -> tuple[float, float]:
    """Bare appends: records/s in batches of 2000, and seconds per durable steady batch."""
    log = SqliteEventLog(workdir / "bare.db")
    t0 = int(time.time() * 1000)
    records: list[Record] = [
        ChipRead("fin", "finish", f"C{i % 500}", t0, seq=i, received_ms=t0) for i in range(n)
    ]
    try:
        start = time.perf_counter()
        for i in range(0, n, 2000):
            await log.append(records[i : i + 2000])
        rate = n / (time.perf_counter() - start)
        times = []
        extra = [
            ChipRead("fin", "finish", "C1", t0, seq=n + i, received_ms=t0) for i in range(2000)
        ]
        for i in range(0, 2000, steady_batch):
            s = time.perf_counter()
            await log.append(extra[i : i + steady_batch])
            times.append(time.perf_counter() - s)
        return rate, statistics.median(times)
    finally:
        await log.close()


def link_status(site: Proc, timer: str) -> dict[str, Any]:
    r = httpx.get(
        site.url + "/api/v1/link", headers={"authorization": f"Bearer {timer}"}, timeout=10
    )
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


def post(site: Proc, token: str, body: list[dict[str, Any]], client: httpx.Client) -> None:
    r = client.post(
        site.url + "/api/v1/reads", json=body, headers={"authorization": f"Bearer {token}"}
    )
    r.raise_for_status()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backlog", type=int, default=60_000)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="livetrack-link-bench-"))
    today = time.strftime("%Y-%m-%d", time.gmtime())
    event = work / "event.toml"
    event.write_text(EVENT.read_text().replace('date = "2026-11-23"', f'date = "{today}"', 1))
    site_token = new_token()
    keys = work / "site-keys"
    keys.write_text(f"{token_hash(site_token)} bench\n")
    reader, reader_rec = issue("reader", label="bench")
    timer, timer_rec = issue("timer", label="bench")
    seed: list[TokenRecord] = [reader_rec, timer_rec]

    async def seed_site() -> None:
        log = SqliteEventLog(work / "site.db")
        await log.append(seed)
        await log.close()

    asyncio.run(seed_site())
    steady_batch = max(1, args.rate // 10)
    bare_rate, bare_batch_s = asyncio.run(bare_baseline(work, args.backlog, steady_batch))

    public_port = free_port()
    public = Proc(
        ["serve", "--event", str(event), "--db", str(work / "public.db"),
         "--site-keys", str(keys)],
        public_port, work / "public.log", {},
    )  # fmt: skip
    site = Proc(
        ["site", "--event", str(event), "--db", str(work / "site.db"),
         "--upstream", f"http://127.0.0.1:{public_port}"],
        free_port(), work / "site.log", {"LIVETRACK_SITE_TOKEN": site_token},
    )  # fmt: skip
    result: dict[str, Any] = {"bench": "link", "cpus": os.cpu_count()}
    try:
        site.start()
        # -- the outage: the public server is not there; the site takes the backlog ---------
        with httpx.Client(timeout=60) as client:
            for i in range(0, args.backlog, 1000):
                post(site, reader, reads(min(1000, args.backlog - i), i), client)
        head_wait = time.monotonic() + 10
        while link_status(site, timer)["lag_records"] < args.backlog:
            if time.monotonic() > head_wait:
                break
            time.sleep(0.1)
        backlog = link_status(site, timer)["lag_records"]
        # -- the link returns ---------------------------------------------------------------
        t_up = public.start()
        t_connected = None
        while True:
            st = link_status(site, timer)
            now = time.monotonic()
            if st["connected"] and t_connected is None:
                t_connected = now
            if st["connected"] and st["lag_records"] == 0:
                t_equal = now
                break
            if now - t_up > 300:
                raise RuntimeError(f"no catch-up in 300 s: {st}")
            time.sleep(0.02)
        assert t_connected is not None
        transfer_s = max(1e-3, t_equal - t_connected)
        rate = backlog / transfer_s
        result.update(
            {
                "backlog_records": backlog,
                "catch_up_s": round(t_equal - t_up, 2),
                "catch_up_after_connect_s": round(transfer_s, 2),
                "reconnect_s": round(t_connected - t_up, 2),
                "link_records_per_s": round(rate),
                "bare_append_records_per_s": round(bare_rate),
                "link_vs_bare_append": round(rate / bare_rate, 3),
            }
        )
        # -- steady: rate reads/s at the site; each read's lag to the public log ------------
        lags = steady(site, reader, work / "public.db", args.rate, args.seconds, steady_batch)
        p50 = statistics.median(lags)
        p99 = statistics.quantiles(lags, n=100)[98]
        result.update(
            {
                "steady_reads_per_s": args.rate,
                "steady_reads": len(lags),
                "steady_lag_p50_s": round(p50, 3),
                "steady_lag_p99_s": round(p99, 3),
                "bare_durable_batch_s": round(bare_batch_s, 4),
                "lag_p50_vs_bare_batch": round(p50 / bare_batch_s, 1),
                "lag_p99_vs_bare_batch": round(p99 / bare_batch_s, 1),
                "targets": {"steady_lag_p99_s": 1.0, "catch_up_60000_s": 15.0},
            }
        )
    finally:
        site.stop()
        public.stop()
    print(
        f"catch-up: {result['backlog_records']} records in {result['catch_up_s']} s "
        f"({result['link_records_per_s']}/s over the link); steady lag p50 "
        f"{result['steady_lag_p50_s']} s, p99 {result['steady_lag_p99_s']} s",
        file=sys.stderr,
    )
    print(json.dumps(result))


def steady(
    site: Proc, token: str, public_db: Path, rate: int, seconds: float, batch: int
) -> list[float]:
    """Post ``rate`` reads/s to the site; each read's seconds from acknowledged to stored
    at the public end."""
    acked: dict[str, float] = {}
    arrived: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        conn = sqlite3.connect(f"file:{public_db}?mode=ro", uri=True, timeout=30)
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()[0]
        while not done.is_set() or len(arrived) < len(acked):
            rows = conn.execute(
                "SELECT seq, key FROM records WHERE seq > ? ORDER BY seq", (seq,)
            ).fetchall()
            now = time.monotonic()
            for s, key in rows:
                seq = s
                arrived.setdefault(key, now)
            if done.is_set() and not rows and time.monotonic() - stop_at > 30:
                break
            time.sleep(0.005)
        conn.close()

    stop_at = float("inf")
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = 10_000_000
    n = 0
    with httpx.Client(timeout=30) as client:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            body = reads(batch, start + n)
            post(site, token, body, client)
            now = time.monotonic()
            for r in body:
                acked[f"read:fin:{r['seq']}"] = now
            n += batch
            due = t0 + n / rate
            time.sleep(max(0.0, due - time.monotonic()))
    stop_at = time.monotonic()
    done.set()
    watcher.join(60)
    missing = [k for k in acked if k not in arrived]
    if missing:
        raise RuntimeError(f"{len(missing)} reads never reached the public server")
    return [arrived[k] - acked[k] for k in acked]


if __name__ == "__main__":
    main()

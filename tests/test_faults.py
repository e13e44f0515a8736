"""Faults for real: servers and Redis killed with SIGKILL during a sustained ingest.

The claim under test: a read acknowledged with 200 (``accepted`` or ``duplicate``) is in the
log and in the results after any crash, and a resend never makes a second copy.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from conftest import RedisServer
from test_multiprocess import (
    BOARDS,
    Event,
    Server,
    cleanup,
    fire_gun,
    make_event,
    post,
    read,
    start,
    token,
    wait_healthy,
    wait_same,
)

RUNNERS = 1500
BATCH = 10


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    yield from cleanup()


class Ingest(threading.Thread):
    """A reader posting batches of finish reads without pause, to one or more servers in
    turn. ``retry``: a batch that fails (connection refused, 503) is sent again until it is
    acknowledged, as a real reader's client does; otherwise it is counted as not
    acknowledged and the next batch goes."""

    def __init__(
        self, targets: list[Server], tok: str, runners: range, retry: bool = False
    ) -> None:
        super().__init__(daemon=True)
        self.targets = targets
        self.tok = tok
        self.reads = [read(i) for i in runners]
        self.retry = retry
        self.acked: set[str] = set()  # keys of reads acknowledged accepted or duplicate
        self.outcomes: Counter[str] = Counter()
        self.halt = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        try:
            n = 0
            for i in range(0, len(self.reads), BATCH):
                batch = self.reads[i : i + BATCH]
                while not self.halt.is_set():
                    target = self.targets[n % len(self.targets)]
                    n += 1
                    try:
                        r = post(target, self.tok, batch)
                    except httpx.TransportError:
                        self.outcomes["unreachable"] += 1
                        if not self.retry:
                            return
                        time.sleep(0.1)
                        continue
                    self.outcomes[str(r.status_code)] += 1
                    if r.status_code == 200:
                        for res in r.json()["results"]:
                            assert res["status"] in ("accepted", "duplicate"), res
                            self.acked.add(res["key"])
                        break
                    assert r.status_code == 503, r.text  # the log is away: retry later
                    if not self.retry:
                        break
                    time.sleep(0.1)
                if self.halt.is_set():
                    return
        finally:
            self.done.set()

    def wait_acked(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n and not self.done.is_set():
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.acked)} reads acknowledged")
            time.sleep(0.01)


def bib_of(key: str) -> str:
    """The bib of runner ``i`` from a finish read's key ``read:mat-finish:i``."""
    return key.rsplit(":", 1)[1]


def all_finishers(standings: dict[str, object]) -> list[str]:
    out: list[str] = []
    for race in BOARDS:
        board = standings[f"{race}/finish"]
        assert isinstance(board, dict)
        out += [str(row["bib"]) for row in board["rows"]]
    return out


def log_keys(ev: Event, db: Path | None, redis_url: str | None) -> Counter[str]:
    """How many times each record key is in the log (read from the store directly)."""
    if db is not None:
        conn = sqlite3.connect(db)
        try:
            return Counter(k for (k,) in conn.execute("SELECT key FROM records"))
        finally:
            conn.close()
    assert redis_url is not None
    client = redis.Redis.from_url(redis_url)
    try:
        entries = client.xrange("livetrack:test", "-", "+")
        return Counter(fields[b"k"].decode() for _, fields in entries)
    finally:
        client.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_kill_9_during_ingest_loses_no_acknowledged_read(
    backend: str, tmp_path: Path, servers: list[Server], request: pytest.FixtureRequest
) -> None:
    redis_url: str | None = None
    db: Path | None = None
    if backend == "redis":
        redis_url = request.getfixturevalue("redis_server").url
        ev = make_event(tmp_path, ["--redis", redis_url], runners=RUNNERS)
    else:
        db = tmp_path / "log.db"
        ev = make_event(tmp_path, ["--db", str(db)], runners=RUNNERS)
    reader, timer = token(ev, "reader"), token(ev, "timer")
    a = start(ev)
    servers.append(a)
    fire_gun(a, timer)
    ingest = Ingest([a], reader, range(1, RUNNERS + 1))
    ingest.start()
    ingest.wait_acked(RUNNERS // 3)
    a.kill9()  # mid-stream: requests are in flight
    ingest.join(30)
    assert not ingest.is_alive()
    acked = set(ingest.acked)
    assert RUNNERS // 3 <= len(acked) < RUNNERS, "the kill must land during the ingest"

    keys = log_keys(ev, db, redis_url)
    assert acked <= set(keys), f"{len(acked - set(keys))} acknowledged reads are not in the log"
    b = start(ev)  # restart on the same log: replays it
    servers.append(b)
    standings = b.standings()
    finished = all_finishers(standings)
    assert len(finished) == len(set(finished))
    assert {bib_of(k) for k in acked} <= set(finished)
    # everything stored (acknowledged or in flight when the process died) is in the results
    stored = {k for k in keys if k.startswith("read:mat-finish:")}
    assert {bib_of(k) for k in stored} == set(finished)


@pytest.mark.redis
def test_redis_restart_during_ingest_loses_and_duplicates_nothing(
    redis_server: RedisServer, tmp_path: Path, servers: list[Server]
) -> None:
    ev = make_event(tmp_path, ["--redis", redis_server.url], runners=RUNNERS)
    reader, timer = token(ev, "reader"), token(ev, "timer")
    a, b = start(ev), start(ev)
    servers += [a, b]
    fire_gun(a, timer)
    ingest = Ingest([a, b], reader, range(1, RUNNERS + 1), retry=True)
    ingest.start()
    ingest.wait_acked(RUNNERS // 4)
    redis_server.kill()  # SIGKILL: only what the AOF fsynced survives
    time.sleep(1.5)
    redis_server.start()  # same port, same AOF
    ingest.join(120)
    assert not ingest.is_alive() and len(ingest.acked) == RUNNERS, ingest.outcomes

    logs = a.errlog.read_text() + b.errlog.read_text()
    assert "lost Redis" in logs or "retrying" in logs, "the outage must hit the servers"
    keys = log_keys(ev, None, redis_server.url)
    reads = {k: n for k, n in keys.items() if k.startswith("read:")}
    assert set(reads) == ingest.acked
    assert set(reads.values()) == {1}, "a key is in the stream more than once"
    same = wait_same([a, b], timeout=120)  # both processes reconnected and folded everything
    finished = all_finishers(same)
    assert sorted(finished, key=int) == [str(i) for i in range(1, RUNNERS + 1)]
    for s in (a, b):  # healthy again (the log's head is read once a second)
        wait_healthy(s)


def test_reader_resending_its_whole_buffer_makes_no_duplicate_passing(
    tmp_path: Path, servers: list[Server]
) -> None:
    db = tmp_path / "log.db"
    ev = make_event(tmp_path, ["--db", str(db)], runners=300)
    reader, timer = token(ev, "reader"), token(ev, "timer")
    a = start(ev)
    servers.append(a)
    fire_gun(a, timer)
    buffer = [read(i, p) for p in ("half", "finish") for i in range(1, 301) if i % 3]
    for i in range(0, len(buffer), 50):
        assert post(a, reader, buffer[i : i + 50]).json()["accepted"] == len(buffer[i : i + 50])
    before = wait_same([a])
    records = sum(log_keys(ev, db, None).values())
    # the connection drops; the reader does not know what arrived and sends everything again
    again = post(a, reader, buffer)
    assert again.status_code == 200
    assert again.json()["duplicate"] == len(buffer) and again.json()["accepted"] == 0
    assert sum(log_keys(ev, db, None).values()) == records
    time.sleep(0.3)
    after = wait_same([a])
    assert after == before
    finished = all_finishers(after)
    assert len(finished) == len(set(finished)) == 200

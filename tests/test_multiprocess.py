"""Several real ``livetrack serve`` processes on one log: each folds it, any accepts ingest.

The helpers here (real server processes on free ports, tokens made with ``livetrack token``,
reads of a mile race) are shared with test_faults.py and test_snapshot.py.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import PATIENCE_S, REPO, RedisServer, free_port, refused_port
from factory import EVENT_TOML, GUN

#: Checkpoints of the test event's races with standings (every one is compared).
BOARDS = {"mile": ("half", "finish"), "chip": ("half", "finish"), "loop": ("lap1", "finish")}
RUNNERS = 300
#: How long a test waits for server processes (starting, folding, agreeing) before it fails.
PROCESS_WAIT_S = 2 * PATIENCE_S


@dataclass
class Server:
    """One ``python -m livetrack.cli serve`` process of the test's own."""

    proc: subprocess.Popen[bytes]
    port: int
    errlog: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill9(self) -> None:
        """SIGKILL, like a crash or a pulled plug: no shutdown code runs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM: a graceful shutdown (the final snapshot is saved)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    @property
    def log_args(self) -> list[str]:
        """``--db FILE`` or ``--redis URL``: where this server's log is."""
        for flag in ("--db", "--redis"):
            if flag in self.args:
                i = self.args.index(flag)
                return self.args[i : i + 2]
        raise ValueError(f"no log in {self.args}")

    def health(self) -> httpx.Response:
        return httpx.get(self.url + "/healthz", timeout=PATIENCE_S)

    def standings(self) -> dict[str, object]:
        """The JSON of every race's standings at every checkpoint."""
        out: dict[str, object] = {}
        for race, points in BOARDS.items():
            for point in points:
                r = httpx.get(
                    f"{self.url}/api/v1/races/{race}/standings",
                    params={"point": point, "limit": "10000"},
                    timeout=PATIENCE_S,
                )
                r.raise_for_status()
                out[f"{race}/{point}"] = r.json()
        return out


@dataclass
class Event:
    """The test's event on disk and where its log lives (``--db FILE`` or ``--redis URL``)."""

    dir: Path
    log_args: list[str]

    @property
    def toml(self) -> Path:
        return self.dir / "event.toml"

    @property
    def people(self) -> Path:
        return self.dir / "people.csv"


def make_event(tmp: Path, log_args: Sequence[str], runners: int = RUNNERS) -> Event:
    """The factory's test event and ``runners`` entrants spread over its three races."""
    (tmp / "event.toml").write_text(EVENT_TOML)
    races = ("loop", "mile", "chip")  # by i % 3
    lines = ["bib,chip,first_name,last_name,gender,age,club,race,wave"]
    for i in range(1, runners + 1):
        g = "F" if i % 2 else "M"
        lines.append(f"{i},C{i},First{i},Last{i},{g},{20 + i % 50},Club {i % 7},{races[i % 3]},")
    (tmp / "people.csv").write_text("\n".join(lines) + "\n")
    return Event(tmp, list(log_args))


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livetrack.cli", *args],
        capture_output=True, text=True, cwd=REPO, timeout=timeout,
    )  # fmt: skip


def token(ev: Event, role: str) -> str:
    """A token made with ``livetrack token create`` into the event's log."""
    out = cli("token", "create", "--role", role, "--event", str(ev.toml), *ev.log_args)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0]


def start(ev: Event, *extra: str, ready: bool = True, timeout: float = PROCESS_WAIT_S) -> Server:
    """Start a server process on a free port; wait until /healthz says 200 (``ready``).

    The port is free when chosen but not held: should another process take it before the
    server binds it, the server exits at once and is started again on another port."""
    for attempt in range(3):
        port = free_port()
        errlog = ev.dir / f"serve-{port}.log"
        args = [
            sys.executable, "-m", "livetrack.cli", "serve", "--event", str(ev.toml),
            "--participants", str(ev.people), "--port", str(port), *ev.log_args, *extra,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with errlog.open("wb") as err:
            proc = subprocess.Popen(args, stdout=err, stderr=err, cwd=REPO, env=env)
        server = Server(proc, port, errlog, args)
        if not ready:
            return server
        try:
            wait_healthy(server, timeout)
            return server
        except AssertionError:
            exited = proc.poll() is not None
            if not exited:
                proc.kill()
                proc.wait(10)
            taken = "address already in use" in errlog.read_text(errors="replace").lower()
            if not (exited and taken) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def wait_healthy(server: Server, timeout: float = PROCESS_WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(
                f"server exited with {server.proc.returncode}: {server.errlog.read_text()[-3000:]}"
            )
        try:
            if server.health().status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server not healthy in {timeout}s: {server.errlog.read_text()[-3000:]}")


def cleanup() -> Iterator[list[Server]]:
    """The body of a ``servers`` fixture: the servers a test starts are killed at its end."""
    started: list[Server] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    yield from cleanup()


def read(i: int, point: str = "finish", seq_base: int = 0) -> dict[str, object]:
    """Runner ``i``'s read at timing point ``point``, with a seq of its own, so its key is
    ``read:mat-POINT:SEQ``."""
    at_s = {"half": 250.0, "line": 300.0, "finish": 500.0}[point] + i * 0.25
    return {
        "reader": f"mat-{point}",
        "point": point,
        "chip": f"C{i}",
        "time": GUN + int(at_s * 1000),
        "seq": seq_base + i,
    }


def race_reads(runners: int = RUNNERS) -> list[dict[str, object]]:
    """Every runner's reads at each timing point of its race's course, in race order (the
    mile courses have a halfway mat, the loop a lap mat)."""
    out: list[dict[str, object]] = []
    out.extend(read(i, "half") for i in range(1, runners + 1) if i % 3 != 0)
    out.extend(read(i, "line") for i in range(1, runners + 1) if i % 3 == 0)
    out.extend(read(i, "finish") for i in range(1, runners + 1))
    return out


def fire_gun(server: Server, timer: str) -> None:
    for race in BOARDS:
        r = httpx.post(
            f"{server.url}/api/v1/races/{race}/gun",
            json={"time": GUN},
            headers={"authorization": f"Bearer {timer}"},
            timeout=PATIENCE_S,
        )
        assert r.status_code == 200, r.text


def post(server: Server, tok: str, reads: list[dict[str, object]]) -> httpx.Response:
    return httpx.post(
        server.url + "/api/v1/reads",
        json=reads,
        headers={"authorization": f"Bearer {tok}"},
        timeout=2 * PATIENCE_S,
    )


def offset_key(offset: str) -> tuple[int, int]:
    """Offset order: SQLite row ids, or Redis stream ids ``ms-seq``."""
    ms, _, seq = offset.partition("-")
    return int(ms), int(seq or 0)


def log_head(log_args: Sequence[str]) -> str | None:
    """The newest offset in the log (``--db FILE`` or ``--redis URL``), read from the store
    itself; the test event's stream is ``livetrack:test``."""
    flag, where = log_args[0], log_args[1]
    if flag == "--db":
        conn = sqlite3.connect(where)
        try:
            (seq,) = conn.execute("SELECT MAX(seq) FROM records").fetchone()
        finally:
            conn.close()
        return None if seq is None else str(seq)
    import redis

    client = redis.Redis.from_url(where)
    try:
        last = client.xrevrange("livetrack:test", count=1)
    finally:
        client.close()
    return last[0][0].decode() if last else None


def wait_folded(server: Server, timeout: float = PROCESS_WAIT_S, workers: int = 1) -> None:
    """Wait until the server (each of its ``workers``) has folded every record the log holds
    now: an acknowledged write is durable, but the fold applies it a moment later."""
    wait_folded_at(server.url, server.log_args, timeout, workers)


def wait_folded_at(
    url: str, log_args: Sequence[str], timeout: float = PROCESS_WAIT_S, workers: int = 1
) -> None:
    """:func:`wait_folded` for the server at ``url`` on the log ``log_args``."""
    head = log_head(log_args)
    if head is None:
        return
    folded: set[int] = set()
    seen: object = None
    deadline = time.monotonic() + timeout
    while True:
        try:
            seen = httpx.get(url + "/healthz", timeout=PATIENCE_S).json()
            assert isinstance(seen, dict)
            offset = seen.get("offset")
            if offset is not None and offset_key(offset) >= offset_key(head):
                folded.add(seen["pid"])
                if len(folded) >= workers:
                    return
        except httpx.TransportError as exc:
            seen = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} has not folded up to {head} in {timeout}s: {seen}")
        time.sleep(0.05)


def wait_same(servers: Sequence[Server], timeout: float = PROCESS_WAIT_S) -> dict[str, object]:
    """Wait until every server has folded the whole log and serves the same standings;
    return them."""
    for s in servers:
        wait_folded(s, timeout)
    deadline = time.monotonic() + timeout
    while True:
        views = [s.standings() for s in servers]
        if all(v == views[0] for v in views[1:]):
            return views[0]
        if time.monotonic() > deadline:
            first, other = views[0], next(v for v in views[1:] if v != views[0])
            differ = [k for k in first if first[k] != other.get(k)]
            raise AssertionError(f"standings differ at {differ}")
        time.sleep(0.2)


def finishers(standings: dict[str, object], race: str = "mile") -> set[str]:
    board = standings[f"{race}/finish"]
    assert isinstance(board, dict)
    return {str(row["bib"]) for row in board["rows"]}


# -- tests ------------------------------------------------------------------------------------


@pytest.mark.redis
def test_second_process_started_mid_race_serves_the_same_standings(
    redis_server: RedisServer, tmp_path: Path, servers: list[Server]
) -> None:
    ev = make_event(tmp_path, ["--redis", redis_server.url])
    reader, timer = token(ev, "reader"), token(ev, "timer")
    a = start(ev)
    servers.append(a)
    fire_gun(a, timer)
    reads = race_reads()
    half = len(reads) // 2
    for i in range(0, half, 100):
        assert post(a, reader, reads[i : i + 100]).status_code == 200
    b = start(ev)  # joins mid-race: replays the first half from the stream
    servers.append(b)
    # any process accepts ingest: the second half goes to both, alternately
    for n, i in enumerate(range(half, len(reads), 100)):
        target = (a, b)[n % 2]
        r = post(target, reader, reads[i : i + 100])
        assert r.status_code == 200 and r.json()["accepted"] == len(reads[i : i + 100])
    same = wait_same([a, b])
    expected_finishers = {str(i) for i in range(1, RUNNERS + 1) if i % 3 == 1}
    assert finishers(same) == expected_finishers
    # the stream is the default for the event: livetrack:<event id>
    import redis

    client = redis.Redis.from_url(redis_server.url)
    assert client.xlen("livetrack:test") >= len(reads) + RUNNERS
    client.close()


@pytest.mark.redis
def test_workers_share_one_port_and_one_log(
    redis_server: RedisServer, tmp_path: Path, servers: list[Server]
) -> None:
    """``serve --workers 2``: two processes behind one port, both folding the one stream."""
    ev = make_event(tmp_path, ["--redis", redis_server.url], runners=60)
    reader, timer = token(ev, "reader"), token(ev, "timer")
    s = start(ev, "--workers", "2")
    servers.append(s)
    fire_gun(s, timer)
    reads = [read(i) for i in range(1, 61)]
    for i in range(0, 60, 5):  # new connections: the kernel spreads them over the workers
        assert post(s, reader, reads[i : i + 5]).status_code == 200
    expected = {str(i) for i in range(1, 61) if i % 3 == 1}
    # requests on new connections land on either worker: wait until both have folded
    # everything (up to the log's head; same number of records applied), then every answer
    # is the whole race
    head = log_head(s.log_args)
    assert head is not None
    applied: dict[int, int] = {}
    folded: set[int] = set()
    deadline = time.monotonic() + PROCESS_WAIT_S
    while time.monotonic() < deadline:
        h = s.health().json()
        applied[h["pid"]] = h["applied"]
        if h["offset"] is not None and offset_key(h["offset"]) >= offset_key(head):
            folded.add(h["pid"])
        if len(folded) == 2 and len(set(applied.values())) == 1 and h["caught_up"]:
            break
        time.sleep(0.05)
    assert len(applied) == 2, f"answers came from {len(applied)} process(es)"
    assert len(set(applied.values())) == 1, applied
    assert all(finishers(s.standings()) == expected for _ in range(6))
    s.stop()
    assert s.proc.returncode == 0, s.errlog.read_text()[-2000:]


def test_serve_exits_with_one_line_when_redis_is_unreachable(tmp_path: Path) -> None:
    with refused_port() as nothing:  # connections to it are refused for the whole test
        url = f"redis://127.0.0.1:{nothing.getsockname()[1]}/0"
        ev = make_event(tmp_path, ["--redis", url], runners=3)
        out = cli("serve", "--event", str(ev.toml), "--port", str(free_port()), *ev.log_args)
        assert out.returncode == 2
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert lines[0].startswith("livetrack: cannot reach Redis at redis://127.0.0.1:")
        assert "Traceback" not in out.stderr
        tok = cli("token", "create", "--role", "reader", "--event", str(ev.toml), *ev.log_args)
        assert tok.returncode == 2 and len(tok.stderr.strip().splitlines()) == 1, tok.stderr


def test_token_needs_a_stream_or_an_event(tmp_path: Path) -> None:
    out = cli("token", "create", "--role", "reader", "--redis", "redis://127.0.0.1:1/0")
    assert out.returncode != 0
    assert "?stream=" in out.stderr and "Traceback" not in out.stderr


def test_health_reports_lag_zero_when_caught_up(tmp_path: Path, servers: list[Server]) -> None:
    ev = make_event(tmp_path, ["--db", str(tmp_path / "log.db")], runners=10)
    s = start(ev)
    servers.append(s)
    body = json.loads(s.health().text)
    assert body["ready"] is True and body["caught_up"] is True and body["lag"] == 0
    assert body["applied"] >= 10 and body["head"] == body["offset"]


def test_sigterm_stops_a_server_whose_spectator_never_answers(
    tmp_path: Path, servers: list[Server]
) -> None:
    """A phone that went quiet mid-connection (its websocket open, nothing read, no close
    answered) cannot hold a stopping server: it is given its grace and the process exits."""
    import base64
    import socket

    from livetrack.cli.common import GRACEFUL_S

    ev = make_event(tmp_path, ["--db", str(tmp_path / "log.db")], runners=5)
    s = start(ev)
    servers.append(s)
    quiet = socket.create_connection(("127.0.0.1", s.port), timeout=PATIENCE_S)
    key = base64.b64encode(os.urandom(16)).decode()
    quiet.sendall(
        (
            f"GET /live HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert quiet.recv(4096).startswith(b"HTTP/1.1 101"), "the websocket was not accepted"
    quiet.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # and it reads no more
    try:
        started = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(GRACEFUL_S + 20)
        assert time.monotonic() - started < GRACEFUL_S + 20
        text = s.errlog.read_text()
        # uvicorn ends by raising the signal it caught again, once shut down
        assert s.proc.returncode in (0, -signal.SIGTERM), text[-2000:]
        assert "Application shutdown complete" in text and "snapshot saved" in text, text
    finally:
        quiet.close()

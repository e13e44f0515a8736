"""``livetrack simulate --protocol``: the command itself, run as a process, plays a race as timing
decoders, and a real server whose ``[[reader]]`` connectors talk to them stores and folds it.

One decoder per timing point, on ``--port`` and the ports after it: either the decoders listen
and the server's readers connect to them, or (``--connect``) the readers listen and the
decoders connect to them. The reads stored are compared with the race the command planned
(recomputed here from the same participants and seed, anchored on the gun the start decoder
sent): none lost, none doubled, none altered. The command ends by itself in both directions.
A bad ``--protocol``, or neither a protocol nor a server to post to, is refused.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import PATIENCE_S, REPO
from eventfiles import MILE_WITH_HALF, course, event_file, header, points, race
from factory import write_entries
from server import serve

from livetrack import sim
from livetrack.domain.event import load_event_text
from livetrack.domain.participants import parse_participants
from livetrack.domain.records import ChipRead, GunStart, Record, decode

EVENT = event_file(
    header("cs", "Simulated Decoders"),
    course("mile", MILE_WITH_HALF),
    race("mile", "The Mile", "mile"),
    points("start", "half", "finish"),
)

POINTS = ("start", "half", "finish")  # the command gives them --port, --port+1, --port+2
RUNNERS = 30
SEED = 7
SPEED = 400  # a mile of ten minutes or so plays in a couple of seconds
#: The finest time each protocol carries, in ms: CTP01 lines have hundredths of a second.
RESOLUTION_MS = {"raceresult": 1, "ctp01": 10, "mylaps": 1}

Read = tuple[str, str, int]  # reader, chip, epoch ms


def consecutive_ports(count: int) -> list[socket.socket]:
    """Sockets bound (not listening) to ``count`` consecutive free ports on 127.0.0.1.

    While they are held nobody else can take the ports, but ``SO_REUSEADDR`` lets the
    simulated decoders (asyncio servers set it) bind and listen on them."""
    for _ in range(100):
        held: list[socket.socket] = []
        try:
            for i in range(count):
                s = socket.socket()
                held.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", held[0].getsockname()[1] + i if i else 0))
            return held
        except (OSError, OverflowError):
            for s in held:
                s.close()
    raise OSError(f"no {count} consecutive free ports found")


@dataclass
class Simulation:
    """A ``livetrack simulate`` process and the lines it has printed so far."""

    proc: subprocess.Popen[str]
    errlog: Path
    lines: list[str] = field(default_factory=list)

    def stderr(self) -> str:
        return self.errlog.read_text(errors="replace")[-3000:]

    def wait_for_lines(self, prefix: str, count: int) -> list[str]:
        deadline = time.monotonic() + 2 * PATIENCE_S
        while True:
            found = [line for line in list(self.lines) if line.startswith(prefix)]
            if len(found) >= count:
                return found
            assert self.proc.poll() is None, (
                f"simulate exited with {self.proc.returncode}: {self.lines}\n{self.stderr()}"
            )
            assert time.monotonic() < deadline, f"simulate printed only {self.lines}"
            time.sleep(0.05)


@contextmanager
def simulate(tmp_path: Path, *args: str) -> Iterator[Simulation]:
    """Run ``livetrack simulate ARGS``; it is terminated when the block ends, whatever happens."""
    errlog = tmp_path / "simulate.err"
    with errlog.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "livetrack.cli", "simulate", *args],
            stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO,
        )  # fmt: skip
    run = Simulation(proc, errlog)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            run.lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield run
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(PATIENCE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(PATIENCE_S)
        reader.join(PATIENCE_S)
        if proc.stdout is not None:
            proc.stdout.close()


def stored(db: Path) -> list[Record]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT body FROM records ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [decode(body) for (body,) in rows]


def chip_reads(records: list[Record]) -> list[Read]:
    return [(r.reader, r.chip, r.time_ms) for r in records if isinstance(r, ChipRead)]


@pytest.mark.parametrize(
    ("protocol", "direction"),
    [
        ("raceresult", "decoders listen"),
        ("ctp01", "decoders listen"),
        ("ctp01", "decoders connect"),
        ("mylaps", "decoders connect"),
    ],
)
def test_simulated_decoders_feed_a_server_through_its_readers(
    protocol: str, direction: str, tmp_path: Path
) -> None:
    entries = write_entries(tmp_path / "entries.csv", load_event_text(EVENT), "mile", RUNNERS)
    event_file = tmp_path / "event.toml"
    event_file.write_text(EVENT)
    connect = direction == "decoders connect"
    with ExitStack() as stack:
        held = consecutive_ports(len(POINTS))
        for s in held:
            stack.callback(s.close)
        first = held[0].getsockname()[1]
        ports = {p: first + i for i, p in enumerate(POINTS)}
        readers = "".join(
            f'\n[[reader]]\nid = "mat-{p}"\nprotocol = "{protocol}"\npoint = "{p}"\n'
            f'host = "127.0.0.1"\nport = {ports[p]}\nlisten = {str(connect).lower()}\n'
            for p in POINTS
        )
        event = load_event_text(EVENT + readers)
        people, problems = parse_participants(entries.read_text(), event)
        assert not problems
        db = tmp_path / "live.db"
        if connect:  # the readers listen first; the decoders keep trying until they can connect
            running = stack.enter_context(serve(event, db, people))
        args = [
            "--protocol", protocol, "--port", str(first), "--event", str(event_file),
            "--participants", str(entries), "--speed", str(SPEED), "--seed", str(SEED),
        ]  # fmt: skip
        args += ["--connect", "127.0.0.1"] if connect else ["--host", "127.0.0.1"]
        run = stack.enter_context(simulate(tmp_path, *args))
        announced = run.wait_for_lines("mat-", len(POINTS))
        # e.g. "mat-half: 41 reads as ctp01, serving on 127.0.0.1:PORT"
        sent: dict[str, int] = {}
        for line in announced:
            reader, _, rest = line.partition(": ")
            count, _, where = rest.partition(" reads as ")
            verb = "connecting to" if connect else "serving on"
            assert where == f"{protocol}, {verb} 127.0.0.1:{ports[reader[4:]]}", line
            sent[reader] = int(count)
        assert set(sent) == {f"mat-{p}" for p in POINTS}
        if not connect:  # the decoders listen now: the readers connect at once
            running = stack.enter_context(serve(event, db, people))

        # The command ends by itself once every decoder has played its reads.
        try:
            code = run.proc.wait(4 * PATIENCE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"simulate did not finish: {run.lines}\n{run.stderr()}")
        assert code == 0, run.stderr()
        total = sum(sent.values())
        assert f"simulation finished: {total} reads" in run.lines

        # Every read the decoders sent is stored: the start decoder's stream holds the one
        # gun marker of the race, every other line is a chip read.
        deadline = time.monotonic() + PATIENCE_S
        records = stored(db)
        while len(chip_reads(records)) < total - 1 or not any(
            isinstance(r, GunStart) for r in records
        ):
            assert time.monotonic() < deadline, (
                f"{len(chip_reads(records))} of {total - 1} reads stored"
            )
            time.sleep(0.1)
            records = stored(db)
        running.settle()
        records = stored(db)

        guns = [r for r in records if isinstance(r, GunStart)]
        assert [(g.race, g.by) for g in guns] == [("mile", "reader:mat-start")]
        got = chip_reads(records)
        assert Counter(reader for reader, _, _ in got) == Counter(
            {r: n - (r == "mat-start") for r, n in sent.items()}
        )
        assert len(got) == len(set(got)), "a read was stored twice"

        # They are exactly the reads of the race the command planned: same chips, same times
        # (to the protocol's resolution; the true gun time is the marker's, or a little later).
        res = RESOLUTION_MS[protocol]
        matches = []
        for gun in range(guns[0].time_ms, guns[0].time_ms + res):
            actions = sim.plan(event, people, {"mile": gun}, seed=SEED)
            planned = [
                (str(a.read["reader"]), str(a.read["chip"]), int(str(a.read["time"])))
                for a in actions
                if a.read is not None
            ]
            matches.append(sorted(got) == sorted((r, c, t - t % res) for r, c, t in planned))
        assert any(matches), "the reads stored are not the reads of the race planned"
        assert all(
            r.point == r.reader.removeprefix("mat-") for r in records if isinstance(r, ChipRead)
        )

        # And the fold has them: everyone read at the finish is in the standings, in order.
        finishers = {chip for reader, chip, _ in got if reader == "mat-finish"}
        bib_of = {p.chips[0]: p.bib for p in people}
        answer = httpx.get(
            running.url + "/api/v1/races/mile/standings",
            params={"point": "finish", "limit": 1000},
            timeout=PATIENCE_S,
        )
        answer.raise_for_status()
        rows = answer.json()["rows"]
        assert {row["bib"] for row in rows} == {bib_of[c] for c in finishers}
        assert [row["position"] for row in rows] == list(range(1, len(rows) + 1))
        runner = httpx.get(
            running.url + f"/api/v1/runners/{rows[0]['bib']}", timeout=PATIENCE_S
        ).json()
        assert [s["id"] for s in runner["splits"] if "time_ms" in s][-1] == "finish"


def simulate_once(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livetrack.cli", "simulate", *args],
        capture_output=True, text=True, timeout=4 * PATIENCE_S, cwd=REPO,
    )  # fmt: skip


def test_an_unknown_protocol_is_refused() -> None:
    res = simulate_once("--protocol", "morse")
    assert res.returncode == 2
    assert "--protocol: invalid choice: 'morse'" in res.stderr
    assert "raceresult" in res.stderr


def test_without_a_protocol_the_server_and_token_are_required() -> None:
    res = simulate_once("--race", "mile")
    assert res.returncode == 1
    assert "--url and --token are required (or --protocol)" in res.stderr


#: The event with a timing point that no race's reads come from, between half and finish.
UNUSED_POINT = EVENT.replace(
    '[[timing_point]]\nid = "finish"',
    '[[course]]\nid = "other"\ncheckpoints = [{ id = "lap", name = "Lap", distance = 0 }, '
    '{ id = "end", name = "End", distance = 400 }]\n\n'
    '[[timing_point]]\nid = "lap"\ncheckpoint = "lap"\n\n[[timing_point]]\nid = "finish"',
)


def announced_ports(tmp_path: Path, port: int) -> dict[str, int]:
    """Start ``simulate --protocol ctp01 --port PORT`` on :data:`UNUSED_POINT` and return
    the port each decoder says it serves on, after checking that each one listens."""
    event_file = tmp_path / "event.toml"
    event_file.write_text(UNUSED_POINT)
    entries = write_entries(tmp_path / "e.csv", load_event_text(UNUSED_POINT), "mile", RUNNERS)
    args = ["--protocol", "ctp01", "--port", str(port), "--event", str(event_file)]
    args += ["--participants", str(entries), "--speed", "1", "--host", "127.0.0.1"]
    with simulate(tmp_path, *args) as run:
        announced = run.wait_for_lines("mat-", len(POINTS))
        ports = {line.partition(":")[0]: int(line.rpartition(":")[2]) for line in announced}
        for p in ports.values():
            with socket.create_connection(("127.0.0.1", p), timeout=PATIENCE_S):
                pass
    return ports


def test_each_point_keeps_its_port_when_a_point_before_it_has_no_reads(tmp_path: Path) -> None:
    with ExitStack() as stack:
        held = consecutive_ports(4)
        for s in held:
            stack.callback(s.close)
        first = held[0].getsockname()[1]
        ports = announced_ports(tmp_path, first)
    # the points in the event's order: start, half, lap (no reads: no decoder), finish
    assert ports == {"mat-start": first, "mat-half": first + 1, "mat-finish": first + 3}


def test_port_zero_gives_every_decoder_a_free_port_of_its_own(tmp_path: Path) -> None:
    ports = announced_ports(tmp_path, 0)
    assert set(ports) == {f"mat-{p}" for p in POINTS}
    assert 0 not in ports.values() and len(set(ports.values())) == len(POINTS)


def test_connecting_out_needs_the_readers_port() -> None:
    res = simulate_once("--protocol", "ctp01", "--connect", "127.0.0.1", "--port", "0")
    assert res.returncode == 1
    assert "--connect needs --port" in res.stderr

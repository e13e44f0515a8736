"""The rehearsal of timing hardware against the demo event: ``livetrack demo --readers P``
serves the demo with a reader per timing point and its races scheduled, prints the
``livetrack simulate`` command, and that command's gun markers start the races (the demo's
races all start at one mat, so without the schedule every marker was refused and every board
stayed empty)."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import PATIENCE_S, REPO

from livetrack.domain.event import load_event_text
from livetrack.ingest.rehearsal import marker_problems, rehearsal_event_text, scheduled_guns


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports that are free now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = int(s.getsockname()[1])
        if first + count > 65535:
            continue
        ok = True
        for p in range(first, first + count):
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return first
    raise OSError("no consecutive free ports")


@pytest.mark.parametrize("protocol", ["raceresult", "ctp01"])
def test_the_rehearsal_of_the_demo_starts_its_races_and_fills_the_board(
    protocol: str, tmp_path: Path
) -> None:
    web = free_ports(1)
    readers = free_ports(6)
    db = tmp_path / "demo.db"
    demo = subprocess.Popen(
        [sys.executable, "-u", "-m", "livetrack.cli", "demo", "--readers", protocol,
         "--port", str(web), "--reader-port", str(readers), "--db", str(db), "--speed", "400"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
    )  # fmt: skip
    lines: list[str] = []

    def pump() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + 2 * PATIENCE_S
        while not any(line.strip().startswith("livetrack simulate") for line in lines):
            assert demo.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.05)
        command = next(x.strip() for x in lines if x.strip().startswith("livetrack simulate"))
        args = [*shlex.split(command)[1:], "--race", "mile"]
        event = load_event_text(Path(args[args.index("--event") + 1]).read_text())
        assert event.races["mile"].scheduled_ms is not None  # the demo scheduled its races
        assert all(r.protocol == protocol for r in event.readers.values())
        played = subprocess.run(
            [sys.executable, "-m", "livetrack.cli", *args],
            capture_output=True, text=True, timeout=4 * PATIENCE_S, cwd=REPO,
        )  # fmt: skip
        assert played.returncode == 0, played.stderr
        assert "will not start it" not in played.stderr  # the marker names its race
        url = f"http://127.0.0.1:{web}"
        deadline = time.monotonic() + 2 * PATIENCE_S
        while True:
            races = httpx.get(f"{url}/api/v1/races", timeout=PATIENCE_S).json()["races"]
            mile = next(r for r in races if r["id"] == "mile")
            rows = httpx.get(
                f"{url}/api/v1/races/mile/standings",
                params={"point": "finish", "limit": 1000},
                timeout=PATIENCE_S,
            ).json()["rows"]
            if mile["gun_ms"] is not None and len(rows) > 40:
                break
            assert time.monotonic() < deadline, (mile, len(rows))
            time.sleep(0.2)
        # started by the start mat's marker, at the scheduled start
        # (to the protocol's resolution: CTP01 times have hundredths)
        assert 0 <= event.races["mile"].scheduled_ms - mile["gun_ms"] < 10
        assert [r["position"] for r in rows] == list(range(1, len(rows) + 1))
        # the other races were not played: no marker started them by mistake
        assert all(r["gun_ms"] is None for r in races if r["id"] != "mile")
        # decoders played 400 times faster than real time: their reads are not live, so no
        # reader claims a clock offset (a real decoder's clock does not run 400 times fast)
        timer = next(x for x in lines if "timer console" in x).rpartition("token=")[2]
        health = httpx.get(
            f"{url}/api/v1/readers",
            headers={"authorization": f"Bearer {timer}"},
            timeout=PATIENCE_S,
        ).json()["readers"]
        assert sum(h["stored"] for h in health) > 200
        assert all(h["clock"] != "offset" and h["clock_warning"] == "" for h in health)
    finally:
        demo.terminate()
        demo.wait(PATIENCE_S)
        if demo.stdout is not None:
            demo.stdout.close()


def test_markers_that_cannot_name_their_race_are_reported_before_the_rehearsal() -> None:
    from livetrack.demo.run import demo_event, demo_event_text

    event = demo_event()
    assert scheduled_guns(event, event.races) is None
    guns = {race: 1_781_427_600_000 + i * 60_000 for i, race in enumerate(event.races)}
    problems = marker_problems(event, "start", guns)
    assert len(problems) == len(event.races)
    assert "none is scheduled" in problems[0]
    text = rehearsal_event_text(
        demo_event_text(), event, protocol="raceresult", guns=guns, first_port=4000
    )
    scheduled = load_event_text(text)
    assert scheduled_guns(scheduled, scheduled.races) == guns
    assert marker_problems(scheduled, "start", guns) == []
    # one reader per timing point, on ports counted up from the first
    assert [r.port for r in scheduled.readers.values()] == list(
        range(4000, 4000 + len(event.points))
    )

"""The command line: tokens issued and revoked while a server runs; a simulated race."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import PATIENCE_S, REPO, free_port
from factory import write_entries
from test_multiprocess import wait_folded_at

from livetrack.domain.event import load_event_text


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livetrack.cli", *args],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 2 * PATIENCE_S) -> bool:
    """Wait until the server answers 200 on /healthz; False if its process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server not ready")


def wait_known(url: str, token: str) -> None:
    """Wait until the server has tailed a token just created into its log."""
    headers = {"authorization": f"Bearer {token}"}
    deadline = time.monotonic() + PATIENCE_S
    while httpx.get(url + "/api/v1/whoami", headers=headers, timeout=PATIENCE_S).is_error:
        assert time.monotonic() < deadline, "the server never learnt of the new token"
        time.sleep(0.1)


EVENT = REPO / "livetrack" / "demo" / "heaton.toml"


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``livetrack serve`` on the demo event file and 60 mile entrants, as a separate process."""
    db = tmp_path / "live.db"
    entries = write_entries(
        tmp_path / "entries.csv", load_event_text(EVENT.read_text()), "mile", 60
    )
    for attempt in range(3):  # a free port may be taken by someone else before it is bound
        port = free_port()
        errlog = tmp_path / f"serve-{port}.log"
        with errlog.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "livetrack.cli", "serve", "--event", str(EVENT),
                 "--participants", str(entries), "--db", str(db), "--port", str(port)],
                stdout=err, stderr=err, cwd=REPO,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            if wait_ready(url, proc):
                break
        except BaseException:
            proc.kill()
            proc.wait(30)
            raise
        taken = "address already in use" in errlog.read_text(errors="replace").lower()
        assert taken and attempt < 2, errlog.read_text(errors="replace")[-3000:]
    try:
        yield url, db
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_a_token_created_while_serving_works_and_stops_working_when_revoked(
    demo_server: tuple[str, Path],
) -> None:
    url, db = demo_server
    made = cli("token", "create", "--role", "reader", "--db", str(db))
    assert made.returncode == 0, made.stderr
    token = made.stdout.split()[0]
    assert token.startswith("lt_") and "only its hash is stored" in made.stderr
    now = int(time.time() * 1000)
    read = [{"reader": "r1", "point": "finish", "chip": "LT00001", "time": now, "seq": 1}]
    headers = {"authorization": f"Bearer {token}"}
    deadline = time.monotonic() + PATIENCE_S
    status = 0
    while time.monotonic() < deadline:  # the server learns of the token by tailing the log
        status = httpx.post(
            url + "/api/v1/reads", json=read, headers=headers, timeout=PATIENCE_S
        ).status_code
        if status == 200:
            break
        time.sleep(0.2)
    assert status == 200
    import sqlite3

    with sqlite3.connect(db) as conn:
        bodies = [r[0] for r in conn.execute("SELECT body FROM records WHERE type = 'token'")]
    assert bodies and all(token not in b for b in bodies)  # only the hash is stored
    assert cli("token", "revoke", "--token", token, "--db", str(db)).returncode == 0
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        status = httpx.post(
            url + "/api/v1/reads", json=read, headers=headers, timeout=PATIENCE_S
        ).status_code
        if status == 401:
            break
        time.sleep(0.2)
    assert status == 401


def test_a_marshal_token_needs_its_checkpoint(tmp_path: Path) -> None:
    res = cli("token", "create", "--role", "marshal", "--db", str(tmp_path / "x.db"))
    assert res.returncode != 0 and "--point" in res.stderr


def test_simulate_plays_a_race_into_a_running_server(demo_server: tuple[str, Path]) -> None:
    url, db = demo_server
    reader = cli("token", "create", "--role", "reader", "--db", str(db)).stdout.split()[0]
    timer = cli("token", "create", "--role", "timer", "--db", str(db)).stdout.split()[0]
    wait_known(url, reader)  # the server learns of new tokens by tailing the log
    wait_known(url, timer)
    res = subprocess.run(
        [sys.executable, "-m", "livetrack.cli", "simulate", "--url", url, "--token", reader,
         "--timer-token", timer, "--race", "mile", "--speed", "400",
         "--participants", str(db.parent / "entries.csv"), "--event", str(EVENT)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "'rejected': 0" in res.stdout
    wait_folded_at(url, ["--db", str(db)])  # the reads API answers before the fold has them
    standings = httpx.get(
        url + "/api/v1/races/mile/standings?point=finish&limit=500", timeout=PATIENCE_S
    ).json()
    assert standings["count"] >= 50  # 60 entered; a few do not start or drop out
    times = [row["gun_ms"] for row in standings["rows"]]
    assert times == sorted(times)
    bib = standings["rows"][0]["bib"]
    runner = httpx.get(url + f"/api/v1/runners/{bib}", timeout=PATIENCE_S).json()
    assert [s["id"] for s in runner["splits"] if "time_ms" in s][-1] == "finish"


def test_serve_takes_the_hub_tick_and_refuses_a_nonsense_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from livetrack.cli import build_parser
    from livetrack.config import ConfigProblem
    from livetrack.web import factory

    parser = build_parser()
    assert parser.parse_args(["serve", "--event", "e.toml"]).tick == 0.25
    assert parser.parse_args(["serve", "--event", "e.toml", "--tick", "0.05"]).tick == 0.05
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["serve", "--event", "e.toml", "--tick", bad])
        assert exc.value.code == 2
        assert "--tick" in capsys.readouterr().err
    # the processes of serve --workers read it from the environment
    monkeypatch.setenv("LIVETRACK_EVENT", str(REPO / "livetrack" / "demo" / "heaton.toml"))
    monkeypatch.setenv("LIVETRACK_TICK", "soon")
    with pytest.raises(ConfigProblem, match="LIVETRACK_TICK: 'soon' is not a number of seconds"):
        factory.create_from_env()

"""What a phone downloads: the demo's real pages in headless Chromium, counted on the wire.

Starts ``livetrack serve`` on the built-in Heaton Park event with the demo's entrants and a
fresh log, and plays the demo's simulated race into it at real speed, arranged so that the
measuring window falls where the figures matter: the mile's gun fired ``--mile-gun-ago``
seconds before the window opens (runners pass halfway during it), the 10K's second wave a
minute before (a race running with nothing happening: nobody reaches its first mat for ten
minutes or more), the team race's ``--team-gun-ago`` before (its first teams' members finish
during it: the team standings and one team's page change), the relay's ``--relay-gun-ago``
before (its first legs hand over), the fun run not started. Reads due before the window are
posted at once.

Each page is opened in its own Chromium context (390×844, the big screen 1920×1080; empty
cache) through a TCP proxy of its own that counts every byte the server sends to that page:
the HTTP responses (HTML, CSS, scripts, as served, gzip included) and the websocket's frames,
headers and all, as they are on the wire (compressed, where a compression extension is
negotiated). Nothing is read from the browser's own accounting, which reports websocket
payloads after decompression.

- ``first_load_bytes``: everything sent to the page until its socket is open and its snapshot
  has arrived (cold cache).
- ``ws_kb_per_min``, ``frames_per_min``, ``mean_frame_bytes``: the live socket during the
  window (``--minutes``), frame headers included.
- ``team_finishes_in_window``: the team race's finishes in the window (each changes its big
  screen, ``screen_team``: the feed and the boards).
- ``reads_kb_per_min``: the bare baseline of the same run, the JSON the timing system posted
  for the mile during the window (every read, duplicates included); ``ratio_to_reads`` is the
  race page's websocket bytes over it.

    python bench/pagedata.py [--minutes 3] [--mile-gun-ago 300] [--team-gun-ago 560]
                             [--relay-gun-ago 900] [--tick 0.25]

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from benchkit import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
#: Per-spectator budgets (KB per minute, wire bytes, frame headers included).
BUDGET_KB_PER_MIN = {"race_mile": 10.0, "race_idle": 0.5}


# -- the counting proxy -------------------------------------------------------------------------


@dataclass
class Tally:
    """Bytes the server sent through one proxy: HTTP responses, and websocket frames."""

    http: int = 0
    ws_handshake: int = 0
    ws: int = 0
    frames: int = 0
    ws_open: int = 0

    def total(self) -> int:
        return self.http + self.ws_handshake + self.ws


@dataclass
class _FrameCounter:
    """Counts server-to-client websocket frames in a byte stream (server frames are unmasked)."""

    buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> int:
        self.buf += data
        n = 0
        while True:
            b = self.buf
            if len(b) < 2:
                return n
            length = b[1] & 0x7F
            head = 2 + (4 if b[1] & 0x80 else 0)
            if length == 126:
                if len(b) < 4:
                    return n
                length = int.from_bytes(b[2:4], "big")
                head += 2
            elif length == 127:
                if len(b) < 10:
                    return n
                length = int.from_bytes(b[2:10], "big")
                head += 8
            if len(b) < head + length:
                return n
            del b[: head + length]
            n += 1


class Proxy:
    """A TCP proxy to the server that tallies what the server sends, per kind of connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.tally = Tally()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _conn(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return
        first = await cr.read(65536)
        is_ws = first.startswith(b"GET /live")
        sw.write(first)
        up = asyncio.create_task(self._pipe(cr, sw))
        try:
            await self._down(sr, cw, is_ws)
        finally:
            up.cancel()
            for w in (cw, sw):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        with contextlib.suppress(Exception):
            w.write_eof()

    async def _down(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, is_ws: bool) -> None:
        t = self.tally
        head = bytearray()
        frames = _FrameCounter()
        upgraded = False
        with contextlib.suppress(Exception):
            while data := await r.read(65536):
                if not is_ws:
                    t.http += len(data)
                elif not upgraded:
                    head += data
                    end = head.find(b"\r\n\r\n")
                    if end >= 0:
                        upgraded = True
                        t.ws_handshake += end + 4
                        t.ws_open += 1
                        rest = bytes(head[end + 4 :])
                        t.ws += len(rest)
                        t.frames += frames.feed(rest)
                else:
                    t.ws += len(data)
                    t.frames += frames.feed(data)
                w.write(data)
                await w.drain()


# -- the server and the race --------------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "livetrack.cli", *args]


def setup(tmp: Path) -> tuple[Any, list[Any], Path, Path]:
    """The demo's event, dated today (the server takes guns only near the event's day), and
    its entrants, written as files."""
    from livetrack.domain.event import load_event_text
    from livetrack.sim import make_participants

    text = (ROOT / "livetrack" / "demo" / "heaton.toml").read_text("utf-8")
    today = time.strftime("%Y-%m-%d")
    text = re.sub(r'(?m)^date = "[0-9-]+"', f'date = "{today}"', text)
    event_path = tmp / "event.toml"
    event_path.write_text(text, "utf-8")
    event = load_event_text(text)
    people = make_participants(event, {"mile": 60, "team": 60, "fun": 80, "tenk": 120})
    path = tmp / "people.csv"
    lines = ["bib,chip,first_name,last_name,gender,age,club,team,race,wave,leg"]
    for p in people:
        if p.legs:  # a relay team: one row per leg, its runner and chip
            for leg, (chip, name) in enumerate(zip(p.chips, p.legs, strict=True), 1):
                first, _, last = name.partition(" ")
                lines.append(
                    f'{p.bib},{chip},{first},{last},,,"{p.club}","{p.team}",{p.race},{p.wave},{leg}'
                )
            continue
        lines.append(
            f"{p.bib},{p.chips[0]},{p.first_name},{p.last_name},{p.gender},{p.age},"
            f'"{p.club}","{p.team}",{p.race},{p.wave},'
        )
    path.write_text("\n".join(lines) + "\n")
    return event, people, path, event_path


def token(db: Path, role: str) -> str:
    out = subprocess.run(
        cli("token", "create", "--role", role, "--db", str(db)),
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return out.stdout.split()[0]


def start_server(
    event: Path, db: Path, people: Path, port: int, tick: float
) -> subprocess.Popen[bytes]:
    argv = cli("serve", "--event", str(event), "--participants", str(people), "--db", str(db))
    argv += ["--port", str(port), "--tick", str(tick)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)


async def post(http: httpx.AsyncClient, path: str, tok: str, body: object) -> None:
    r = await http.post(path, json=body, headers={"authorization": f"Bearer {tok}"})
    r.raise_for_status()


# -- the pages ----------------------------------------------------------------------------------


#: Pages seen on something other than a phone: the big screen at the finish.
VIEWPORTS = {"screen_team": (1920, 1080)}


async def open_page(
    browser: Any, proxy: Proxy, path: str, size: tuple[int, int]
) -> tuple[Any, Any]:
    """Open ``path`` through ``proxy`` in a fresh context with a ``size`` viewport; returns
    once its socket (if it has one) is open and its first frame has arrived, plus a moment
    for late requests."""
    ctx = await browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = await ctx.new_page()
    await page.goto(f"http://127.0.0.1:{proxy.port}{path}", wait_until="load")
    live = await page.locator("[ws-connect]").count()
    deadline = time.monotonic() + 20
    while live and (proxy.tally.ws_open < 1 or proxy.tally.frames < 1):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    return ctx, page


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from livetrack import sim

    tmp = Path(tempfile.mkdtemp(prefix="pagedata-"))
    db = tmp / "log.db"
    event, people, people_csv, event_path = setup(tmp)
    reader_tok = token(db, "reader")
    timer_tok = token(db, "timer")
    port = free_port()
    server = start_server(event_path, db, people_csv, port, args.tick)
    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"minutes": args.minutes, "tick_s": args.tick}
    try:
        wait_ready(url)
        window_ms = int(args.minutes * 60_000)
        setup_s = 30.0  # pages open and settle before the window
        t_open = int(time.time() * 1000) + int(setup_s * 1000)
        # the 10K's second wave starts two minutes after its first; the team race's first
        # finishers come in during the window, and the relay's first legs hand over
        guns = {
            "mile": t_open - int(args.mile_gun_ago * 1000),
            "tenk": t_open - 180_000,
            "team": t_open - int(args.team_gun_ago * 1000),
            "relay": t_open - int(args.relay_gun_ago * 1000),
        }
        actions = sim.plan(event, people, guns)
        now = int(time.time() * 1000)
        past = [a for a in actions if a.at_ms <= now]
        future = [a for a in actions if a.at_ms > now and a.kind == "read"]
        in_window = [
            a
            for a in future
            if t_open <= a.at_ms < t_open + window_ms
            and a.read is not None
            and str(a.read["reader"]).startswith("mat-")
        ]
        mile_chips = {p.chips[0]: p.bib for p in people if p.race == "mile"}
        mile_reads = [a for a in in_window if a.read and a.read["chip"] in mile_chips]
        halfway = [a for a in mile_reads if a.read and a.read["point"] == "half"]
        # the runner card: a mile runner due at halfway early in the window
        due = [str(a.read["chip"]) for a in halfway if a.read and a.at_ms > t_open + 20_000]
        card_bib = mile_chips[due[0]] if due else people[0].bib
        # one team's page: the team whose members finish first
        team_chips = {p.chips[0]: p.team for p in people if p.race == "team"}
        team_done = [
            team_chips[str(a.read["chip"])]
            for a in future
            if a.read and str(a.read["chip"]) in team_chips and a.read["point"] == "finish"
        ]
        team = team_done[0] if team_done else next(p.team for p in people if p.race == "team")
        window_end = t_open + window_ms
        relay_chips = {c for p in people if p.race == "relay" for c in p.chips}
        relay_reads = [
            a
            for a in future
            if a.read and a.read["chip"] in relay_chips and t_open <= a.at_ms < window_end
        ]
        team_finishes = [
            a
            for a in in_window
            if a.read and str(a.read["chip"]) in team_chips and a.read["point"] == "finish"
        ]
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for a in past:
                if a.kind == "gun":
                    await post(http, f"/api/v1/races/{a.race}/gun", timer_tok,
                               {"time": a.at_ms, "wave": a.wave})  # fmt: skip
            reads = [a.read for a in past if a.kind == "read"]
            for i in range(0, len(reads), 500):
                await post(http, "/api/v1/reads", reader_tok, reads[i : i + 500])
        start = sim.Action(now, "gun")  # a no-op first action: play keeps race time = wall time
        playing = asyncio.create_task(sim.play(url, reader_tok, [start, *future], speed=1.0))

        pages = {
            "race_mile": "/races/mile?point=half",
            "race_idle": "/races/tenk",
            "home": "/",
            "runner": f"/runners/{card_bib}",
            "results": "/results/mile",
            "map": "/races/mile/map",
            "teams": "/races/team/teams",
            "team": "/races/team/teams/" + quote(team, safe=""),
            "relay": "/races/relay/relay",
            # the big screen at the team race's finish (its first finishers come in during the
            # window): the feed, the boards (the teams first) and the race clock
            "screen_team": "/screen/team",
        }
        proxies = {name: Proxy(port) for name in pages}
        for p in proxies.values():
            await p.start()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic",
                      "--disable-background-networking", "--disable-dev-shm-usage"],
            )  # fmt: skip
            opened = {}
            for name, path in pages.items():
                opened[name] = await open_page(
                    browser, proxies[name], path, VIEWPORTS.get(name, (390, 844))
                )
            first = {name: p.tally.total() for name, p in proxies.items()}
            wait = t_open / 1000 - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                print(f"pagedata: pages took {-wait:.0f} s too long to open", file=sys.stderr)
            at0 = {name: (p.tally.ws, p.tally.frames) for name, p in proxies.items()}
            t0 = time.monotonic()
            await asyncio.sleep(window_ms / 1000)
            minutes = (time.monotonic() - t0) / 60
            at1 = {name: (p.tally.ws, p.tally.frames) for name, p in proxies.items()}
            shots = ROOT / "test-artifacts"
            shots.mkdir(exist_ok=True)
            for name, (ctx, page) in opened.items():
                with contextlib.suppress(Exception):
                    await page.screenshot(path=str(shots / f"pagedata-{name}.png"), full_page=True)
                await ctx.close()
            await browser.close()
        playing.cancel()
        with contextlib.suppress(BaseException):
            await playing
        for p in proxies.values():
            await p.stop()
        reads_bytes = sum(len(json.dumps(a.read, separators=(",", ":"))) for a in mile_reads)
        reads_kb_min = reads_bytes / 1000 / minutes
        result: dict[str, Any] = {}
        for name in pages:
            ws_bytes = at1[name][0] - at0[name][0]
            frames = at1[name][1] - at0[name][1]
            row: dict[str, Any] = {
                "first_load_bytes": first[name],
                "ws_kb_per_min": round(ws_bytes / 1000 / minutes, 3),
                "frames_per_min": round(frames / minutes, 1),
                "mean_frame_bytes": round(ws_bytes / frames) if frames else 0,
            }
            if name in BUDGET_KB_PER_MIN:
                row["budget_kb_per_min"] = BUDGET_KB_PER_MIN[name]
                row["within_budget"] = row["ws_kb_per_min"] <= BUDGET_KB_PER_MIN[name]
            result[name] = row
        result["race_mile"]["ratio_to_reads"] = (
            round(result["race_mile"]["ws_kb_per_min"] / reads_kb_min, 2) if reads_kb_min else None
        )
        out.update(
            {
                "pages": result,
                "mile_halfway_passings_in_window": len({a.read["chip"] for a in halfway if a.read}),
                "mile_reads_in_window": len(mile_reads),
                "reads_kb_per_min": round(reads_kb_min, 3),
                "runner_card_bib": card_bib,
                "team": team,
                "team_finishes_in_window": len(team_finishes),
                "relay_reads_in_window": len(relay_reads),
            }
        )
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="length of the measuring window")
    ap.add_argument(
        "--mile-gun-ago", type=float, default=300.0,
        help="seconds between the mile's gun and the window opening",
    )  # fmt: skip
    ap.add_argument(
        "--team-gun-ago", type=float, default=560.0,
        help="seconds between the team race's gun and the window opening",
    )  # fmt: skip
    ap.add_argument(
        "--relay-gun-ago", type=float, default=900.0,
        help="seconds between the relay's gun and the window opening",
    )  # fmt: skip
    ap.add_argument("--tick", type=float, default=0.25, help="the hub's tick (as serve --tick)")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()

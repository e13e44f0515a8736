"""The fan-out benchmark's set-up: ports, entrants, the servers it starts, what it reads
from them (see ``fanout.py``)."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RACE = "tenk"
TOPICS = f"race:{RACE},board:{RACE}:finish:all,feed:{RACE}"
BOARD_ID = f'id="t-board-{RACE}-finish-all"'.encode()
#: The board's heading, with its count: whole in the region, or alone in a patch.
BOARD_HEAD_ID = f'id="t-board-{RACE}-finish-all-h"'.encode()
BOARD_COUNT = re.compile(rb'<span class="meta">\((\d+)\)</span>')
#: A feed line, whole region or patch alike, names its runner in its id.
FEED_BIB = re.compile(f'id="t-fl-{RACE}-(\\d+)"'.encode())
HIST_MS = 120_000  # latency histogram: 1 ms buckets up to two minutes (the last is overflow)
#: Messages one spectator per client process keeps from the compared phase: the ceiling
#: sends the same messages, in the same order, as the same frames.
KEEP_MESSAGES = 2000


# -- setup --------------------------------------------------------------------------------------


def raise_nofile(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(want, soft)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def write_participants(path: Path, n: int) -> None:
    from livetrack.cli import demo_event
    from livetrack.sim import make_participants

    people = make_participants(demo_event(), {RACE: n}, seed=3)
    lines = ["bib,chip,first_name,last_name,gender,age,club,race,wave"]
    for p in people:
        lines.append(
            f"{p.bib},{p.chips[0]},{p.first_name},{p.last_name},{p.gender},{p.age},"
            f'"{p.club}",{p.race},{p.wave}'
        )
    path.write_text("\n".join(lines) + "\n")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "livetrack.cli", *args]


def token(log_args: list[str], role: str) -> str:
    out = subprocess.run(
        cli("token", "create", "--role", role, *log_args),
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return out.stdout.split()[0]


def start_server(
    log_args: list[str],
    people: Path,
    port: int,
    ws: str,
    tick: float | None = None,
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    from livetrack.demo.run import write_event

    event = write_event(people.parent / "heaton.toml")  # dated today: guns fire now
    serve = ["serve", "--event", str(event), "--participants", str(people), *log_args]
    serve += ["--port", str(port)]
    if tick is not None:
        serve += ["--tick", str(tick)]
    serve += extra
    if ws:  # the same server with another uvicorn websocket implementation
        argv = [
            sys.executable,
            str(Path(__file__).with_name("fanout.py").resolve()),
            "--serve-with",
            ws,
            "--",
            *serve,
        ]
    else:
        argv = cli(*serve)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)


def serve_with(ws: str, argv: list[str]) -> None:
    """``livetrack serve ARGV`` with ``ws`` as uvicorn's websocket implementation."""
    import uvicorn

    from livetrack import config
    from livetrack.cli import build_parser
    from livetrack.cli.common import load_event, log_url
    from livetrack.config import Settings
    from livetrack.web.app import create_app

    args = build_parser().parse_args(argv)
    event = load_event(args.event)
    entries = config.entries_file(args.participants) if args.participants else None
    settings = Settings(
        event=event, log_url=log_url(args, event), entries=entries, tick_s=args.tick
    )
    app = create_app(settings)
    uvicorn.run(
        app, host=args.host, port=args.port, ws=ws, ws_per_message_deflate=False,
        ws_ping_interval=20, ws_ping_timeout=20, log_level="warning", access_log=False,
    )  # fmt: skip


def hub_counters(urls: list[str]) -> dict[str, float]:
    """The hub's renders, latest-wins skips, ticks, messages and time spent in its ticks,
    summed over the servers (from ``/metrics``)."""
    out = {"renders": 0.0, "skipped": 0.0, "ticks": 0.0, "messages": 0.0, "flush_s": 0.0}
    names = {
        "livetrack_renders_total": "renders",
        "livetrack_frames_skipped_total": "skipped",
        "livetrack_hub_ticks_total": "ticks",
        "livetrack_hub_messages_total": "messages",
        "livetrack_hub_flush_seconds_total": "flush_s",
    }
    for url in urls:
        with contextlib.suppress(httpx.HTTPError):
            for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
                name, _, value = line.partition(" ")
                if name in names:
                    out[names[name]] += float(value)
    return out


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def own_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (from ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from ``/proc``), and theirs."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for c in (task / "children").read_text().split():
                out += [int(c), *children(int(c))]
    return out


def cpu_s(pid: int) -> float:
    """CPU seconds used by a server process and its children (the push sender's process)."""
    return own_cpu_s(pid) + sum(own_cpu_s(c) for c in children(pid))

"""Fan-out benchmark: spectators' websockets against a real ``livetrack serve``, and the ceiling.

Starts real ``livetrack serve`` process(es) on a fresh log, connects ``--clients`` real
``websockets`` clients spread over ``--client-procs`` processes, each subscribed as the race
page is (``race:tenk,board:tenk:finish:all,feed:tenk``), then posts finish reads of new runners
at ``--rate`` per second for ``--seconds``. The poster records the wall time of each post in
shared memory; a client records, for each runner, the wall time of the first message that shows
that runner (its bib in the feed, or the finish board's count reaching it), so read-to-screen
latency covers the log, the fold, the hub's tick, rendering and the socket (one machine, so
``time.time()`` is comparable across processes).

That is the latency phase; its delivered frames/s are capped by the hub's tick (one message per
client per 250 ms) and the offered reads, so it says nothing about capacity. The saturation
phase then starts a fresh server, its log on a tmpfs (``--sat-log-dir``), whose hub ticks every
``--sat-tick`` (10 ms after each tick's work: at 5,000 clients a tick's writes take most of
a tenth of a second, so a longer wait would cap what the hub offers below what the clients
read) and posts ``--sat-rate`` reads/s (200, in posts of 5), several posts per tick, so that
the hub can offer each client more messages than it can read; the clients only
count frames and bytes there, and the phase says what limited it (``saturation.limit``). In the
same run the same clients then connect to a bare ``websockets`` server
(``websockets.asyncio.server``) that sends the messages one spectator got in the saturation
phase, each framed once (compressed the same way for the clients that negotiated
permessage-deflate) and written straight to every connection, as fast as the clients take
them: the ceiling for Python on this machine. ``ratio`` is the saturation phase's delivered
frames/s over the ceiling's (``--previous-ceiling`` adds the ceiling as it was before,
``broadcast`` of plain frames of the mean size, and ``previous_ratio``). Server memory per
connection is the server's RSS (from ``/proc``) after connecting the idle clients minus
before, divided by the count.

    python bench/fanout.py [--clients 5000] [--rate 50] [--seconds 20] [--client-procs P]
                           [--sat-seconds 10] [--sat-rate 200] [--sat-tick 0.01]
    python bench/fanout.py --processes 2 [--redis URL]   # two servers behind one Redis stream
    python bench/fanout.py --compare                      # one process, then two, same run
    python bench/fanout.py --clients 10000 --connect-only # connect + snapshot check only
    python bench/fanout.py --push-subscriptions 10000     # then without and with push

With ``--push-subscriptions N`` the latency phase runs twice more at the end (``--push-pairs``
times), the same load both times: without push subscriptions, then with ``N`` of them stored
beside the log before the clients connect, each following one runner of a field of
``--push-field`` runners (at the finish, 3 minutes' lead), made by the tests' stand-in Web
Push service (``tests/pushservice.py``, a process of its own over real HTTP, which accepts a
message only when its VAPID signature verifies and its body decrypts). Reads in both are
posted with a chip time 65 s old, so that finish alerts (due once a finish has stood a minute)
are decided, encrypted and sent while the clients are timed. ``push`` reports both phases'
read-to-screen p50/p99, their ratios, the server's push counters (sent, dropped, late) from
``/metrics`` and what the stand-in service counted (it runs at a lower CPU priority, ``nice``
10: it stands for a service elsewhere). ``--push-alternate`` runs every other pair with push
first. A server's CPU counts its child processes too (the push sender's).

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import dataclasses
import json
import math
import multiprocessing as mp
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import SynchronizedArray
from pathlib import Path
from typing import Any

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        argv = [sys.executable, str(Path(__file__).resolve()), "--serve-with", ws, "--", *serve]
    else:
        argv = cli(*serve)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)


def serve_with(ws: str, argv: list[str]) -> None:
    """``livetrack serve ARGV`` with ``ws`` as uvicorn's websocket implementation."""
    import uvicorn

    from livetrack import cli as lcli
    from livetrack.web.app import Settings, create_app

    args = lcli.build_parser().parse_args(argv)
    event = lcli.load_event(args.event)
    people = lcli.load_participants(args.participants, event) if args.participants else []
    settings = Settings(
        event=event, log_url=lcli._log_url(args, event), participants=people, tick_s=args.tick
    )
    app = create_app(settings)
    uvicorn.run(
        app, host=args.host, port=args.port, ws=ws, ws_per_message_deflate=False,
        ws_ping_interval=20, ws_ping_timeout=20, log_level="warning", access_log=False,
    )  # fmt: skip


def wait_ready(url: str, timeout: float = 180.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready")


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


def start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("fanout: --processes 2 needs redis-server on PATH, or --redis URL")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp), "--save", "",
         "--appendonly", "yes", "--appendfsync", "everysec", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise TimeoutError("redis-server did not start")


# -- client processes ---------------------------------------------------------------------------


class Spectator:
    """One spectator's view: frames and bytes received, and how far it has seen the field."""

    __slots__ = ("bytes", "frames", "keep", "last", "snapshot", "upto", "ws")

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep  # keep every message after the snapshot (for the ceiling's frames)
        self.frames = 0
        self.bytes = 0
        self.ws: Any = None  # its connection, which counts the bytes on the wire
        self.snapshot = False
        self.upto = -1  # the highest runner index this spectator has been shown
        self.last = b""  # the last message, while latency is not tracked


class Worker:
    """A client process: many asyncio ``websockets`` clients and their shared tallies."""

    def __init__(
        self, posted: SynchronizedArray[float], bib_index: dict[bytes, int], compression: str
    ) -> None:
        self.compression = None if compression == "none" else compression
        self.posted: Any = posted.get_obj()
        self.bib_index = bib_index
        self.spectators: list[Spectator] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.hist = array.array("q", bytes(8 * HIST_MS))
        self.failed = 0
        self.sample = b""
        self.first = b""  # a snapshot, for the ceiling to send on connect
        #: the messages one spectator of this process got after its snapshot: the ceiling
        #: sends the same ones
        self.kept: list[bytes] = []
        self.latency = False

    def see(self, sp: Spectator, msg: bytes, now: float) -> None:
        """Credit every runner this message shows for the first time to this spectator."""
        upto = self.shown(msg, sp.upto)
        if upto > sp.upto:
            posted = self.posted
            hist = self.hist
            for k in range(sp.upto + 1, min(upto + 1, len(posted))):
                t = posted[k]
                if t > 0:
                    ms = int((now - t) * 1000)
                    hist[min(max(ms, 0), HIST_MS - 1)] += 1
            sp.upto = upto

    def shown(self, msg: bytes, upto: int) -> int:
        """The highest runner index ``msg`` shows, or ``upto`` if higher."""
        i = msg.find(BOARD_HEAD_ID)
        if i >= 0:
            m = BOARD_COUNT.search(msg, i, i + 2000)
            if m is not None:
                upto = max(upto, int(m.group(1)) - 1)  # runner k is the (k+1)th finisher
        for m in FEED_BIB.finditer(msg):
            k = self.bib_index.get(m.group(1), -1)
            if k > upto:
                upto = k
        return upto

    async def spectate(self, url: str, sp: Spectator, opened: asyncio.Semaphore) -> None:
        from websockets.asyncio.client import connect

        try:
            async with opened:
                ws = await connect(
                    url, compression=self.compression, max_size=None, ping_interval=None,
                    open_timeout=120, close_timeout=2, max_queue=None,
                    create_connection=counting_connection(),
                )  # fmt: skip
                sp.ws = ws
        except Exception:
            self.failed += 1
            return
        try:
            async for msg in _frames(ws):
                now = time.time()
                sp.frames += 1
                sp.bytes += len(msg)
                if not sp.snapshot and BOARD_ID in msg:
                    sp.snapshot = True
                    if not self.sample:
                        self.sample = msg
                    if not self.first:
                        self.first = msg
                elif sp.keep and len(self.kept) < KEEP_MESSAGES:
                    self.kept.append(msg)
                if self.latency:
                    self.see(sp, msg, now)
                else:  # the same work per frame as against the ceiling: none
                    sp.last = msg
                if len(msg) > len(self.sample) and sp.frames > 3:
                    self.sample = msg
        except Exception:
            pass
        finally:
            with contextlib.suppress(Exception):
                await ws.close()

    def tally(self) -> dict[str, Any]:
        sps = self.spectators
        return {
            "t": time.time(),
            "frames": sum(s.frames for s in sps),
            "bytes": sum(s.bytes for s in sps),
            "wire": sum(getattr(s.ws, "wire", 0) for s in sps),
            "snapshots": sum(s.snapshot for s in sps),
            "failed": self.failed,
            "open": sum(not t.done() for t in self.tasks),
        }

    async def serve(self, pipe: Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            cmd, arg = await loop.run_in_executor(None, pipe.recv)
            if cmd == "connect":
                urls, n = arg
                opened = asyncio.Semaphore(100)
                for i in range(n):
                    sp = Spectator(keep=i == 0)
                    self.spectators.append(sp)
                    url = urls[i % len(urls)]
                    self.tasks.append(asyncio.create_task(self.spectate(url, sp, opened)))
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    t = self.tally()
                    if t["snapshots"] + t["failed"] >= n or not t["open"]:
                        break
                    await asyncio.sleep(0.2)
                pipe.send(self.tally())
            elif cmd == "track":
                # ``arg``: the first runner to time (those before were shown already), or
                # None to count frames only and look at each spectator's last message at the end
                self.latency = arg is not None
                for sp in self.spectators:
                    sp.upto = arg - 1 if arg is not None else -1
                self.hist = array.array("q", bytes(8 * HIST_MS))
                self.kept = []
                pipe.send(self.tally())
            elif cmd == "tally":
                pipe.send(self.tally())
            elif cmd == "report":
                for sp in self.spectators:
                    if sp.last:
                        sp.upto = self.shown(sp.last, sp.upto)
                        sp.last = b""
                ups = [s.upto for s in self.spectators if s.snapshot]
                pipe.send(
                    {
                        "hist": self.hist.tobytes(),
                        "upto": ups,
                        "sample": self.sample,
                        "first": self.first,
                        "kept": self.kept,
                    }
                )
            elif cmd == "close":
                self.latency = False
                for task in self.tasks:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
                self.tasks.clear()
                self.spectators.clear()
                self.failed = 0
                pipe.send(self.tally())
            elif cmd == "exit":
                pipe.send(None)
                return


def counting_connection() -> Any:
    """A ``websockets`` client connection that counts the bytes it receives on the wire
    (frame headers included, compressed as they travel)."""
    from websockets.asyncio.client import ClientConnection

    class Counting(ClientConnection):
        wire = 0

        def data_received(self, data: bytes) -> None:
            self.wire += len(data)
            super().data_received(data)

    return Counting


async def _frames(ws: Any) -> Any:
    while True:
        yield await ws.recv(decode=False)


def worker_main(
    pipe: Connection,
    posted: SynchronizedArray[float],
    bibs: list[str],
    compression: str,
    nice: int = 0,
) -> None:
    raise_nofile(65536)
    if nice:
        os.nice(nice)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    index = {b.encode(): i for i, b in enumerate(bibs)}
    asyncio.run(Worker(posted, index, compression).serve(pipe))


class Clients:
    """The client processes, driven over pipes."""

    def __init__(
        self,
        procs: int,
        posted: SynchronizedArray[float],
        bibs: list[str],
        compression: str,
        nice: int = 0,
    ) -> None:
        ctx = mp.get_context("fork")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=worker_main, args=(child, posted, bibs, compression, nice), daemon=True
            )
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)

    def ask(self, cmd: str, args: list[Any] | None = None) -> list[Any]:
        for i, pipe in enumerate(self.pipes):
            pipe.send((cmd, args[i] if args is not None else None))
        return [pipe.recv() for pipe in self.pipes]

    def connect(self, urls: list[str], n: int) -> dict[str, int]:
        """Connect ``n`` clients over the processes, each process spreading over ``urls``."""
        per = [n // len(self.pipes) + (i < n % len(self.pipes)) for i in range(len(self.pipes))]
        return merge(self.ask("connect", [(urls, k) for k in per]))

    def tally(self) -> dict[str, Any]:
        return merge(self.ask("tally"))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.ask("exit")
        for p in self.procs:
            p.join(10)


def merge(tallies: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: sum(t[k] for t in tallies) for k in tallies[0] if k != "t"}
    out["t"] = max(t["t"] for t in tallies)
    return out


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


# -- the bare ceiling ---------------------------------------------------------------------------


def ceiling_main(pipe: Connection, port: int, previous: bool = False) -> None:
    """A bare ``websockets`` server: a snapshot on connect, then, on command, the given
    messages in turn, each as one frame built once and written straight to every
    connection's transport: compressed for the connections that negotiated permessage-deflate
    as livetrack's do (no context takeover, so one compressed frame suits them all), plain for
    the others. The clients thus read the same frames as from livetrack, and the server does
    nothing per frame but the write.

    ``previous``: the ceiling as it was before (``--previous-ceiling``): no extension
    offered, each message sent with ``broadcast``, which frames it for every connection."""
    raise_nofile(65536)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    async def main() -> None:
        from websockets.asyncio.server import ServerConnection, broadcast, serve
        from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

        from livetrack.live.wire import deflate_frame, text_frame

        conns: set[ServerConnection] = set()
        snapshot: list[bytes] = [b"<div></div>"]

        async def handler(ws: ServerConnection) -> None:
            conns.add(ws)
            try:
                await ws.send(snapshot[0], text=True)
                await ws.wait_closed()
            finally:
                conns.discard(ws)

        shared_deflate = ServerPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            compress_settings={"level": 6},
        )
        loop = asyncio.get_running_loop()
        async with serve(
            handler, "127.0.0.1", port, compression=None,
            extensions=None if previous else [shared_deflate],
            ping_interval=20, ping_timeout=20, max_size=2**20, backlog=4096,
        ):  # fmt: skip
            pipe.send(os.getpid())
            while True:
                cmd, arg = await loop.run_in_executor(None, pipe.recv)
                if cmd == "snapshot":
                    snapshot[0] = arg
                    pipe.send(None)
                elif cmd == "blast":
                    messages, seconds = arg
                    frames = [(text_frame(m), deflate_frame(m) or text_frame(m)) for m in messages]
                    targets = [(c.transport, bool(c.protocol.extensions)) for c in conns]
                    limit = 256 * 1024 * max(1, len(targets))
                    sent = 0
                    t_end = time.monotonic() + seconds
                    while time.monotonic() < t_end:
                        if previous:
                            broadcast(conns, messages[sent % len(messages)], text=True)
                        else:
                            plain, packed = frames[sent % len(frames)]
                            for transport, compressed in targets:
                                if not transport.is_closing():
                                    transport.write(packed if compressed else plain)
                        sent += 1
                        await asyncio.sleep(0)
                        # no backpressure in a bare write: wait while the write buffers are full
                        while (
                            sum(t.get_write_buffer_size() for t, _ in targets) > limit
                            and time.monotonic() < t_end
                        ):
                            await asyncio.sleep(0.002)
                    pipe.send(sent)
                elif cmd == "exit":
                    pipe.send(None)
                    return

    asyncio.run(main())


def measure_ceiling(
    clients: Clients,
    n: int,
    messages: list[bytes],
    seconds: float,
    snapshot: bytes,
    previous: bool = False,
) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    port = free_port()
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=ceiling_main, args=(child, port, previous), daemon=True)
    proc.start()
    try:
        pid = parent.recv()
        parent.send(("snapshot", snapshot))
        parent.recv()
        before = rss_kb(pid)
        got = clients.connect([f"ws://127.0.0.1:{port}/live?topics={TOPICS}"], n)
        time.sleep(1.0)
        after = rss_kb(pid)
        clients.ask("track", [None] * len(clients.pipes))
        t0 = clients.tally()
        cpu0 = cpu_s(pid)
        parent.send(("blast", (messages, seconds)))
        parent.recv()
        time.sleep(0.5)  # let the last buffered frames arrive
        t1 = clients.tally()
        cpu1 = cpu_s(pid)
        clients.ask("close")
        parent.send(("exit", None))
        parent.recv()
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    frames = t1["frames"] - t0["frames"]
    span = t1["t"] - t0["t"]
    return {
        "connected": got["snapshots"],
        "messages": len(messages),
        "frames_per_s": frames / span,
        "mb_per_s": (t1["bytes"] - t0["bytes"]) / span / 1e6,
        "mean_frame_bytes": (t1["bytes"] - t0["bytes"]) / max(1, frames),
        "wire_bytes_per_frame": (t1["wire"] - t0["wire"]) / max(1, frames),
        "kb_per_conn": (after - before) / max(1, got["snapshots"]),
        "server_cpu_us_per_frame": (cpu1 - cpu0) * 1e6 / max(1, frames),
    }


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


def push_service_main(pipe: Connection) -> None:
    """The tests' stand-in Web Push service (``tests/pushservice.py``) in a process of its
    own, over real HTTP: it accepts a message (201) only when its VAPID signature verifies and
    its ``aes128gcm`` body decrypts with the subscription's keys. Commands over ``pipe``:
    ``subscribe`` (server key, count) -> the subscriptions as browsers give them; ``stats``;
    ``exit``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from pushservice import PushService

    # The stand-in stands for a push service that runs elsewhere: at a lower priority than
    # the server and the clients here, so that its verifying and decrypting (its CPU is still
    # reported) takes what they leave of the two cores rather than competing with them.
    os.nice(10)

    with PushService() as service:
        while True:
            cmd, arg = pipe.recv()
            if cmd == "subscribe":
                key, n = arg
                pipe.send([service.subscribe(key).json() for _ in range(n)])
            elif cmd == "stats":
                use = resource.getrusage(resource.RUSAGE_SELF)
                pipe.send(
                    {
                        "requests": service.requests,
                        "accepted": len(service.delivered),
                        "rejected": len(service.rejected),
                        "reasons": sorted({why for _, _, why in service.rejected})[:3],
                        "cpu_s": use.ru_utime + use.ru_stime,
                    }
                )
            elif cmd == "exit":
                pipe.send(None)
                return


def saturation_limit(sat: dict[str, Any], per_client: float) -> str:
    """What limited the frames the clients got in the saturation phase: ``clients`` when
    they read fewer messages than the hub built for them (the hub offered more than they
    took); otherwise they took every one, and the limit was what the hub built: its own
    work (``server``: its ticks busy over half the phase), how often the page changed
    (``changes``), or the tick (``tick``)."""
    messages, ticks = sat.get("messages_per_s", 0.0), sat.get("ticks_per_s", 0.0)
    if per_client < 0.9 * messages or sat.get("skipped_per_s", 0) > 0:
        return "clients"
    if sat.get("hub_busy", 0.0) > 0.5:
        return "server"
    return "changes" if messages < 0.8 * ticks else "tick"


def merge_phases(latency: dict[str, Any], sat: dict[str, Any], phase: Phase) -> dict[str, Any]:
    """One run's figures: the latency phase's (its throughput under ``latency_phase_*``
    names), the saturation phase's under ``saturation``, and its throughput, frame size and
    CPU per frame as the plain ``delivered_frames_per_s``, ``mean_frame_bytes`` and
    ``server_cpu_us_per_frame`` that the ceiling is compared with."""
    out = {LATENCY_RENAMES.get(k, k): v for k, v in latency.items()}
    detail = {"tick_s": phase.tick, **{k: sat[k] for k in SATURATION_KEYS if k in sat}}
    per_client = sat["delivered_frames_per_s"] / max(1, sat["connected"])
    detail["frames_per_client_per_s"] = round(per_client, 1)
    detail["limit"] = limit = saturation_limit(sat, per_client)
    if limit != "clients":
        print(
            f"fanout: the clients read {per_client:.1f} frames/s each, every message the hub"
            f" built ({sat.get('messages_per_s')}/s in {sat.get('ticks_per_s')} ticks/s, the"
            f" ticks busy {sat.get('hub_busy', 0):.0%} of the phase): the limit was {limit},"
            " not the clients, so the ratio compares a server that did not saturate them",
            file=sys.stderr,
        )
    out["saturation"] = detail
    for k in ("delivered_frames_per_s", "mean_frame_bytes", "server_cpu_us_per_frame"):
        out[k] = sat[k]
    return out


def mean_size_messages(sample: bytes, mean_bytes: float) -> list[bytes]:
    """One message of the mean frame size, cut from ``sample``: what the ceiling sends when no
    spectator's messages were kept."""
    size = max(64, int(mean_bytes))
    text = (sample * (size // max(1, len(sample)) + 1))[:size]
    frame = text.decode("utf-8", "ignore").encode()
    return [frame + b" " * (size - len(frame))]


def frame_build(sample: bytes, n: int = 2000) -> dict[str, float]:
    """CPU to build one message's frame, plain and compressed (done once per message for all
    the clients of a topic set, never per client), for the largest message of the run."""
    import timeit

    from livetrack.live.wire import deflate_frame, text_frame

    plain = timeit.timeit(lambda: text_frame(sample), number=n) / n
    packed = timeit.timeit(lambda: deflate_frame(sample), number=n) / n
    frame = deflate_frame(sample) or text_frame(sample)
    return {
        "message_bytes": len(sample),
        "plain_us": round(plain * 1e6, 1),
        "deflate_us": round(packed * 1e6, 1),
        "deflated_bytes": len(frame),
    }


def compare_push(
    args: argparse.Namespace,
    clients: Clients,
    posted: Any,
    bibs: list[str],
    tmp: Path,
    people: Path,
    push: Connection,
) -> dict[str, Any]:
    """The latency phase without push subscriptions, then with ``--push-subscriptions`` of
    them (``--push-pairs`` times; with ``--push-alternate`` every other pair in the other
    order), the same load otherwise: reads a minute old, so that every
    finish alert becomes due during the phase; each subscription follows one of the phase's
    finishers, so all of them are decided, appended, encrypted and sent while the clients are
    timed. Read-to-screen p50/p99 of both, their ratios, and what the server and the stand-in
    push service counted in the phases with."""
    age_ms = 65_000
    pairs = []
    with_first = []
    inproc: list[dict[str, Any]] = []
    for i in range(max(1, args.push_pairs)):
        without = Phase(None, args.rate, args.seconds, read_age_ms=age_ms)
        with_push = Phase(
            None, args.rate, args.seconds, read_age_ms=age_ms,
            push_subs=args.push_subscriptions, push=push, push_field=args.push_field or 0,
        )  # fmt: skip
        flip = bool(args.push_alternate and i % 2)  # every other pair: with push first
        with_first.append(flip)
        order = [with_push, without] if flip else [without, with_push]
        in_process = None
        if args.push_in_process_too:  # a third phase: with push sent from the server's process
            in_process = dataclasses.replace(with_push, push_in_process=True)
            order.append(in_process)
            order = order[i % 3 :] + order[: i % 3]  # each kind first, second and last in turn
        done = {}
        for ph in order:
            done[id(ph)] = run_livetrack(args, clients, posted, bibs, 1, None, tmp, people, ph)
            r = done[id(ph)]
            for k in ("_sample", "_kept", "_first"):
                r.pop(k, None)
            print(json.dumps(r), file=sys.stderr)
        plain, pushed = done[id(without)], done[id(with_push)]
        pairs.append((plain, pushed))
        if in_process is not None:
            inproc.append(done[id(in_process)])

    def ratio(a: Any, b: Any) -> float | None:
        return round(a / b, 2) if a and b and a == a and b == b else None

    finishers = int(args.rate * args.seconds)
    out: dict[str, Any] = {
        "subscriptions": args.push_subscriptions,
        "field": max(args.push_field, finishers),
        "read_age_s": age_ms / 1000,
    }
    for key in ("p50_ms", "p99_ms", "post_p99_ms", "passings_per_s", "server_cpu_s"):
        without_v = [p.get(key) for p, _ in pairs]
        with_v = [q.get(key) for _, q in pairs]
        out[f"{key}_without"] = without_v[0] if len(pairs) == 1 else without_v
        out[f"{key}_with"] = with_v[0] if len(pairs) == 1 else with_v
        if key in ("p50_ms", "p99_ms"):
            ratios = [ratio(b, a) for a, b in zip(without_v, with_v, strict=True)]
            out[f"{key[:3]}_ratio"] = ratios[0] if len(pairs) == 1 else ratios
            known = sorted(r for r in ratios if r is not None)
            if len(pairs) > 1 and known:
                out[f"{key[:3]}_ratio_median"] = known[len(known) // 2]
    out["shown_all_with"] = [q.get("shown_all") for _, q in pairs]
    if inproc:  # the same with push sent from the serving process itself
        for key in ("p50_ms", "p99_ms", "post_p99_ms", "server_cpu_s"):
            out[f"{key}_in_process"] = [r.get(key) for r in inproc]
        ratios = [
            ratio(r.get("p99_ms"), p.get("p99_ms")) for r, (p, _) in zip(inproc, pairs, strict=True)
        ]
        out["p99_ratio_in_process"] = ratios
        known = sorted(x for x in ratios if x is not None)
        if known:
            out["p99_ratio_in_process_median"] = known[len(known) // 2]
        out["alerts_in_process"] = [r.get("push", {}) for r in inproc]
    if args.push_alternate:
        out["with_first"] = with_first
    out["alerts"] = [q.get("push", {}) for _, q in pairs]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=50.0, help="finish passings posted per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--client-procs", type=int, default=0, help="default: one per 2,500 clients")
    ap.add_argument("--processes", type=int, default=1, choices=[1, 2])
    ap.add_argument("--redis", help="redis://… for --processes 2 (default: a private one)")
    ap.add_argument("--compare", action="store_true", help="one process, then two (both Redis)")
    ap.add_argument("--connect-only", action="store_true", help="connect and snapshot only")
    ap.add_argument("--no-ceiling", action="store_true")
    ap.add_argument(
        "--previous-ceiling",
        action="store_true",
        help="also measure the ceiling as it was before (plain frames of the mean size, sent"
        " with broadcast) and report previous_ratio",
    )
    ap.add_argument(
        "--sat-seconds", type=float, default=10.0, help="saturation phase length (0: none)"
    )
    ap.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="saturation phase + ceiling pairs, each ratio taken within its pair; the median"
        " pair is reported (default 3)",
    )
    ap.add_argument("--sat-rate", type=float, default=200.0, help="reads/s in saturation")
    ap.add_argument("--sat-batch", type=int, default=5, help="reads per post in saturation")
    ap.add_argument("--sat-tick", type=float, default=0.01, help="hub tick (s) in saturation")
    ap.add_argument("--ws", default="", help="uvicorn websocket implementation (default: serve's)")
    ap.add_argument(
        "--compression", default="deflate", choices=["deflate", "none"],
        help="what the spectators offer: permessage-deflate, as browsers do (default), or none",
    )  # fmt: skip
    ap.add_argument(
        "--push-subscriptions",
        type=int,
        default=0,
        help="then the latency phase twice more, without and with N push subscriptions",
    )
    ap.add_argument(
        "--push-field",
        type=int,
        help="how many runners the subscriptions follow, one each in turn (default: as many "
        "as there are subscriptions, one supporter a runner; the phase's finishers are the "
        "first of them, so --push-field 1 makes every subscription follow one of them)",
    )
    ap.add_argument(
        "--push-pairs", type=int, default=1, help="how many times to run that pair (default 1)"
    )
    ap.add_argument(
        "--push-in-process-too",
        action="store_true",
        help="make each pair a triple: also with push sent from the server's own process"
        " (serve --push-in-process); the order rotates",
    )
    ap.add_argument(
        "--push-alternate",
        action="store_true",
        help="run every other pair with push first (so that the order favours neither)",
    )
    ap.add_argument(
        "--log-dir",
        help="where the run's log and files go (default: the system's temporary folder; a "
        "tmpfs such as /dev/shm keeps other programs' disk writes out of the posts' fsyncs)",
    )
    ap.add_argument(
        "--sat-log-dir",
        default="/dev/shm" if Path("/dev/shm").is_dir() else None,
        help="where the saturation phase's log goes (default /dev/shm where there is one: "
        "the phase measures the send path, not how many fsyncs a shared disk allows)",
    )
    ap.add_argument(
        "--client-nice",
        type=int,
        default=5,
        help="niceness of the client processes, in every phase alike (default 5: the load"
        " generator yields the cores to the server it measures, as phones elsewhere would;"
        " 0 makes them compete for it)",
    )
    ap.add_argument("--serve-with", help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_with:
        serve_with(args.serve_with, args.rest)
        return
    nofile = raise_nofile(args.clients * 2 + 1024)
    procs = args.client_procs or max(2, math.ceil(args.clients / 2500))
    latency = Phase(None, args.rate, args.seconds)
    saturate = not args.connect_only and args.sat_seconds > 0
    sat = Phase(args.sat_tick, args.sat_rate, args.sat_seconds, args.sat_batch, latency=False)
    if args.push_subscriptions and args.push_field is None:
        args.push_field = args.push_subscriptions  # one supporter per runner
    runners = int(max(latency.rate * latency.seconds, sat.rate * sat.seconds)) + 100
    runners = max(runners, (args.push_field or 0) + 100)
    bibs = [str(i) for i in range(1, runners + 1)]
    posted = mp.Array("d", runners)
    # forked before any event loop or thread exists
    clients = Clients(procs, posted, bibs, args.compression, args.client_nice)
    push_proc: Any = None
    push_pipe: Connection | None = None
    if args.push_subscriptions:
        push_pipe, child = mp.get_context("fork").Pipe()
        push_proc = mp.get_context("fork").Process(
            target=push_service_main, args=(child,), daemon=True
        )
        push_proc.start()
    tmp = Path(tempfile.mkdtemp(prefix="livetrack-fanout-", dir=args.log_dir))
    sat.log_dir = Path(tempfile.mkdtemp(prefix="livetrack-fanout-sat-", dir=args.sat_log_dir))
    people = tmp / "people.csv"
    write_participants(people, runners)
    redis_proc: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] = {"bench": "fanout", "cpus": os.cpu_count(), "nofile": nofile}
    result["client_nice"] = args.client_nice
    try:
        redis = args.redis
        if (args.processes == 2 or args.compare) and not redis:
            redis_proc, redis = start_redis(tmp)
        modes = [1, 2] if args.compare else [args.processes]
        runs = []
        samples = []
        firsts: list[bytes] = []
        with_ceiling = not args.connect_only and not args.no_ceiling
        ceilings: list[dict[str, Any]] = []
        for n in modes:
            use_redis = redis if (n == 2 or args.compare) else None
            run = run_livetrack(args, clients, posted, bibs, n, use_redis, tmp, people, latency)
            sample = run.pop("_sample", b"")
            messages = run.pop("_kept", [])
            first = run.pop("_first", b"")
            print(json.dumps(run), file=sys.stderr)
            ceiling: dict[str, Any] = {}
            if saturate:
                # the same clients against a server offered more than it can deliver, each time
                # followed at once by the bare ceiling sending what one spectator got: the
                # machine's load moves between minutes, so each pair is compared on its own and
                # the median pair is kept
                pairs: list[tuple[float, dict[str, Any], dict[str, Any]]] = []
                for _ in range(max(1, args.pairs)):
                    s = run_livetrack(args, clients, posted, bibs, n, use_redis, tmp, people, sat)
                    sample = s.pop("_sample", b"") or sample
                    kept_now = s.pop("_kept", []) or messages
                    first = s.pop("_first", b"") or first
                    print(json.dumps(s), file=sys.stderr)
                    c: dict[str, Any] = {}
                    if with_ceiling and sample:
                        msgs = kept_now or mean_size_messages(sample, s["mean_frame_bytes"])
                        secs = min(sat.seconds, 10)
                        c = measure_ceiling(clients, args.clients, msgs, secs, first or sample)
                        print(json.dumps({"ceiling": c}), file=sys.stderr)
                    ratio = s["delivered_frames_per_s"] / c["frames_per_s"] if c else 0.0
                    pairs.append((ratio, s, c))
                    messages = kept_now
                ordered = sorted(pairs, key=lambda p: p[0])
                _, s, ceiling = ordered[len(ordered) // 2]
                run = merge_phases(run, s, sat)
                if ceiling:
                    run["pair_ratios"] = [round(p[0], 2) for p in pairs]
            elif with_ceiling and sample:
                msgs = messages or mean_size_messages(sample, run["mean_frame_bytes"])
                secs = min(latency.seconds, 10)
                ceiling = measure_ceiling(clients, args.clients, msgs, secs, first or sample)
            runs.append(run)
            samples.append(sample)
            firsts.append(first or sample)
            ceilings.append(ceiling)
        if push_pipe is not None:
            result["push"] = compare_push(args, clients, posted, bibs, tmp, people, push_pipe)
        sample = samples[0]
        if ceilings and ceilings[0]:
            result["ceiling"] = {k: round(v, 1) for k, v in ceilings[0].items()}
            if args.previous_ceiling:
                # as it was: plain frames of the mean size, framed per connection by broadcast
                frame = mean_size_messages(sample, runs[0]["mean_frame_bytes"])[0]
                secs = min(sat.seconds if saturate else latency.seconds, 10)
                old = measure_ceiling(clients, args.clients, [frame], secs, firsts[0], True)
                result["previous_ceiling"] = {k: round(v, 1) for k, v in old.items()}
                for r in runs:
                    r["previous_ratio"] = round(
                        r["delivered_frames_per_s"] / old["frames_per_s"], 2
                    )
            for r, ceiling in zip(runs, ceilings, strict=True):
                r["ratio"] = round(r["delivered_frames_per_s"] / ceiling["frames_per_s"], 2)
                # the same comparison in server CPU per frame of the same size
                us = max(r["server_cpu_us_per_frame"], 1e-9)
                r["cpu_ratio"] = round(ceiling["server_cpu_us_per_frame"] / us, 2)
                r["ceiling_frames_per_s"] = round(ceiling["frames_per_s"], 1)
        if sample:
            result["frame_build"] = frame_build(sample)
        if args.compare:
            result.update({"one": runs[0], "two": runs[1]})
        else:
            result.update(runs[0])
    finally:
        clients.stop()
        if push_pipe is not None:
            with contextlib.suppress(Exception):
                push_pipe.send(("exit", None))
                push_pipe.recv()
            push_proc.join(10)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(sat.log_dir, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

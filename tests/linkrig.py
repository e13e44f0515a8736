"""A site and a public server as real processes, with a fault-injecting TCP proxy between.

:class:`FaultProxy` forwards TCP from a port of its own to the public server and can, on
command: cut the link (reset every connection and refuse new ones), blackhole it (accept and
keep connections open, but let no byte through either way), deliver a number of bytes of the
site's next traffic and then reset, or trickle bytes slowly. It runs its own event loop in a
thread, so a test drives it with plain method calls while the processes run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from conftest import PATIENCE_S, REPO, free_port, wait_for_port

from livetrack import sim
from livetrack.cli import load_event
from livetrack.domain.records import ChipRead, Record, Sighting, decode
from livetrack.store.sqlite import SqliteEventLog
from livetrack.web.auth import issue, new_token, token_hash

EVENT = REPO / "livetrack" / "demo" / "heaton.toml"


class FaultProxy:
    """TCP from ``127.0.0.1:port`` to ``127.0.0.1:target``, with faults on command."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.mode = "pass"  # pass | cut | blackhole | slow
        self.reset_after: int | None = None  # bytes of upstream traffic, then a reset
        self.slow_bytes_s = 2000
        self.bytes_up = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
            self._ready.set()
            async with self._server:
                await self._server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            self._loop.run_until_complete(main())
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    def _call(self, fn: Callable[[], None]) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)

    def _reset_all(self) -> None:
        for w in list(self._writers):
            sock = w.get_extra_info("socket")
            if sock is not None:  # SO_LINGER 0: close sends a reset, not a FIN
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()
        self._writers.clear()

    def cut(self) -> None:
        """Reset every connection; refuse (reset) new ones until :meth:`heal`."""

        def go() -> None:
            self.mode = "cut"
            self._reset_all()

        self._call(go)

    def blackhole(self) -> None:
        """Connections stay open but no byte passes either way (no reset, no FIN)."""
        self._call(lambda: setattr(self, "mode", "blackhole"))

    def slow(self, bytes_s: int) -> None:
        def go() -> None:
            self.mode, self.slow_bytes_s = "slow", bytes_s

        self._call(go)

    def half_then_reset(self, nbytes: int) -> None:
        """Let ``nbytes`` more bytes of the site's traffic through, then reset everything."""

        def go() -> None:
            self.reset_after = self.bytes_up + nbytes

        self._call(go)

    def heal(self) -> None:
        """Back to passing everything; blackholed connections are reset (a real path that
        comes back after minutes finds the old connections long dead)."""

        def go() -> None:
            if self.mode == "blackhole":
                self._reset_all()
            self.mode = "pass"

        self._call(go)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            self._writers.add(writer)
            self._reset_all()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_w))
        await asyncio.gather(
            self._pump(reader, up_w, upstream=True),
            self._pump(up_r, writer, upstream=False),
            return_exceptions=True,
        )
        for w in (writer, up_w):
            self._writers.discard(w)
            w.transport.abort()

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        while True:
            data = await src.read(16384)
            if not data:
                dst.close()
                return
            while self.mode == "blackhole":
                await asyncio.sleep(0.05)
            if self.mode == "cut":
                return
            if upstream and self.reset_after is not None:
                room = self.reset_after - self.bytes_up
                if room < len(data):
                    dst.write(data[: max(0, room)])
                    with contextlib.suppress(Exception):
                        await dst.drain()
                    self.reset_after = None
                    self._reset_all()
                    return
            if upstream:
                self.bytes_up += len(data)
            if self.mode == "slow":
                step = max(1, self.slow_bytes_s // 20)
                for i in range(0, len(data), step):
                    dst.write(data[i : i + step])
                    await dst.drain()
                    await asyncio.sleep(0.05)
            else:
                dst.write(data)
                await dst.drain()

    def close(self) -> None:
        def stop() -> None:
            self._reset_all()
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()

        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()


class Proc:
    """One ``livetrack`` command as a child process, on a port of its own."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str]) -> None:
        self.name, self.args, self.workdir, self.env = name, args, workdir, env
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.logfile = workdir / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.launch()
        self.ready()

    def launch(self) -> None:
        """Start the process, without waiting for it (see :meth:`ready`)."""
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env}
        with self.logfile.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from livetrack.cli import main; raise SystemExit(main())",
                 *self.args, "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
            )  # fmt: skip

    def ready(self) -> None:
        """Wait until the launched process answers ``/healthz``."""
        assert self.proc is not None, f"{self.name} was not launched"
        wait_for_port(self.port, PATIENCE_S * 2, self.proc)
        deadline = time.monotonic() + PATIENCE_S * 2
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start: {self.tail()}")

    def tail(self, n: int = 3000) -> str:
        return self.logfile.read_text(errors="replace")[-n:]

    def kill(self) -> None:
        """SIGKILL: a crash, or a laptop lid pulled shut."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


def keys_in(db: Path) -> list[str]:
    """Every record key of a SQLite log, in log order (read straight from the file)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return [k for (k,) in conn.execute("SELECT key FROM records ORDER BY seq")]
    finally:
        conn.close()


def records_in(db: Path) -> list[Record]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return [decode(b) for (b,) in conn.execute("SELECT body FROM records ORDER BY seq")]
    finally:
        conn.close()


class RaceDay:
    """A site box and a public server (SQLite or Redis) with a :class:`FaultProxy` between."""

    def __init__(
        self,
        workdir: Path,
        public_log: str | None = None,
        *,
        entries: dict[str, int] | None = None,
        public_env: dict[str, str] | None = None,
        front: Callable[[int], tuple[str, list[str]]] | None = None,
    ) -> None:
        """``front``, given the public server's port, starts what stands in front of it and
        says the site's ``--upstream`` and any further arguments (default: the proxy)."""
        self.workdir = workdir
        # the demo event, held today (times outside an event's window are refused)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.event_file = workdir / "event.toml"
        self.event_file.write_text(
            EVENT.read_text().replace('date = "2026-11-23"', f'date = "{today}"', 1)
        )
        self.event = load_event(str(self.event_file))
        self.people = sim.make_participants(self.event, entries or {"mile": 60, "fun": 80})
        entries_csv = workdir / "entries.csv"
        lines = ["bib,chip,first_name,last_name,gender,age,club,race"]
        lines += [
            f'{p.bib},{p.chips[0]},{p.first_name},"{p.last_name}",{p.gender},{p.age},'
            f'"{p.club}",{p.race}'
            for p in self.people
        ]
        entries_csv.write_text("\n".join(lines) + "\n")
        self.site_db = workdir / "site.db"
        self.public_db = workdir / "public.db"
        self.public_log = public_log
        self.keys = workdir / "site-keys"
        self.site_token = new_token()
        self.keys.write_text(f"{token_hash(self.site_token)} test site\n")
        self.tokens: dict[str, str] = {}
        seed: list[Record] = []
        for role, point in (("reader", ""), ("timer", ""), ("marshal", "lake")):
            tok, rec = issue(role, point, label=f"test {role}")
            self.tokens[role] = tok
            seed.append(rec)
        asyncio.run(_append(self.site_db, seed))
        store = ["--redis", public_log] if public_log else ["--db", str(self.public_db)]
        self.public = Proc(
            "public",
            ["serve", "--event", str(self.event_file), *store, "--site-keys", str(self.keys),
             "--tick", "0.1"],
            workdir, public_env or {},
        )  # fmt: skip
        # both processes start at once (the site dials the public end until it answers)
        self.public.launch()
        self.proxy = FaultProxy(self.public.port)
        upstream, extra = f"http://127.0.0.1:{self.proxy.port}", []
        if front is not None:  # what stands in front may need the public server answering
            self.public.ready()
            upstream, extra = front(self.public.port)
        self.site = Proc(
            "site",
            ["site", "--event", str(self.event_file), "--db", str(self.site_db),
             "--participants", str(entries_csv),
             "--upstream", upstream, *extra, "--tick", "0.1"],
            workdir, {"LIVETRACK_SITE_TOKEN": self.site_token},
        )  # fmt: skip
        self.site.launch()
        self.public.ready()
        self.site.ready()
        self.wait_linked()

    def wait_linked(self, timeout: float = PATIENCE_S) -> None:
        """Wait until the site's link to the public server is up."""
        deadline = time.monotonic() + timeout
        while not self.link("site")["connected"]:
            if time.monotonic() > deadline:
                raise AssertionError(f"the site's link is not up after {timeout}s: {self.link()}")
            time.sleep(0.05)

    def start_both(self) -> None:
        """Start the site and the public server at once (after both were stopped)."""
        self.public.launch()
        self.site.launch()
        self.public.ready()
        self.site.ready()

    def close(self) -> None:
        for p in (self.site, self.public):
            with contextlib.suppress(Exception):
                p.stop()
        self.proxy.close()

    def restart_public(self, *, kill: bool = False) -> None:
        """Stop (or kill) the public server and start it again on the same port."""
        (self.public.kill if kill else self.public.stop)()
        self.public.start()

    def link(self, which: str = "site") -> dict[str, Any]:
        base = (self.site if which == "site" else self.public).url
        r = httpx.get(
            base + "/api/v1/link",
            headers={"authorization": f"Bearer {self.tokens['timer']}"},
            timeout=10,
        )
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def post_reads(self, reads: list[dict[str, Any]], which: str = "site") -> httpx.Response:
        base = (self.site if which == "site" else self.public).url
        return httpx.post(
            base + "/api/v1/reads",
            json=reads,
            headers={"authorization": f"Bearer {self.tokens['reader']}"},
            timeout=30,
        )

    def post_sighting(self, ident: str, bib: str, time_ms: int) -> httpx.Response:
        """A marshal at the lake, on mobile data, sees ``bib`` (through the public server)."""
        return httpx.post(
            self.public.url + "/api/v1/sightings",
            json={"sightings": [{"id": ident, "point": "lake", "bib": bib, "time": time_ms}]},
            headers={"authorization": f"Bearer {self.tokens['marshal']}"},
            timeout=30,
        )

    def wait_equal(self, timeout: float = PATIENCE_S) -> float:
        """Seconds until the public log holds exactly the site's records in the site's order
        (read from both files); fails with the difference when it does not in time."""
        t0 = time.monotonic()
        site: list[str] = []
        public: list[str] = []
        while time.monotonic() - t0 < timeout:
            site = keys_in(self.site_db)
            public = self.public_keys()
            if site == public:
                return time.monotonic() - t0
            time.sleep(0.1)
        missing = len(set(site) - set(public))
        raise AssertionError(
            f"public log not equal to the site's after {timeout}s: site {len(site)}, public "
            f"{len(public)}, {missing} missing\nsite link: {self.link('site')}\n"
            f"public log tail: {self.public.tail(1500)}\nsite log tail: {self.site.tail(1500)}"
        )

    def wait_holds(self, keys: list[str], timeout: float = PATIENCE_S) -> float:
        """Seconds until the public log holds every one of ``keys``."""
        t0 = time.monotonic()
        wanted = set(keys)
        while time.monotonic() - t0 < timeout:
            if wanted <= set(self.public_keys()):
                return time.monotonic() - t0
            time.sleep(0.1)
        raise AssertionError(f"the public end lacks records after {timeout}s")

    def public_keys(self) -> list[str]:
        if self.public_log is None:
            return keys_in(self.public_db) if self.public_db.exists() else []
        return asyncio.run(_redis_keys(self.public_log))


class Flow:
    """Race traffic while a test does its worst: the simulated race's reads (and guns) posted
    to the site ``speed`` times faster than real time, and a marshal's sightings posted to
    the public server every ``every_s``. Each read and sighting is resent until acknowledged
    (200, or 202 queued), under the same key."""

    def __init__(self, day: RaceDay, races: tuple[str, ...] = ("mile", "fun"), speed: float = 60):
        t0 = int(time.time() * 1000) + 1000
        guns = {r: t0 + i * 30_000 for i, r in enumerate(races)}
        people = [p for p in day.people if p.race in races]
        self.actions = sim.plan(day.event, people, guns)
        self.day, self.speed = day, speed
        self.bibs = [p.bib for p in people]
        self.sightings: dict[str, int] = {}  # id -> HTTP status that acknowledged it
        self.every_s = 0.25
        self._stop = threading.Event()
        self.result: dict[str, int] | BaseException | None = None
        self._threads = [
            threading.Thread(target=self._reads, daemon=True),
            threading.Thread(target=self._marshal, daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def read_keys(self) -> set[str]:
        return {
            f"read:{a.read['reader']}:{a.read['seq']}" for a in self.actions if a.read is not None
        }

    def _reads(self) -> None:
        try:
            self.result = asyncio.run(
                sim.play(
                    self.day.site.url, self.day.tokens["reader"], self.actions,
                    timer_token=self.day.tokens["timer"], speed=self.speed,
                )
            )  # fmt: skip
        except BaseException as exc:
            self.result = exc

    def _marshal(self) -> None:
        import uuid

        n = 0
        while not self._stop.is_set():
            ident = str(uuid.uuid4())
            bib = self.bibs[n % len(self.bibs)]
            n += 1
            while not self._stop.is_set():
                try:
                    r = self.day.post_sighting(ident, bib, int(time.time() * 1000))
                except httpx.HTTPError:
                    time.sleep(0.2)
                    continue
                if r.status_code in (200, 202):
                    self.sightings[ident] = r.status_code
                    break
                if r.status_code < 500:
                    raise AssertionError(f"sighting refused: {r.status_code} {r.text}")
                time.sleep(0.2)
            self._stop.wait(self.every_s)

    def wait_reads(self, timeout: float = 120) -> dict[str, int]:
        self._threads[0].join(timeout)
        assert not self._threads[0].is_alive(), "the simulated race did not finish in time"
        assert isinstance(self.result, dict), f"the simulated race failed: {self.result!r}"
        return self.result

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


async def _append(db: Path, records: list[Record]) -> None:
    log = SqliteEventLog(db)
    try:
        await log.append(records)
    finally:
        await log.close()


async def _redis_keys(url: str) -> list[str]:
    from livetrack.store.redis import RedisEventLog

    log = RedisEventLog.from_url(url)
    out: list[str] = []
    try:
        if await log.head() is None:
            return out
        async for page in log.tail_pages(None):
            out += [r.key for _, r in page]
            if await log.head() in (None, page.end):
                break
    finally:
        await log.close()
    return out


def reads(
    n: int, start: int = 0, reader: str = "fin", point: str = "finish"
) -> list[dict[str, Any]]:
    """``n`` chip reads of a finish decoder, numbered from ``start``."""
    t0 = int(time.time() * 1000)
    return [
        {"reader": reader, "point": point, "chip": f"C{i % 300}", "time": t0 + i, "seq": i}
        for i in range(start, start + n)
    ]


def sighting_keys(keys: list[str]) -> list[str]:
    return [k for k in keys if k.startswith("sighting:")]


def chip_keys(keys: list[str]) -> list[str]:
    return [k for k in keys if k.startswith("read:")]


__all__ = ["ChipRead", "FaultProxy", "Iterator", "Proc", "RaceDay", "Sighting"]

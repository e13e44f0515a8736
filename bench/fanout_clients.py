"""The fan-out benchmark's spectators: websocket clients in processes of their own, driven
over pipes (see ``fanout.py``)."""

from __future__ import annotations

import array
import asyncio
import contextlib
import multiprocessing as mp
import os
import time
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

from fanout_setup import (
    BOARD_COUNT,
    BOARD_HEAD_ID,
    BOARD_ID,
    FEED_BIB,
    HIST_MS,
    KEEP_MESSAGES,
    raise_nofile,
)

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

"""The fan-out benchmark's ceiling: a bare ``websockets`` server writing the same frames
(see ``fanout.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import time
from multiprocessing.connection import Connection
from typing import Any

from benchkit import free_port
from fanout_clients import Clients
from fanout_setup import TOPICS, cpu_s, raise_nofile, rss_kb

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

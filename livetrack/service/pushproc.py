"""Sending push messages from a process of its own, off the event loop that serves the pages.

:class:`PushProcess` has the face of :class:`~livetrack.service.push.PushSender` (``offer``
never waits, ``forget``, ``drain``, ``counters``, ``on_outcome``) but hands each message to a
child process (``python -m livetrack.service.pushproc``) over a pipe; the child runs a
:class:`PushSender` (encryption, VAPID, the HTTP client, retries and backoff) and answers with
each message's outcome, its counters and the subscriptions found gone. The serving process
keeps everything the log needs: the alerts' claims and their outcomes are appended there, so
once-only sending, the lease and the restart rule are as they were; the child only sends.

A message stays *in flight* here from ``offer`` until the child gives its outcome; at most
``maxsize`` are (a full sender drops the message and counts it, as the queue does). When the
child dies, a new one is started and every message in flight is handed to it again (none had
an outcome, so at most a message on the wire when it died goes twice, as after any crash). The
child dies with its parent (``PR_SET_PDEATHSIG``, and the pipe's end), so a killed server
leaves no sender behind to send what the next lease holder sends.

Frames: a 4-byte big-endian length, then a JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from livetrack.service.push import (
    Outgoing,
    PushCounters,
    PushSender,
    check_contact,
    public_key_of,
)
from livetrack.store.subscriptions import Subscription

log = logging.getLogger("livetrack.push")

_LEN = struct.Struct(">I")
#: The child's counters copied to the serving process's (``resent`` is counted here).
COUNTED = ("sent", "dropped", "late", "failed", "gone", "retried", "expired")
#: How long a stopping child may take to give the outcomes it has.
STOP_WAIT_S = 10.0
#: The child's CPU priority below the serving process's (``nice``): an alert may wait a few
#: milliseconds for a core, a page's tick should not.
NICE = 10


def frame(obj: object) -> bytes:
    body = orjson.dumps(obj)
    return _LEN.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next frame, or None at the end of the pipe."""
    try:
        head = await reader.readexactly(_LEN.size)
        data: dict[str, Any] = orjson.loads(await reader.readexactly(_LEN.unpack(head)[0]))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return data


def wall_ms() -> int:
    return int(time.time() * 1000)


class PushProcess:
    """A :class:`PushSender` in a child process; see the module's docstring."""

    def __init__(
        self,
        vapid_pem: bytes,
        contact: str,
        on_gone: Callable[[str], Awaitable[object]],
        *,
        clock_ms: Callable[[], int] | None = None,
        maxsize: int = 10_000,
        workers: int = 4,
        timeout_s: float = 10.0,
        on_outcome: Callable[[Outgoing, str], object] | None = None,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        self.contact = check_contact(contact)
        self.public_key = public_key_of(vapid_pem)
        self.on_gone = on_gone
        self.on_outcome = on_outcome
        self.may_send = may_send
        self.clock_ms = clock_ms or wall_ms
        self.counters = PushCounters()
        self.maxsize = maxsize
        #: child processes started (a new one after each that died)
        self.started = 0
        self._config = {
            "pem": vapid_pem.decode(),
            "contact": contact,
            "maxsize": maxsize,
            "workers": workers,
            "timeout_s": timeout_s,
        }
        self._inflight: dict[int, Outgoing] = {}
        self._ref = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._seen = dict.fromkeys(COUNTED, 0)
        self._tasks: set[asyncio.Task[object]] = set()
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        self._stopping = False
        await self._spawn()

    async def _spawn(self) -> None:
        self._proc = proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "livetrack.service.pushproc",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.started += 1
        self._seen = dict.fromkeys(COUNTED, 0)
        self._write(self._config)
        for ref, msg in self._inflight.items():
            self._write(self._send_frame(ref, msg))
        self._reader = asyncio.create_task(self._read(proc), name="livetrack-push-process")

    def _write(self, obj: object) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(frame(obj))

    def _send_frame(self, ref: int, msg: Outgoing) -> dict[str, Any]:
        s = msg.sub
        return {
            "op": "send",
            "ref": ref,
            "sub": [s.endpoint, s.p256dh, s.auth, s.id],
            "payload": msg.payload,
            "due": msg.due_ms,
            "expires": msg.expires_ms,
            "attempts": msg.attempts,
            # the event's clock less this machine's (a public server keeps the site's clock)
            "shift": self.clock_ms() - wall_ms(),
        }

    # -- the sender's face ---------------------------------------------------------------------

    def offer(self, msg: Outgoing) -> bool:
        """Hand ``msg`` to the child; False (and counted as dropped) when ``maxsize`` are in
        flight already."""
        if len(self._inflight) >= self.maxsize:
            self.counters.dropped += 1
            if self.on_outcome is not None:
                self.on_outcome(msg, "dropped")
            return False
        self._ref += 1
        self._inflight[self._ref] = msg
        self._write(self._send_frame(self._ref, msg))
        return True

    def waiting(self) -> int:
        """Messages handed to the child and not yet seen through."""
        return len(self._inflight)

    def forget(self) -> list[Outgoing]:
        """Have the child let every queued message and pending retry go, without an outcome
        (it says which, and they leave the in-flight count then)."""
        self._write({"op": "forget"})
        return []

    async def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop the child: it stops sending and gives the outcomes it has; what it had not
        seen through stays without one (the next holder of the alerts sends it)."""
        self._stopping = True
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(frame({"op": "stop"}))
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), STOP_WAIT_S)
            except TimeoutError:
                self._reader.cancel()
            self._reader = None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()
        self._inflight.clear()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task

    # -- what the child says --------------------------------------------------------------------

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while (msg := await read_frame(proc.stdout)) is not None:
            try:
                self._heard(msg)
            except Exception:
                log.exception("push sender's message not understood: %r", msg)
        if self._stopping or proc is not self._proc:
            return
        code = await proc.wait()
        log.warning(
            "the push sender process stopped (exit %s); %d messages in flight go to a new one",
            code,
            len(self._inflight),
        )
        if not self.may_send():
            self._inflight.clear()  # another process holds the alerts: it sends these
        await asyncio.sleep(0.5 if self.started > 1 else 0)
        if not self._stopping and proc is self._proc:
            await self._spawn()

    def _heard(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        counts = msg.get("counters")
        if isinstance(counts, dict):
            for name in COUNTED:
                now = int(counts.get(name, 0))
                setattr(self.counters, name, getattr(self.counters, name) + now - self._seen[name])
                self._seen[name] = now
        if op == "done":
            out = self._inflight.pop(int(msg["ref"]), None)
            delay = msg.get("delay")
            if isinstance(delay, int):
                self.counters.delays_ms.append(delay)
                if len(self.counters.delays_ms) > 10_000:
                    del self.counters.delays_ms[:5_000]
            if out is not None and self.on_outcome is not None:
                self.on_outcome(out, str(msg["outcome"]))
        elif op == "forgot":
            for ref in msg["refs"]:
                self._inflight.pop(int(ref), None)
        elif op == "gone":
            task = asyncio.create_task(self._gone(str(msg["sub"])))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _gone(self, sub_id: str) -> None:
        try:
            await self.on_gone(sub_id)
        except Exception:
            log.exception("a subscription the push service called gone was not removed")


# -- the child ----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the parent dies (no sender outlives its server)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:
        os._exit(0)


async def child(reader: asyncio.StreamReader, out: Callable[[bytes], None]) -> None:
    """Read frames from the serving process, send the messages, write their outcomes."""
    config = await read_frame(reader)
    if config is None:
        return
    shift = 0

    def counters() -> dict[str, int]:
        c = sender.counters
        return {name: getattr(c, name) for name in COUNTED}

    def on_outcome(msg: Outgoing, outcome: str) -> None:
        reply: dict[str, Any] = {"op": "done", "ref": msg.ref, "outcome": outcome}
        if outcome == "delivered" and sender.counters.delays_ms:
            reply["delay"] = sender.counters.delays_ms[-1]
        reply["counters"] = counters()
        out(frame(reply))

    async def on_gone(sub_id: str) -> None:
        out(frame({"op": "gone", "sub": sub_id}))

    sender = PushSender(
        str(config["pem"]).encode(),
        str(config["contact"]),
        on_gone,
        clock_ms=lambda: wall_ms() + shift,
        maxsize=int(config["maxsize"]),
        workers=int(config["workers"]),
        timeout_s=float(config["timeout_s"]),
        on_outcome=on_outcome,
        encrypt_in_thread=False,  # this process's loop does nothing else
    )
    await sender.start()
    reported = counters()
    try:
        while True:
            try:
                msg = await asyncio.wait_for(read_frame(reader), 1.0)
            except TimeoutError:
                if counters() != reported:  # retries counted meanwhile
                    reported = counters()
                    out(frame({"op": "counters", "counters": reported}))
                continue
            if msg is None or msg.get("op") == "stop":
                break
            if msg["op"] == "send":
                shift = int(msg["shift"])
                endpoint, p256dh, auth, sub_id = msg["sub"]
                sender.offer(
                    Outgoing(
                        Subscription(endpoint, p256dh, auth, id=sub_id),
                        msg["payload"],
                        int(msg["due"]),
                        int(msg["expires"]),
                        attempts=int(msg["attempts"]),
                        ref=int(msg["ref"]),
                    )
                )
            elif msg["op"] == "forget":
                refs = [m.ref for m in sender.forget()]
                out(frame({"op": "forgot", "refs": refs, "counters": counters()}))
    finally:
        await sender.stop()
        out(frame({"op": "counters", "counters": counters()}))


def main() -> None:
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.nice(NICE)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s[sender]: %(message)s"
    )
    for noisy in ("httpx", "httpcore"):  # a line per request
        logging.getLogger(noisy).setLevel(logging.WARNING)
    frames = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # a stray print must not land among the frames
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the serving process says when to stop

    def out(data: bytes) -> None:
        frames.write(data)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0)
        )
        await child(reader, out)

    asyncio.run(run())


if __name__ == "__main__":
    main()

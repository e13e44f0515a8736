"""The site's end of the link: push the log upstream, take the public server's writes down.

The site's log is the order of truth. :class:`SiteLink` dials the public server, learns the
last position it acknowledged, and sends every record after it in log order, in compressed
batches, with a few batches in flight; the public server acknowledges each batch once it is
durable. Writes made at the public end (marshals and the timer on mobile data) come back down
the same connection; the site appends them to its own log (their keys make a resend harmless)
and says so, and they go up again like every other record.

When the connection fails the link waits, with exponential backoff and full jitter, and dials
again; it resumes from the acknowledged position, so nothing is lost and, thanks to the
records' keys, nothing is stored twice.

"Seconds behind" is the age of the oldest record the public end has not acknowledged, from the
time the site's log appended it (:class:`~livetrack.store.base.AppendTimes`), so a site
process that restarts with a backlog does not count it from its own start. The last position
acknowledged is kept beside the site's log (snapshot :data:`ACKED_NOTE`), so a restarted site
knows what the public end holds before it gets through to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from livetrack.domain.records import RecordError, decode, encode
from livetrack.service import linkwire
from livetrack.store.base import (
    AppendTimes,
    LogUnavailable,
    Offset,
    SnapshotStore,
    StoredLookup,
)

log = logging.getLogger("livetrack.link")

#: Records per batch, and batches sent before the first is acknowledged.
BATCH = 5000
WINDOW = 4
#: Backoff between attempts: from BACKOFF_MIN_S doubling up to BACKOFF_MAX_S, full jitter.
BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 3.0
#: A websocket ping every PING_S; no pong within PING_TIMEOUT_S means the link is dead (a
#: blackholed link resets nothing, so only this notices it).
PING_S = 2.0
PING_TIMEOUT_S = 4.0
OPEN_TIMEOUT_S = 6.0
BEAT_S = 1.0
#: How often the age of the oldest unacknowledged record is looked up (and the acknowledged
#: position kept beside the site's log).
WATCH_S = 0.5
#: The snapshot, beside the site's log, holding the last position the public end acknowledged.
ACKED_NOTE = "link-acked"


@dataclass
class LinkStatus:
    """What the timer console shows about the link (both ends build one of these)."""

    role: str = "site"
    upstream: str = ""
    connected: bool = False
    #: Wall time (ms) the current connection was made, or the last one was lost.
    since_ms: int = 0
    #: Wall time (ms) the two ends last exchanged anything.
    contact_ms: int = 0
    error: str = ""
    head: Offset | None = None
    acked: Offset | None = None
    #: Records the public end does not hold yet, and the age of the oldest of them.
    lag_records: int = 0
    lag_s: float = 0.0
    #: Writes made at the public end not yet in the site's log.
    writes_down: int = 0
    records_sent: int = 0
    writes_taken: int = 0
    #: Wall time (ms) the public end was last known to hold everything the site had.
    in_step_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def now_ms() -> int:
    return int(time.time() * 1000)


def records_between(head: str | None, acked: str | None) -> int:
    """Records after ``acked`` up to ``head`` (positions are the site log's row numbers, as
    they came over the link: anything else counts as nothing)."""
    if head is None or not head.isdigit():
        return 0
    start = Offset(acked) if acked is not None and acked.isdigit() else None
    return Offset(head).records_after(start) or 0


class SiteLink:
    """Keeps the public server at ``upstream`` in step with the site's runtime ``rt``."""

    def __init__(
        self,
        rt: Any,
        upstream: str,
        token: str,
        *,
        cafile: str | None = None,
        batch: int = BATCH,
        window: int = WINDOW,
    ) -> None:
        self.rt = rt
        self.url = linkwire.ws_url(upstream)
        self.token = token
        self.batch = batch
        self.window = window
        self.ssl: ssl.SSLContext | None = None
        if self.url.startswith("wss://"):
            self.ssl = ssl.create_default_context(cafile=cafile)
        self.status = LinkStatus(upstream=upstream)
        #: monotonic time each unacknowledged position was first seen by the sender
        self._seen: deque[tuple[int, float]] = deque()
        #: When the site's log appended the oldest record not acknowledged (epoch ms).
        self._oldest_ms: int | None = None
        self._noted: Offset | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="livetrack-link")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def refresh(self) -> LinkStatus:
        """The status with its lag brought up to date from the site's log head."""
        st = self.status
        if self.rt.head is not None and records_between(self.rt.head, st.head) > 0:
            st.head = self.rt.head
        st.lag_records = records_between(st.head, st.acked)
        if st.lag_records == 0:
            st.lag_s = 0.0
            if st.connected:
                st.in_step_ms = now_ms()
        elif self._oldest_ms is not None:
            st.lag_s = round(max(0, now_ms() - self._oldest_ms) / 1000, 1)
        elif self._seen:
            st.lag_s = round(time.monotonic() - self._seen[0][1], 1)
        elif st.connected:
            st.lag_s = 0.0
        elif st.in_step_ms or st.since_ms:
            st.lag_s = round(max(0, now_ms() - (st.in_step_ms or st.since_ms)) / 1000, 1)
        return st

    async def _note_oldest(self) -> None:
        """Look up when the oldest record not acknowledged was appended."""
        st = self.status
        if self.rt.head is None or records_between(self.rt.head, st.acked) == 0:
            self._oldest_ms = None
        elif isinstance(self.rt.log, AppendTimes):
            self._oldest_ms = await self.rt.log.appended_after(st.acked)

    async def _watch(self) -> None:
        """Keep the backlog's age current, and the acknowledged position beside the log (a
        restarted site starts from it until the public end says where it stands)."""
        log_ = self.rt.log
        if isinstance(log_, SnapshotStore) and self.status.acked is None:
            with contextlib.suppress(LogUnavailable, OSError):
                saved = await log_.load_snapshot(ACKED_NOTE)
                if saved is not None and self.status.acked is None:
                    self.status.acked = self._noted = saved[0]
        failing = ""
        while True:
            try:
                await self._note_oldest()
                acked = self.status.acked
                if isinstance(log_, SnapshotStore) and acked is not None and acked != self._noted:
                    await log_.save_snapshot(ACKED_NOTE, acked, b"")
                    self._noted = acked
                failing = ""
            except (LogUnavailable, OSError) as exc:
                if str(exc) != failing:  # once per failure, not twice a second
                    log.warning("link: backlog age not looked up: %s", exc)
                failing = str(exc)
            await asyncio.sleep(WATCH_S)

    async def run(self) -> None:
        watcher = asyncio.create_task(self._watch(), name="livetrack-link-watch")
        try:
            await self._run()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher

    async def _run(self) -> None:
        delay = BACKOFF_MIN_S
        while True:
            reached = False
            try:
                async with connect(
                    self.url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    ssl=self.ssl,
                    open_timeout=OPEN_TIMEOUT_S,
                    ping_interval=PING_S,
                    ping_timeout=PING_TIMEOUT_S,
                    close_timeout=2,
                    max_size=64 * 2**20,
                    compression=None,
                ) as ws:
                    reached = True
                    await self._session(ws)
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                code = exc.response.status_code
                body = exc.response.body.decode(errors="replace")[:200] if exc.response.body else ""
                self._down(f"refused by the public server: HTTP {code} {body}".strip())
                if code in (401, 403):
                    delay = BACKOFF_MAX_S
            except Conflict as exc:
                self._down(f"conflict: {exc}")
                log.error("link: the public server refused a record as a conflict: %s", exc)
                delay = BACKOFF_MAX_S
            except (OSError, TimeoutError, WebSocketException, linkwire.FrameError) as exc:
                self._down(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            if reached and self.status.error == "":
                delay = BACKOFF_MIN_S
            pause = random.uniform(0, delay)  # full jitter: sites never retry in step
            log.info("link down (%s); next attempt in %.1fs", self.status.error, pause)
            await asyncio.sleep(pause)
            delay = min(BACKOFF_MAX_S, delay * 2)

    def _down(self, error: str) -> None:
        st = self.status
        if st.connected:
            st.since_ms = now_ms()
        st.connected = False
        st.error = error

    async def _session(self, ws: ClientConnection) -> None:
        hello = linkwire.unpack(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT_S))
        if hello.get("t") != "hello":
            raise linkwire.FrameError(f"expected hello, got {hello.get('t')!r}")
        start = await self._resume_from(hello.get("acked"), hello.get("acked_key"))
        st = self.status
        st.connected, st.since_ms = True, now_ms()
        if not st.error.startswith("conflict"):  # a conflict stays shown until a batch is stored
            st.error = ""
        st.contact_ms = now_ms()
        st.acked = start
        st.writes_down = int(hello.get("outbox") or 0)
        self._seen.clear()
        await self._note_oldest()
        log.info("link up to %s; resuming after position %s", self.url, start)
        inflight: deque[str] = deque()
        room = asyncio.Semaphore(self.window)
        tasks = [
            asyncio.create_task(self._send(ws, start, inflight, room)),
            asyncio.create_task(self._receive(ws, inflight, room)),
            asyncio.create_task(self._beat(ws)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            if tasks[1] not in done:  # the public end's last word (a conflict) beats a send
                await asyncio.wait([tasks[1]], timeout=1.0)
                if tasks[1].done():
                    done.add(tasks[1])
            for t in sorted(done, key=lambda t: t is not tasks[1]):
                t.result()
            raise ConnectionError("link session ended")
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def _resume_from(self, acked: Any, acked_key: Any) -> Offset | None:
        """Where to resume: after ``acked`` when this log holds ``acked_key`` there; from the
        start when the public end holds nothing, or followed another log (then the conflict
        check at the public end says loudly whether the two logs disagree)."""
        if not isinstance(acked, str) or not isinstance(acked_key, str):
            return None
        log_ = self.rt.log
        if isinstance(log_, StoredLookup):
            held = await log_.stored([acked_key])
            if held.get(acked_key, (None,))[0] == acked:
                return Offset(acked)
        log.warning(
            "link: the public server's last record (%s at %s) is not this log's; sending "
            "everything again",
            acked_key,
            acked,
        )
        return None

    async def _send(
        self, ws: ClientConnection, start: Offset | None, inflight: deque[str], room: Any
    ) -> None:
        async for page in self.rt.log.tail_pages(start):
            seen = time.monotonic()
            for i in range(0, len(page), self.batch):
                chunk = page[i : i + self.batch]
                if not chunk:
                    continue
                last = chunk[-1][0]
                if last.isdigit():
                    self._seen.append((int(last), seen))
                recs = [[pos, encode(rec).decode()] for pos, rec in chunk]
                await room.acquire()
                inflight.append(last)
                await ws.send(
                    linkwire.pack("batch", recs=recs, head=self.rt.head, site_ms=now_ms())
                )
                self.status.records_sent += len(chunk)
                if records_between(last, self.status.head) > 0:
                    self.status.head = last

    async def _receive(self, ws: ClientConnection, inflight: deque[str], room: Any) -> None:
        st = self.status
        while True:
            frame = linkwire.unpack(await ws.recv())
            st.contact_ms = now_ms()
            kind = frame["t"]
            if kind == "ack":
                pos = Offset(str(frame.get("pos")))
                while inflight:
                    done = inflight.popleft()
                    room.release()
                    if done == pos:
                        break
                st.acked = pos
                st.error = ""
                st.writes_down = int(frame.get("outbox") or 0)
                if pos.isdigit():
                    while self._seen and self._seen[0][0] <= int(pos):
                        self._seen.popleft()
                await self._note_oldest()
            elif kind == "writes":
                await self._take(ws, frame.get("items"))
            elif kind == "conflict":
                raise Conflict(f"{frame.get('key')}: {frame.get('detail')}")
            elif kind == "refused":
                raise linkwire.FrameError(f"the public server refused a batch: {frame}")

    async def _take(self, ws: ClientConnection, items: Any) -> None:
        """Append writes made at the public end to the site's log, then say which."""
        if not isinstance(items, list):
            raise linkwire.FrameError("writes must carry a list of items")
        ids: list[str] = []
        refused: dict[str, str] = {}
        records = []
        for item in items:
            try:
                ident, bodies = str(item[0]), item[1]
                records += [decode(b) for b in bodies]
                ids.append(ident)
            except (RecordError, TypeError, IndexError, KeyError) as exc:
                ident = str(item[0]) if isinstance(item, list) and item else "?"
                refused[ident] = str(exc)
                log.error("link: a write from the public server cannot be read: %s", exc)
        if records:
            await self.rt.append(records)
        self.status.writes_taken += len(ids)
        await ws.send(linkwire.pack("taken", ids=ids, refused=refused))

    async def _beat(self, ws: ClientConnection) -> None:
        while True:
            st = self.refresh()
            await ws.send(
                linkwire.pack(
                    "beat", head=st.head, site_ms=now_ms(), lag_s=st.lag_s, sent=st.records_sent
                )
            )
            await asyncio.sleep(BEAT_S)


class Conflict(RuntimeError):
    """The public server holds a record under the same key with different content."""

"""The public server's end of the link: follow the site's log, send its own writes down.

A public server started with site keys (``serve --site-keys FILE``) is a follower: only the
site's link appends to its log, record for record in the site's order, so its fold ends equal
to the site's. Writes its own visitors make (marshals' and the timer's phones on mobile data)
are not appended here: they wait durably in the outbox until the site has taken them into its
log, and come back up like every other record. A write answered while the link is up waits
for that round trip; while the link is down it is answered 202, queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from livetrack.domain.records import Record, RecordError, decode, encode
from livetrack.service import linkwire
from livetrack.service import runtime as runtime_mod
from livetrack.service.link import LinkStatus, now_ms, records_between
from livetrack.store.base import (
    AppendResult,
    Countable,
    EventLog,
    Leases,
    LogUnavailable,
    Offset,
    SnapshotStore,
    StoredLookup,
)
from livetrack.store.outbox import Outbox
from livetrack.web.auth import bearer, require, token_hash

log = logging.getLogger("livetrack.follow")

#: The snapshot-store names of the last acknowledged position and of the shared status.
ACKED = "link-acked"
STATUS = "link-status"
#: A write made here waits this long for its round trip through the site before it is
#: answered 202 (queued) instead.
ROUND_TRIP_S = 4.0
#: The link counts as down (pages say finish data is delayed) after this long without news.
STALE_S = 15.0
#: A connection the site has not been heard on for this long counts as down.
QUIET_S = 5.0
#: Behind by less than this (the age of the oldest record not yet here) counts as in step.
IN_STEP_S = 2.0
LEASE_S = 8.0


class SiteKeys:
    """The site tokens this server accepts: a file of SHA-256 hashes, one a line (``#``
    comments and a label after the hash allowed). Read again whenever it changes, so removing
    a line revokes that token at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._mtime: float | None = None
        self._hashes: frozenset[str] = frozenset()
        self.load()

    def load(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError as exc:
            raise ValueError(f"cannot read the site keys file {self.path!r}: {exc}") from exc
        if mtime == self._mtime:
            return
        hashes = set()
        for n, line in enumerate(Path(self.path).read_text().splitlines(), 1):
            word = line.split("#", 1)[0].strip().split(" ", 1)[0]
            if not word:
                continue
            if len(word) != 64 or any(c not in "0123456789abcdef" for c in word):
                raise ValueError(f"{self.path}:{n}: not a SHA-256 hash of a site token")
            hashes.add(word)
        self._hashes, self._mtime = frozenset(hashes), mtime

    def allows(self, token: str | None) -> bool:
        with contextlib.suppress(ValueError):
            self.load()  # a file made unreadable keeps the last good list
        return token is not None and token_hash(token) in self._hashes


class Queued(Exception):
    """Writes stored durably at the public end, waiting for the site (answered 202)."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(f"{len(keys)} record(s) queued for the finish")
        self.keys = keys


async def queued_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Queued)
    return JSONResponse(
        {
            "queued": len(exc.keys),
            "keys": exc.keys,
            "detail": "stored here and queued for the finish: it counts once the link to the "
            "finish is back (resending it is harmless)",
        },
        status_code=202,
    )


@dataclass
class Follower:
    """A public server's side of the link: its log, its outbox and the link's status."""

    log: EventLog
    outbox: Outbox
    keys: SiteKeys
    status: LinkStatus = field(default_factory=lambda: LinkStatus(role="public"))
    #: The process's own connection, if it holds the link.
    _current: tuple[str, asyncio.Task[Any]] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: Keys this process queued that have not come back yet.
    _pending: set[str] = field(default_factory=set)
    _me: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: Whether this process has once held every record the site had (since it started).
    _caught_up: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._share(), name="livetrack-link-status"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._current is not None:
            self._current[1].cancel()
        for t in [*self._tasks, *([self._current[1]] if self._current else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.outbox.close()

    # -- writes made here -------------------------------------------------------------------

    async def forward(self, records: Sequence[Record]) -> list[AppendResult]:
        """What ``Runtime.append`` does on a follower: records already in the log are
        duplicates; the rest are queued for the site and, while the link is up, awaited until
        they come back in the site's order. Raises :class:`Queued` when they do not."""
        if not isinstance(self.log, StoredLookup):
            raise LogUnavailable("this log cannot look records up by key")
        keys = [r.key for r in records]
        held = await self.log.stored(keys)
        fresh: dict[str, Record] = {}
        for r, k in zip(records, keys, strict=True):
            if k not in held:
                fresh.setdefault(k, r)
        if fresh:
            if not set(fresh) <= self._pending:  # a resend of what waits already is not queued
                await self.outbox.put(list(fresh.values()))
                self._pending.update(fresh)
                if len(self._pending) > 100_000:
                    self._pending.clear()
                self._wake.set()
                self.status.writes_down += 1
            deadline = time.monotonic() + ROUND_TRIP_S
            back: dict[str, Any] = {}
            while self.up() and time.monotonic() < deadline:
                back = await self.log.stored(list(fresh))
                if len(back) == len(fresh):
                    break
                await asyncio.sleep(0.05)
            if len(back) != len(fresh):
                raise Queued(list(fresh))
            held.update(back)
            self._pending.difference_update(back)
        seen: set[str] = set()
        out = []
        for k in keys:
            first = k in fresh and k not in seen
            seen.add(k)
            out.append(AppendResult(k, held[k][0] if first else None, not first))
        return out

    def rebuilding(self) -> bool:
        """Whether this server has not yet held everything the finish had since it started
        (so a token it does not know may be one it has not received yet)."""
        return not self._caught_up

    def up(self) -> bool:
        """Whether the site is connected and was heard from lately (it beats every second)."""
        st = self.status
        return st.connected and now_ms() - st.contact_ms < QUIET_S * 1000

    # -- the site's connection ---------------------------------------------------------------

    async def serve(self, ws: WebSocket) -> None:
        """Run one connection from the site: a newer one replaces an older one (the site
        dials again when it finds a connection dead, which this end may not have noticed)."""
        ident = uuid.uuid4().hex
        old = self._current
        task = asyncio.current_task()
        assert task is not None
        self._current = (ident, task)
        if old is not None:
            old[1].cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await old[1]
        try:
            if not await self._lease(ident):
                await ws.close(4503, "another process holds the site's link")
                return
            await ws.accept()
            await self._session(ws, ident)
        except (WebSocketDisconnect, ConnectionError) as exc:
            log.info("site link closed: %s", exc)
        finally:
            if self._current is not None and self._current[0] == ident:
                self._current = None
                self.status.connected = False
                self.status.since_ms = now_ms()
            if isinstance(self.log, Leases):
                with contextlib.suppress(Exception):
                    await self.log.release("site-link", ident)

    async def _lease(self, ident: str) -> bool:
        """Only one process appends the site's records (several share one Redis log)."""
        if not isinstance(self.log, Leases):
            return True
        deadline = time.monotonic() + LEASE_S + 1
        while time.monotonic() < deadline:
            if await self.log.lease("site-link", ident, LEASE_S):
                return True
            await asyncio.sleep(0.5)
        return False

    async def _session(self, ws: WebSocket, ident: str) -> None:
        token = bearer(ws)
        acked_key = None
        saved = await _load(self.log, ACKED)
        acked = saved[0] if saved else None
        if saved:
            acked_key = orjson.loads(saved[1]).get("key")
        count = await self.log.count() if isinstance(self.log, Countable) else 0
        if count == 0:
            acked = acked_key = None  # an emptied log: the site sends everything again
        st = self.status
        st.connected, st.since_ms, st.contact_ms = True, now_ms(), now_ms()
        if not st.error.startswith("conflict"):  # a conflict stays shown until a batch is stored
            st.error = ""
        st.acked = acked
        st.writes_down = await self.outbox.count()
        await ws.send_bytes(
            linkwire.pack(
                "hello", acked=acked, acked_key=acked_key, count=count, outbox=st.writes_down
            )
        )
        sender = asyncio.create_task(self._send_writes(ws))
        renew = asyncio.create_task(self._renew(ident))
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message.get("code", 1000))
                if sender.done() or renew.done():
                    (sender if sender.done() else renew).result()
                    raise ConnectionError("link helper ended")
                if not self.keys.allows(token):
                    st.error = "the site token was revoked"
                    log.error("site link: %s; closing the link", st.error)
                    await ws.close(4401, "site token revoked")
                    return
                try:
                    frame = linkwire.unpack(message.get("bytes") or message.get("text") or "")
                    await self._handle(ws, frame)
                except linkwire.FrameError as exc:
                    st.error = f"malformed frame from the site: {exc}"
                    log.error("site link: %s", st.error)
                    await ws.send_bytes(linkwire.pack("refused", detail=str(exc)))
                    await ws.close(linkwire.MALFORMED, str(exc)[:100])
                    return
                except _ConflictError as exc:
                    st.error = f"conflict: {exc.key}: {exc.detail}"
                    log.error("site link refused a batch: %s", st.error)
                    await ws.send_bytes(linkwire.pack("conflict", key=exc.key, detail=exc.detail))
                    await ws.close(linkwire.CONFLICT, "conflict")
                    return
        finally:
            sender.cancel()
            renew.cancel()
            for t in (sender, renew):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def _renew(self, ident: str) -> None:
        if not isinstance(self.log, Leases):
            return
        while True:
            await asyncio.sleep(LEASE_S / 3)
            if not await self.log.lease("site-link", ident, LEASE_S):
                raise ConnectionError("lost the site link's lease")

    async def _handle(self, ws: WebSocket, frame: dict[str, Any]) -> None:
        st = self.status
        st.contact_ms = now_ms()
        kind = frame["t"]
        if kind in ("batch", "beat"):
            site_ms = frame.get("site_ms")
            if isinstance(site_ms, int):
                runtime_mod.set_site_clock(site_ms)
            head = frame.get("head")
            if isinstance(head, str) and records_between(head, st.head) > 0:
                st.head = Offset(head)
        if kind == "batch":
            await self._store(ws, frame.get("recs"))
        elif kind == "beat":
            lag = frame.get("lag_s")
            st.lag_s = float(lag) if isinstance(lag, (int, float)) else st.lag_s
            st.lag_records = records_between(st.head, st.acked)
            if st.lag_records == 0:
                st.lag_s = 0.0
                self._caught_up = st.acked is not None or self._caught_up
            if st.lag_s < IN_STEP_S:
                st.in_step_ms = now_ms()
        elif kind == "taken":
            ids = [str(i) for i in frame.get("ids") or []]
            refused = frame.get("refused") or {}
            for ident, reason in refused.items():
                log.error("the site could not read queued write %s: %s", ident, reason)
            await self.outbox.done([*ids, *map(str, refused)])
            st.writes_down = await self.outbox.count()
        else:
            raise linkwire.FrameError(f"unknown frame kind {kind!r}")

    async def _store(self, ws: WebSocket, recs: Any) -> None:
        """Store one batch: every record readable and none a conflict, or nothing at all."""
        if not isinstance(recs, list) or not recs:
            raise linkwire.FrameError("a batch must carry a non-empty list of records")
        records: list[Record] = []
        last = Offset("")
        for item in recs:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                raise linkwire.FrameError("each record must be [position, record]")
            try:
                record = decode(item[1])
            except RecordError as exc:
                raise linkwire.FrameError(f"record at {item[0]}: {exc}") from exc
            records.append(record)
            last = Offset(item[0])
        assert isinstance(self.log, StoredLookup)
        held = await self.log.stored([r.key for r in records])
        for record in records if held else ():
            have = held.get(record.key)
            if have is not None and have[1] != (body := encode(record)):
                raise _ConflictError(
                    record.key,
                    f"held as {have[1][:200].decode(errors='replace')}, "
                    f"sent as {body[:200].decode()}",
                )
        await self.log.append(records)
        await _save(self.log, ACKED, last, orjson.dumps({"key": records[-1].key}))
        st = self.status
        st.acked, st.error = last, ""
        st.lag_records = records_between(st.head, st.acked)
        if st.lag_records == 0:
            st.in_step_ms = now_ms()
            self._caught_up = True
        st.records_sent += len(records)
        await ws.send_bytes(linkwire.pack("ack", pos=last, outbox=st.writes_down))

    async def _send_writes(self, ws: WebSocket) -> None:
        """Send queued writes down, oldest first; again after a while if not taken."""
        sent: dict[str, float] = {}
        while True:
            self._wake.clear()
            items = await self.outbox.peek(200)
            now = time.monotonic()
            fresh = [it for it in items if now - sent.get(it[0], -1e9) > 5.0]
            if fresh:
                for ident, _, _ in fresh:
                    sent[ident] = now
                payload = [[i, [b.decode() for b in bodies]] for i, _, bodies in fresh]
                await ws.send_bytes(linkwire.pack("writes", items=payload))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.25)

    # -- status shared between the processes of one public server -------------------------------

    async def _share(self) -> None:
        """The process holding the link publishes its status; the others read it."""
        while True:
            await asyncio.sleep(1.0)
            try:
                if self._current is not None:
                    shared = {**self.status.as_json(), "process": self._me, "saved": now_ms()}
                    await _save(self.log, STATUS, Offset("0"), orjson.dumps(shared))
                else:
                    saved = await _load(self.log, STATUS)
                    data = orjson.loads(saved[1]) if saved else {}
                    fresh = now_ms() - int(data.pop("saved", 0)) < 3000  # not a dead one's
                    if data.pop("process", self._me) != self._me and fresh:
                        for name, value in data.items():
                            if hasattr(self.status, name):
                                setattr(self.status, name, value)
                        st = self.status
                        if st.lag_records == 0 and st.acked is not None:
                            self._caught_up = True
                    self.status.writes_down = await self.outbox.count()
            except (LogUnavailable, OSError, ValueError) as exc:
                log.warning("link status not shared: %s", exc)


class _ConflictError(Exception):
    def __init__(self, key: str, detail: str) -> None:
        super().__init__(key)
        self.key, self.detail = key, detail


async def _save(event_log: EventLog, name: str, offset: Offset, body: bytes) -> None:
    if isinstance(event_log, SnapshotStore):
        await event_log.save_snapshot(name, offset, body)


async def _load(event_log: EventLog, name: str) -> tuple[Offset, bytes] | None:
    if isinstance(event_log, SnapshotStore):
        return await event_log.load_snapshot(name)
    return None


# -- HTTP -----------------------------------------------------------------------------------


async def link_socket(ws: WebSocket) -> None:
    """``/api/v1/link``: the site's connection (401 before the handshake without a valid
    site token; 404 on a server that follows no site)."""
    follower: Follower | None = getattr(ws.app.state, "follower", None)
    if follower is None:
        await ws.send_denial_response(
            JSONResponse({"error": "this server follows no site (serve --site-keys)"}, 404)
        )
        return
    if not follower.keys.allows(bearer(ws)):
        await ws.send_denial_response(JSONResponse({"error": "unknown or revoked site token"}, 401))
        return
    await follower.serve(ws)


def link_view(request: Request) -> dict[str, Any]:
    """The link's status as the timer console shows it, at either end."""
    link = getattr(request.app.state, "link", None) or getattr(request.app.state, "follower", None)
    if link is None:
        return {"role": "alone"}
    st: LinkStatus = link.refresh() if hasattr(link, "refresh") else link.status
    out = st.as_json()
    now = now_ms()
    out["now_ms"] = now
    out["contact_age_s"] = round((now - st.contact_ms) / 1000, 1) if st.contact_ms else None
    if st.role == "public":
        out["connected"] = link.up()
    return out


async def get_link(request: Request) -> Response:
    """``GET /api/v1/link`` (timer): the link as this end sees it."""
    rt = request.app.state.runtime
    require(request, rt.state, ("timer",))
    return JSONResponse(link_view(request))


def freshness(request: Request) -> dict[str, Any]:
    """Whether this server's finish data is behind: on a follower, when the link has been
    down or behind for more than :data:`STALE_S`; ``age_s``: seconds since it was last known
    to hold everything the finish had (``follows`` is false on a server that follows no
    site: a page need not ask again)."""
    follower: Follower | None = getattr(request.app.state, "follower", None)
    if follower is None:
        return {"follows": False, "delayed": False, "age_s": None}
    st = follower.status
    now = now_ms()
    behind = not follower.up() or (st.lag_records > 0 and st.lag_s > STALE_S)
    stale = now - st.in_step_ms > STALE_S * 1000 if st.in_step_ms else True
    age = round((now - st.in_step_ms) / 1000) if st.in_step_ms else None
    return {"follows": True, "delayed": behind and stale, "age_s": age}


async def get_freshness(request: Request) -> Response:
    """``GET /api/v1/freshness`` (public): whether the finish's data is delayed here."""
    return JSONResponse(freshness(request), headers={"cache-control": "no-store"})

"""Supervising the native timing hardware: one decoder connector per configured ``[[reader]]``.

:class:`ReaderManager` runs :func:`~livetrack.ingest.decoders.connect.run_connector` for every
reader in ``EVENT.toml`` whose protocol is a decoder protocol (anything but ``http``): it
connects out to ``host:port``, or with ``listen = true`` waits for the decoder (or the software
relaying it) to connect in. Each batch of decoded reads becomes log records (through the
reader's :class:`~livetrack.ingest.readers.ReaderChannel`) that are appended with
``await rt.append(records)``; only when that returns does the connector acknowledge the batch
to the decoder, so a crash never loses an acknowledged read.

* **Resume.** At start the manager reads the stored sequence numbers of its connect-mode
  readers back from the log (:class:`SeqIndex`, :func:`resume_point`). RACE RESULT resumes
  after the contiguous stored prefix and fetches the rest; other protocols after the highest.
  The numbers come from the stored keys where the log can list them by prefix (both built-in
  logs can), so a long log is not decoded again to find them.
* **One process runs the readers.** Every process serving an event may run a manager, but
  a decoder must be read by one of them: when the log offers leases
  (:class:`~livetrack.store.base.Leases`, as both built-in logs do), a manager runs its
  connectors only while it holds the lease :data:`LEASE` (renewed every third of
  :data:`LEASE_TTL_S`); the others stand by (state ``standby``) and one of them takes over
  within :data:`LEASE_TTL_S` when the holder stops renewing (at once when it stops cleanly and
  gives the lease up), resuming from the log as after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from livetrack.domain.event import Event
from livetrack.domain.records import ChipRead, Record
from livetrack.ingest.decoders import PROTOCOLS, DecodedRead
from livetrack.ingest.decoders.connect import run_connector
from livetrack.ingest.readers import NATIVE_PROTOCOLS, ReaderChannel, SeqIndex, resume_point
from livetrack.service.conflicts import read_conflicts
from livetrack.store.base import (
    AppendResult,
    EventLog,
    KeyLookup,
    Leases,
    LogUnavailable,
)

__all__ = ["LEASE", "LEASE_TTL_S", "LogWriter", "ReaderManager"]

log = logging.getLogger("livetrack.readers")

#: The lease (see :class:`~livetrack.store.base.Leases`) whose holder runs the readers.
LEASE = "readers"
#: Its time to live: a crashed holder's readers are taken over within this long.
LEASE_TTL_S = 10.0


def _now_ms() -> int:
    return int(time.time() * 1000)


class LogWriter(Protocol):
    """What the manager needs from the runtime: the event, the log, and the one write path."""

    @property
    def event(self) -> Event: ...

    @property
    def log(self) -> EventLog: ...

    async def append(self, records: list[Record]) -> list[AppendResult]: ...


# -- the manager -------------------------------------------------------------------------------


class ReaderManager:
    """Runs a connector for every native reader of the event; see the module doc.

    ``start()`` reads back resume points and starts one task per reader; ``stop()`` stops
    them (both idempotent). A failing append (the log unavailable) stops that reader's
    connector with nothing acknowledged; it is restarted after ``restart_s`` and resumes.
    ``connector_options`` are passed to ``run_connector`` (e.g. ``backoff_initial``).
    """

    def __init__(
        self,
        rt: LogWriter,
        *,
        clock: Callable[[], int] = _now_ms,
        restart_s: float = 2.0,
        connector_options: Mapping[str, Any] | None = None,
        lease_ttl_s: float = LEASE_TTL_S,
    ) -> None:
        self.rt = rt
        self.event = rt.event
        self.clock = clock
        self.restart_s = restart_s
        self.options = dict(connector_options or {})
        self.channels: dict[str, ReaderChannel] = {
            r.id: ReaderChannel(rt.event, r)
            for r in rt.event.readers.values()
            if r.protocol in NATIVE_PROTOCOLS
        }
        self.lease_ttl_s = lease_ttl_s
        #: Who this manager is when it asks for the lease (unique per process and start).
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: Whether this manager's connectors run now (it holds the lease, or there is none).
        self.leading = False
        self._stop = asyncio.Event()
        #: Set to stop the connectors of the current term (the lease was lost or stop()).
        self._term = asyncio.Event()
        #: One stop event per running connector (a listener that fails sets its own).
        self._stops: set[asyncio.Event] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._lead: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the readers: at once when the log has no leases, else whenever this process
        holds the readers' lease (see the module doc). Idempotent."""
        if self._lead is not None or self._tasks or not self.channels:
            return
        leases = self.rt.log
        if not isinstance(leases, Leases):
            await self._begin_term()
            return
        for ch in self.channels.values():
            ch.set_state("standby", self.clock())
        await self._renew(leases)  # a process that gets the lease is reading when start returns
        self._lead = asyncio.create_task(self._hold(leases), name="readers-lease")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop every connector (closing its sockets) and give the lease up; cancel what does
        not end in time."""
        self._stop.set()
        if self._lead is not None:
            lead, self._lead = self._lead, None
            try:
                await asyncio.wait_for(lead, timeout)
            except (TimeoutError, asyncio.CancelledError):
                lead.cancel()
            return
        await self._end_term(timeout)

    async def _hold(self, leases: Leases) -> None:
        """Renew the readers' lease every third of its time to live until stopped, then give
        it up (see :meth:`_renew`)."""
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.lease_ttl_s / 3)
                if not self._stop.is_set():
                    await self._renew(leases)
        finally:
            if self.leading:
                await self._end_term()
                with contextlib.suppress(LogUnavailable, OSError):
                    await leases.release(LEASE, self.holder)

    async def _renew(self, leases: Leases) -> None:
        """Take or renew the lease; start this process's connectors when it gets the lease
        and stop them when it loses it."""
        try:
            held = await leases.lease(LEASE, self.holder, self.lease_ttl_s)
        except (LogUnavailable, OSError) as exc:
            log.warning("readers' lease not renewed: %s", exc)
            held = False
        if held and not self.leading:
            log.info("this process runs the readers (lease %s)", self.holder)
            await self._begin_term()
        elif self.leading and not held:
            log.warning("the readers' lease went to another process: readers stop here")
            await self._end_term()
            for ch in self.channels.values():
                ch.set_state("standby", self.clock())

    async def _begin_term(self) -> None:
        """Resume points from the log, then one supervised connector task per reader."""
        self._term = asyncio.Event()
        self.leading = True
        await self._load_resume_points()
        for ch in self.channels.values():
            ch.set_state("starting", self.clock())
            task = asyncio.create_task(self._supervise(ch), name=f"reader-{ch.reader.id}")
            self._tasks.append(task)

    async def _end_term(self, timeout: float = 5.0) -> None:
        self.leading = False
        self._term.set()
        for event in self._stops:
            event.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def health(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """One dict per native reader, in configuration order: ``reader``, ``protocol``,
        ``point``, ``mode`` (connect|listen), ``host``, ``port`` (the bound one when
        listening), ``state`` (starting, connecting, connected, waiting, listening,
        disconnected, error, stopped, or standby while another process runs the readers),
        ``connected``, ``state_since_ms``, ``connections``,
        ``reads`` (decoded), ``stored``, ``duplicates``, ``untrusted_time`` (stored on the
        server clock), ``errors`` (malformed input), ``last_error``, ``last_read_ms`` (race
        time of the newest read, configured offset applied), ``last_received_ms``,
        ``reads_per_minute``, ``clock`` (unknown|ok|offset|unset), ``clock_offset_ms`` (the
        estimate: server minus decoder clock), ``configured_offset_ms``, ``clock_warning``,
        ``last_seq``, ``gaps_seen``, ``gaps_filled`` (late, or fetched again),
        ``gaps_given_up``, ``gap_requests`` (requests to play missed numbers again),
        ``sources`` (the decoders' own ids) and ``problems`` (recent, each
        ``{"at_ms", "detail"}``)."""
        now = self.clock() if now_ms is None else now_ms
        return [ch.health(now) for ch in self.channels.values()]

    # -- internals -------------------------------------------------------------------------

    async def _load_resume_points(self) -> None:
        wanted = {rid for rid, ch in self.channels.items() if ch.keep_seq}
        if not wanted:
            return
        index = SeqIndex(wanted)
        if isinstance(self.rt.log, KeyLookup):
            await _from_keys(self.rt.log, index)
        else:
            await _scan(self.rt.log, index)
        for rid in wanted:
            ch = self.channels[rid]
            cls = PROTOCOLS[ch.reader.protocol]
            mark, above = resume_point(
                index.seqs[rid],
                contiguous=cls.supports_refetch,
                file_span=getattr(cls, "file_span", 0),
            )
            ch.stats.last_stored_seq = mark
            ch.stats.stored_above = above
            if mark is not None:
                log.info("reader %s: resuming after passing %d", rid, mark)

    async def store(self, ch: ReaderChannel, batch: list[DecodedRead]) -> None:
        """Append a decoded batch of ``ch``'s decoder; returns when it is durable.

        A decoder that numbers its reads again from the start (a power cycle, a new file it
        does not name) sends numbers the log holds already for other reads. Such a read is
        not a resend, so it is stored under its own numbering run: a session made from what
        was read, the same whenever the decoder sends that read again.
        """
        received = self.clock()
        ch.heard(len(batch), received)
        conv = ch.convert(batch, received)
        if not conv.records:
            return
        results = await self.rt.append(conv.records)
        conflicts = await read_conflicts(self.rt.log, conv.records, results)
        if conflicts:
            again: list[Record] = []
            for i in sorted(conflicts):
                rec = conv.records[i]
                assert isinstance(rec, ChipRead)
                again.append(dataclasses.replace(rec, session=renumbered_session(rec)))
            log.warning(
                "reader %s: %d read(s) reuse numbers stored for other reads (the decoder "
                "numbered its reads again); kept under their own numbering run",
                ch.reader.id,
                len(again),
            )
            ch.renumbered += len(again)
            results = [r for i, r in enumerate(results) if i not in conflicts]
            results += await self.rt.append(again)
        ch.stored_results(results)

    async def _supervise(self, ch: ReaderChannel) -> None:
        r = ch.reader
        cls = PROTOCOLS[r.protocol]
        host = r.host or ("0.0.0.0" if r.listen else "")
        port = r.port or cls.default_port
        if not host or not port:
            ch.set_state("error", self.clock())
            ch.last_error = "no host/port to connect to (set host and port, or listen = true)"
            log.error("reader %s: %s", r.id, ch.last_error)
            return

        def on_state(state: str) -> None:
            ch.set_state(state, self.clock())

        async def on_reads(batch: list[DecodedRead]) -> None:
            await self.store(ch, batch)

        term = self._term
        while not self._stop.is_set() and not term.is_set():
            stop = asyncio.Event()
            self._stops.add(stop)
            try:
                await run_connector(
                    r.protocol,
                    host,
                    port,
                    source_id=r.id,
                    tz=ZoneInfo("UTC") if r.times == "utc" else self.event.tz,
                    on_reads=on_reads,
                    on_state=on_state,
                    stop=stop,
                    listen=r.listen,
                    date=self.event.date,
                    resume_seq=ch.stats.last_stored_seq,
                    stats=ch.stats,
                    **self.options,
                )
            except Exception as exc:  # the log failed, or the listener could not bind
                ch.set_state("error", self.clock())
                ch.last_error = f"{type(exc).__name__}: {exc}"
                log.error("reader %s stopped: %s; restarting", r.id, ch.last_error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(term.wait(), self.restart_s)
                continue
            finally:
                self._stops.discard(stop)
            break


async def _from_keys(keys: KeyLookup, index: SeqIndex) -> None:
    """What :func:`_scan` finds, from the stored keys alone (no record is decoded): a
    connect-mode read is keyed ``read:<reader>:<seq>`` and a reader's gun marker
    ``gun:<race>:<wave>:<reader>#<seq>`` (see :mod:`livetrack.domain.records`)."""
    for reader, seqs in index.seqs.items():
        prefix = f"read:{reader}:"
        for key in await keys.keys_with_prefix(prefix):
            number = key[len(prefix) :]
            if number.isdigit():
                seqs.add(int(number))
    for key in await keys.keys_with_prefix("gun:"):
        reader, sep, number = key.split(":", 3)[-1].rpartition("#")
        if sep and reader in index.seqs and number.isdigit():
            index.seqs[reader].add(int(number))


async def _scan(event_log: EventLog, index: SeqIndex) -> None:
    """Feed every record up to the log's current head to ``index``."""
    head = await event_log.head()
    if head is None:
        return
    tail = event_log.tail(None)
    try:
        async for offset, record in tail:
            index.observe(record)
            if offset >= head:
                break
    finally:
        await tail.aclose()


def renumbered_session(read: ChipRead) -> str:
    """The numbering run of a read whose number the log holds for another read: named by
    what was read, so a resend of it lands on the same key."""
    what = f"{read.point}|{read.chip}|{read.time_ms}".encode()
    return "n" + hashlib.blake2b(what, digest_size=6).hexdigest()

"""asyncio TCP connectors that drive the sans-I/O decoder parsers.

:func:`run_connector` owns the sockets; the parser owns the protocol.  For each
batch of received bytes the connector:

1. feeds the parser and logs its decode errors (logger ``livetrack.decoders``,
   with the source id and the reason) -- the connection stays up;
2. awaits ``on_reads(batch)``.  That callback is the durable append: only after
   it returns are the batch's sequence numbers considered stored;
3. only then writes the parser's ``data_to_send`` (so acknowledgements such as
   MYLAPS ``AckPassing`` never run ahead of storage).

After a drop it reconnects with exponential backoff and calls
``parser.resume_from(last stored seq)`` on the fresh parser, so protocols that
can (RACE RESULT) ask the decoder for the passings missed meanwhile.  A sequence
gap seen inside a connection is logged; RACE RESULT and ChronoTrack fetch it again (the
parser's ``tick``, called every ``wake_s`` and after each batch, lets ChronoTrack wait for
a gap to fill by itself first). ChronoTrack gaps still open when a connection ends are
handed to the next connection's ``resume_from`` as ``missing``.

With ``listen=True`` the connector is a TCP server and the decoder (or the
software relaying it) connects to us; each connection gets its own parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from . import make_parser
from .base import BACKLOG, DecodedRead, DecoderProtocol

__all__ = ["ConnectorStats", "run_connector"]

log = logging.getLogger("livetrack.decoders")

#: A batch whose read waited at least this long for data was sent live (see ``_Session.run``).
LIVE_WAIT_S = 0.002
#: A live batch's lag (receipt minus decoder time) is within this of the lag of the last
#: batch at least :data:`LIVE_PACE_WINDOW_S` before it on the same connection.
LIVE_PACE_SLACK_MS = 500
LIVE_PACE_WINDOW_S = 1.0

OnReads = Callable[[list[DecodedRead]], Awaitable[None]]
OnState = Callable[[str], None]


@dataclass
class ConnectorStats:
    """Counters a connector keeps; pass one in to observe a running connector."""

    connections: int = 0
    reads: int = 0
    errors: int = 0
    #: Number of re-fetch requests sent to decoders (missed-passings ranges).
    refetches: int = 0
    #: Sequence gaps seen, as inclusive ranges.
    gaps: list[tuple[int, int]] = field(default_factory=list)
    #: Gaps whose every number arrived later (late, or fetched again).
    gaps_filled: int = 0
    #: Gaps given up on after the protocol's last request.
    gaps_abandoned: list[tuple[int, int]] = field(default_factory=list)
    #: Ranges the last connection saw missing and would ask for again (not RACE RESULT,
    #: which finds its holes from the stored numbers).
    unfilled: list[tuple[int, int]] = field(default_factory=list)
    #: Last stored sequence number: for protocols that can re-fetch, the end of
    #: the contiguous stored prefix; otherwise the highest stored.
    last_stored_seq: int | None = None
    #: Stored sequence numbers above ``last_stored_seq`` (re-fetch protocols).
    stored_above: set[int] = field(default_factory=set)
    #: Port actually bound in listening mode.
    listen_port: int | None = None
    clock_unset_reported: bool = False


async def run_connector(
    protocol_name: str,
    host: str,
    port: int,
    *,
    source_id: str,
    tz: ZoneInfo,
    on_reads: OnReads,
    on_state: OnState | None = None,
    stop: asyncio.Event,
    listen: bool = False,
    date: dt.date | None = None,
    resume_seq: int | None = None,
    backoff_initial: float = 0.5,
    backoff_max: float = 30.0,
    connect_timeout: float = 10.0,
    keepalive_s: float | None = 20.0,
    idle_timeout_s: float | None = None,
    on_listening: Callable[[int], None] | None = None,
    stats: ConnectorStats | None = None,
    parser_options: Mapping[str, Any] | None = None,
) -> ConnectorStats:
    """Run one decoder connection (or listening socket) until ``stop`` is set.

    ``resume_seq`` is the last sequence number already stored from this decoder
    (for example read back from the event log at start-up).  ``keepalive_s``
    sends the protocol's ping after that much silence; ``idle_timeout_s`` drops
    and re-opens a connection that stayed silent that long.  ``on_state``
    receives ``"connecting"``, ``"connected"``, ``"disconnected"``,
    ``"waiting"``, ``"listening"`` and ``"stopped"``.  An exception raised by
    ``on_reads`` ends the connector and propagates (nothing is acknowledged for
    that batch; in listening mode ``stop`` is set so the other connections
    close too).  Returns the statistics.
    """
    st = stats if stats is not None else ConnectorStats()
    if resume_seq is not None:
        st.last_stored_seq = resume_seq
    options = dict(parser_options or {})

    def state(name: str) -> None:
        if on_state is not None:
            on_state(name)

    def new_parser() -> DecoderProtocol:
        return make_parser(protocol_name, source_id=source_id, tz=tz, date=date, **options)

    session = _Session(
        source_id=source_id,
        on_reads=on_reads,
        stop=stop,
        stats=st,
        keepalive_s=keepalive_s,
        idle_timeout_s=idle_timeout_s,
    )
    if listen:
        await _listen(host, port, new_parser, session, stop, state, on_listening)
    else:
        await _connect_loop(
            host,
            port,
            new_parser,
            session,
            stop,
            state,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            connect_timeout=connect_timeout,
        )
    state("stopped")
    return st


async def _wait_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; return True if ``stop`` got set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


async def _connect_loop(
    host: str,
    port: int,
    new_parser: Callable[[], DecoderProtocol],
    session: _Session,
    stop: asyncio.Event,
    state: OnState,
    *,
    backoff_initial: float,
    backoff_max: float,
    connect_timeout: float,
) -> None:
    backoff = backoff_initial
    src = session.source_id
    while not stop.is_set():
        state("connecting")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), timeout=connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            log.warning("%s: cannot connect to %s:%s: %s", src, host, port, exc)
            state("waiting")
            if await _wait_stop(stop, backoff):
                break
            backoff = min(backoff * 2, backoff_max)
            continue
        log.info("%s: connected to %s:%s", src, host, port)
        state("connected")
        received = await session.run(reader, writer, new_parser())
        state("disconnected")
        if stop.is_set():
            break
        log.warning("%s: connection to %s:%s lost; reconnecting", src, host, port)
        if received:
            backoff = backoff_initial
        state("waiting")
        if await _wait_stop(stop, backoff):
            break
        backoff = min(backoff * 2, backoff_max)


async def _listen(
    host: str,
    port: int,
    new_parser: Callable[[], DecoderProtocol],
    session: _Session,
    stop: asyncio.Event,
    state: OnState,
    on_listening: Callable[[int], None] | None,
) -> None:
    tasks: set[asyncio.Task[bool]] = set()
    failures: list[BaseException] = []
    failed = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        log.info("%s: decoder connected from %s", session.source_id, peer)
        state("connected")
        task = asyncio.ensure_future(session.run(reader, writer, new_parser()))
        tasks.add(task)
        try:
            await task
        except Exception as exc:  # on_reads failed: stop the whole connector
            failures.append(exc)
            failed.set()
        finally:
            tasks.discard(task)
            state("disconnected")

    server = await asyncio.start_server(handle, host, port)
    try:
        bound = server.sockets[0].getsockname()[1]
        session.stats.listen_port = int(bound)
        log.info("%s: listening on %s:%s", session.source_id, host, bound)
        state("listening")
        if on_listening is not None:
            on_listening(int(bound))
        stop_wait = asyncio.ensure_future(stop.wait())
        fail_wait = asyncio.ensure_future(failed.wait())
        await asyncio.wait({stop_wait, fail_wait}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (stop_wait, fail_wait):
            waiter.cancel()
        await asyncio.gather(stop_wait, fail_wait, return_exceptions=True)
        if failures:
            stop.set()
            raise failures[0]
    finally:
        server.close()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


class _StoreFailed(Exception):
    """Wraps an ``OSError`` raised by ``on_reads`` so it is not taken for a drop."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class _Session:
    """Drives one parser over one connection; shared settings for all of them."""

    def __init__(
        self,
        *,
        source_id: str,
        on_reads: OnReads,
        stop: asyncio.Event,
        stats: ConnectorStats,
        keepalive_s: float | None,
        idle_timeout_s: float | None,
    ) -> None:
        self.source_id = source_id
        self.on_reads = on_reads
        self.stop = stop
        self.stats = stats
        self.keepalive_s = keepalive_s
        self.idle_timeout_s = idle_timeout_s

    async def run(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: DecoderProtocol,
    ) -> bool:
        """Run until EOF, error or stop; return True if any bytes arrived."""
        self.stats.connections += 1
        loop = asyncio.get_running_loop()
        received = False
        stop_task: asyncio.Future[Any] = asyncio.ensure_future(self.stop.wait())
        read_task: asyncio.Future[Any] | None = None
        try:
            parser.resume_from(*self._resume_point(parser))
            parser.connection_made()
            await self._flush(writer, parser)
            last_rx = last_tx = loop.time()
            tick = self._tick(parser)
            first = True
            asked = last_rx
            pace: deque[tuple[float, float]] = deque()  # (receipt s, receipt ms - decoder ms)
            while True:
                if read_task is None:
                    read_task = asyncio.ensure_future(reader.read(65536))
                    asked = loop.time()
                done, _ = await asyncio.wait(
                    {read_task, stop_task}, timeout=tick, return_when=asyncio.FIRST_COMPLETED
                )
                if stop_task in done:
                    break
                now = loop.time()
                if parser.wake_s is not None:
                    parser.tick(now)
                    await self._deliver(parser)
                    await self._flush(writer, parser)
                if read_task not in done:
                    if self.idle_timeout_s is not None and now - last_rx >= self.idle_timeout_s:
                        log.warning(
                            "%s: no data for %.0f s; reconnecting", self.source_id, now - last_rx
                        )
                        break
                    if self.keepalive_s is not None and now - max(last_rx, last_tx) >= (
                        self.keepalive_s
                    ):
                        parser.keepalive()
                        await self._flush(writer, parser)
                        last_tx = now
                    continue
                data: bytes = read_task.result()
                read_task = None
                if not data:
                    parser.receive_eof()
                    await self._deliver(parser)
                    break
                received = True
                last_rx = now
                # Live reads are the ones waited for: the first reads of a connection (what
                # the decoder had kept for us) and data already waiting in the socket are not.
                live = not first and now - asked >= LIVE_WAIT_S
                parser.receive_data(data)
                if await self._deliver(parser, live=live, pace=pace, now=now):
                    first = False
                await self._flush(writer, parser)
        except _StoreFailed as exc:
            raise exc.original from None
        except (ConnectionError, OSError) as exc:
            log.warning("%s: connection error: %s", self.source_id, exc)
        finally:
            if not parser.supports_refetch:
                self.stats.unfilled = parser.open_gaps()
            stop_task.cancel()
            if read_task is not None:
                read_task.cancel()
            await asyncio.gather(
                stop_task, *([read_task] if read_task else []), return_exceptions=True
            )
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        return received

    def _tick(self, parser: DecoderProtocol) -> float | None:
        values = [v / 4 for v in (self.keepalive_s, self.idle_timeout_s) if v is not None]
        if parser.wake_s is not None:
            values.append(parser.wake_s)
        return min(values) if values else None

    @staticmethod
    async def _flush(writer: asyncio.StreamWriter, parser: DecoderProtocol) -> None:
        out = parser.data_to_send()
        if out:
            writer.write(out)
            await writer.drain()

    def _resume_point(self, parser: DecoderProtocol) -> tuple[int | None, list[tuple[int, int]]]:
        """The decoder's own number to resume after, and the ranges below it never handled.

        For protocols that fetch, that is the highest number handled, whether or not its
        passing was stored (a refused gun marker is handled too), and the holes below it."""
        st = self.stats
        if not parser.supports_refetch:
            return st.last_stored_seq, list(st.unfilled)
        if not st.stored_above:
            return st.last_stored_seq, []
        mark = st.last_stored_seq or 0
        missing: list[tuple[int, int]] = []
        for seq in sorted(st.stored_above):
            if seq > mark + 1:
                missing.append((mark + 1, seq - 1))
            mark = max(mark, seq)
        return mark, missing

    async def _deliver(
        self,
        parser: DecoderProtocol,
        *,
        live: bool = True,
        pace: deque[tuple[float, float]] | None = None,
        now: float = 0.0,
    ) -> int:
        """Log the parser's errors and gaps, store its reads; return how many there were.

        ``pace`` holds the connection's recent batches: receipt time (s) and lag (receipt
        minus newest decoder time, ms). A live decoder's lag holds steady; a batch whose lag
        moved by more than :data:`LIVE_PACE_SLACK_MS` since the last batch at least
        :data:`LIVE_PACE_WINDOW_S` earlier (a memory played back, a rehearsal played faster
        than real time), or that has no such batch before it, is not live."""
        st = self.stats
        for err in parser.errors_received():
            st.errors += 1
            log.warning("%s: malformed input (%s): %r", self.source_id, err.reason, err.raw)
        if parser.gaps:
            for gap in parser.gaps:
                log.warning("%s: sequence gap %d..%d", self.source_id, gap[0], gap[1])
            st.gaps.extend(parser.gaps)
            parser.gaps.clear()
        if parser.gaps_filled:
            st.gaps_filled += parser.gaps_filled
            parser.gaps_filled = 0
        if parser.gaps_abandoned:
            for gap in parser.gaps_abandoned:
                log.warning(
                    "%s: sequence gap %d..%d still missing after every request; given up",
                    self.source_id,
                    gap[0],
                    gap[1],
                )
            st.gaps_abandoned.extend(parser.gaps_abandoned)
            parser.gaps_abandoned.clear()
        if parser.refetch_requests:
            st.refetches += parser.refetch_requests
            parser.refetch_requests = 0
        reads = parser.reads_received()
        if not reads:
            return 0
        if pace is not None:
            lag = now * 1000 - max(r.time_ms for r in reads)
            ref = [lg for t, lg in pace if t <= now - LIVE_PACE_WINDOW_S]
            if not ref or abs(lag - ref[-1]) > LIVE_PACE_SLACK_MS:
                live = False
            pace.append((now, lag))
            while len(pace) > 1 and pace[1][0] <= now - LIVE_PACE_WINDOW_S:
                pace.popleft()
        if not live:
            reads = [
                r if BACKLOG in r.flags else dataclasses.replace(r, flags=(*r.flags, BACKLOG))
                for r in reads
            ]
        if parser.clock_unset_seen and not st.clock_unset_reported:
            st.clock_unset_reported = True
            log.warning(
                "%s: decoder clock looks unset (no real date); times are not trustworthy",
                self.source_id,
            )
        try:
            await self.on_reads(reads)
        except (ConnectionError, OSError) as exc:
            # Not a socket problem: keep it apart from the connection errors.
            raise _StoreFailed(exc) from exc
        st.reads += len(reads)
        seqs = [r.seq for r in reads if r.seq is not None]
        if not seqs:
            return len(reads)
        if parser.supports_refetch:
            # Only a contiguous prefix counts as stored, so that a range still
            # being fetched when the connection drops is asked for again.
            mark = st.last_stored_seq or 0
            span = getattr(parser, "file_span", 0)
            if span:
                # numbers of a newer decoder file count from that file's first passing
                base = (max(seqs) - 1) // span * span
                if mark < base:
                    mark = base
                    st.stored_above = {s for s in st.stored_above if s > base}
            st.stored_above.update(s for s in seqs if s > mark)
            while mark + 1 in st.stored_above:
                mark += 1
                st.stored_above.discard(mark)
            st.last_stored_seq = mark
        else:
            top = max(seqs)
            if st.last_stored_seq is None or top > st.last_stored_seq:
                st.last_stored_seq = top
        return len(reads)

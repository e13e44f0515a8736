"""The embedded EventLog: one SQLite file in WAL mode, a unique key index, group commit.

Appends from many concurrent callers are gathered and written in one transaction by one
writer thread; each caller's ``append`` returns once that transaction is committed with
``synchronous=FULL`` (fsynced). Other processes may append to the same file; tails notice
their records by polling when idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from livetrack.domain.records import Record, RecordError, decode, encode
from livetrack.store.base import AppendResult, LogUnavailable, Offset, Page

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    appended_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL
);
"""

log = logging.getLogger("livetrack.store")

_INSERT = "INSERT OR IGNORE INTO records (key, type, body, appended_ms) VALUES "
_RETURNING = " RETURNING key, seq"
#: Rows per INSERT statement (4 parameters each, well under SQLite's limit).
_ROWS_PER_INSERT = 500

#: How often an idle tail looks for records other processes appended.
POLL_S = 0.2
BATCH = 5000
#: At most this many of its own appended records are kept for this process's tail.
RECENT = 100_000


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    """A write transaction on ``conn``: committed when the block ends, rolled back if it
    raises (``BEGIN IMMEDIATE`` takes the write lock at once, so it never deadlocks)."""
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        yield cur
        cur.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            cur.execute("ROLLBACK")
        raise


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteEventLog:
    """``EventLog`` on a SQLite file (``:memory:`` is refused: the log must be durable)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path in ("", ":memory:"):
            raise ValueError("the SQLite event log needs a file path")
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._writer = _connect(self.path)
            self._writer.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise LogUnavailable(f"cannot open SQLite log {self.path!r}: {exc}") from exc
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livetrack-log")
        self._pending: list[tuple[Sequence[Record], asyncio.Future[list[AppendResult]]]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None
        self._waiters: set[asyncio.Event] = set()
        self._closed = False
        self._readers: list[sqlite3.Connection] = []
        #: records this process appended, by row id, until a tail of this process takes them
        #: (so it need not decode what it just encoded); bounded by :data:`RECENT`
        self._recent: dict[int, Record] = {}

    async def append(self, records: Sequence[Record]) -> list[AppendResult]:
        if self._closed:
            raise LogUnavailable("the event log is closed")
        if not records:
            return []
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[AppendResult]] = loop.create_future()
        self._pending.append((records, fut))
        if not self._flushing:
            self._flushing = True
            self._flusher = loop.create_task(self._flush_loop())
        return await fut

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await loop.run_in_executor(
                        self._pool, self._write, [r for r, _ in batch]
                    )
                except Exception as exc:  # every waiter learns of the failure; none is lost
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(LogUnavailable(f"append failed: {exc}"))
                    continue
                recent = self._recent
                for (records, fut), res in zip(batch, results, strict=True):
                    for record, result in zip(records, res, strict=True):
                        if result.offset is not None:
                            recent[int(result.offset)] = record
                    if not fut.done():
                        fut.set_result(res)
                while len(recent) > RECENT:
                    del recent[next(iter(recent))]
                for w in self._waiters:
                    w.set()
        finally:
            self._flushing = False

    def _write(self, groups: list[Sequence[Record]]) -> list[list[AppendResult]]:
        now = int(time.time() * 1000)
        out: list[list[AppendResult]] = []
        with _immediate(self._writer) as cur:
            for records in groups:
                keys = [r.key for r in records]
                rows = [
                    (k, r.TYPE, encode(r).decode(), now) for k, r in zip(keys, records, strict=True)
                ]
                stored: dict[str, Offset] = {}
                for i in range(0, len(rows), _ROWS_PER_INSERT):
                    chunk = rows[i : i + _ROWS_PER_INSERT]
                    sql = _INSERT + ",".join(["(?, ?, ?, ?)"] * len(chunk)) + _RETURNING
                    for key, seq in cur.execute(sql, [v for row in chunk for v in row]):
                        stored[key] = Offset(seq)
                # a key stored by this call counts once; any other copy is a duplicate
                res = []
                for k in keys:
                    offset = stored.pop(k, None)
                    res.append(AppendResult(k, offset, offset is None))
                out.append(res)
        return out

    async def head(self) -> Offset | None:
        row = await asyncio.to_thread(self._query_one, "SELECT MAX(seq) FROM records")
        return None if row is None or row[0] is None else Offset(row[0])

    def _query_one(self, sql: str) -> tuple[object, ...] | None:
        conn = _connect(self.path)
        try:
            row: tuple[object, ...] | None = conn.execute(sql).fetchone()
            return row
        finally:
            conn.close()

    async def tail(
        self, after: Offset | None = None
    ) -> AsyncGenerator[tuple[Offset, Record], None]:
        async with contextlib.aclosing(self.tail_pages(after)) as pages:
            async for page in pages:
                for item in page:
                    yield item

    async def tail_pages(self, after: Offset | None = None) -> AsyncGenerator[Page, None]:
        seq = int(after) if after else 0
        conn = _connect(self.path)
        self._readers.append(conn)
        wake = asyncio.Event()
        self._waiters.add(wake)
        loop = asyncio.get_running_loop()
        reading: asyncio.Future[list[tuple[int, str]]] | None = None
        try:
            while not self._closed:
                wake.clear()
                local = self._appended_here(seq)
                if local:
                    seq = int(local[-1][0])
                    yield Page(local, Offset(seq))
                    continue
                # shielded: a tail cancelled mid-read leaves the read to finish in its thread,
                # and the connection is closed only after it (closing it under a running
                # query crashes the process)
                reading = loop.run_in_executor(None, self._page, conn, seq)
                rows = await asyncio.shield(reading)
                reading = None
                page: list[tuple[Offset, Record]] = []
                recent = self._recent
                for row_seq, body in rows:
                    seq = row_seq
                    record = recent.pop(row_seq, None)
                    if record is None:
                        try:
                            record = decode(body)
                        except RecordError as exc:
                            log.error("log record %d skipped: %s", row_seq, exc)
                            continue
                    page.append((Offset(row_seq), record))
                if rows:
                    yield Page(page, Offset(seq))
                if len(rows) < BATCH:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), POLL_S)
        finally:
            self._waiters.discard(wake)
            if conn in self._readers:
                self._readers.remove(conn)
            if reading is not None and not reading.done():
                reading.add_done_callback(lambda _: conn.close())
            else:
                conn.close()

    def _appended_here(self, seq: int) -> list[tuple[Offset, Record]]:
        """The records after ``seq`` that this process appended and nothing else came between:
        handed to the tail without reading them back, so what a post appended is folded in
        the same turn of the event loop that learnt it was committed, not a read later.
        Sound because writers are serialised: once a transaction holding ``seq + n`` has
        committed, every record numbered below it has too, so a run of consecutive numbers
        all appended here leaves nothing out; a gap (another process's record) sends the tail
        to the file, which reads it and the rest in order."""
        recent = self._recent
        page: list[tuple[Offset, Record]] = []
        nxt = seq + 1
        while nxt in recent and len(page) < BATCH:
            page.append((Offset(nxt), recent.pop(nxt)))
            nxt += 1
        return page

    @staticmethod
    def _page(conn: sqlite3.Connection, seq: int) -> list[tuple[int, str]]:
        rows: list[tuple[int, str]] = conn.execute(
            "SELECT seq, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?", (seq, BATCH)
        ).fetchall()
        return rows

    async def keys_with_prefix(self, prefix: str) -> list[str]:
        """See :class:`livetrack.store.base.KeyLookup`: a range of the unique key index."""
        if not prefix:
            raise ValueError("a key prefix must not be empty")
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)

        def select() -> list[str]:
            conn = _connect(self.path)
            try:
                rows = conn.execute(
                    "SELECT key FROM records WHERE key >= ? AND key < ?", (prefix, end)
                ).fetchall()
                return [k for (k,) in rows]
            finally:
                conn.close()

        return await asyncio.to_thread(select)

    async def stored(self, keys: Sequence[str]) -> dict[str, tuple[Offset, bytes]]:
        """See :class:`livetrack.store.base.StoredLookup`: the unique key index, in chunks."""

        def select() -> dict[str, tuple[Offset, bytes]]:
            conn = _connect(self.path)
            out: dict[str, tuple[Offset, bytes]] = {}
            try:
                wanted = list(dict.fromkeys(keys))
                for i in range(0, len(wanted), _ROWS_PER_INSERT):
                    chunk = wanted[i : i + _ROWS_PER_INSERT]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT key, seq, body FROM records WHERE key IN ({marks})"
                    for key, seq, body in conn.execute(sql, chunk):
                        out[key] = (Offset(seq), body.encode())
                return out
            finally:
                conn.close()

        return await asyncio.to_thread(select) if keys else {}

    async def lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """See :class:`livetrack.store.base.Leases`: a row per lease, taken or renewed in one
        write transaction (so processes sharing the file agree), with its expiry time."""
        if self._closed:
            raise LogUnavailable("the event log is closed")

        def take() -> bool:
            now = int(time.time() * 1000)
            with _immediate(self._writer) as cur:
                row = cur.execute(
                    "SELECT holder, until_ms FROM leases WHERE name = ?", (name,)
                ).fetchone()
                mine = row is None or row[0] == holder or row[1] <= now
                if mine:
                    cur.execute(
                        "INSERT OR REPLACE INTO leases (name, holder, until_ms) VALUES (?, ?, ?)",
                        (name, holder, now + max(1, int(ttl_s * 1000))),
                    )
            return bool(mine)

        return await asyncio.get_running_loop().run_in_executor(self._pool, take)

    async def release(self, name: str, holder: str) -> None:
        if self._closed:
            return

        def give_up() -> None:
            self._writer.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

        await asyncio.get_running_loop().run_in_executor(self._pool, give_up)

    async def save_snapshot(self, name: str, offset: Offset, body: bytes) -> None:
        """Keep ``body`` (a serialised fold) as covering the log up to ``offset``."""

        def write() -> None:
            self._writer.execute(
                "INSERT OR REPLACE INTO snapshots (name, seq, body) VALUES (?, ?, ?)",
                (name, int(offset), body),
            )

        await asyncio.get_running_loop().run_in_executor(self._pool, write)

    async def load_snapshot(self, name: str) -> tuple[Offset, bytes] | None:
        def read() -> tuple[Offset, bytes] | None:
            conn = _connect(self.path)
            try:
                row = conn.execute(
                    "SELECT seq, body FROM snapshots WHERE name = ?", (name,)
                ).fetchone()
            finally:
                conn.close()
            return None if row is None else (Offset(row[0]), bytes(row[1]))

        return await asyncio.to_thread(read)

    async def appended_after(self, offset: Offset | None) -> int | None:
        """When the first record after ``offset`` was appended (epoch ms), or None."""
        after = int(offset) if offset is not None and offset.isdigit() else 0
        sql = f"SELECT appended_ms FROM records WHERE seq > {after} ORDER BY seq LIMIT 1"
        row = await asyncio.to_thread(self._query_one, sql)
        return None if row is None or not isinstance(row[0], int) else row[0]

    async def count(self) -> int:
        row = await asyncio.to_thread(self._query_one, "SELECT COUNT(*) FROM records")
        return int(row[0]) if row is not None and isinstance(row[0], int) else 0

    async def close(self) -> None:
        if self._closed:
            return
        while self._flushing or self._pending:
            await asyncio.sleep(0.005)
        self._closed = True
        for w in self._waiters:
            w.set()
        self._pool.shutdown(wait=True)
        self._writer.close()

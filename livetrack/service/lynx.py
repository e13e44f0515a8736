"""Watching the photo-finish system's results folder (``serve --lif-dir DIR``).

FinishLynx writes one ``.lif`` file per heat into a folder (often a share on the finish
line's network) and writes it again when the judges re-read the picture. The watcher looks at
the folder every :data:`POLL_S` seconds and imports each ``.lif`` file that is new or changed
once it has stopped changing (the same size and time on two looks, so a file still being
written is not read half-way). It goes through the same import as an upload
(:func:`livetrack.ingest.heats.import_lif`): each file becomes at most one record, keyed by
its content, so a file read twice, by two processes or after a restart, is stored once; a
re-exported file replaces the earlier result in the fold. Lines left out are logged with the
file and line, and listed on the timer's problems panel with the result they belong to; a
file from which nothing could be imported is listed there too (kind ``photo-finish``, this
process's own note, not a record) until it imports or goes away.

**One process imports.** With ``serve --workers N`` every process starts a watcher, but only
the one holding the log's lease :data:`LEASE` (:class:`~livetrack.store.base.Leases`, renewed
every third of :data:`LEASE_TTL_S`) looks at the folder; the others stand by and one takes
over when the holder stops renewing. A watcher that takes over looks at every file afresh
(the log's keys store each result once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from livetrack.domain.state import PROBLEMS_TOPIC
from livetrack.ingest.heats import Import, import_lif
from livetrack.ingest.lif import decode_file
from livetrack.service.runtime import Runtime, now_ms
from livetrack.store.base import Leases, LogUnavailable

log = logging.getLogger("livetrack.lynx")

#: Seconds between looks at the folder.
POLL_S = 0.5
#: A file larger than this is not a heat's result (it is reported and left alone).
MAX_BYTES = 256_000
#: The lease whose holder watches the folder, and its time to live.
LEASE = "lif-watch"
LEASE_TTL_S = 10.0


@dataclass
class LifWatcher:
    """Imports the ``.lif`` files of ``folder`` into ``rt``'s log as they appear or change."""

    rt: Runtime
    folder: Path
    poll_s: float = POLL_S
    #: What each file's latest import gave, by file name (newest last).
    imports: dict[str, Import] = field(default_factory=dict)
    _seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    _pending: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Files that imported nothing, with the records applied when they were tried.
    _waiting: dict[str, int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    lease_ttl_s: float = LEASE_TTL_S
    #: Who this watcher is when it asks for the lease (unique per process and start).
    holder: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )
    #: Whether this process looks at the folder now (it holds the lease, or there is none).
    leading: bool = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lif-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        leases = self.rt.log if isinstance(self.rt.log, Leases) else None
        renew_at = 0.0
        try:
            while True:
                if leases is None:
                    self._lead(True)
                elif time.monotonic() >= renew_at:
                    self._lead(await self._renew(leases))
                    renew_at = time.monotonic() + self.lease_ttl_s / 3
                if self.leading:
                    try:
                        await self.scan()
                    except Exception:  # a share that went away: look again next time
                        log.exception("could not scan %s", self.folder)
                await asyncio.sleep(self.poll_s)
        finally:
            if leases is not None and self.leading:
                with contextlib.suppress(LogUnavailable, OSError):
                    await asyncio.shield(leases.release(LEASE, self.holder))

    async def _renew(self, leases: Leases) -> bool:
        try:
            return await leases.lease(LEASE, self.holder, self.lease_ttl_s)
        except (LogUnavailable, OSError) as exc:
            log.warning("photo-finish watch lease not renewed: %s", exc)
            return False

    def _lead(self, held: bool) -> None:
        if held and not self.leading:
            log.info("watching %s for photo-finish (.lif) files", self.folder)
            self._seen.clear()  # look at every file afresh: the log stores each result once
            self._pending.clear()
            self._waiting.clear()
        elif self.leading and not held:
            log.info("another process watches %s now", self.folder)
        self.leading = held

    async def scan(self) -> list[Import]:
        """One look at the folder: imports the files that changed and have settled."""
        done: list[Import] = []
        try:
            entries = sorted(p for p in self.folder.iterdir() if p.suffix.lower() == ".lif")
        except OSError as exc:
            log.warning("cannot read %s: %s", self.folder, exc)
            return done
        for path in entries:
            try:
                st = path.stat()
            except OSError:
                continue
            mark = (st.st_mtime_ns, st.st_size)
            name = path.name
            if self._seen.get(name) == mark:
                continue
            if self._pending.get(name) != mark:  # new or still changing: look again
                self._pending[name] = mark
                continue
            self._pending.pop(name, None)
            changed = name in self._seen  # it changed while watched: a re-export
            self._seen[name] = mark
            done.append(await self.take(path, mark[1], reassert=changed))
        names = {p.name for p in entries}
        for name in [n for n in self._seen if n not in names]:
            del self._seen[name]
            self._pending.pop(name, None)
            self.imports.pop(name, None)
            self._waiting.pop(name, None)
            self._report(name, "")
        for name, at in list(self._waiting.items()):
            # a file for a heat not drawn (or unknown) when it came: try it again once the
            # log has moved on (the timer's draw, the heats that draw the final)
            if at != self.rt.state.applied and name in self._seen:
                done.append(await self.take(self.folder / name, self._seen[name][1]))
        return done

    async def take(self, path: Path, size: int, *, reassert: bool = False) -> Import:
        name = path.name
        got, unread = await self._import(path, size, reassert)
        before = self.imports.get(name)
        if before is None or before.messages != got.messages:
            for problem in got.problems:
                log.warning("%s", problem)
        self._waiting.pop(name, None)
        if got.record is None and not unread and got.problems:
            self._waiting[name] = self.rt.state.applied
        if got.record is not None:
            result = (await self.rt.append([got.record]))[0]
            state = "already stored" if result.duplicate else "stored"
            log.info("%s: %s %s heat %d (%d athletes) %s", name, got.record.race,
                     got.record.round, got.record.heat, len(got.record.rows), state)  # fmt: skip
            self._report(name, "")
        else:
            self._report(name, unread or "; ".join(got.messages) or f"{name}: no athletes")
        self.imports[name] = got
        return got

    async def _import(self, path: Path, size: int, reassert: bool) -> tuple[Import, str]:
        """What the file gives, or (with nothing in it) why it could not be read at all."""
        name = path.name
        unread = ""
        if size > MAX_BYTES:
            unread = f"{name}: {size} bytes is not a heat's result; left alone"
        else:
            try:
                body = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                unread = f"{name}: cannot be read: {exc}"
            else:
                text = decode_file(body)
                if text is None:
                    unread = f"{name}: not a text file; left alone"
                else:
                    got = import_lif(
                        self.rt.state, text, name, "photo finish", now_ms(), reassert=reassert
                    )
                    return got, ""
        log.warning("%s", unread)
        return Import(name), unread

    def _report(self, name: str, detail: str) -> None:
        """Show (or, with no ``detail``, take back) a file that imported nothing on the
        timer's problems panel."""
        state = self.rt.state
        if detail:
            if not state.note_input(f"lif:{name}", "photo-finish", f"nothing imported: {detail}"):
                return  # the same as before (a file tried again): nothing to redraw
        elif not state.clear_input(f"lif:{name}"):
            return
        self.rt.hub.mark({PROBLEMS_TOPIC})

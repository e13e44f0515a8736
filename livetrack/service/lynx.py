"""Watching the photo-finish system's results folder (``serve --lif-dir DIR``).

FinishLynx writes one ``.lif`` file per heat into a folder (often a share on the finish
line's network) and writes it again when the judges re-read the picture. The watcher looks at
the folder every :data:`POLL_S` seconds and imports each ``.lif`` file that is new or changed
once it has stopped changing (the same size and time on two looks, so a file still being
written is not read half-way). It goes through the same import as an upload
(:func:`livetrack.ingest.heats.import_lif`): each file becomes at most one record, keyed by
its content, so a file read twice, by two processes or after a restart, is stored once; a
re-exported file replaces the earlier result in the fold. Lines left out are logged with the
file and line, and listed on the timer's problems panel with the result they belong to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from livetrack.ingest.heats import Import, import_lif
from livetrack.ingest.lif import decode_file
from livetrack.service.runtime import Runtime, now_ms

log = logging.getLogger("livetrack.lynx")

#: Seconds between looks at the folder.
POLL_S = 0.5
#: A file larger than this is not a heat's result (it is reported and left alone).
MAX_BYTES = 256_000


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
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lif-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        log.info("watching %s for photo-finish (.lif) files", self.folder)
        while True:
            try:
                await self.scan()
            except Exception:  # a share that went away: look again next time
                log.exception("could not scan %s", self.folder)
            await asyncio.sleep(self.poll_s)

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
            self._seen[name] = mark
            done.append(await self.take(path, mark[1]))
        return done

    async def take(self, path: Path, size: int) -> Import:
        name = path.name
        if size > MAX_BYTES:
            got = Import(name)
            log.warning("%s: %d bytes is not a heat's result; left alone", name, size)
            return got
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return Import(name)
        text = decode_file(body)
        if text is None:
            log.warning("%s is not a text file; left alone", name)
            return Import(name)
        got = import_lif(self.rt.state, text, name, "photo finish", now_ms())
        for problem in got.problems:
            log.warning("%s", problem)
        if got.record is not None:
            result = (await self.rt.append([got.record]))[0]
            state = "already stored" if result.duplicate else "stored"
            log.info("%s: %s %s heat %d (%d athletes) %s", name, got.record.race,
                     got.record.round, got.record.heat, len(got.record.rows), state)  # fmt: skip
        self.imports[name] = got
        return got

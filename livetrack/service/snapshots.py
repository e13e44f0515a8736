"""Saving and restoring snapshots of the fold in the log's snapshot store.

A process restores the newest compatible snapshot before it starts tailing (then it tails
from the snapshot's offset), and saves one every ``every_records`` records or ``every_s``
seconds (when anything new was folded) and on shutdown. Every process may save: all of them
fold the same log, so any process's snapshot is as good as another's, and each save replaces
the previous one atomically. Snapshots are an optimisation only: a missing, damaged or
incompatible snapshot means a replay from the start, never a wrong state.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import livetrack.domain
from livetrack.domain import snapshot
from livetrack.domain.event import Event
from livetrack.domain.state import RaceState
from livetrack.store.base import Offset, SnapshotStore

log = logging.getLogger("livetrack.snapshots")


@cache
def code_version() -> str:
    """A hash of the fold's code (the source of every module of ``livetrack.domain``) and of
    the Python version: a snapshot written by different code is never loaded."""
    h = hashlib.sha256(f"python={sys.version_info[:2]}".encode())
    folder = Path(livetrack.domain.__file__).resolve().parent
    for path in sorted(folder.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


@dataclass
class SnapshotInfo:
    """The newest snapshot this process loaded or saved (for /healthz and /metrics)."""

    offset: Offset | None = None
    applied: int = 0
    taken_s: float | None = None  # wall-clock time the snapshot was taken
    loaded: bool = False
    bytes: int = 0
    saves: int = 0
    failures: int = 0
    seconds: float = 0.0  # how long the last save or load took

    def age_s(self) -> float | None:
        return None if self.taken_s is None else max(0.0, time.time() - self.taken_s)


async def restore(
    store: object, event: Event, info: SnapshotInfo
) -> tuple[Offset | None, RaceState]:
    """The newest compatible snapshot of ``event`` in ``store`` as ``(offset, state)``, or
    ``(None, RaceState(event))`` to replay from the start. A bad snapshot is logged and
    ignored; only an unreachable store raises (``LogUnavailable``)."""
    fresh = RaceState(event)
    if not isinstance(store, SnapshotStore):
        return None, fresh
    started = time.perf_counter()
    version = code_version()
    found = await store.load_snapshot(snapshot.snapshot_name(event, version))
    if found is None:
        log.info("no snapshot: replaying the log from the start")
        return None, fresh
    offset, body = found
    try:
        head = snapshot.read_header(body)
        why = snapshot.compatible(head, event, version)
        loaded = None if why else await asyncio.to_thread(snapshot.loads, body, event, version)
    except snapshot.SnapshotError as exc:
        why = str(exc)
        loaded = None
    if loaded is None or loaded[0] != offset:
        why = why or f"its offset does not match the store's {offset}"
        log.warning("snapshot ignored (%s): replaying the log from the start", why)
        return None, fresh
    state = loaded[1]
    info.offset, info.applied, info.loaded, info.bytes = offset, state.applied, True, len(body)
    info.taken_s = int(head.get("taken_ms", 0)) / 1000 or time.time()
    info.seconds = time.perf_counter() - started
    log.info(
        "snapshot loaded: %d records up to %s in %.2f s; tailing from there",
        state.applied,
        offset,
        info.seconds,
    )
    return offset, state


async def save(store: object, state: RaceState, offset: Offset, info: SnapshotInfo) -> bool:
    """Save a snapshot of ``state`` (which covers the log up to ``offset``). The state is
    encoded at once, on the caller's thread, so nothing may fold while this starts; the
    compression and the write happen after. False (and logged) when it could not be saved."""
    if not isinstance(store, SnapshotStore):
        return False
    started = time.perf_counter()
    taken = time.time()
    try:
        head, payload = snapshot.encode(state, offset, code_version(), int(taken * 1000))
        body = await asyncio.to_thread(snapshot.pack, head, payload)
        await store.save_snapshot(snapshot.snapshot_name(state.event, code_version()), offset, body)
    except Exception:
        info.failures += 1
        log.exception("snapshot at %s not saved", offset)
        return False
    info.offset, info.applied, info.taken_s, info.bytes = offset, state.applied, taken, len(body)
    info.saves += 1
    info.seconds = time.perf_counter() - started
    log.info(
        "snapshot saved: %d records up to %s, %d bytes, in %.2f s",
        state.applied,
        offset,
        len(body),
        info.seconds,
    )
    return True

"""Shutting down within a bound: a process asked to stop must stop.

A service manager (or uvicorn's own supervisor with ``--workers``) sends SIGTERM and waits;
a worker whose shutdown hangs is killed, and whatever it had not yet done (the final snapshot,
closing its connections) is lost with it. Each step of the shutdown is therefore given a time:
a step still running after it is left behind with an error naming it, and the next step runs.
A step that swallows its cancellation cannot hold the process either: it is waited for, never
awaited to its end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable

log = logging.getLogger("livetrack.stopping")

STEP_S = 10.0
"""Time each step of a shutdown (stopping one component) is given."""
TASKS_S = 5.0
"""Time background tasks are given to end once cancelled."""


async def within(name: str, step: Awaitable[None], seconds: float | None = None) -> bool:
    """Run ``step``; True once it has ended (an error in it is logged, not raised), False if it
    was still running after ``seconds`` (default :data:`STEP_S`; it is then cancelled and left
    behind, logged)."""
    seconds = STEP_S if seconds is None else seconds
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait((task,), timeout=seconds)
    if not done:
        task.cancel()
        log.error("shutdown: %s did not finish within %g s; going on without it", name, seconds)
        return False
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("shutdown: %s failed: %s", name, exc, exc_info=exc)
    return True


async def end_tasks(tasks: Iterable[asyncio.Task[None]], seconds: float | None = None) -> list[str]:
    """Cancel ``tasks`` and wait up to ``seconds`` (default :data:`TASKS_S`) for them to end;
    the names of those still running then (each logged as an error). Their errors are
    collected so that none is reported as never retrieved."""
    seconds = TASKS_S if seconds is None else seconds
    every = list(tasks)
    running = [t for t in every if not t.done()]
    for t in running:
        t.cancel()
    ended: set[asyncio.Task[None]] = set()
    if running:
        ended, _ = await asyncio.wait(running, timeout=seconds)
    for t in every:
        if t.done() and not t.cancelled():
            t.exception()
    stuck = [t.get_name() for t in running if t not in ended]
    for name in stuck:
        log.error("shutdown: task %s still running %g s after it was cancelled", name, seconds)
    return stuck

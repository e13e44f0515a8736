"""The alert loop: once a second, decide which push alerts are due and hand them to the sender.

Deciding is :func:`livetrack.domain.alerts.due` over the fold and the event's clock. Each due
alert is first appended to the log as an :class:`AlertSent` record: only the process whose
append stored the key sends it (a duplicate means another process, or this one before a
restart, already did), so an alert goes out once however many processes decide it. The loop
reads the subscriptions again only when their store's version moves, works through them in
slices that yield to the event loop, and never waits for a push service (the sender's queue
is bounded and :meth:`PushSender.offer` does not block).

After the event (every race over) the subscriptions are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from livetrack.domain.alerts import KINDS, Alert, Spot, SpotEta, Watch, due, races_over
from livetrack.domain.records import AlertSent, Record
from livetrack.domain.state import RaceState
from livetrack.service.push import Outgoing, PushSender
from livetrack.store.base import AppendResult
from livetrack.store.subscriptions import Subscription, SubscriptionStore

log = logging.getLogger("livetrack.alerts")

#: Watches looked at between two yields to the event loop.
SLICE = 500
#: An alert's message is worth sending until this long after its moment (near alerts: until
#: the runner is expected at the spot).
KEEP_MS = 5 * 60_000


@dataclass
class Target:
    sub: Subscription
    watch: Watch


def watches_of(sub: Subscription) -> list[Watch]:
    kinds = frozenset(sub.kinds or KINDS)
    out = []
    for f in sub.follows:
        spot = (
            Spot(f.checkpoint, None)
            if f.checkpoint
            else Spot("", f.distance_m)
            if f.distance_m is not None
            else None
        )
        out.append(Watch(sub.id, f.bib, spot, f.lead_s, kinds))
    return out


class Alerter:
    def __init__(
        self,
        state: RaceState,
        store: SubscriptionStore,
        sender: PushSender,
        append: Callable[[list[Record]], Awaitable[list[AppendResult]]],
        clock_ms: Callable[[], int],
        ready: Callable[[], bool] = lambda: True,
        every_s: float = 1.0,
    ) -> None:
        self.state = state
        self.store = store
        self.sender = sender
        self._append = append
        self.clock_ms = clock_ms
        self.ready = ready
        self.every_s = every_s
        self.targets: list[Target] = []
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.cleared = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="livetrack-alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            if not self.ready():
                continue
            try:
                await self.run_once(self.clock_ms())
            except Exception:
                log.exception("alert pass failed")

    async def reload(self) -> None:
        version = await self.store.version()
        if version == self._version:
            return
        subs = await self.store.all()
        self.targets = [Target(s, w) for s in subs for w in watches_of(s)]
        self._version = version

    async def run_once(self, now_ms: int) -> list[Alert]:
        """One pass: the alerts this process claimed in the log and queued for sending."""
        await self.reload()
        self.passes += 1
        if not self.targets:
            return []
        state = self.state
        over = races_over(state, now_ms)
        if over and over >= set(state.event.races):
            self.cleared += await self.store.clear()
            await self.reload()
            return []
        sent = state.alerts_sent
        etas: dict[tuple[str, Spot], SpotEta | None] = {}
        found: list[tuple[Target, Alert]] = []
        for i, t in enumerate(self.targets):
            if i and i % SLICE == 0:
                await asyncio.sleep(0)
            for a in due(state, t.watch, now_ms, sent, over, etas):
                found.append((t, a))
        if not found:
            return []
        records = [AlertSent(a.supporter, a.bib, a.kind, now_ms) for _, a in found]
        results = await self._append(list(records))
        claimed = []
        for (t, a), res in zip(found, results, strict=True):
            if res.duplicate:
                continue
            claimed.append(a)
            expires = max(now_ms, a.due_ms) + KEEP_MS
            if a.kind.startswith("near:") and t.watch.spot is not None:
                eta = etas.get((t.watch.bib, t.watch.spot))
                if eta is not None:
                    expires = eta.at_ms
            payload: dict[str, object] = {
                "title": a.title,
                "body": a.body,
                "url": a.url,
                "tag": f"{a.bib}:{a.kind}",
                "at": a.due_ms,
            }
            self.sender.offer(Outgoing(t.sub, payload, a.due_ms, expires))
        return claimed


@dataclass
class PushService:
    """What the web layer needs of push: the store, the sender and the alert loop."""

    store: SubscriptionStore
    sender: PushSender
    alerter: Alerter

    async def stop(self) -> None:
        await self.alerter.stop()
        await self.sender.stop()
        await self.store.close()


async def start_push(
    state: RaceState,
    store: SubscriptionStore,
    append: Callable[[list[Record]], Awaitable[list[AppendResult]]],
    clock_ms: Callable[[], int],
    ready: Callable[[], bool],
    contact: str,
    every_s: float = 1.0,
) -> PushService:
    """Load (or make and store) the VAPID key, start the sender and the alert loop."""
    from livetrack.service.push import new_vapid_key

    key = await store.vapid_key(new_vapid_key)
    sender = PushSender(key, contact, store.remove, clock_ms=clock_ms)
    alerter = Alerter(state, store, sender, append, clock_ms, ready, every_s)
    await sender.start()
    await alerter.start()
    return PushService(store, sender, alerter)


class PushCollector(Collector):
    """Push figures for ``/metrics`` (per process; sum over processes for the service)."""

    def __init__(self) -> None:
        self.push: PushService | None = None

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        if self.push is None:
            return
        c = self.push.sender.counters
        alerts = CounterMetricFamily(
            "livetrack_push_alerts",
            "Push alerts by outcome: sent (accepted by the push service), dropped (queue full,"
            " out of retries or past its moment), late (sent over 30 s after its moment),"
            " failed (refused), gone (subscription removed on 404/410), retried",
            labels=["outcome"],
        )
        for name in ("sent", "dropped", "late", "failed", "gone", "retried"):
            alerts.add_metric([name], getattr(c, name))
        yield alerts
        yield GaugeMetricFamily(
            "livetrack_push_queue",
            "Push messages waiting to be sent",
            value=self.push.sender.queue.qsize(),
        )
        yield GaugeMetricFamily(
            "livetrack_push_watches",
            "Runner follows with push alerts, as last read by this process",
            value=len(self.push.alerter.targets),
        )

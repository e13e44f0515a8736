"""The alert loop: once a second, decide which push alerts are due and hand them to the sender.

Deciding is :func:`livetrack.domain.alerts.due` over the fold and the event's clock. Each due
alert is first appended to the log as an :class:`AlertSent` record: only the process whose
append stored the key sends it (a duplicate means another process, or this one before a
restart, already did), so an alert goes out once however many processes decide it. The loop
reads the subscriptions again only when their store's version moves, looks at a watch again
only when its runner has passed a mat, when its near alert's moment comes, or after
:data:`REFRESH_MS`, yields to the event loop every :data:`SLICE_S`, and never waits for a push
service (the sender's queue is bounded and :meth:`PushSender.offer` does not block).

After the event (every race over) the subscriptions are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Container, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from livetrack.domain.alerts import (
    KINDS,
    NEAR_TOO_LATE_MS,
    Alert,
    Memo,
    Spot,
    SpotEta,
    Watch,
    due,
    races_over,
)
from livetrack.domain.records import AlertSent, Record
from livetrack.domain.state import RaceState
from livetrack.service.push import Outgoing, PushSender
from livetrack.store.base import AppendResult
from livetrack.store.subscriptions import Subscription, SubscriptionStore

log = logging.getLogger("livetrack.alerts")

#: The alert loop yields to the event loop after this long (seconds) of deciding.
SLICE_S = 0.01
#: A watch whose runner has not passed a mat since it was last looked at is looked at again
#: after this long (event time), or sooner when its near alert's moment comes: predictions
#: drift slowly as the field moves, and a passing is noticed on the next pass.
REFRESH_MS = 60_000
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
        #: per watch (supporter, runner, spot): its runner's (passings, status) when last looked
        #: at, and when it is next looked at; kept across reloads of the subscriptions
        self._seen: dict[tuple[str, str, Spot | None], tuple[tuple[int, str], int]] = {}
        self.evaluated = 0
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.cleared = 0
        #: passes failed in a row (logged once when they start failing and once on recovery)
        self.failing = 0

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
            await self.attempt()

    async def attempt(self) -> bool:
        """One pass of the loop: whether it worked. A pass that fails (the log cannot be
        appended to while the site link is down, say) is logged when passes start failing, and
        once more, with how many failed, when one works again: not once a second meanwhile."""
        try:
            await self.run_once(self.clock_ms())
        except Exception:
            self.failing += 1
            if self.failing == 1:
                log.exception("alert passes failing (logged again when one works)")
            return False
        if self.failing:
            log.warning("alert passes work again after %d failed", self.failing)
            self.failing = 0
        return True

    async def reload(self) -> None:
        version = await self.store.version()
        if version == self._version:
            return
        subs = await self.store.all()
        self.targets = [Target(s, w) for s in subs for w in watches_of(s)]
        keep = {(t.watch.supporter, t.watch.bib, t.watch.spot) for t in self.targets}
        self._seen = {k: v for k, v in self._seen.items() if k in keep}
        self._version = version

    @staticmethod
    def _next_look(w: Watch, now_ms: int, memo: Memo, sent: Container[str], i: int) -> int:
        """When to look at ``w`` again if its runner passes no mat meanwhile: within
        :data:`REFRESH_MS` (spread, so that watches made at once are not all looked at in one
        pass), and just before its near alert's moment while that is still to come."""
        nxt = now_ms + REFRESH_MS // 2 + (i * 7919) % (REFRESH_MS // 2)
        if w.spot is None or f"alert:{w.supporter}:{w.bib}:near:{w.spot.key}" in sent:
            return nxt
        eta = memo.get(("eta", w.bib, w.spot))
        if (
            isinstance(eta, SpotEta)
            and not eta.passed
            and eta.basis == "predictor"
            and now_ms < eta.at_ms - NEAR_TOO_LATE_MS
        ):  # its near alert's window is open or to come: look again just before it opens
            nxt = min(nxt, max(now_ms + 1000, eta.at_ms - w.lead_s * 1000 - 5000))
        return nxt

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
        memo: Memo = {}
        found: list[tuple[Target, Alert]] = []
        looked = 0
        slice_end = time.perf_counter() + SLICE_S
        for i, t in enumerate(self.targets):
            if i % 256 == 0 and time.perf_counter() > slice_end:
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + SLICE_S
            r = state.runners.get(t.watch.bib)
            if r is None:
                continue
            sig = (len(r.passings), r.status)
            key = (t.watch.supporter, t.watch.bib, t.watch.spot)
            seen = self._seen.get(key)
            if seen is not None and seen[0] == sig and now_ms < seen[1]:
                continue  # nothing new about this runner, and no moment of theirs is near
            looked += 1
            if looked % 16 == 0 and time.perf_counter() > slice_end:
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + SLICE_S
            for a in due(state, t.watch, now_ms, sent, over, memo):
                found.append((t, a))
            self._seen[key] = (sig, self._next_look(t.watch, now_ms, memo, sent, i))
        self.evaluated += looked
        if not found:
            return []
        records = [AlertSent(a.supporter, a.bib, a.kind, now_ms) for _, a in found]
        try:
            results = await self._append(list(records))
        except Exception:
            for t, _ in found:  # not claimed: look at these watches again on the next pass
                self._seen.pop((t.watch.supporter, t.watch.bib, t.watch.spot), None)
            raise
        claimed = []
        for (t, a), res in zip(found, results, strict=True):
            if res.duplicate:
                continue
            claimed.append(a)
            expires = max(now_ms, a.due_ms) + KEEP_MS
            if a.kind.startswith("near:") and t.watch.spot is not None:
                eta = memo.get(("eta", t.watch.bib, t.watch.spot))
                if isinstance(eta, SpotEta):
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

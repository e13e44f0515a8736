"""The alert loop: once a second, decide which push alerts are due and hand them to the sender.

Deciding is :func:`livetrack.domain.alerts.due` over the fold and the event's clock. Each due
alert is first appended to the log as an :class:`AlertSent` record (its claim, carrying the
message): only the process whose append stored the key sends it (a duplicate means another
process, or this one before a restart, already did), so an alert goes out once however many
processes decide it. Once the push service has answered (or the alert is let go), an
:class:`AlertOutcome` is appended. When the log offers leases, only the process holding
:data:`LEASE` decides and sends; when it takes the lease (at start-up, or from a process that
stopped) it sends again every claim with no outcome whose moment has not passed, and records
those whose moment has passed as ``expired``: a stopped process's queue is neither lost nor
sent late. The loop
reads the subscriptions again only when their store's version moves, looks only at the watches
whose runner the fold re-derived since the last pass or whose moment has come
(:class:`~livetrack.domain.alert_plan.Plan`: a pass costs what changed, not how many watch),
yields to the event loop every :data:`SLICE_S`, and never waits for a push service (the
sender's queue is bounded and :meth:`PushSender.offer` does not block).

After the event (every race over) the subscriptions are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from livetrack.domain.alert_plan import Plan
from livetrack.domain.alerts import (
    KINDS,
    Alert,
    Memo,
    Spot,
    SpotEta,
    Watch,
    due,
    races_over,
)
from livetrack.domain.records import AlertOutcome, AlertSent, Record
from livetrack.domain.state import RaceState
from livetrack.service.push import Outgoing, PushSender, Sender
from livetrack.store.base import AppendResult, Leases
from livetrack.store.subscriptions import Subscription, SubscriptionStore

log = logging.getLogger("livetrack.alerts")

#: The alert loop yields to the event loop after this long (seconds) of deciding.
SLICE_S = 0.01
#: A pass with no watch to look at still sees at least this often (event time) whether every
#: race is over (then the subscriptions are removed).
OVER_CHECK_MS = 60_000
#: An alert's message is worth sending until this long after its moment (near alerts: until
#: the runner is expected at the spot).
KEEP_MS = 5 * 60_000
#: The lease (see :class:`~livetrack.store.base.Leases`) whose holder decides and sends alerts.
LEASE = "alerts"
#: Its time to live: a stopped holder's unsent alerts are taken over within about this long.
LEASE_TTL_S = 10.0
#: Outcomes that come within this long (seconds) of one another are appended together: at
#: fifty alerts a second, a few appends a second instead of one per answer.
OUTCOME_GATHER_S = 0.1


#: The subscription of an alert whose supporter has none any more (never sent to).
_NO_SUB = Subscription("", "", "", id="-")


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
        sender: Sender,
        append: Callable[[list[Record]], Awaitable[list[AppendResult]]],
        clock_ms: Callable[[], int],
        ready: Callable[[], bool] = lambda: True,
        every_s: float = 1.0,
        leases: Leases | None = None,
        lease_ttl_s: float = LEASE_TTL_S,
    ) -> None:
        self.state = state
        self.store = store
        self.sender = sender
        self._append = append
        self.clock_ms = clock_ms
        self.ready = ready
        self.every_s = every_s
        self.targets: list[Target] = []
        self._subs: dict[str, Subscription] = {}
        #: the watches by runner, and when each is next looked at (kept across reloads)
        self.plan = Plan()
        self._over_check_ms = 0  # when to see whether the event is over on a pass with no look
        #: watches looked at (decided with :func:`due`), in all passes
        self.evaluated = 0
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.cleared = 0
        #: passes failed in a row (logged once when they start failing and once on recovery)
        self.failing = 0
        self.leases = leases
        self.lease_ttl_s = lease_ttl_s
        #: Who this process is when it asks for the lease (unique per process and start).
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: Whether this process decides and sends now (it holds the lease, or there is none).
        self.leading = leases is None
        self._renew_at = 0.0
        #: claims this process queued in its current term (not to be resumed by itself)
        self._mine: set[str] = set()
        #: of those, the ones whose outcome this process has appended
        self._settled: set[str] = set()
        self._outcomes: list[AlertOutcome] = []
        self._flush_wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        sender.on_outcome = self._record_outcome
        sender.may_send = lambda: self.leading

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="livetrack-alerts")
        self._flusher = asyncio.create_task(self._flush_loop(), name="livetrack-alert-outcomes")

    async def stop(self) -> None:
        """Stop deciding; record the outcomes known so far and give the lease up. Alerts
        still queued keep their claims without an outcome: the next holder sends them."""
        for task in (self._task, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.sender.stop()  # no answer comes after this: every outcome is known
        with contextlib.suppress(Exception):
            await self.flush()
        if self.leases is not None and self.leading:
            self.leading = False
            with contextlib.suppress(Exception):
                await self.leases.release(LEASE, self.holder)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await self.hold()
            if not self.leading or not self.ready():
                continue
            if await self.attempt() and self.leases is not None:
                with contextlib.suppress(Exception):
                    await self.resume(self.clock_ms())

    # -- the lease and what a stopped process left --------------------------------------------

    async def hold(self) -> None:
        """Take or renew the alerts' lease every third of its time to live. A process that
        loses it lets its queue go (the new holder sends every claim without an outcome)."""
        if self.leases is None or time.monotonic() < self._renew_at:
            return
        try:
            held = await self.leases.lease(LEASE, self.holder, self.lease_ttl_s)
        except Exception as exc:
            log.warning("alerts' lease not renewed: %s", exc)
            held = False
        else:
            self._renew_at = time.monotonic() + self.lease_ttl_s / 3
        if held and not self.leading:
            log.info("this process sends the push alerts (lease %s)", self.holder)
        elif self.leading and not held:
            log.warning("the alerts' lease went to another process: alerts stop here")
            self.sender.forget()
            self._mine.clear()
            self._settled.clear()
        self.leading = held

    async def resume(self, now_ms: int) -> int:
        """Send again each claim in the log with no outcome that this process did not queue
        itself (its claimer stopped before the push service answered), or record it
        ``expired`` once its moment has passed. A claim for a supporter with no subscription
        here is left alone until then. How many were queued again."""
        pending = self.state.alerts_pending
        if self._settled:
            done = {k for k in self._settled if k not in pending}
            self._settled -= done
            self._mine -= done
        left = [c for k, c in pending.items() if k not in self._mine]
        if not left:
            return 0
        subs = self._subs
        queued = 0
        for claim in left:
            sub = subs.get(claim.supporter)
            if sub is None and now_ms <= claim.expires_ms:
                # not subscribed here: unsubscribed meanwhile, or subscribed at the other end
                # of a site link (whose own process sends it): left to its time running out
                continue
            self._mine.add(claim.key)
            payload: dict[str, object] = {
                "title": claim.title,
                "body": claim.body,
                "url": claim.url,
                "tag": f"{claim.bib}:{claim.kind}",
                "at": claim.due_ms,
            }
            msg = Outgoing(
                sub or _NO_SUB, payload, claim.due_ms, claim.expires_ms, claim=claim, resent=True
            )
            if now_ms > claim.expires_ms:
                self.sender.counters.expired += 1
                self._record_outcome(msg, "expired")
            else:
                self.sender.counters.resent += 1
                queued += 1
                self.sender.offer(msg)
        if queued:
            log.info("%d push alerts a stopped process had not sent are sent again", queued)
        return queued

    # -- outcomes -----------------------------------------------------------------------------

    def _record_outcome(self, msg: Outgoing, outcome: str) -> None:
        claim = msg.claim
        if claim is None:
            return
        self._settled.add(claim.key)
        at = self.clock_ms()
        self._outcomes.append(AlertOutcome(claim.supporter, claim.bib, claim.kind, outcome, at))
        self._flush_wake.set()

    async def flush(self) -> None:
        """Append the outcomes recorded so far (kept for the next try if the append fails)."""
        batch, self._outcomes = self._outcomes, []
        if not batch:
            return
        try:
            await self._append(list(batch))
        except BaseException:
            self._outcomes[:0] = batch
            raise

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_wake.wait()
            await asyncio.sleep(OUTCOME_GATHER_S)
            self._flush_wake.clear()
            try:
                await self.flush()
            except Exception as exc:
                log.warning("alert outcomes not recorded yet: %s", exc)
                await asyncio.sleep(1.0)
                self._flush_wake.set()

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
        self._subs = {s.id: s for s in subs}
        self.plan.load(t.watch for t in self.targets)
        self._version = version

    async def run_once(self, now_ms: int) -> list[Alert]:
        """One pass: the alerts this process claimed in the log and queued for sending. It
        looks only at the watches :meth:`Plan.take` hands out (their runner moved, or their
        moment came), and plans each again."""
        await self.reload()
        self.passes += 1
        if not self.targets:
            return []
        state = self.state
        todo = self.plan.take(state, now_ms)
        if not todo and now_ms < self._over_check_ms:
            return []
        self.evaluated += len(todo)
        try:
            return await self._decide(todo, now_ms)
        except BaseException:
            self.plan.again(todo)  # not claimed, or not planned: look again on the next pass
            raise

    async def _decide(self, todo: list[Watch], now_ms: int) -> list[Alert]:
        state = self.state
        over = races_over(state, now_ms)  # on a pass with watches to look at, or once a minute
        self._over_check_ms = now_ms + OVER_CHECK_MS
        if over and over >= set(state.event.races):
            self.cleared += await self.store.clear()
            await self.reload()
            return []
        sent = state.alerts_sent
        memo: Memo = {}
        found: list[tuple[Target, Alert]] = []
        slice_end = time.perf_counter() + SLICE_S
        for i, w in enumerate(todo):
            if i % 16 == 0 and time.perf_counter() > slice_end:
                await asyncio.sleep(0)
                slice_end = time.perf_counter() + SLICE_S
            if w.bib in state.runners:
                sub = self._subs[w.supporter]
                for a in due(state, w, now_ms, sent, over, memo):
                    found.append((Target(sub, w), a))
            self.plan.plan(w, state, now_ms, memo, sent)
        if not found:
            return []
        records = []
        for t, a in found:
            expires = max(now_ms, a.due_ms) + KEEP_MS
            if a.kind.startswith("near:") and t.watch.spot is not None:
                eta = memo.get(("eta", t.watch.bib, t.watch.spot))
                if isinstance(eta, SpotEta):
                    expires = eta.at_ms
            records.append(
                AlertSent(
                    a.supporter, a.bib, a.kind, now_ms, a.due_ms, expires, a.title, a.body, a.url
                )
            )
        results = await self._append(list(records))
        claimed = []
        for (t, a), claim, res in zip(found, records, results, strict=True):
            if res.duplicate:
                continue
            claimed.append(a)
            self._mine.add(claim.key)
            payload: dict[str, object] = {
                "title": a.title,
                "body": a.body,
                "url": a.url,
                "tag": f"{a.bib}:{a.kind}",
                "at": a.due_ms,
            }
            self.sender.offer(Outgoing(t.sub, payload, a.due_ms, claim.expires_ms, claim=claim))
        return claimed


@dataclass
class PushService:
    """What the web layer needs of push: the store, the sender and the alert loop."""

    store: SubscriptionStore
    sender: Sender
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
    leases: Leases | None = None,
    sender_process: bool = True,
) -> PushService:
    """Load (or make and store) the VAPID key, start the sender (in a process of its own
    unless ``sender_process`` is False) and the alert loop."""
    from livetrack.service.push import new_vapid_key
    from livetrack.service.pushproc import PushProcess

    key = await store.vapid_key(new_vapid_key)
    sender: Sender = (
        PushProcess(key, contact, store.remove, clock_ms=clock_ms)
        if sender_process
        else PushSender(key, contact, store.remove, clock_ms=clock_ms)
    )
    alerter = Alerter(state, store, sender, append, clock_ms, ready, every_s, leases)
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
            " failed (refused), gone (subscription removed on 404/410), retried, resent (left"
            " unsent by a stopped process, sent again here), expired (its moment passed before"
            " it could be sent, here or by a stopped process: not sent)",
            labels=["outcome"],
        )
        for name in ("sent", "dropped", "late", "failed", "gone", "retried", "resent", "expired"):
            alerts.add_metric([name], getattr(c, name))
        yield alerts
        yield GaugeMetricFamily(
            "livetrack_push_queue",
            "Push messages waiting to be sent",
            value=self.push.sender.waiting(),
        )
        yield GaugeMetricFamily(
            "livetrack_push_leading",
            "1 while this process decides and sends the push alerts (it holds their lease)",
            value=int(self.push.alerter.leading),
        )
        yield GaugeMetricFamily(
            "livetrack_push_unsettled",
            "Alerts claimed in the log with no outcome yet, as folded by this process",
            value=len(self.push.alerter.state.alerts_pending),
        )
        yield CounterMetricFamily(
            "livetrack_push_watches_examined",
            "Watches the alert loop's passes looked at (their runner moved, or their moment came)",
            value=self.push.alerter.evaluated,
        )
        yield GaugeMetricFamily(
            "livetrack_push_watches",
            "Runner follows with push alerts, as last read by this process",
            value=len(self.push.alerter.targets),
        )

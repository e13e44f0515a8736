"""Sending Web Push messages (RFC 8030) with VAPID (RFC 8292) and ``aes128gcm`` (RFC 8291).

:class:`PushSender` takes messages into a bounded queue (:meth:`PushSender.offer` never
waits: a full queue drops the message and counts it) and a few worker tasks send them, so
deciding alerts never waits for a push service. A 429 or 5xx answer, or a network error, is
retried with exponential backoff (``Retry-After`` honoured) until the message's own deadline;
404 and 410 mean the subscription is gone: ``on_gone`` is called to remove it.
Encryption runs in a worker thread, off the event loop that serves the live pages; one
HTTP client keeps its connections to each push service open between messages.

Whatever becomes of a message that carries its claim (delivered, gone, given up, refused,
expired, dropped from a full queue) is handed to ``on_outcome``, which records it in the log
(see :mod:`livetrack.service.alerting`). A message whose claim has no outcome is sent again by
the process that holds the alerts' lease after this one stops; ``may_send`` (False once this
process has lost that lease) keeps this one from sending it too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import http_ece
import httpx
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from livetrack.domain.records import AlertSent
from livetrack.store.subscriptions import Subscription

log = logging.getLogger("livetrack.push")

#: A message sent this long after its moment (or later) counts as late.
LATE_AFTER_MS = 30_000
#: VAPID tokens are made for this long (push services accept up to 24 h) and renewed an hour
#: before they run out.
TOKEN_LIFE_S = 12 * 3600
MAX_ATTEMPTS = 6


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_vapid_key() -> bytes:
    """A new P-256 private key, PEM (PKCS#8): the server's VAPID identity."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Outgoing:
    """One message for one subscription. ``due_ms``: the moment it is about (for the late
    count); ``expires_ms``: after this it is pointless, so it is dropped rather than sent."""

    sub: Subscription
    payload: dict[str, object]
    due_ms: int
    expires_ms: int
    attempts: int = 0
    #: the log's claim of this alert (its outcome is recorded), None for a bare message
    claim: AlertSent | None = None
    #: sent again by a process other than the one that claimed it (after a restart)
    resent: bool = False
    #: its number between a serving process and its sender process
    ref: int = 0


@dataclass
class PushCounters:
    sent: int = 0
    dropped: int = 0
    late: int = 0
    failed: int = 0
    gone: int = 0
    retried: int = 0
    #: claims left without an outcome by a stopped process, queued again here
    resent: int = 0
    #: claims let go because their moment passed before they could be sent
    expired: int = 0
    #: milliseconds from each sent message's moment to its acceptance by the push service
    delays_ms: list[int] = field(default_factory=list)


def public_key_of(vapid_pem: bytes) -> str:
    """The applicationServerKey a page subscribes with, for the VAPID key ``vapid_pem``."""
    raw = (
        serialization.load_pem_private_key(vapid_pem, None)
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return b64url(raw)


def check_contact(contact: str) -> str:
    if not contact.startswith(("mailto:", "https:")):
        raise ValueError(f"VAPID contact must be a mailto: or https: URL, not {contact!r}")
    return contact


class Sender(Protocol):
    """What the alert loop needs of a sender: :class:`PushSender` in this process, or
    :class:`livetrack.service.pushproc.PushProcess` in a process of its own."""

    public_key: str
    counters: PushCounters
    on_outcome: Callable[[Outgoing, str], object] | None
    may_send: Callable[[], bool]

    def offer(self, msg: Outgoing) -> bool: ...

    def forget(self) -> object: ...

    def waiting(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def drain(self, timeout: float) -> None: ...


class PushSender:
    def __init__(
        self,
        vapid_pem: bytes,
        contact: str,
        on_gone: Callable[[str], Awaitable[object]],
        *,
        clock_ms: Callable[[], int] | None = None,
        maxsize: int = 10_000,
        workers: int = 4,
        timeout_s: float = 10.0,
        on_outcome: Callable[[Outgoing, str], object] | None = None,
        may_send: Callable[[], bool] = lambda: True,
        encrypt_in_thread: bool = True,
    ) -> None:
        self.contact = check_contact(contact)
        self.vapid = Vapid02.from_pem(vapid_pem)
        #: the applicationServerKey a page subscribes with
        self.public_key = public_key_of(vapid_pem)
        self.on_gone = on_gone
        self.on_outcome = on_outcome
        self.may_send = may_send
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize)
        self.counters = PushCounters()
        self._workers = workers
        self._timeout_s = timeout_s
        self._tokens: dict[str, tuple[str, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._encrypt_in_thread = encrypt_in_thread
        #: retries waiting for their time, and the message each will queue again
        self._timers: dict[asyncio.TimerHandle, Outgoing] = {}
        self._client: httpx.AsyncClient | None = None

    # -- queue --------------------------------------------------------------------------------

    def offer(self, msg: Outgoing) -> bool:
        """Queue ``msg`` for sending; False (and counted as dropped) when the queue is full."""
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.counters.dropped += 1
            self._outcome(msg, "dropped")
            return False
        return True

    def _outcome(self, msg: Outgoing, outcome: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(msg, outcome)

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self._timeout_s,
            limits=httpx.Limits(max_connections=self._workers * 4),
        )
        for i in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"livetrack-push-{i}"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        for h in self._timers:
            h.cancel()
        self._timers.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def waiting(self) -> int:
        """Messages queued or waiting for a retry."""
        return self.queue.qsize() + len(self._timers)

    def forget(self) -> list[Outgoing]:
        """Let every queued message and pending retry go, without an outcome (another process
        holds the alerts now and sends what has none); the messages let go."""
        gone = list(self._timers.values())
        for h in self._timers:
            h.cancel()
        self._timers.clear()
        while not self.queue.empty():
            gone.append(self.queue.get_nowait())
            self.queue.task_done()
        return gone

    async def drain(self, timeout: float) -> None:
        """Wait until every queued message has been dealt with (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while (self.queue.qsize() or self._timers or self.queue._unfinished_tasks) and (  # type: ignore[attr-defined]
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.02)

    # -- sending ------------------------------------------------------------------------------

    def _token(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        aud = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        cached = self._tokens.get(aud)
        if cached is not None and cached[1] - now > 3600:
            return cached[0]
        exp = int(now) + TOKEN_LIFE_S
        claims = {"aud": aud, "exp": exp, "sub": self.contact}
        header = str(self.vapid.sign(claims)["Authorization"])
        self._tokens[aud] = (header, exp)
        return header

    @staticmethod
    def encrypt(sub: Subscription, body: bytes) -> bytes:
        """``body`` encrypted for ``sub``'s browser (RFC 8291: a fresh key pair and salt)."""
        eph = ec.generate_private_key(ec.SECP256R1())
        return bytes(
            http_ece.encrypt(
                body,
                private_key=eph,
                dh=unb64url(sub.p256dh),
                auth_secret=unb64url(sub.auth),
                version="aes128gcm",
            )
        )

    async def _work(self) -> None:
        while True:
            msg = await self.queue.get()
            try:
                await self._send(msg)
            except Exception:
                log.exception("push to %s failed", urlsplit(msg.sub.endpoint).netloc)
                self.counters.failed += 1
                self._outcome(msg, "given-up")
            finally:
                self.queue.task_done()

    async def _send(self, msg: Outgoing) -> None:
        if not self.may_send():
            return  # another process holds the alerts now: it sends what has no outcome
        now = self.clock_ms()
        if now > msg.expires_ms:
            self.counters.dropped += 1
            self.counters.expired += 1
            self._outcome(msg, "expired")
            return
        assert self._client is not None
        plain = orjson.dumps(msg.payload)
        if self._encrypt_in_thread:
            body = await asyncio.to_thread(self.encrypt, msg.sub, plain)
        else:
            body = self.encrypt(msg.sub, plain)
        ttl = max(0, (msg.expires_ms - now) // 1000)
        headers = {
            "Authorization": self._token(msg.sub.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(ttl),
            "Urgency": "high",
        }
        try:
            resp = await self._client.post(msg.sub.endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._retry(msg, None, str(exc))
            return
        status = resp.status_code
        if 200 <= status < 300:
            self.counters.sent += 1
            delay = self.clock_ms() - msg.due_ms
            self.counters.delays_ms.append(delay)
            if len(self.counters.delays_ms) > 10_000:
                del self.counters.delays_ms[:5_000]
            if delay > LATE_AFTER_MS:
                self.counters.late += 1
            self._outcome(msg, "delivered")
        elif status in (404, 410):
            self.counters.gone += 1
            self._outcome(msg, "gone")
            await self.on_gone(msg.sub.id)
        elif status == 429 or status >= 500:
            self._retry(msg, resp.headers.get("retry-after"), f"HTTP {status}")
        else:
            self.counters.failed += 1
            self._outcome(msg, "refused")
            log.warning(
                "push service %s refused a message: HTTP %d %s",
                urlsplit(msg.sub.endpoint).netloc,
                status,
                resp.text[:200],
            )

    def _retry(self, msg: Outgoing, retry_after: str | None, why: str) -> None:
        msg.attempts += 1
        if msg.attempts >= MAX_ATTEMPTS:
            self.counters.dropped += 1
            self._outcome(msg, "given-up")
            log.warning("push given up after %d attempts: %s", msg.attempts, why)
            return
        delay = min(60.0, 0.5 * 2**msg.attempts) * random.uniform(0.75, 1.25)
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, float(retry_after))
        if self.clock_ms() + delay * 1000 > msg.expires_ms:
            self.counters.dropped += 1
            self._outcome(msg, "given-up")
            return
        self.counters.retried += 1
        loop = asyncio.get_running_loop()

        def again() -> None:
            self._timers.pop(handle, None)
            self.offer(msg)

        handle = loop.call_later(delay, again)
        self._timers[handle] = msg

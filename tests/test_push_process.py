"""The push sender in a process of its own (``livetrack.service.pushproc``), against the local
push service over real HTTP, which checks every VAPID signature and decrypts every message."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import PATIENCE_S
from pushservice import PushService

from livetrack.service.push import Outgoing, new_vapid_key
from livetrack.service.pushproc import PushProcess
from livetrack.store.subscriptions import Subscription


def message(sub: Subscription, text: str) -> Outgoing:
    now = int(time.time() * 1000)
    return Outgoing(sub, {"title": text, "body": "b", "url": "/runners/1"}, now, now + 60_000)


class Sending:
    """A started :class:`PushProcess` and what it reported."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[str, str]] = []
        self.gone: list[str] = []

        async def on_gone(sub_id: str) -> None:
            self.gone.append(sub_id)

        self.sender = PushProcess(
            new_vapid_key(),
            "mailto:timing@example.org",
            on_gone,
            on_outcome=lambda msg, outcome: self.outcomes.append(
                (str(msg.payload["title"]), outcome)
            ),
        )

    def subscribe(self, svc: PushService) -> Subscription:
        b = svc.subscribe(self.sender.public_key)
        return Subscription(b.endpoint, b.p256dh, b.json()["keys"]["auth"])


async def until(what: str, ok: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not ok():
        assert time.monotonic() < deadline, f"not in {PATIENCE_S}s: {what}"
        await asyncio.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def test_messages_are_sent_by_another_process_and_their_outcomes_come_back() -> None:
    s = Sending()
    with PushService() as svc:
        await s.sender.start()
        try:
            subs = [s.subscribe(svc) for _ in range(3)]
            for i, sub in enumerate(subs):
                assert s.sender.offer(message(sub, f"alert {i}"))
            await s.sender.drain(PATIENCE_S)
            pid = s.sender.pid
        finally:
            await s.sender.stop()
        assert pid is not None and pid != os.getpid()
        assert svc.rejected == []
        titles = sorted(d.payload["title"] for d in svc.delivered)
        assert titles == ["alert 0", "alert 1", "alert 2"]
        assert sorted(s.outcomes) == [(f"alert {i}", "delivered") for i in range(3)]
        assert s.sender.counters.sent == 3 and len(s.sender.counters.delays_ms) == 3
        assert s.sender.waiting() == 0
        assert not alive(pid)  # stopped with the sender


async def test_a_killed_sender_process_is_replaced_and_each_message_is_sent_once() -> None:
    s = Sending()
    with PushService() as svc:
        await s.sender.start()
        try:
            subs = [s.subscribe(svc) for _ in range(4)]
            for sub in subs:
                svc.script(sub.endpoint, [503] * 100)
            for i, sub in enumerate(subs):
                s.sender.offer(message(sub, f"alert {i}"))
            await until(
                "every message refused once",
                lambda: all(svc.tried.get(sub.endpoint, 0) >= 1 for sub in subs),
            )
            first = s.sender.pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            for sub in subs:
                svc.script(sub.endpoint, [])  # the push service is well again
            await until("a new sender process", lambda: s.sender.started == 2)
            await s.sender.drain(PATIENCE_S)
        finally:
            await s.sender.stop()
        assert svc.rejected == []
        for i, sub in enumerate(subs):
            assert [m["title"] for m in svc.to(sub.endpoint)] == [f"alert {i}"]
        assert sorted(s.outcomes) == [(f"alert {i}", "delivered") for i in range(4)]
        assert s.sender.counters.sent == 4


async def test_forgotten_messages_are_let_go_without_an_outcome() -> None:
    s = Sending()
    with PushService() as svc:
        await s.sender.start()
        try:
            sub = s.subscribe(svc)
            svc.script(sub.endpoint, [503] * 100)
            s.sender.offer(message(sub, "waits for a retry"))
            await until("the message refused once", lambda: svc.tried.get(sub.endpoint, 0) >= 1)
            s.sender.forget()  # another process holds the alerts now
            await until("nothing in flight", lambda: s.sender.waiting() == 0)
            svc.script(sub.endpoint, [])
            await asyncio.sleep(1.5)  # past the first retry's time
        finally:
            await s.sender.stop()
        assert svc.delivered == [] and s.outcomes == []
        assert s.sender.counters.retried == 1


async def test_a_gone_endpoint_is_reported_to_the_serving_process() -> None:
    s = Sending()
    with PushService() as svc:
        await s.sender.start()
        try:
            sub = s.subscribe(svc)
            svc.gone(sub.endpoint)
            s.sender.offer(message(sub, "to nobody"))
            await until("the subscription removed", lambda: s.gone == [sub.id])
        finally:
            await s.sender.stop()
        assert s.outcomes == [("to nobody", "gone")]
        assert s.sender.counters.gone == 1 and s.sender.counters.sent == 0


async def test_a_full_sender_drops_new_messages_and_counts_them() -> None:
    s = Sending()
    s.sender.maxsize = 2
    with PushService() as svc:
        await s.sender.start()
        try:
            sub = s.subscribe(svc)
            svc.script(sub.endpoint, [503] * 100)
            offered = [s.sender.offer(message(sub, str(i))) for i in range(4)]
        finally:
            await s.sender.stop()
        assert offered == [True, True, False, False]
        assert s.sender.counters.dropped == 2
        assert sorted(s.outcomes) == [("2", "dropped"), ("3", "dropped")]


CHILD = """
import asyncio, sys
from livetrack.service.push import new_vapid_key
from livetrack.service.pushproc import PushProcess

async def main():
    async def gone(_):
        pass
    p = PushProcess(new_vapid_key(), "mailto:t@example.org", gone)
    await p.start()
    print(p.pid, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def test_the_sender_process_dies_with_a_killed_server() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True
    ) as server:
        assert server.stdout is not None
        pid = int(server.stdout.readline())
        assert alive(pid)
        server.kill()  # SIGKILL: no chance to stop its sender
        server.wait(PATIENCE_S)
        deadline = time.monotonic() + PATIENCE_S
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)

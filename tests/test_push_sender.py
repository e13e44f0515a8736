"""The push sender against a local push service over real HTTP that checks VAPID and decrypts."""

from __future__ import annotations

import asyncio
import time

import pytest
from pushservice import PushService, verify_vapid

from livetrack.service.push import Outgoing, PushSender, new_vapid_key
from livetrack.store.subscriptions import Subscription


def subscription(svc: PushService, sender: PushSender) -> Subscription:
    b = svc.subscribe(sender.public_key)
    return Subscription(b.endpoint, b.p256dh, b.json()["keys"]["auth"])


def message(sub: Subscription, text: str = "hello", keep_ms: int = 60_000) -> Outgoing:
    now = int(time.time() * 1000)
    return Outgoing(sub, {"title": text, "body": "b", "url": "/runners/1"}, now, now + keep_ms)


async def started(gone: list[str] | None = None, maxsize: int = 100) -> PushSender:
    async def on_gone(sub_id: str) -> None:
        (gone if gone is not None else []).append(sub_id)

    s = PushSender(new_vapid_key(), "mailto:timing@example.org", on_gone, maxsize=maxsize)
    await s.start()
    return s


async def test_pushed_message_is_signed_for_the_push_service_and_decrypts_for_the_browser() -> None:
    with PushService() as svc:
        sender = await started()
        try:
            sub = subscription(svc, sender)
            assert sender.offer(message(sub, "Siobhan is about 3 minutes from you"))
            await sender.drain(10)
        finally:
            await sender.stop()
        assert svc.rejected == []
        [got] = svc.delivered
        assert got.payload["title"] == "Siobhan is about 3 minutes from you"
        assert got.claims["aud"] == svc.origin and got.claims["sub"] == "mailto:timing@example.org"
        assert 0 < got.ttl <= 60
        assert sender.counters.sent == 1 and sender.counters.late == 0


async def test_push_service_refuses_a_token_signed_by_another_key() -> None:
    with PushService() as svc:
        impostor = await started()
        real = await started()
        try:
            b = svc.subscribe(real.public_key)  # made with the real server's key
            sub = Subscription(b.endpoint, b.p256dh, b.json()["keys"]["auth"])
            impostor.offer(message(sub))
            await impostor.drain(10)
        finally:
            await impostor.stop()
            await real.stop()
        assert svc.delivered == []
        assert svc.rejected and svc.rejected[0][1] == 401
        assert impostor.counters.failed == 1 and impostor.counters.sent == 0


def test_vapid_check_refuses_a_token_for_another_audience() -> None:
    from py_vapid import Vapid02

    from livetrack.service.push import b64url

    v = Vapid02.from_pem(new_vapid_key())
    from cryptography.hazmat.primitives import serialization

    k = b64url(
        v.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )
    exp = int(time.time()) + 3600
    header = v.sign({"aud": "https://elsewhere.example", "exp": exp, "sub": "mailto:a@b.c"})
    with pytest.raises(ValueError, match="aud"):
        verify_vapid(header["Authorization"], "http://127.0.0.1:1", k)
    ok = v.sign({"aud": "http://127.0.0.1:1", "exp": exp, "sub": "mailto:a@b.c"})
    assert verify_vapid(ok["Authorization"], "http://127.0.0.1:1", k)["exp"] == exp


async def test_429_and_503_are_retried_with_backoff_until_delivered() -> None:
    with PushService() as svc:
        sender = await started()
        try:
            sub = subscription(svc, sender)
            svc.script(sub.endpoint, [429, 503])
            sender.offer(message(sub))
            await sender.drain(20)
        finally:
            await sender.stop()
        assert len(svc.delivered) == 1
        assert sender.counters.retried == 2 and sender.counters.sent == 1
        assert svc.requests == 3


async def test_a_gone_endpoint_removes_its_subscription() -> None:
    gone: list[str] = []
    with PushService() as svc:
        sender = await started(gone)
        try:
            sub = subscription(svc, sender)
            svc.gone(sub.endpoint)
            sender.offer(message(sub))
            await sender.drain(10)
        finally:
            await sender.stop()
    assert gone == [sub.id]
    assert sender.counters.gone == 1 and sender.counters.sent == 0


async def test_a_full_queue_drops_new_messages_and_counts_them() -> None:
    with PushService() as svc:
        sender = PushSender(
            new_vapid_key(), "mailto:t@example.org", lambda _: asyncio.sleep(0), maxsize=3
        )
        sub = subscription(svc, sender)
        offered = [sender.offer(message(sub, str(i))) for i in range(5)]  # no worker running yet
        assert offered == [True, True, True, False, False]
        assert sender.counters.dropped == 2
        await sender.start()
        try:
            await sender.drain(10)
        finally:
            await sender.stop()
        assert sorted(p["title"] for p in svc.to(sub.endpoint)) == ["0", "1", "2"]


async def test_a_message_past_its_moment_is_dropped_not_sent() -> None:
    with PushService() as svc:
        sender = await started()
        try:
            sub = subscription(svc, sender)
            sender.offer(message(sub, keep_ms=-1000))
            await sender.drain(10)
        finally:
            await sender.stop()
        assert svc.requests == 0 and sender.counters.dropped == 1


def test_rfc8291_decryption_refuses_a_tampered_message() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from pushservice import Browser, decrypt_aes128gcm

    b = Browser("https://push.example.org/x", "k")
    sub = Subscription(b.endpoint, b.p256dh, b.json()["keys"]["auth"])
    body = PushSender.encrypt(sub, b'{"title": "hello"}')
    assert decrypt_aes128gcm(body, b.key, b.auth) == b'{"title": "hello"}'
    tampered = body[:-1] + bytes([body[-1] ^ 1])
    with pytest.raises(ValueError, match="authenticate"):
        decrypt_aes128gcm(tampered, b.key, b.auth)
    with pytest.raises(ValueError, match="authenticate"):  # another browser's key
        decrypt_aes128gcm(body, ec.generate_private_key(ec.SECP256R1()), b.auth)


async def test_messages_to_one_push_service_share_a_kept_open_connection() -> None:
    with PushService() as svc:
        sender = PushSender(
            new_vapid_key(), "mailto:t@example.org", lambda _: asyncio.sleep(0), workers=1
        )
        await sender.start()
        try:
            subs = [subscription(svc, sender) for _ in range(3)]
            for i in range(6):
                sender.offer(message(subs[i % 3], str(i)))
            await sender.drain(10)
        finally:
            await sender.stop()
        assert svc.rejected == [] and len(svc.delivered) == 6
        assert svc.connections == 1

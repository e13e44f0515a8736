"""Push in a real headless Chromium: where I stand, a real ``pushManager.subscribe`` through
the real service worker (Chromium's own GCM check-in and registration answered on 127.0.0.1),
the subscription stored by the server, and a real alert decided by the server, signed and
encrypted for the browser's keys, checked by a local push service and carried over GCM's own
channel to Chromium, which decrypts it and shows it from the worker. Without push, the page
says why."""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import CHROMIUM_ARGS, WAIT_MS, PageFactory, shot_path
from notifications import NotificationServer, Shown
from pushservice import GcmStandIn, PushService
from server import serve
from test_push_live import mile_field, today_event

pytestmark = pytest.mark.browser


async def test_supporter_sets_their_spot_and_subscribes_to_push_through_the_worker(
    chromium: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    event = today_event()
    people = mile_field(event)
    with (
        GcmStandIn() as gcm,
        PushService() as svc,
        serve(event, tmp_path / "log.db", people) as srv,
    ):
        async with async_playwright() as pw:
            # a profile of its own: Chromium refuses push in incognito contexts
            ctx = await pw.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="lt-push-"),
                executable_path=chromium,
                headless=True,
                args=[*CHROMIUM_ARGS, *gcm.args],
                viewport={"width": 390, "height": 844},
            )
            try:
                await ctx.grant_permissions(["notifications"], origin=srv.url)
                page = ctx.pages[0] if ctx.pages else await ctx.new_page()
                await page.goto(f"{srv.url}/runners/2")
                where = page.locator(".stand select").first
                await where.wait_for(timeout=WAIT_MS)
                await page.wait_for_function(
                    "document.querySelectorAll('.stand select option').length > 2",
                    timeout=WAIT_MS,
                )
                await where.select_option("finish")
                await page.locator(".stand select").nth(1).select_option("120")
                await page.locator(".push-on").click()
                await page.wait_for_function(
                    "document.querySelector('[data-push]').dataset.pushState === 'on'",
                    timeout=3 * WAIT_MS,
                )
                text = await page.locator(".push-why").inner_text()
                assert "Push alerts on for 1 runner" in text
                await page.screenshot(path=str(shot_path("push-runner-subscribed")))

                # what the browser made, and what the server keeps of it
                sub = await page.evaluate(
                    "navigator.serviceWorker.ready.then(r => r.pushManager.getSubscription())"
                    ".then(s => s.toJSON())"
                )
                push = srv.app.state.push  # type: ignore[attr-defined]
                [stored] = await asyncio.wrap_future(
                    asyncio.run_coroutine_threadsafe(push.store.all(), srv.loop)
                )
                assert stored.endpoint == sub["endpoint"]
                assert stored.endpoint.split("/")[-1].startswith("lt-")  # GCM's token, from here
                assert stored.p256dh == sub["keys"]["p256dh"] and stored.auth == sub["keys"]["auth"]
                point = base64.urlsafe_b64decode(stored.p256dh + "==")
                assert len(point) == 65 and point[0] == 4
                assert [(f.bib, f.checkpoint, f.lead_s) for f in stored.follows] == [
                    ("2", "finish", 120)
                ]
                token = stored.endpoint.rsplit("/", 1)[-1]
                assert gcm.registrations[token]["sender"] == push.sender.public_key

                # a real alert, decided by the server, reaches the real worker: the server
                # signs and encrypts it for the browser's keys, the push service checks the
                # VAPID token and passes the body on over GCM's channel, Chromium decrypts it
                # and the worker shows it
                relay = svc.relay(stored.endpoint, push.sender.public_key, gcm)
                body = {
                    "subscription": {"endpoint": relay, "keys": sub["keys"]},
                    "follows": [{"bib": "2", "checkpoint": "finish", "lead_s": 120}],
                }
                async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
                    put = await c.put("/api/v1/push/subscription", json=body)
                    assert put.status_code == 200, put.text
                    now = int(time.time() * 1000)
                    timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
                    reader = {"authorization": f"Bearer {srv.tokens['reader']}"}
                    gun = await c.post(
                        "/api/v1/races/mile/gun", json={"time": now - 300_000}, headers=timer
                    )
                    assert gun.is_success, gun.text
                    chip = next(p.chips[0] for p in people if p.bib == "2")
                    read = {"reader": "mat-half", "point": "half", "chip": chip, "time": now - 5000}
                    posted = await c.post("/api/v1/reads", json=[read], headers=reader)
                    assert posted.is_success, posted.text
                shown = None
                for _ in range(int(3 * WAIT_MS / 200)):
                    shown = await page.evaluate(
                        """() => navigator.serviceWorker.ready
                            .then(r => r.getNotifications())
                            .then(ns => ns.map(n => [n.title, n.body, n.tag, n.data.url]))"""
                    )
                    if shown:
                        break
                    await asyncio.sleep(0.2)
                assert shown, "no notification shown"
                [[title, text, tag, url]] = shown
                name = next(f"{p.first_name} {p.last_name}" for p in people if p.bib == "2")
                assert title == f"{name} passed Halfway", title
                assert text.startswith("Passed Halfway at ") and tag == "2:passed:half"
                assert url == "/runners/2"
                assert svc.rejected == [] and len(svc.to(relay)) == 1 and gcm.delivered == 1

                # unfollowing everyone on My runners removes the subscription from the server
                await page.goto(f"{srv.url}/me")
                await page.locator("[data-mine] [data-follow='2']").first.click(timeout=WAIT_MS)
                for _ in range(100):
                    left = await asyncio.wrap_future(
                        asyncio.run_coroutine_threadsafe(push.store.all(), srv.loop)
                    )
                    if not left:
                        break
                    await asyncio.sleep(0.1)
                assert stored.endpoint not in [s.endpoint for s in left]
            finally:
                await ctx.close()


async def test_without_push_the_page_says_why_and_keeps_in_page_alerts(
    page_factory: PageFactory, tmp_path: Path
) -> None:
    event = today_event()
    with serve(event, tmp_path / "log.db", mile_field(event)) as srv:
        page = await page_factory()
        await page.goto(f"{srv.url}/runners/3")  # type: ignore[attr-defined]
        # an incognito context: Chromium refuses the subscription there
        await page.context.grant_permissions(["notifications"], origin=srv.url)  # type: ignore[attr-defined]
        await page.locator(".push-on").click()  # type: ignore[attr-defined]
        # settled one way or the other (the page gives up on a push service that never
        # answers), then which way, with what the page said
        await page.wait_for_function(  # type: ignore[attr-defined]
            "['unavailable', 'on'].includes(document.querySelector('[data-push]')"
            ".dataset.pushState)",
            timeout=3 * WAIT_MS,
        )
        text = await page.locator(".push-why").inner_text()  # type: ignore[attr-defined]
        state = await page.locator("[data-push]").get_attribute("data-push-state")  # type: ignore[attr-defined]
        assert state == "unavailable", f"push state {state!r}: {text!r}"
        assert text.startswith("Push alerts are unavailable here (")
        assert "alerts here while the page is open" in text
        await page.screenshot(path=str(shot_path("push-unavailable")))  # type: ignore[attr-defined]
        push = srv.app.state.push  # type: ignore[attr-defined]
        stored = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(push.store.all(), srv.loop)
        )
        assert stored == []


async def _deliver(cdp: Any, origin: str, registration: str, alert: dict[str, Any]) -> None:
    """A push message to the worker, as the push service's channel delivers one."""
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": origin, "registrationId": registration, "data": json.dumps(alert)},
    )


async def _shown(desktop: NotificationServer, count: int) -> Shown:
    for _ in range(int(3 * WAIT_MS / 100)):
        if len(desktop.shown) >= count:
            return desktop.shown[count - 1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"the worker showed {len(desktop.shown)} notifications, not {count}")


async def _opens(
    ctx: Any,
    cdp: Any,
    desktop: NotificationServer,
    origin: str,
    reg: str,
    alert: dict[str, Any],
    count: int,
) -> Any:
    """Push ``alert``, tap it, and return the page the tap opens (at the alert's address)."""
    await _deliver(cdp, origin, reg, alert)
    shown = await _shown(desktop, count)
    async with ctx.expect_page(timeout=3 * WAIT_MS) as opened:
        desktop.click(shown)
    page = await opened.value
    await page.wait_for_load_state()
    assert page.url == origin + alert["url"]
    return page


async def test_tapping_an_alert_opens_the_runners_page_or_focuses_the_one_open(
    chromium: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    event = today_event()
    with (
        NotificationServer() as desktop,
        serve(event, tmp_path / "log.db", mile_field(event)) as srv,
    ):
        async with async_playwright() as pw:
            ctx = await pw.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="lt-click-"),
                executable_path=chromium,
                headless=True,
                args=CHROMIUM_ARGS,
                env=desktop.env,  # notifications go to the stand-in desktop, taps come back
                viewport={"width": 390, "height": 844},
            )
            try:
                await ctx.grant_permissions(["notifications"], origin=srv.url)
                mine = ctx.pages[0] if ctx.pages else await ctx.new_page()
                cdp = await ctx.new_cdp_session(mine)
                registrations: list[str] = []
                cdp.on(
                    "ServiceWorker.workerRegistrationUpdated",
                    lambda ev: registrations.extend(
                        r["registrationId"] for r in ev["registrations"] if not r["isDeleted"]
                    ),
                )
                await cdp.send("ServiceWorker.enable")
                await mine.goto(f"{srv.url}/me")
                await mine.evaluate(
                    "navigator.serviceWorker.register('/push-sw.js', {scope: '/'})"
                    ".then(() => navigator.serviceWorker.ready).then(() => true)"
                )
                for _ in range(int(WAIT_MS / 100)):
                    if registrations:
                        break
                    await asyncio.sleep(0.1)
                assert registrations, "the worker's registration was not reported"
                reg = registrations[-1]

                # no page of the runner open: a tap opens one, at the runner's own address
                alert = {"title": "Ada Lovelace passed Halfway", "body": "Passed Halfway at 10:04",
                         "url": "/runners/2", "tag": "2:passed:half", "at": 0}  # fmt: skip
                await _deliver(cdp, srv.url, reg, alert)
                first = await _shown(desktop, 1)
                assert first.title == alert["title"] and first.body.endswith(alert["body"])
                assert "default" in first.actions
                async with ctx.expect_page(timeout=3 * WAIT_MS) as opened:
                    desktop.click(first)
                runner = await opened.value
                await runner.wait_for_load_state()
                assert runner.url == f"{srv.url}/runners/2"
                await runner.locator("#t-runner-2").wait_for(timeout=WAIT_MS)
                assert mine.url == f"{srv.url}/me"  # the page the supporter had is left as it was
                for _ in range(int(WAIT_MS / 100)):
                    if first.id in desktop.closed:
                        break
                    await asyncio.sleep(0.1)
                assert first.id in desktop.closed  # a tapped alert goes from the tray
                await runner.screenshot(path=str(shot_path("push-tap-opened-runner")))

                # the runner's page open (here with a fragment), the supporter elsewhere: a
                # tap brings that page forward instead of opening another
                await runner.goto(f"{srv.url}/runners/2#splits")
                await mine.bring_to_front()
                pages = len(ctx.pages)
                alert = {**alert, "title": "Ada Lovelace finished", "tag": "2:finished",
                         "body": "Finished in 7:11, 2nd"}  # fmt: skip
                await _deliver(cdp, srv.url, reg, alert)
                second = await _shown(desktop, 2)
                desktop.click(second)
                # the worker handles taps in order: once a later tap's page has opened, this
                # one is done, and it opened nothing
                barrier = {**alert, "url": "/runners/3", "tag": "3:finished"}
                await _opens(ctx, cdp, desktop, srv.url, reg, barrier, 3)
                assert len(ctx.pages) == pages + 1
                at = [p.url.split("#")[0] for p in ctx.pages]
                assert at.count(f"{srv.url}/runners/2") == 1, at

                # an alert whose address is not this site's takes the supporter to their
                # runners (the page open there), never elsewhere
                away = {**alert, "url": "https://example.org/x", "tag": "5:finished"}
                await _deliver(cdp, srv.url, reg, away)
                desktop.click(await _shown(desktop, 4))
                barrier = {**alert, "url": "/runners/4", "tag": "4:finished"}
                await _opens(ctx, cdp, desktop, srv.url, reg, barrier, 5)
                at = [p.url for p in ctx.pages]
                assert not [u for u in at if not u.startswith(srv.url)], at
                assert len(ctx.pages) == pages + 2
            finally:
                await ctx.close()

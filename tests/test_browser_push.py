"""Push in a real headless Chromium: where I stand, a real ``pushManager.subscribe`` through
the real service worker (Chromium's own GCM registration answered on 127.0.0.1), the
subscription stored by the server, and a push delivered to the worker through the DevTools
protocol shown as a notification. Without push, the page says why."""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
from pathlib import Path

import pytest
from browser import CHROMIUM_ARGS, WAIT_MS, PageFactory, shot_path
from pushservice import GcmStandIn
from server import serve
from test_push_live import mile_field, today_event

pytestmark = pytest.mark.browser


async def test_supporter_sets_their_spot_and_subscribes_to_push_through_the_worker(
    chromium: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    event = today_event()
    with GcmStandIn() as gcm, serve(event, tmp_path / "log.db", mile_field(event)) as srv:
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
                assert gcm.registrations and any(
                    r.get("sender") == push.sender.public_key for r in gcm.registrations
                )

                # a push reaches the real worker, which shows it as a notification
                cdp = await ctx.new_cdp_session(page)
                regs: list[dict[str, object]] = []
                cdp.on(
                    "ServiceWorker.workerRegistrationUpdated",
                    lambda e: regs.extend(e["registrations"]),
                )
                await cdp.send("ServiceWorker.enable")
                for _ in range(50):
                    if regs:
                        break
                    await asyncio.sleep(0.1)
                reg = next(r for r in regs if str(r["scopeURL"]).startswith(srv.url))
                payload = {
                    "title": "Evie Jackson is about 2 minutes from you",
                    "body": "Expected at Finish at 10:42 (10:41–10:44)",
                    "url": "/runners/2",
                    "tag": "2:near:finish",
                    "at": 0,
                }
                await cdp.send(
                    "ServiceWorker.deliverPushMessage",
                    {
                        "origin": srv.url + "/",
                        "registrationId": reg["registrationId"],
                        "data": json.dumps(payload),
                    },
                )
                shown = await page.wait_for_function(
                    """() => navigator.serviceWorker.ready
                        .then(r => r.getNotifications())
                        .then(ns => ns.length
                            ? ns.map(n => [n.title, n.body, n.tag, n.data.url]) : null)""",
                    timeout=WAIT_MS,
                )
                assert await shown.json_value() == [
                    [payload["title"], payload["body"], "2:near:finish", "/runners/2"]
                ]

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
                assert left == []
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
        await page.wait_for_function(  # type: ignore[attr-defined]
            "document.querySelector('[data-push]').dataset.pushState === 'unavailable'",
            timeout=3 * WAIT_MS,
        )
        text = await page.locator(".push-why").inner_text()  # type: ignore[attr-defined]
        assert text.startswith("Push alerts are unavailable here (")
        assert "alerts here while the page is open" in text
        await page.screenshot(path=str(shot_path("push-unavailable")))  # type: ignore[attr-defined]
        push = srv.app.state.push  # type: ignore[attr-defined]
        stored = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(push.store.all(), srv.loop)
        )
        assert stored == []

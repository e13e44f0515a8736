"""The link as people see it, in a real Chromium: the timer console at both ends shows the link
up, then down with what waits each way; a spectator's page on the public server says the
finish's data is delayed; all of it clears when the link is back."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from browser import WAIT_MS, PageFactory, shot_path
from linkrig import RaceDay, reads


async def test_consoles_and_spectators_show_a_link_outage(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    day = await asyncio.to_thread(RaceDay, tmp_path)
    try:
        await asyncio.to_thread(lambda: day.post_reads(reads(100)).raise_for_status())
        await asyncio.to_thread(day.wait_equal)
        consoles: dict[str, Any] = {}
        for end, base in (("site", day.site.url), ("public", day.public.url)):
            page: Any = await page_factory(width=1280, height=900)
            await page.goto(f"{base}/signin#token={day.tokens['timer']}")
            await page.wait_for_url(base + "/timer", timeout=WAIT_MS)
            await page.locator('#uplink[data-state="up"]').wait_for(timeout=WAIT_MS)
            consoles[end] = page
        assert "Link to the public server" in await consoles["site"].locator("#uplink").inner_text()
        spectator: Any = await page_factory(width=390, height=844)
        await spectator.goto(f"{day.public.url}/races/mile")
        assert await spectator.locator("#delayed").is_hidden()

        cut_at = time.monotonic()
        await asyncio.to_thread(day.proxy.cut)
        await asyncio.to_thread(lambda: day.post_reads(reads(250, 100)).raise_for_status())
        sighting = await asyncio.to_thread(
            day.post_sighting, str(uuid.uuid4()), "7", int(time.time() * 1000)
        )
        assert sighting.status_code == 202, sighting.text

        site = consoles["site"].locator("#uplink")
        await consoles["site"].locator('#uplink[data-state="down"]').wait_for(timeout=WAIT_MS)
        await site.get_by_text("250 records").wait_for(timeout=WAIT_MS)
        public = consoles["public"].locator("#uplink")
        await consoles["public"].locator('#uplink[data-state="down"]').wait_for(timeout=WAIT_MS)
        await public.get_by_text("1 write").wait_for(timeout=WAIT_MS)
        await public.get_by_text("not known while the link is down").wait_for(timeout=WAIT_MS)
        assert "NOT CONNECTED" in await site.inner_text()

        # past the moment the public end calls its finish data stale, a spectator loads a page
        await asyncio.sleep(max(0.0, 16 - (time.monotonic() - cut_at)))
        await spectator.reload()
        notice = spectator.locator("#delayed")
        await notice.wait_for(state="visible", timeout=WAIT_MS)
        text = await notice.inner_text()
        assert text.startswith("finish data delayed · last update ") and text.endswith("ago")
        await consoles["site"].screenshot(path=str(shot_path("link-outage-site-console")))
        await consoles["public"].screenshot(path=str(shot_path("link-outage-public-console")))
        await spectator.screenshot(path=str(shot_path("link-outage-spectator")))

        await asyncio.to_thread(day.proxy.heal)
        await asyncio.to_thread(day.wait_equal)
        for page in consoles.values():
            await page.locator('#uplink[data-state="up"]').wait_for(timeout=WAIT_MS)
        await site.get_by_text("0 records").wait_for(timeout=WAIT_MS)
        await public.get_by_text("0 writes").wait_for(timeout=WAIT_MS)
        await spectator.reload()
        await spectator.wait_for_function(
            "() => document.getElementById('delayed').hidden", timeout=WAIT_MS
        )
    finally:
        await asyncio.to_thread(day.close)

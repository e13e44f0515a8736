"""Big-screen memory over a long race: push many updates into /screen/{race} in a real
headless Chromium and compare the page's live JS heap (after a forced GC, via the Chrome
DevTools Protocol) and DOM size before and after.

    python bench/screen_memory.py [--updates 100000]

Each update is one timer correction posted to a real server that moves a finisher to the
newest finish time; the hub coalesces what arrives within one tick, so the page sees fewer
messages than updates (both are reported; a message changes the feed's and boards' rows in
place). The last line printed is the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from factory import GUN, event, person  # noqa: E402
from server import serve  # noqa: E402

PageMaker = Callable[..., Awaitable[Any]]

_STATS = """() => ({
  nodes: document.getElementsByTagName('*').length,
  feed: document.querySelectorAll('#t-sfeed-mile li[data-key]').length,
  messages: window.__messages || 0,
})"""


async def _heap(page: Any) -> int:
    cdp = await page.context.new_cdp_session(page)
    for _ in range(3):
        await cdp.send("HeapProfiler.collectGarbage")
    usage = await cdp.send("Runtime.getHeapUsage")
    await cdp.detach()
    return int(usage["usedSize"])


async def drive(
    workdir: Path, new_page: PageMaker, updates: int, pool: int = 500
) -> dict[str, Any]:
    """Serve a mile with ``pool`` finishers, open its big screen at 1920×1080, then push
    ``updates`` timer corrections (each moves one finisher to the newest finish time, so the
    feed and the boards change every time while the race stays the same size) and measure
    the page before and after."""
    import httpx

    people = [person(str(i), wave="A") for i in range(1, pool + 1)]
    with serve(event(), workdir / "screen.db", people, tick_s=0.05) as srv:
        timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
        reader = {"authorization": f"Bearer {srv.tokens['reader']}"}
        httpx.post(srv.url + "/api/v1/races/mile/gun", json={"time": GUN}, headers=timer)
        with httpx.Client(base_url=srv.url, headers=reader, timeout=30) as client:
            for first in range(1, pool + 1, 100):
                reads = [
                    {"reader": "r1", "point": "finish", "chip": f"C{i}",
                     "time": GUN + 600_000 + i * 100, "seq": i}
                    for i in range(first, min(pool, first + 99) + 1)
                ]  # fmt: skip
                client.post("/api/v1/reads", json=reads).raise_for_status()
        page = await new_page(width=1920, height=1080)
        await page.goto(srv.url + "/screen/mile?panels=feed,board&rotate=4")
        await page.wait_for_function("() => window.htmx !== undefined")
        await page.evaluate(
            "() => { window.__messages = 0; document.addEventListener('htmx:wsAfterMessage',"
            " () => { window.__messages++ }); }"
        )

        def update(i: int) -> tuple[str, int]:
            return str(i % pool + 1), GUN + 600_000 + (pool + i) * 100

        async def settle(i: int) -> None:
            bib, t = update(i)
            await page.wait_for_function(
                f"() => document.querySelector('#t-sfeed-mile li[data-key=\"{bib}-{t}\"]')",
                timeout=120_000,
            )
            await page.wait_for_timeout(300)

        async def push(first: int, last: int) -> None:
            queue = list(range(first, last))
            async with httpx.AsyncClient(base_url=srv.url, headers=timer, timeout=30) as http:

                async def worker() -> None:
                    while queue:
                        i = queue.pop(0)
                        bib, t = update(i)
                        body = {"id": f"bench-{i:07d}", "kind": "edit", "bib": bib,
                                "point": "finish", "time": t, "reason": "bench"}  # fmt: skip
                        (await http.post("/api/v1/corrections", json=body)).raise_for_status()

                await asyncio.gather(*(worker() for _ in range(6)))
                bib, t = update(last)  # the newest, last of all, so the feed ends on it
                body = {"id": f"bench-{last:07d}", "kind": "edit", "bib": bib, "point": "finish",
                        "time": t, "reason": "bench"}  # fmt: skip
                (await http.post("/api/v1/corrections", json=body)).raise_for_status()

        await push(0, 50)
        await settle(50)
        before = await page.evaluate(_STATS)
        heap_before = await _heap(page)
        started = time.monotonic()
        await push(51, 51 + updates)
        await settle(51 + updates)
        elapsed = time.monotonic() - started
        after = await page.evaluate(_STATS)
        heap_after = await _heap(page)
    return {
        "bench": "screen_memory",
        "updates": updates,
        "messages": after["messages"] - before["messages"],
        "seconds": round(elapsed, 1),
        "heap_before_bytes": heap_before,
        "heap_after_bytes": heap_after,
        "heap_growth_bytes": heap_after - heap_before,
        "dom_nodes_before": before["nodes"],
        "dom_nodes_after": after["nodes"],
        "feed_items_before": before["feed"],
        "feed_items_after": after["feed"],
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=100_000)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=args.chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )

        async def new_page(width: int, height: int) -> Any:
            ctx = await browser.new_context(viewport={"width": width, "height": height})
            return await ctx.new_page()

        with tempfile.TemporaryDirectory() as tmp:
            result = await drive(Path(tmp), new_page, args.updates)
        await browser.close()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())

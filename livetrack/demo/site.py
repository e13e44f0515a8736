"""``livetrack demo --site``: race day's layout on one machine, as two processes.

The site box (this process: the demo's event, entrants, simulated race and tokens, its own
log) at ``--port``, and a public server (``livetrack serve --site-keys``, a child process
with a log of its own) at ``--public-port``, with the link between them: everything the
finish records travels up, and what a marshal writes at the public server comes back down.
The tokens the demo prints work at both ends (they are records of the site's log, which the
public server follows). Stop the link by stopping the public server's process (its pid is
printed) to watch the timer console and the spectators' pages show the outage.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from livetrack.config import ConfigProblem
from livetrack.demo.run import demo_event, demo_event_text, run
from livetrack.web.auth import new_token, token_hash


def run_site(host: str, port: int, public_port: int, speed: float, db: str) -> int:
    """Start the public server, then serve the site (the demo) linked to it, until Ctrl-C."""
    work = Path(db).parent
    day = datetime.now(demo_event().tz).date()
    event_file = work / "public-event.toml"
    event_file.write_text(demo_event_text(day), "utf-8")
    token = new_token()
    keys = work / "site-keys"
    keys.write_text(f"{token_hash(token)} demo site\n")
    public_db = str(work / "public.db")
    public_url = f"http://{host}:{public_port}"
    log = (work / "public.log").open("ab")
    public = subprocess.Popen(
        [sys.executable, "-c", "from livetrack.cli import main; raise SystemExit(main())",
         "serve", "--event", str(event_file), "--db", public_db, "--site-keys", str(keys),
         "--host", host, "--port", str(public_port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and public.poll() is None:
            try:
                if httpx.get(public_url + "/healthz", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        if public.poll() is not None:
            raise ConfigProblem(f"demo --site: the public server did not start (see {log.name})")
        print(f"\nlivetrack demo --site: the public server (pid {public.pid}) follows the site")
        print(f"  public server   {public_url}/   (its log {public_db}, output {log.name})")
        print(f"  public timer    {public_url}/signin#token=<the timer token below>")
        print(f"  the site box    http://{host}:{port}/   (below)", flush=True)
        return run(host, port, speed, db, upstream=public_url, upstream_token=token)
    finally:
        public.terminate()
        try:
            public.wait(10)
        except subprocess.TimeoutExpired:
            public.kill()
            public.wait()
        log.close()


def default_db() -> str:
    return os.path.join(tempfile.mkdtemp(prefix="livetrack-demo-site-"), "site.db")

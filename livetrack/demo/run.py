"""``livetrack demo``: the built-in event served with a simulated race, as one process.

- **Dated today.** The built-in event is dated the day the demo's log began: today for a new
  log, the day of its first gun for a log that holds one.
- **Carries on.** Started again on the same ``--db``, the demo plans the same race (the same
  entrants, the same guns) and plays it from where the log shows it got to: no gun that the log
  holds is fired again, and reads from a minute before the newest stored read on are posted
  again (the log's keys make those duplicates, never doubles).
- **One Ctrl-C stops it.** SIGINT or SIGTERM stops the simulator at once and the server within
  a second (open sockets are given :data:`GRACE_S`); the exit status is 0. A second Ctrl-C
  while it stops forces the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from livetrack.demo import meet
from livetrack.domain.event import Event, load_event_text
from livetrack.domain.records import ChipRead, GunStart, ParticipantRecord
from livetrack.store import open_log

#: How long open connections are given to close when the demo stops.
GRACE_S = 1
#: Entrants per race of the built-in event.
COUNTS = {"mile": 60, "team": 60, "fun": 80, "tenk": 120, "ocr": 40}
#: Reads this long before the newest stored one are posted again on a restart.
OVERLAP_MS = 60_000
_DATE = re.compile(r'^date\s*=\s*"[^"]*"', re.MULTILINE)


def event_text() -> str:
    return resources.files("livetrack.demo").joinpath("heaton.toml").read_text("utf-8")


def demo_event(day: date | None = None) -> Event:
    """The built-in Heaton Park event, dated ``day`` (default: today in its time zone)."""
    return load_event_text(demo_event_text(day))


def write_event(path: Path, day: date | None = None) -> Path:
    """The built-in event's file, dated ``day`` (default today), written to ``path`` (for
    serving it with ``livetrack serve --event``: a gun far from the event's day is refused)."""
    path.write_text(demo_event_text(day), "utf-8")
    return path


def demo_event_text(day: date | None = None) -> str:
    text = event_text()
    day = day or datetime.now(load_event_text(text).tz).date()
    return _DATE.sub(f'date = "{day.isoformat()}"', text, count=1)


@dataclass
class Progress:
    """How far a demo's log got: the guns it holds and its newest read."""

    guns: dict[tuple[str, str], int] = field(default_factory=dict)
    last_read_ms: int | None = None


async def progress(url: str) -> Progress:
    """What the log at ``url`` holds already (nothing for a new log)."""
    found = Progress()
    log = open_log(url)
    try:
        head = await log.head()
        if head is None:
            return found
        async for page in log.tail_pages(None):
            for _, record in page:
                if isinstance(record, GunStart):
                    found.guns.setdefault((record.race, record.wave), record.time_ms)
                elif isinstance(record, ChipRead):
                    last = found.last_read_ms
                    found.last_read_ms = (
                        record.time_ms if last is None else max(last, record.time_ms)
                    )
            if page.end >= head:
                break
    finally:
        await log.close()
    return found


def first_gun(event: Event, done: Progress, now_ms: int) -> int:
    """The mile's gun: the stored one, else in three seconds."""
    return done.guns.get(("mile", ""), now_ms + 3000)


def remaining(actions: list[Any], done: Progress) -> list[Any]:
    """The planned actions a restarted demo still has to play."""
    out = []
    for a in actions:
        if a.kind == "gun":
            if (a.race, a.wave) not in done.guns:
                out.append(a)
        elif done.last_read_ms is None or a.at_ms >= done.last_read_ms - OVERLAP_MS:
            out.append(a)
    return out


def _said_if_failed(task: asyncio.Task[None]) -> None:
    """The meet stopped by itself with an error: say so (the rest of the demo goes on)."""
    if not task.cancelled() and task.exception() is not None:
        print(f"the championship meet stopped: {task.exception()!r}", flush=True)


def photo_finish_folder(db: str, *, fresh: bool) -> Path:
    """The demo's photo-finish results folder: beside its log and named after it, so two
    demos whose logs share a folder never share one; on a new log, files an earlier run left
    there are taken away (they belong to another draw)."""
    path = Path(db).resolve()
    folder = path.parent / f"{path.stem}-lynx"
    folder.mkdir(exist_ok=True)
    if fresh:
        for old in folder.glob("*.lif"):
            old.unlink(missing_ok=True)
    return folder


def run(
    host: str, port: int, speed: float, db: str, *, readers: str | None = None,
    reader_port: int = 0, upstream: str | None = None, upstream_token: str = "",
) -> int:  # fmt: skip
    """Serve the demo until Ctrl-C; returns the exit status.

    With ``readers`` (a decoder protocol) the race is not played over HTTP: the event gets a
    reader of that protocol per timing point and its races scheduled at the demo's guns (see
    :mod:`livetrack.ingest.rehearsal`), and the ``livetrack simulate`` command that plays the
    decoders is printed. IPICO readers send no gun marker, so then the demo fires the guns."""
    import uvicorn

    from livetrack import sim
    from livetrack.config import Settings
    from livetrack.ingest.rehearsal import ipico_tag
    from livetrack.web.app import create_app
    from livetrack.web.auth import issue
    from livetrack.web.wsdeflate import WS_PROTOCOL

    fresh = not Path(db).exists()
    done = asyncio.run(progress(db))
    probe = demo_event()
    # a rehearsal leaves a minute to start the decoders before the first gun
    lead_ms = 60_000 if readers else 0
    gun0 = first_gun(probe, done, int(time.time() * 1000) + lead_ms)
    day = datetime.fromtimestamp(gun0 / 1000, probe.tz).date()
    event = demo_event(day)
    people: list[ParticipantRecord] = sim.make_participants(event, COUNTS)
    people += meet.entrants(event)
    lynx = photo_finish_folder(db, fresh=fresh)
    step = 60_000
    guns = {"mile": gun0, "team": gun0 + step * 2, "fun": gun0 + step * 4, "tenk": gun0 + step}
    guns.update({r: gun0 + step * 3 for r, race in event.races.items() if race.kind == "relay"})
    guns["ocr"] = gun0 + step * 5 // 2
    planned = sim.plan(event, people, guns)
    # the obstacles' marshals judge each runner as the mat there reads them
    planned = sorted(
        planned + sim.judgements(event, people, planned), key=lambda a: (a.at_ms, a.kind != "gun")
    )
    actions = remaining(planned, done)
    rehearsal = ""
    if readers:
        event, rehearsal = rehearse(event, readers, guns, day, db, reader_port, speed)
        if readers == "ipico":
            people = [replace(p, chips=tuple(map(ipico_tag, p.chips))) for p in people]
        # the decoders play the reads; only IPICO's guns are fired here, as the timer would
        actions = [a for a in actions if a.kind == "gun" and readers == "ipico"]
    reader_token, reader = issue("reader", label="simulator")
    timer_token, timer = issue("timer", label="demo timer")
    marshal_token, marshal = issue("marshal", "lake", label="demo marshal at the lake")
    judges = {
        o.point: issue("marshal", o.point, label=f"demo marshal at {o.name}")
        for race in event.races.values()
        for o in race.obstacles
    }
    settings = Settings(
        event=event, log_url=db, participants=people,
        seed=[reader, timer, marshal, *(record for _, record in judges.values())],
        upstream=upstream, upstream_token=upstream_token, lif_dir=str(lynx),
    )  # fmt: skip
    app = create_app(settings)
    base = f"http://{host}:{port}"

    async def main() -> None:
        config = uvicorn.Config(
            app, host=host, port=port, ws=WS_PROTOCOL, ws_per_message_deflate=False,
            log_level="warning", access_log=False, timeout_graceful_shutdown=GRACE_S,
        )  # fmt: skip
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                return
            await asyncio.sleep(0.05)
        stop = asyncio.Event()

        def on_signal() -> None:
            if stop.is_set():
                server.force_exit = True
            stop.set()
            server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        tokens = {point: token for point, (token, _) in judges.items()}
        _banner(event, base, db, timer_token, marshal_token, reader_token, speed, done, tokens)
        print(f"  photo finish    {lynx}  (.lif files of the backward 100 m)", flush=True)
        if rehearsal:
            print(rehearsal, flush=True)
        meeting = asyncio.create_task(meet.play(base, timer_token, lynx, event, speed, people))
        meeting.add_done_callback(_said_if_failed)
        playing = asyncio.create_task(
            sim.play(
                base, reader_token, actions, timer_token=timer_token,
                marshal_tokens=tokens,
                speed=1e6 if rehearsal else speed,
            )
        )  # fmt: skip
        stopping = asyncio.create_task(stop.wait())
        try:
            finished, _ = await asyncio.wait(
                {serving, playing, stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            if playing in finished and not stop.is_set():
                if rehearsal:
                    pass  # the decoders play the race
                elif playing.exception() is None:
                    print(f"simulation finished: {playing.result()}", flush=True)
                else:
                    print(f"simulation stopped: {playing.exception()}", flush=True)
                await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (playing, stopping, meeting):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await meeting
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await playing
            server.should_exit = True
            await serving
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    print("livetrack demo: stopped", flush=True)
    return 0


def rehearse(
    event: Event, protocol: str, guns: dict[str, int], day: date, db: str, first_port: int,
    speed: float,
) -> tuple[Event, str]:  # fmt: skip
    """The demo event for a rehearsal of ``protocol`` decoders, written beside the log, and
    the lines telling the timer how to play them."""
    from livetrack.ingest.rehearsal import CONNECTING, DEFAULT_PORTS, rehearsal_event_text

    port = first_port or DEFAULT_PORTS[protocol]
    text = rehearsal_event_text(
        demo_event_text(day), event, protocol=protocol, guns=guns, first_port=port
    )
    path = Path(db).with_suffix(".event.toml")
    path.write_text(text, "utf-8")
    command = f"livetrack simulate --protocol {protocol} --port {port} --event {path}"
    command += f" --speed {speed:g}"
    if protocol in CONNECTING:
        command += " --connect 127.0.0.1"
    lines = (
        f"  readers         {protocol}, one per timing point (mat-<point>, ports {port}…)\n"
        f"  event           {path}\n\nplay the race as {protocol} decoders:\n  {command}\n"
    )
    return load_event_text(text), lines


def _banner(
    event: Event, base: str, db: str, timer: str, marshal: str, reader: str, speed: float,
    done: Progress, judges: dict[str, str] | None = None,
) -> None:  # fmt: skip
    print(f"\nlivetrack demo: {event.name}, {event.venue}, {event.date.isoformat()}")
    if done.guns:
        print("  carrying on the race already in the log")
    print(f"  event log       {db}")
    print(f"  spectators      {base}/")
    for race in event.races.values():
        print(f"  {race.name:<30} {base}/races/{race.id}")
    for race in event.races.values():
        print(f"  big screen {race.id:<19} {base}/screen/{race.id}")
    print(f"  runner page     {base}/runners/1")
    print(f"  my runners      {base}/me")
    print(f"  course map      {base}/races/tenk/map")
    print(f"  results         {base}/results/mile")
    print(f"  JSON API        {base}/api/v1/races")
    print(f"  timer console   {base}/signin#token={timer}")
    print(f"  rounds desk     {base}/timer/rounds  (heats, finals, photo finish; as the timer)")
    print(f"  marshal (lake)  {base}/signin#token={marshal}")
    for point, token in (judges or {}).items():  # the obstacles' marshals judge there
        print(f"  marshal ({point})".ljust(18) + f"{base}/signin#token={token}")
    print(f"  reader token    {reader}  (POST /api/v1/reads)")
    print(f"  simulated race at {speed:g}× real time; Ctrl-C to stop\n", flush=True)

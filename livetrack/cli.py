"""The ``livetrack`` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from livetrack import config, sitecli
from livetrack.config import ConfigProblem
from livetrack.domain.event import Event
from livetrack.domain.participants import parse_participants
from livetrack.domain.records import ParticipantRecord, Record, TokenRecord
from livetrack.evaluation import replay as evaluate

log = logging.getLogger("livetrack")


def demo_event() -> Event:
    """The built-in event, dated today (see :mod:`livetrack.demo.run`)."""
    from livetrack.demo.run import demo_event as dated

    return dated()


def load_event(path: str) -> Event:
    """The event in ``path`` (a problem with it ends the command with one line)."""
    return config.read_event(path)


def read_participants(path: str) -> str:
    """The text of a participants CSV (a problem with it ends the command with one line)."""
    return config.read_participants(path)


def load_participants(path: str, event: Event) -> list[ParticipantRecord]:
    people, errors = parse_participants(read_participants(path), event)
    for e in errors:
        print(f"{path}: {e}", file=sys.stderr)
    if errors:
        print(f"{path}: {len(people)} participants loaded, {len(errors)} rows skipped",
              file=sys.stderr)  # fmt: skip
    return people


# -- check-event -------------------------------------------------------------------------------


def cmd_check_event(args: argparse.Namespace) -> int:
    event = load_event(args.event)
    print(f"{args.event}: OK — {event.name}, {event.date}, {event.timezone}")
    for race in event.races.values():
        cps = " → ".join(f"{cp.id} ({cp.distance_m:g} m)" for cp in race.course.checkpoints)
        print(f"  race {race.id} [{race.kind}]: {race.name}: {cps}")
    for p in event.points.values():
        print(f"  timing point {p.id} [{p.role}] feeds {', '.join(p.checkpoints)}")
    if args.participants:
        people = load_participants(args.participants, event)
        print(f"  {len(people)} participants")
    return 0


# -- tokens ------------------------------------------------------------------------------------


def _log_url(args: argparse.Namespace, event: Event | None = None) -> str:
    """The log named by ``--redis URL`` or else ``--db FILE``. A Redis URL without
    ``?stream=`` gets the event's stream, ``livetrack:<event id>`` (the event from ``event``
    or ``--event``), so ``serve`` and ``token`` on the same event share one stream."""
    from livetrack.config import is_redis, with_default_stream

    url = getattr(args, "redis", None)
    if not url:
        return str(args.db)
    url = str(url)
    if not is_redis(url):
        raise SystemExit(f"livetrack: --redis needs a redis://, rediss:// or unix:// URL: {url!r}")
    if with_default_stream(url, "-") == url:
        return url  # it names its stream
    if event is None and getattr(args, "event", None):
        event = load_event(args.event)
    if event is None:
        raise SystemExit(
            "livetrack: the Redis URL names no stream: add ?stream=NAME, or give --event "
            "EVENT.toml to use the event's stream (livetrack:<event id>)"
        )
    return with_default_stream(url, event.id)


def _log_down(exc: Exception) -> SystemExit:
    """One line on stderr and exit status 2: the log cannot be reached."""
    print(f"livetrack: {exc}", file=sys.stderr)
    return SystemExit(2)


async def _append(url: str, records: list[Record]) -> None:
    from livetrack.store.base import open_log

    event_log = open_log(url)
    try:
        await event_log.append(records)
    finally:
        await event_log.close()


def _append_or_exit(url: str, records: list[Record]) -> None:
    from livetrack.store.base import LogUnavailable

    try:
        asyncio.run(_append(url, records))
    except LogUnavailable as exc:
        raise _log_down(exc) from None


def check_log(url: str) -> None:
    """Exit (status 2, one line) unless the log at ``url`` can be opened and read."""
    from livetrack.store.base import LogUnavailable, open_log

    async def probe() -> None:
        event_log = open_log(url)
        try:
            await event_log.head()
        finally:
            await event_log.close()

    try:
        asyncio.run(probe())
    except (LogUnavailable, ValueError) as exc:
        raise _log_down(exc) from None


def cmd_token(args: argparse.Namespace) -> int:
    from livetrack.web.auth import issue, token_hash

    if args.action == "create":
        try:
            token, record = issue(
                args.role, args.point or "", args.label or "", _now_ms(), tuple(args.reader or ())
            )
        except ValueError as exc:
            raise SystemExit(f"livetrack token: {exc}") from None
        _append_or_exit(_log_url(args), [record])
        if args.link:
            # the token rides in the URL fragment, which browsers never send to the server
            base = (args.base_url or "http://127.0.0.1:8000").rstrip("/")
            print(f"{base}/signin#token={token}")
        else:
            print(token)
        print("(shown once: only its hash is stored)", file=sys.stderr)
        return 0
    if args.action == "revoke":
        # a non-empty role: an empty one is left out of the encoded record, which then
        # cannot be decoded (the role of a revoked token does not matter)
        record = TokenRecord(token_hash(args.token), "revoked", revoked=True, at_ms=_now_ms())
        _append_or_exit(_log_url(args), [record])
        print("revoked")
        return 0
    raise SystemExit(f"livetrack token: unknown action {args.action!r}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def sim_start(event: Event, now_ms: int) -> int:
    """When a simulated race starts: ``now_ms`` on the event's day, or the same time of day
    on the event's day when today is another (a gun far from the event's day is refused)."""
    now = dt.datetime.fromtimestamp(now_ms / 1000, event.tz)
    shift = (event.date - now.date()).days
    return now_ms + shift * 86_400_000 if shift else now_ms


# -- serve / demo ------------------------------------------------------------------------------


def _serve(app: object, host: str, port: int) -> None:
    import uvicorn

    from livetrack.web.wsdeflate import WS_PROTOCOL

    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        ws=WS_PROTOCOL,
        ws_per_message_deflate=False,  # WS_PROTOCOL negotiates its own
        ws_ping_interval=20,
        ws_ping_timeout=20,
        log_level="info",
        access_log=False,
    )


def _tick(text: str) -> float:
    """``--tick``: seconds between the hub's renders (see :func:`livetrack.config.tick`)."""
    try:
        return config.tick(text)
    except ConfigProblem as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the event: in this process, or with ``--workers N`` in N processes (each a
    :func:`livetrack.web.factory.create_from_env` app) that share the one log."""
    from livetrack.config import Settings
    from livetrack.web.app import create_app

    event = load_event(args.event)
    # read now (a file that cannot be read stops the command), parsed once caught up with the
    # log, and only if the log does not hold every entry of this very file already
    entries = config.entries_file(args.participants) if args.participants else None
    url = _log_url(args, event)
    check_log(url)
    every = 0 if args.no_snapshots else args.snapshot_every
    if args.site_keys:
        if args.participants:
            raise SystemExit("livetrack serve: a follower takes its entries from the site's log")
        _check_site_keys(args.site_keys)
    if args.workers > 1:
        import uvicorn

        from livetrack.web.wsdeflate import WS_PROTOCOL

        if args.no_snapshots:
            raise SystemExit("livetrack serve: --no-snapshots works with one process only")
        env = config.to_env(
            args.event,
            url,
            participants=args.participants,
            snapshot_every=every,
            tick_s=args.tick,
            site_keys=args.site_keys,
        )
        for name, value in env.items():
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        uvicorn.run(
            "livetrack.web.factory:create_from_env", factory=True, workers=args.workers,
            host=args.host, port=args.port, ws=WS_PROTOCOL, ws_per_message_deflate=False,
            ws_ping_interval=20, ws_ping_timeout=20, log_level="info", access_log=False,
        )  # fmt: skip
        return 0
    settings = Settings(
        event=event,
        log_url=url,
        entries=entries,
        snapshots=not args.no_snapshots,
        snapshot_every_records=every,
        tick_s=args.tick,
        site_keys=args.site_keys,
    )
    _serve(create_app(settings), args.host, args.port)
    return 0


def _check_site_keys(path: str) -> None:
    from livetrack.web.follow import SiteKeys

    try:
        SiteKeys(path)
    except ValueError as exc:
        raise SystemExit(f"livetrack serve: {exc}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    from livetrack.demo.run import run

    if args.site:
        from livetrack.demo.site import default_db, run_site

        if args.readers:
            raise SystemExit("livetrack demo: --site plays the race over HTTP; drop --readers")
        public_port = args.public_port or args.port + 1
        return run_site(args.host, args.port, public_port, args.speed, args.db or default_db())
    db = args.db or os.path.join(tempfile.mkdtemp(prefix="livetrack-demo-"), "demo.db")
    return run(
        args.host, args.port, args.speed, db, readers=args.readers, reader_port=args.reader_port
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    from livetrack import sim
    from livetrack.ingest.rehearsal import ipico_tag, scheduled_guns

    event = load_event(args.event) if args.event else demo_event()
    if args.participants:
        people = load_participants(args.participants, event)
    else:
        people = sim.make_participants(event, {"mile": 60, "team": 60, "fun": 80, "tenk": 120})
        if args.protocol == "ipico":  # the demo's entrants, as in `livetrack demo --readers ipico`
            people = [dataclasses.replace(p, chips=tuple(map(ipico_tag, p.chips))) for p in people]
    races = args.race or list(event.races)
    # the guns at the races' scheduled starts (where a marker is matched), else a minute apart
    guns = scheduled_guns(event, races)
    if guns is None:
        t0 = sim_start(event, _now_ms() + 2000)
        guns = {r: t0 + i * 60_000 for i, r in enumerate(races)}
    actions = sim.plan(event, people, guns, seed=args.seed)
    if args.protocol:
        return asyncio.run(_simulate_decoders(args, event, actions))
    if not args.url or not args.token:
        raise SystemExit("livetrack simulate: --url and --token are required (or --protocol)")
    print(f"simulating {len(actions)} guns and reads into {args.url} at {args.speed:g}×",
          file=sys.stderr)  # fmt: skip
    result = asyncio.run(
        sim.play(args.url, args.token, actions, timer_token=args.timer_token, speed=args.speed)
    )
    print(result)
    return 0


async def _simulate_decoders(args: argparse.Namespace, event: Event, actions: list[Any]) -> int:
    """Play the planned race as ``args.protocol`` decoders, one per timing point: serving on
    ``--port`` and the ports after it (or connecting to ``--connect HOST`` on those ports)."""
    from livetrack.ingest.decoders.simulate import DecoderSimulator, split_plan
    from livetrack.ingest.rehearsal import marker_problems

    protocol = args.protocol
    start_points = {r.course.checkpoints[0].id for r in event.races.values()}
    marker_reader = next(
        (f"mat-{p.id}" for p in event.points.values()
         if p.role == "main" and start_points & set(p.checkpoints)),
        None,
    )  # fmt: skip
    if protocol == "ipico":
        marker_reader = None  # IPICO readers send no gun marker: fire the guns by hand
    if marker_reader is not None:
        guns = {a.race: a.at_ms for a in reversed(actions) if a.kind == "gun"}
        for problem in marker_problems(event, marker_reader.removeprefix("mat-"), guns):
            print(f"warning: {problem}; fire that gun from the timer console, or give the race "
                  "a scheduled start", file=sys.stderr)  # fmt: skip
    streams = split_plan(actions, markers_at=marker_reader)
    order = [f"mat-{p}" for p in event.points]
    wanted = [f"mat-{p}" for p in args.point] if args.point else order
    readers = [r for r in wanted if r in streams]
    if protocol == "ipico":
        bad = {x.chip for r in readers for x in streams[r] if not _is_hex12(x.chip)}
        if bad:
            raise SystemExit(
                f"livetrack simulate: IPICO tags are 12 hex characters; chips such as "
                f"{sorted(bad)[0]!r} cannot be sent (use --participants with IPICO chips)"
            )
    if args.connect and args.port == 0:
        raise SystemExit(
            "livetrack simulate: --connect needs --port, the first listening reader's port"
        )
    loop = asyncio.get_running_loop()
    epoch = (min(x.time_ms for r in readers for x in streams[r]), loop.time() + 1.0)
    sims: list[DecoderSimulator] = []
    clients: list[asyncio.Task[None]] = []
    try:
        for reader in readers:
            simulator = DecoderSimulator(
                protocol, streams[reader], tz=event.tz, speed=args.speed, epoch=epoch,
                name=reader, location=reader.removeprefix("mat-"),
            )  # fmt: skip
            sims.append(simulator)
            # a point's place among the points asked for names its port, whether or not the
            # points before it have reads; --port 0 gives every decoder a free port of its own
            port = 0 if args.port == 0 else args.port + wanted.index(reader)
            if args.connect:
                clients.append(asyncio.create_task(simulator.connect(args.connect, port)))
                where = f"connecting to {args.connect}:{port}"
            else:
                port = await simulator.start(args.host, port)
                where = f"serving on {args.host}:{port}"
            print(f"{reader}: {len(streams[reader])} reads as {protocol}, {where}", flush=True)
        print(f"simulated race at {args.speed:g}× real time; Ctrl-C to stop", flush=True)
        # Not waiting for the --connect clients to end: a listening reader never hangs up, so
        # they would not (they are cancelled below, after the grace period).
        await asyncio.gather(*(s.finished.wait() for s in sims))
        print(f"simulation finished: {sum(len(streams[r]) for r in readers)} reads", flush=True)
        await asyncio.sleep(2.0)  # let the connectors fetch what they still miss
    finally:
        for simulator in sims:
            await simulator.close()
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    return 0


def _is_hex12(chip: str) -> bool:
    return len(chip) == 12 and all(c in "0123456789abcdefABCDEF" for c in chip)


# -- import-reads ------------------------------------------------------------------------------


def cmd_import_reads(args: argparse.Namespace) -> int:
    import datetime as dt

    from livetrack.ingest.importer import import_reads
    from livetrack.store.base import open_log

    event = load_event(args.event)
    date = None
    if args.date:
        try:
            date = dt.date.fromisoformat(args.date)
        except ValueError:
            raise SystemExit(
                f"livetrack import-reads: --date {args.date!r} is not YYYY-MM-DD"
            ) from None
    if args.point not in event.points:
        known = ", ".join(event.points)
        raise SystemExit(f"livetrack import-reads: unknown point {args.point!r} (known: {known})")
    if not Path(args.file).is_file():
        raise SystemExit(f"livetrack import-reads: cannot read {args.file}")

    async def run() -> int:
        event_log = open_log(_log_url(args))
        try:
            report = await import_reads(
                event_log, Path(args.file), event, protocol=args.protocol,
                reader=args.reader, point=args.point, date=date,
            )  # fmt: skip
        finally:
            await event_log.close()
        for line, reason, raw in report.problems:
            print(f"{args.file}:{line}: {reason}: {raw[:120]!r}", file=sys.stderr)
        print(
            f"{args.file}: {report.accepted} accepted, {report.duplicate} duplicate, "
            f"{report.rejected} rejected"
        )
        return 0

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livetrack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="serve the built-in Heaton Park event with a simulated race")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--speed", type=float, default=10.0, help="race time per real time")
    p.add_argument("--db", help="event log file (default: a new temporary file)")
    p.add_argument(
        "--site",
        action="store_true",
        help="race day's layout: this demo as the site box at the finish, and a public server "
        "(a second process, at --public-port) that follows it over the link",
    )
    p.add_argument("--public-port", type=int, default=0, help="with --site (default: --port + 1)")
    p.add_argument(
        "--readers",
        choices=["raceresult", "ctp01", "ipico", "mylaps"],
        help="rehearse timing hardware: a reader of this protocol per timing point, the races "
        "scheduled, and the `livetrack simulate` command that plays the decoders printed "
        "(instead of the race played over HTTP)",
    )
    p.add_argument(
        "--reader-port", type=int, default=0,
        help="first reader's port, then one per timing point (default: the protocol's own)",
    )  # fmt: skip
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="serve an event")
    p.add_argument("--event", required=True, help="EVENT.toml")
    p.add_argument("--participants", help="participants CSV")
    p.add_argument("--db", default="livetrack.db", help="SQLite event log (embedded default)")
    p.add_argument(
        "--redis",
        help="redis://host:port/db[?stream=NAME] — share one log between processes and hosts"
        " (stream default: livetrack:<event id>)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1") or "1"),
        help="server processes sharing the port and the log (default: $WEB_CONCURRENCY or 1)",
    )
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=250_000,
        metavar="N",
        help="save a snapshot of the fold every N records (also every 10 minutes and on exit)",
    )
    p.add_argument(
        "--no-snapshots",
        action="store_true",
        help="neither load nor save snapshots: replay the whole log at start",
    )
    p.add_argument(
        "--tick",
        type=_tick,
        default=0.25,
        metavar="SECONDS",
        help="how often changed regions are rendered and sent to pages (default 0.25)",
    )
    p.add_argument(
        "--site-keys",
        metavar="FILE",
        help="follow a site's log: accept the link of the site tokens whose hashes FILE lists "
        "(livetrack site-key new); writes made here are queued for the site",
    )
    p.set_defaults(func=cmd_serve)

    sitecli.add_parsers(sub, _tick)

    p = sub.add_parser("check-event", help="validate EVENT.toml (and participants) and exit")
    p.add_argument("event")
    p.add_argument("--participants")
    p.set_defaults(func=cmd_check_event)

    p = sub.add_parser("simulate", help="play a simulated race into a running server")
    p.add_argument("--url", help="the server's URL (HTTP simulation)")
    p.add_argument("--token", help="a reader token (HTTP simulation)")
    p.add_argument("--timer-token", help="a timer token, to fire the start guns")
    p.add_argument("--event", help="EVENT.toml (default: the built-in demo event)")
    p.add_argument("--participants")
    p.add_argument("--race", action="append", help="race id (repeatable; default: all)")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--protocol",
        choices=["raceresult", "ctp01", "ipico", "mylaps"],
        help="play the race as timing decoders of this protocol instead of HTTP",
    )
    p.add_argument(
        "--port",
        type=int,
        default=3601,
        help="first decoder's port (one decoder per timing point, in the event's order: port, "
        "port+1, …; 0: a free port each)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address the decoders listen on")
    p.add_argument(
        "--connect", metavar="HOST", help="connect to listening readers on HOST instead of serving"
    )
    p.add_argument(
        "--point", action="append", help="timing point to play (repeatable; default: every point)"
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("import-reads", help="import a decoder's saved reads (a USB-stick dump)")
    p.add_argument("file")
    p.add_argument(
        "--protocol", required=True, choices=["raceresult", "ctp01", "ipico", "mylaps", "generic"]
    )
    p.add_argument("--point", required=True, help="the timing point the reads were made at")
    p.add_argument("--reader", required=True, help="the reader id to store them under")
    p.add_argument("--event", required=True, help="EVENT.toml")
    p.add_argument("--date", help="YYYY-MM-DD for formats with times of day only")
    p.add_argument("--db", default="livetrack.db")
    p.add_argument("--redis")
    p.set_defaults(func=cmd_import_reads)

    p = sub.add_parser("token", help="create or revoke access tokens")
    p.add_argument("action", choices=["create", "revoke"])
    p.add_argument("--role", choices=["reader", "marshal", "timer"])
    p.add_argument(
        "--point",
        help="the checkpoint a marshal token may write (or the timing point a reader token "
        "may post for)",
    )
    p.add_argument(
        "--reader",
        action="append",
        metavar="ID",
        help="bind a reader token to this reader id (repeat for more); reads for other "
        "readers are refused",
    )
    p.add_argument("--label", help="who the token is for (shown in audit history)")
    p.add_argument("--token", help="the token to revoke")
    p.add_argument(
        "--link",
        action="store_true",
        help="print a sign-in link (token in the URL fragment) instead of the token",
    )
    p.add_argument("--base-url", help="the server's URL for --link (default 127.0.0.1:8000)")
    p.add_argument("--db", default="livetrack.db")
    p.add_argument("--redis", help="redis://… URL of the event's log (with ?stream= or --event)")
    p.add_argument("--event", help="EVENT.toml: with --redis, names the stream livetrack:<id>")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser(
        "evaluate-predictions",
        help="replay real results through the predictor",
        description=evaluate.DESCRIPTION,
    )
    evaluate.add_arguments(p)
    p.set_defaults(func=evaluate.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    if args.command == "token" and args.action == "create" and not args.role:
        raise SystemExit("livetrack token create: --role is required")
    if args.command == "token" and args.action == "revoke" and not args.token:
        raise SystemExit("livetrack token revoke: --token is required")
    try:
        result: int = args.func(args)
    except ConfigProblem as exc:
        raise SystemExit(f"livetrack: {exc}") from None
    return result


if __name__ == "__main__":
    sys.exit(main())

"""``livetrack check-event``, ``serve`` and ``demo``."""

from __future__ import annotations

import argparse
import os
import tempfile

from livetrack import config
from livetrack.cli.common import (
    GRACEFUL_S,
    check_log,
    load_event,
    load_participants,
    log_url,
    read_participants,
    serve_app,
)
from livetrack.domain.event import Event
from livetrack.domain.records import ParticipantRecord


def cmd_check_event(args: argparse.Namespace) -> int:
    event = load_event(args.event)
    print(f"{args.event}: OK — {event.name}, {event.date}, {event.timezone}")
    for race in event.races.values():
        cps = " → ".join(f"{cp.id} ({cp.distance_m:g} m)" for cp in race.course.checkpoints)
        print(f"  race {race.id} [{race.kind}]: {race.name}: {cps}")
        if race.rounds is not None:
            chain = " → ".join(r.name for r in race.rounds.rounds)
            print(f"    in rounds: {chain}; {race.rounds.lanes} lanes; photo-finish event "
                  f"{race.rounds.lynx_event}")  # fmt: skip
    for p in event.points.values():
        print(f"  timing point {p.id} [{p.role}] feeds {', '.join(p.checkpoints)}")
    if args.participants:
        people = load_participants(args.participants, event)
        print(f"  {len(people)} participants")
        _check_standards(args.participants, event, people)
        for race in event.races.values():
            if race.rounds is None:
                continue
            untimed = [p.bib for p in people if p.race == race.id and p.entry_ms is None]
            if untimed:
                print(f"  {race.id}: {len(untimed)} entries without an entry time (seeded "
                      f"last, by lot): bib {', '.join(untimed[:10])}")  # fmt: skip
    return 0


def _check_standards(path: str, event: Event, people: list[ParticipantRecord]) -> None:
    """Reports the entries whose qualifying performance is slower than their standard (file,
    line, bib, the standard and by how much), and how many gave none."""
    from livetrack.domain.standards import check_entries, csv_lines

    if not any(r.standards and r.standards.qualifying for r in event.races.values()):
        return
    below, missing = check_entries(event.races, people, csv_lines(read_participants(path)))
    for b in below:
        print(f"{path}: {b}")
    print(f"  qualifying standards: {len(below)} entries below their standard", end="")
    print(f", {missing} without a qualifying time" if missing else "")


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the event: in this process, or with ``--workers N`` in N processes (each a
    :func:`livetrack.web.factory.create_from_env` app) that share the one log."""
    from livetrack.config import Settings
    from livetrack.web.app import create_app

    event = load_event(args.event)
    # read now (a file that cannot be read stops the command), parsed once caught up with the
    # log, and only if the log does not hold every entry of this very file already
    entries = config.entries_file(args.participants) if args.participants else None
    url = log_url(args, event)
    check_log(url)
    every = 0 if args.no_snapshots else args.snapshot_every
    lif_dir = None
    if args.lif_dir:
        try:
            lif_dir = config.lif_folder(args.lif_dir)
        except config.ConfigProblem as exc:
            raise SystemExit(f"livetrack serve: {exc}") from None
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
            lif_dir=lif_dir,
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
            timeout_graceful_shutdown=GRACEFUL_S,
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
        lif_dir=lif_dir,
        push_sender_process=not args.push_in_process,
    )
    serve_app(create_app(settings), args.host, args.port)
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

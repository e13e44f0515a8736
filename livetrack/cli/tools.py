"""``livetrack token``, ``simulate`` and ``import-reads``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from livetrack.cli.common import (
    append_or_exit,
    demo_event,
    load_event,
    load_participants,
    log_url,
    now_ms,
    sim_start,
)
from livetrack.domain.event import Event
from livetrack.domain.records import TokenRecord


def cmd_token(args: argparse.Namespace) -> int:
    from livetrack.web.auth import issue, token_hash

    if args.action == "create":
        try:
            token, record = issue(
                args.role, args.point or "", args.label or "", now_ms(), tuple(args.reader or ())
            )
        except ValueError as exc:
            raise SystemExit(f"livetrack token: {exc}") from None
        append_or_exit(log_url(args), [record])
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
        record = TokenRecord(token_hash(args.token), "revoked", revoked=True, at_ms=now_ms())
        append_or_exit(log_url(args), [record])
        print("revoked")
        return 0
    raise SystemExit(f"livetrack token: unknown action {args.action!r}")


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
        t0 = sim_start(event, now_ms() + 2000)
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


def cmd_import_reads(args: argparse.Namespace) -> int:

    from livetrack.ingest.importer import import_reads
    from livetrack.store import open_log

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
        event_log = open_log(log_url(args))
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

"""Fan-out benchmark: spectators' websockets against a real ``livetrack serve``, and the ceiling.

Starts real ``livetrack serve`` process(es) on a fresh log, connects ``--clients`` real
``websockets`` clients spread over ``--client-procs`` processes, each subscribed as the race
page is (``race:tenk,board:tenk:finish:all,feed:tenk``), then posts finish reads of new runners
at ``--rate`` per second for ``--seconds``. The poster records the wall time of each post in
shared memory; a client records, for each runner, the wall time of the first message that shows
that runner (its bib in the feed, or the finish board's count reaching it), so read-to-screen
latency covers the log, the fold, the hub's tick, rendering and the socket (one machine, so
``time.time()`` is comparable across processes).

That is the latency phase; its delivered frames/s are capped by the hub's tick (one message per
client per 250 ms) and the offered reads, so it says nothing about capacity. The saturation
phase then starts a fresh server, its log on a tmpfs (``--sat-log-dir``), whose hub ticks every
``--sat-tick`` (10 ms after each tick's work: at 5,000 clients a tick's writes take most of
a tenth of a second, so a longer wait would cap what the hub offers below what the clients
read) and posts ``--sat-rate`` reads/s (200, in posts of 5), several posts per tick, so that
the hub can offer each client more messages than it can read; the clients only
count frames and bytes there, and the phase says what limited it (``saturation.limit``). In the
same run the same clients then connect to a bare ``websockets`` server
(``websockets.asyncio.server``) that sends the messages one spectator got in the saturation
phase, each framed once (compressed the same way for the clients that negotiated
permessage-deflate) and written straight to every connection, as fast as the clients take
them: the ceiling for Python on this machine. ``ratio`` is the saturation phase's delivered
frames/s over the ceiling's (``--previous-ceiling`` adds the ceiling as it was before,
``broadcast`` of plain frames of the mean size, and ``previous_ratio``). Server memory per
connection is the server's RSS (from ``/proc``) after connecting the idle clients minus
before, divided by the count.

    python bench/fanout.py [--clients 5000] [--rate 50] [--seconds 20] [--client-procs P]
                           [--sat-seconds 10] [--sat-rate 200] [--sat-tick 0.01]
    python bench/fanout.py --processes 2 [--redis URL]   # two servers behind one Redis stream
    python bench/fanout.py --compare                      # one process, then two, same run
    python bench/fanout.py --clients 10000 --connect-only # connect + snapshot check only
    python bench/fanout.py --push-subscriptions 10000     # then without and with push

With ``--push-subscriptions N`` the latency phase runs twice more at the end (``--push-pairs``
times), the same load both times: without push subscriptions, then with ``N`` of them stored
beside the log before the clients connect, each following one runner of a field of
``--push-field`` runners (at the finish, 3 minutes' lead), made by the tests' stand-in Web
Push service (``tests/pushservice.py``, a process of its own over real HTTP, which accepts a
message only when its VAPID signature verifies and its body decrypts). Reads in both are
posted with a chip time 65 s old, so that finish alerts (due once a finish has stood a minute)
are decided, encrypted and sent while the clients are timed. ``push`` reports both phases'
read-to-screen p50/p99, their ratios, the server's push counters (sent, dropped, late) from
``/metrics`` and what the stand-in service counted (it runs at a lower CPU priority, ``nice``
10: it stands for a service elsewhere). ``--push-alternate`` runs every other pair with push
first. A server's CPU counts its child processes too (the push sender's).

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchkit import start_redis
from fanout_ceiling import measure_ceiling
from fanout_clients import Clients
from fanout_phase import LATENCY_RENAMES, SATURATION_KEYS, Phase, run_livetrack
from fanout_push import compare_push, push_service_main
from fanout_setup import raise_nofile, serve_with, write_participants


def saturation_limit(sat: dict[str, Any], per_client: float) -> str:
    """What limited the frames the clients got in the saturation phase: ``clients`` when
    they read fewer messages than the hub built for them (the hub offered more than they
    took); otherwise they took every one, and the limit was what the hub built: its own
    work (``server``: its ticks busy over half the phase), how often the page changed
    (``changes``), or the tick (``tick``)."""
    messages, ticks = sat.get("messages_per_s", 0.0), sat.get("ticks_per_s", 0.0)
    if per_client < 0.9 * messages or sat.get("skipped_per_s", 0) > 0:
        return "clients"
    if sat.get("hub_busy", 0.0) > 0.5:
        return "server"
    return "changes" if messages < 0.8 * ticks else "tick"


def merge_phases(latency: dict[str, Any], sat: dict[str, Any], phase: Phase) -> dict[str, Any]:
    """One run's figures: the latency phase's (its throughput under ``latency_phase_*``
    names), the saturation phase's under ``saturation``, and its throughput, frame size and
    CPU per frame as the plain ``delivered_frames_per_s``, ``mean_frame_bytes`` and
    ``server_cpu_us_per_frame`` that the ceiling is compared with."""
    out = {LATENCY_RENAMES.get(k, k): v for k, v in latency.items()}
    detail = {"tick_s": phase.tick, **{k: sat[k] for k in SATURATION_KEYS if k in sat}}
    per_client = sat["delivered_frames_per_s"] / max(1, sat["connected"])
    detail["frames_per_client_per_s"] = round(per_client, 1)
    detail["limit"] = limit = saturation_limit(sat, per_client)
    if limit != "clients":
        print(
            f"fanout: the clients read {per_client:.1f} frames/s each, every message the hub"
            f" built ({sat.get('messages_per_s')}/s in {sat.get('ticks_per_s')} ticks/s, the"
            f" ticks busy {sat.get('hub_busy', 0):.0%} of the phase): the limit was {limit},"
            " not the clients, so the ratio compares a server that did not saturate them",
            file=sys.stderr,
        )
    out["saturation"] = detail
    for k in ("delivered_frames_per_s", "mean_frame_bytes", "server_cpu_us_per_frame"):
        out[k] = sat[k]
    return out


def mean_size_messages(sample: bytes, mean_bytes: float) -> list[bytes]:
    """One message of the mean frame size, cut from ``sample``: what the ceiling sends when no
    spectator's messages were kept."""
    size = max(64, int(mean_bytes))
    text = (sample * (size // max(1, len(sample)) + 1))[:size]
    frame = text.decode("utf-8", "ignore").encode()
    return [frame + b" " * (size - len(frame))]


def frame_build(sample: bytes, n: int = 2000) -> dict[str, float]:
    """CPU to build one message's frame, plain and compressed (done once per message for all
    the clients of a topic set, never per client), for the largest message of the run."""
    import timeit

    from livetrack.live.wire import deflate_frame, text_frame

    plain = timeit.timeit(lambda: text_frame(sample), number=n) / n
    packed = timeit.timeit(lambda: deflate_frame(sample), number=n) / n
    frame = deflate_frame(sample) or text_frame(sample)
    return {
        "message_bytes": len(sample),
        "plain_us": round(plain * 1e6, 1),
        "deflate_us": round(packed * 1e6, 1),
        "deflated_bytes": len(frame),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=50.0, help="finish passings posted per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--client-procs", type=int, default=0, help="default: one per 2,500 clients")
    ap.add_argument("--processes", type=int, default=1, choices=[1, 2])
    ap.add_argument("--redis", help="redis://… for --processes 2 (default: a private one)")
    ap.add_argument("--compare", action="store_true", help="one process, then two (both Redis)")
    ap.add_argument("--connect-only", action="store_true", help="connect and snapshot only")
    ap.add_argument("--no-ceiling", action="store_true")
    ap.add_argument(
        "--previous-ceiling",
        action="store_true",
        help="also measure the ceiling as it was before (plain frames of the mean size, sent"
        " with broadcast) and report previous_ratio",
    )
    ap.add_argument(
        "--sat-seconds", type=float, default=10.0, help="saturation phase length (0: none)"
    )
    ap.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="saturation phase + ceiling pairs, each ratio taken within its pair; the median"
        " pair is reported (default 3)",
    )
    ap.add_argument("--sat-rate", type=float, default=200.0, help="reads/s in saturation")
    ap.add_argument("--sat-batch", type=int, default=5, help="reads per post in saturation")
    ap.add_argument("--sat-tick", type=float, default=0.01, help="hub tick (s) in saturation")
    ap.add_argument("--ws", default="", help="uvicorn websocket implementation (default: serve's)")
    ap.add_argument(
        "--compression", default="deflate", choices=["deflate", "none"],
        help="what the spectators offer: permessage-deflate, as browsers do (default), or none",
    )  # fmt: skip
    ap.add_argument(
        "--push-subscriptions",
        type=int,
        default=0,
        help="then the latency phase twice more, without and with N push subscriptions",
    )
    ap.add_argument(
        "--push-field",
        type=int,
        help="how many runners the subscriptions follow, one each in turn (default: as many "
        "as there are subscriptions, one supporter a runner; the phase's finishers are the "
        "first of them, so --push-field 1 makes every subscription follow one of them)",
    )
    ap.add_argument(
        "--push-pairs", type=int, default=1, help="how many times to run that pair (default 1)"
    )
    ap.add_argument(
        "--push-in-process-too",
        action="store_true",
        help="make each pair a triple: also with push sent from the server's own process"
        " (serve --push-in-process); the order rotates",
    )
    ap.add_argument(
        "--push-alternate",
        action="store_true",
        help="run every other pair with push first (so that the order favours neither)",
    )
    ap.add_argument(
        "--log-dir",
        help="where the run's log and files go (default: the system's temporary folder; a "
        "tmpfs such as /dev/shm keeps other programs' disk writes out of the posts' fsyncs)",
    )
    ap.add_argument(
        "--sat-log-dir",
        default="/dev/shm" if Path("/dev/shm").is_dir() else None,
        help="where the saturation phase's log goes (default /dev/shm where there is one: "
        "the phase measures the send path, not how many fsyncs a shared disk allows)",
    )
    ap.add_argument(
        "--client-nice",
        type=int,
        default=5,
        help="niceness of the client processes, in every phase alike (default 5: the load"
        " generator yields the cores to the server it measures, as phones elsewhere would;"
        " 0 makes them compete for it)",
    )
    ap.add_argument("--serve-with", help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_with:
        serve_with(args.serve_with, args.rest)
        return
    nofile = raise_nofile(args.clients * 2 + 1024)
    procs = args.client_procs or max(2, math.ceil(args.clients / 2500))
    latency = Phase(None, args.rate, args.seconds)
    saturate = not args.connect_only and args.sat_seconds > 0
    sat = Phase(args.sat_tick, args.sat_rate, args.sat_seconds, args.sat_batch, latency=False)
    if args.push_subscriptions and args.push_field is None:
        args.push_field = args.push_subscriptions  # one supporter per runner
    runners = int(max(latency.rate * latency.seconds, sat.rate * sat.seconds)) + 100
    runners = max(runners, (args.push_field or 0) + 100)
    bibs = [str(i) for i in range(1, runners + 1)]
    posted = mp.Array("d", runners)
    # forked before any event loop or thread exists
    clients = Clients(procs, posted, bibs, args.compression, args.client_nice)
    push_proc: Any = None
    push_pipe: Connection | None = None
    if args.push_subscriptions:
        push_pipe, child = mp.get_context("fork").Pipe()
        push_proc = mp.get_context("fork").Process(
            target=push_service_main, args=(child,), daemon=True
        )
        push_proc.start()
    tmp = Path(tempfile.mkdtemp(prefix="livetrack-fanout-", dir=args.log_dir))
    sat.log_dir = Path(tempfile.mkdtemp(prefix="livetrack-fanout-sat-", dir=args.sat_log_dir))
    people = tmp / "people.csv"
    write_participants(people, runners)
    redis_proc: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] = {"bench": "fanout", "cpus": os.cpu_count(), "nofile": nofile}
    result["client_nice"] = args.client_nice
    try:
        redis = args.redis
        if (args.processes == 2 or args.compare) and not redis:
            redis_proc, redis = start_redis(tmp, appendfsync="everysec")
        modes = [1, 2] if args.compare else [args.processes]
        runs = []
        samples = []
        firsts: list[bytes] = []
        with_ceiling = not args.connect_only and not args.no_ceiling
        ceilings: list[dict[str, Any]] = []
        for n in modes:
            use_redis = redis if (n == 2 or args.compare) else None
            run = run_livetrack(args, clients, posted, bibs, n, use_redis, tmp, people, latency)
            sample = run.pop("_sample", b"")
            messages = run.pop("_kept", [])
            first = run.pop("_first", b"")
            print(json.dumps(run), file=sys.stderr)
            ceiling: dict[str, Any] = {}
            if saturate:
                # the same clients against a server offered more than it can deliver, each time
                # followed at once by the bare ceiling sending what one spectator got: the
                # machine's load moves between minutes, so each pair is compared on its own and
                # the median pair is kept
                pairs: list[tuple[float, dict[str, Any], dict[str, Any]]] = []
                for _ in range(max(1, args.pairs)):
                    s = run_livetrack(args, clients, posted, bibs, n, use_redis, tmp, people, sat)
                    sample = s.pop("_sample", b"") or sample
                    kept_now = s.pop("_kept", []) or messages
                    first = s.pop("_first", b"") or first
                    print(json.dumps(s), file=sys.stderr)
                    c: dict[str, Any] = {}
                    if with_ceiling and sample:
                        msgs = kept_now or mean_size_messages(sample, s["mean_frame_bytes"])
                        secs = min(sat.seconds, 10)
                        c = measure_ceiling(clients, args.clients, msgs, secs, first or sample)
                        print(json.dumps({"ceiling": c}), file=sys.stderr)
                    ratio = s["delivered_frames_per_s"] / c["frames_per_s"] if c else 0.0
                    pairs.append((ratio, s, c))
                    messages = kept_now
                ordered = sorted(pairs, key=lambda p: p[0])
                _, s, ceiling = ordered[len(ordered) // 2]
                run = merge_phases(run, s, sat)
                if ceiling:
                    run["pair_ratios"] = [round(p[0], 2) for p in pairs]
            elif with_ceiling and sample:
                msgs = messages or mean_size_messages(sample, run["mean_frame_bytes"])
                secs = min(latency.seconds, 10)
                ceiling = measure_ceiling(clients, args.clients, msgs, secs, first or sample)
            runs.append(run)
            samples.append(sample)
            firsts.append(first or sample)
            ceilings.append(ceiling)
        if push_pipe is not None:
            result["push"] = compare_push(args, clients, posted, bibs, tmp, people, push_pipe)
        sample = samples[0]
        if ceilings and ceilings[0]:
            result["ceiling"] = {k: round(v, 1) for k, v in ceilings[0].items()}
            if args.previous_ceiling:
                # as it was: plain frames of the mean size, framed per connection by broadcast
                frame = mean_size_messages(sample, runs[0]["mean_frame_bytes"])[0]
                secs = min(sat.seconds if saturate else latency.seconds, 10)
                old = measure_ceiling(clients, args.clients, [frame], secs, firsts[0], True)
                result["previous_ceiling"] = {k: round(v, 1) for k, v in old.items()}
                for r in runs:
                    r["previous_ratio"] = round(
                        r["delivered_frames_per_s"] / old["frames_per_s"], 2
                    )
            for r, ceiling in zip(runs, ceilings, strict=True):
                r["ratio"] = round(r["delivered_frames_per_s"] / ceiling["frames_per_s"], 2)
                # the same comparison in server CPU per frame of the same size
                us = max(r["server_cpu_us_per_frame"], 1e-9)
                r["cpu_ratio"] = round(ceiling["server_cpu_us_per_frame"] / us, 2)
                r["ceiling_frames_per_s"] = round(ceiling["frames_per_s"], 1)
        if sample:
            result["frame_build"] = frame_build(sample)
        if args.compare:
            result.update({"one": runs[0], "two": runs[1]})
        else:
            result.update(runs[0])
    finally:
        clients.stop()
        if push_pipe is not None:
            with contextlib.suppress(Exception):
                push_pipe.send(("exit", None))
                push_pipe.recv()
            push_proc.join(10)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(sat.log_dir, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

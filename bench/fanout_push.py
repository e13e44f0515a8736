"""The fan-out benchmark's push phases: subscriptions stored beside the log, the stand-in
push service, and the pairs without and with push (see ``fanout.py``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from fanout_clients import Clients
from fanout_phase import Phase, run_livetrack
from fanout_setup import ROOT


def push_service_main(pipe: Connection) -> None:
    """The tests' stand-in Web Push service (``tests/pushservice.py``) in a process of its
    own, over real HTTP: it accepts a message (201) only when its VAPID signature verifies and
    its ``aes128gcm`` body decrypts with the subscription's keys. Commands over ``pipe``:
    ``subscribe`` (server key, count) -> the subscriptions as browsers give them; ``stats``;
    ``exit``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from pushservice import PushService

    # The stand-in stands for a push service that runs elsewhere: at a lower priority than
    # the server and the clients here, so that its verifying and decrypting (its CPU is still
    # reported) takes what they leave of the two cores rather than competing with them.
    os.nice(10)

    with PushService() as service:
        while True:
            cmd, arg = pipe.recv()
            if cmd == "subscribe":
                key, n = arg
                pipe.send([service.subscribe(key).json() for _ in range(n)])
            elif cmd == "stats":
                use = resource.getrusage(resource.RUSAGE_SELF)
                pipe.send(
                    {
                        "requests": service.requests,
                        "accepted": len(service.delivered),
                        "rejected": len(service.rejected),
                        "reasons": sorted({why for _, _, why in service.rejected})[:3],
                        "cpu_s": use.ru_utime + use.ru_stime,
                    }
                )
            elif cmd == "exit":
                pipe.send(None)
                return


def compare_push(
    args: argparse.Namespace,
    clients: Clients,
    posted: Any,
    bibs: list[str],
    tmp: Path,
    people: Path,
    push: Connection,
) -> dict[str, Any]:
    """The latency phase without push subscriptions, then with ``--push-subscriptions`` of
    them (``--push-pairs`` times; with ``--push-alternate`` every other pair in the other
    order), the same load otherwise: reads a minute old, so that every
    finish alert becomes due during the phase; each subscription follows one of the phase's
    finishers, so all of them are decided, appended, encrypted and sent while the clients are
    timed. Read-to-screen p50/p99 of both, their ratios, and what the server and the stand-in
    push service counted in the phases with."""
    age_ms = 65_000
    pairs = []
    with_first = []
    inproc: list[dict[str, Any]] = []
    for i in range(max(1, args.push_pairs)):
        without = Phase(None, args.rate, args.seconds, read_age_ms=age_ms)
        with_push = Phase(
            None, args.rate, args.seconds, read_age_ms=age_ms,
            push_subs=args.push_subscriptions, push=push, push_field=args.push_field or 0,
        )  # fmt: skip
        flip = bool(args.push_alternate and i % 2)  # every other pair: with push first
        with_first.append(flip)
        order = [with_push, without] if flip else [without, with_push]
        in_process = None
        if args.push_in_process_too:  # a third phase: with push sent from the server's process
            in_process = dataclasses.replace(with_push, push_in_process=True)
            order.append(in_process)
            order = order[i % 3 :] + order[: i % 3]  # each kind first, second and last in turn
        done = {}
        for ph in order:
            done[id(ph)] = run_livetrack(args, clients, posted, bibs, 1, None, tmp, people, ph)
            r = done[id(ph)]
            for k in ("_sample", "_kept", "_first"):
                r.pop(k, None)
            print(json.dumps(r), file=sys.stderr)
        plain, pushed = done[id(without)], done[id(with_push)]
        pairs.append((plain, pushed))
        if in_process is not None:
            inproc.append(done[id(in_process)])

    def ratio(a: Any, b: Any) -> float | None:
        return round(a / b, 2) if a and b and a == a and b == b else None

    finishers = int(args.rate * args.seconds)
    out: dict[str, Any] = {
        "subscriptions": args.push_subscriptions,
        "field": max(args.push_field, finishers),
        "read_age_s": age_ms / 1000,
    }
    for key in ("p50_ms", "p99_ms", "post_p99_ms", "passings_per_s", "server_cpu_s"):
        without_v = [p.get(key) for p, _ in pairs]
        with_v = [q.get(key) for _, q in pairs]
        out[f"{key}_without"] = without_v[0] if len(pairs) == 1 else without_v
        out[f"{key}_with"] = with_v[0] if len(pairs) == 1 else with_v
        if key in ("p50_ms", "p99_ms"):
            ratios = [ratio(b, a) for a, b in zip(without_v, with_v, strict=True)]
            out[f"{key[:3]}_ratio"] = ratios[0] if len(pairs) == 1 else ratios
            known = sorted(r for r in ratios if r is not None)
            if len(pairs) > 1 and known:
                out[f"{key[:3]}_ratio_median"] = known[len(known) // 2]
    out["shown_all_with"] = [q.get("shown_all") for _, q in pairs]
    if inproc:  # the same with push sent from the serving process itself
        for key in ("p50_ms", "p99_ms", "post_p99_ms", "server_cpu_s"):
            out[f"{key}_in_process"] = [r.get(key) for r in inproc]
        ratios = [
            ratio(r.get("p99_ms"), p.get("p99_ms")) for r, (p, _) in zip(inproc, pairs, strict=True)
        ]
        out["p99_ratio_in_process"] = ratios
        known = sorted(x for x in ratios if x is not None)
        if known:
            out["p99_ratio_in_process_median"] = known[len(known) // 2]
        out["alerts_in_process"] = [r.get("push", {}) for r in inproc]
    if args.push_alternate:
        out["with_first"] = with_first
    out["alerts"] = [q.get("push", {}) for _, q in pairs]
    return out

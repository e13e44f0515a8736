"""Join benchmark: how long a new server process takes to serve (``/healthz`` 200) on a log of
1,000,000 records, replaying it all and starting from a snapshot; and the cost of the snapshot
formats (pickle protocol 5 of the whole state vs the compact form) on a 27,000-runner 10K.

The log: the demo event's 10K with 27,000 entrants, a gun, every read the simulator plans
(about 225,000), and dwell reads (the same chip seen again within the mat's dedup window, as
raw RFID decoders report) until the log holds ``--records`` records.

    python bench/join.py [--records 1000000] [--redis URL] [--skip-formats]

Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import free_port
from ingest import write_participants

from livetrack.cli import demo_event
from livetrack.domain import snapshot
from livetrack.domain.records import ChipRead, GunStart, Record
from livetrack.domain.state import RaceState
from livetrack.sim import make_participants, plan
from livetrack.store import open_log

ROOT = Path(__file__).resolve().parents[1]
GUN = 1_781_420_400_000  # 2026-06-14 08:00 UTC


def records(total: int, runners: int) -> tuple[list[Record], list[Record]]:
    """Participants, then the gun and reads (with dwell reads) up to ``total`` records."""
    event = demo_event()
    people = make_participants(event, {"tenk": runners}, seed=3)
    actions = plan(event, people, {"tenk": GUN}, seed=5)
    base = [a.read for a in actions if a.read is not None]
    out: list[tuple[int, ChipRead]] = []
    seq = 0

    def add(r: dict[str, object], shift: int) -> None:
        nonlocal seq
        seq += 1
        t = int(str(r["time"])) + shift
        out.append((t, ChipRead(str(r["reader"]), str(r["point"]), str(r["chip"]), t, seq)))

    for r in base:
        add(r, 0)
    want = total - len(people) - 1
    j = 1
    while len(out) < want:
        for r in base[: want - len(out)]:
            add(r, 150 * j)  # seen again 150 ms later: within every mat's dedup window
        j += 1
    out.sort(key=lambda x: x[0])
    return list(people), [GunStart("tenk", GUN, "", "bench-gun", "bench"), *[r for _, r in out]]


async def fill(url: str, batches: list[Record]) -> None:
    log = open_log(url)
    try:
        for i in range(0, len(batches), 5000):
            await log.append(batches[i : i + 5000])
    finally:
        await log.close()


def formats(people: list[Record], rest: list[Record]) -> dict[str, object]:
    """pickle protocol 5 of the whole state vs the compact snapshot form, on the 10K with
    27,000 entrants and every planned read (no dwell reads): CPU seconds of this process."""
    state = RaceState(demo_event())
    for r in people:
        state.apply(r)
    for r in rest:
        if isinstance(r, GunStart) or (isinstance(r, ChipRead) and r.seq and r.seq <= 230_000):
            state.apply(r)
    out: dict[str, object] = {"format_state_records": state.applied}
    was = gc.isenabled()
    for gc_on in (True, False):
        gc.enable() if gc_on else gc.disable()
        t = time.process_time()
        body = pickle.dumps(state, protocol=5)
        t1 = time.process_time() - t
        t = time.process_time()
        pickle.loads(body)
        t2 = time.process_time() - t
        tag = "gc" if gc_on else "nogc"
        out[f"pickle5_{tag}_dump_s"], out[f"pickle5_{tag}_load_s"] = round(t1, 2), round(t2, 2)
        out["pickle5_bytes"] = len(body)
    if was:
        gc.enable()
    t = time.process_time()
    snap = snapshot.dumps(state, "1", "bench")
    t1 = time.process_time() - t
    t = time.process_time()
    snapshot.loads(snap, demo_event(), "bench")
    t2 = time.process_time() - t
    out.update(compact_dump_s=round(t1, 2), compact_load_s=round(t2, 2), compact_bytes=len(snap))
    return out


def serve(log_args: list[str], people: Path, *extra: str) -> tuple[float, subprocess.Popen[bytes]]:
    """Start a server; seconds until its /healthz is 200 (process start included)."""
    import httpx

    event = ROOT / "livetrack" / "demo" / "heaton.toml"
    port = free_port()
    errlog = people.parent / f"serve-{port}.log"
    t0 = time.perf_counter()
    with errlog.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "livetrack.cli", "serve", "--event", str(event),
                "--participants", str(people), *log_args, "--port", str(port), *extra,
            ],
            stdout=err, stderr=err, cwd=ROOT,
        )  # fmt: skip
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {errlog.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return time.perf_counter() - t0, proc
        except httpx.TransportError:
            pass
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runners", type=int, default=27_000)
    ap.add_argument("--redis", help="a Redis URL (a fresh stream is used); default: SQLite")
    ap.add_argument("--skip-formats", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="livetrack-join-"))
    people_csv = tmp / "people.csv"
    write_participants(people_csv, args.runners)
    people, rest = records(args.records, args.runners)
    result: dict[str, object] = {"bench": "join", "cpus": os.cpu_count()}
    if not args.skip_formats:
        result.update(formats(people, rest))
        print(json.dumps(result), flush=True)
    if args.redis:
        sep = "&" if "?" in args.redis else "?"
        url = f"{args.redis}{sep}stream=livetrack:join-{time.time():.0f}"
        log_args = ["--redis", url]
    else:
        url = str(tmp / "log.db")
        log_args = ["--db", url]
    t = time.perf_counter()
    asyncio.run(fill(url, [*people, *rest]))
    result["log"] = "redis" if args.redis else "sqlite"
    result["log_records"] = len(people) + len(rest)
    result["fill_s"] = round(time.perf_counter() - t, 1)
    print(f"log of {result['log_records']} records written in {result['fill_s']} s", flush=True)

    # 1. no snapshot: replay everything; on SIGTERM it saves one
    replay_s, proc = serve(log_args, people_csv, "--snapshot-every", "0")
    proc.terminate()
    proc.wait(300)
    print(f"replay: serving in {replay_s:.2f} s", flush=True)
    # 2. the same log with that snapshot
    snap_s, proc = serve(log_args, people_csv)
    proc.terminate()
    proc.wait(300)
    print(f"from snapshot: serving in {snap_s:.2f} s", flush=True)
    result.update(join_replay_s=round(replay_s, 2), join_snapshot_s=round(snap_s, 2))
    print(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()

"""A site box and a public server as real processes, a fault-injecting proxy between them.

Every test ends the same way: the public log holds exactly the site's records, in the site's
order (read from both files), every acknowledged read and sighting is in it once, and the two
folds agree (the same standings at both ends).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from linkrig import Flow, RaceDay, chip_keys, keys_in, reads, sighting_keys

from livetrack.domain.records import ChipRead
from livetrack.web.auth import new_token


@pytest.fixture
def day(tmp_path: Path) -> Iterator[RaceDay]:
    d = RaceDay(tmp_path)
    try:
        yield d
    finally:
        d.close()


def standings(base: str, race: str) -> object:
    r = httpx.get(f"{base}/api/v1/races/{race}/standings?limit=10000", timeout=30)
    r.raise_for_status()
    return r.json()


def assert_same_folds(day: RaceDay, races: tuple[str, ...] = ("mile", "fun")) -> None:
    """Both ends' standings agree (each fold has applied its whole log first)."""
    deadline = time.monotonic() + 15
    while True:
        site = [standings(day.site.url, r) for r in races]
        public = [standings(day.public.url, r) for r in races]
        if site == public or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert site == public


def assert_nothing_lost_or_doubled(day: RaceDay, flow: Flow) -> None:
    site, public = keys_in(day.site_db), day.public_keys()
    assert public == site  # same records, same order
    assert len(set(site)) == len(site)
    assert flow.read_keys <= set(chip_keys(site))
    marshal = {f"sighting:{i}" for i in flow.sightings}
    assert set(sighting_keys(site)) == marshal


def test_link_cut_for_ten_race_minutes_loses_and_doubles_nothing(day: RaceDay) -> None:
    """The race runs 60× faster than real time; the link is really cut (every connection
    reset, new ones refused) for 10 s of wall time, 10 minutes of race, while the finish
    takes reads and a marshal on mobile data keeps reporting through the public server."""
    flow = Flow(day, races=("mile",), speed=60)
    try:
        time.sleep(3)
        day.proxy.cut()
        time.sleep(10)
        during = day.link("site")
        assert not during["connected"] and during["lag_records"] > 0
        assert day.link("public")["writes_down"] > 0
        queued = sum(1 for s in flow.sightings.values() if s == 202)
        assert queued > 0  # writes at the public end were queued, not refused
        day.proxy.heal()
        held = keys_in(day.site_db)  # what the finish had when the link came back
        day.wait_holds(held, timeout=30)  # fails the test if the public end never catches up
        flow.wait_reads()
    finally:
        flow.stop()
    day.wait_equal()
    assert_nothing_lost_or_doubled(day, flow)
    assert_same_folds(day, ("mile",))


def test_blackholed_link_is_noticed_and_resumed(day: RaceDay) -> None:
    """Packets vanish, nothing is reset: pings notice it and the site dials again."""
    day.post_reads(reads(200)).raise_for_status()
    day.wait_equal()
    day.proxy.blackhole()
    day.post_reads(reads(300, 200)).raise_for_status()
    ident = str(uuid.uuid4())
    assert day.post_sighting(ident, "3", int(time.time() * 1000)).status_code == 202
    # by 7 s from now, past the ping timeout, the site has called the link down
    past_ping_timeout = time.monotonic() + 7
    while day.link("site")["connected"] and time.monotonic() < past_ping_timeout:
        time.sleep(0.1)
    assert not day.link("site")["connected"]
    day.proxy.heal()
    day.wait_equal()
    assert f"sighting:{ident}" in keys_in(day.site_db)


def test_half_a_batch_then_reset_stores_it_once(day: RaceDay) -> None:
    """The link delivers half of a big batch, then resets: the public end stores nothing of
    the broken frame, and the resend stores each record once."""
    day.wait_equal()
    day.proxy.half_then_reset(20_000)
    day.post_reads(reads(5000)).raise_for_status()
    day.wait_equal()
    keys = day.public_keys()
    assert len(chip_keys(keys)) == 5000 and len(set(keys)) == len(keys)


def test_very_slow_link_gets_there(day: RaceDay) -> None:
    day.proxy.slow(8_000)
    day.post_reads(reads(2000)).raise_for_status()
    time.sleep(1)
    st = day.link("site")
    assert st["connected"] and st["lag_records"] > 0
    day.wait_equal(60)


def test_a_restarted_site_counts_its_backlog_from_when_it_was_written(day: RaceDay) -> None:
    """Reads wait at the site while the link is cut, and the site process restarts: its
    "seconds behind" still counts from when they were written (not from its own start),
    before it gets through and while the backlog trickles up a slow link."""
    day.wait_equal()
    day.proxy.cut()
    before = time.time()
    day.post_reads(reads(2000)).raise_for_status()
    written = time.time()
    while time.time() - written < 2.0:  # let the backlog age
        time.sleep(0.1)
    day.site.kill()
    day.site.start()

    def behind() -> tuple[dict[str, object], float, float]:
        asked = time.time()
        st = day.link("site")
        return st, asked, time.time()

    st, asked, answered = behind()
    deadline = time.monotonic() + 10
    while st["lag_records"] != 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
        st, asked, answered = behind()
    # it knows what the public end held before it restarted: the 2000 reads, nothing else
    assert not st["connected"] and st["lag_records"] == 2000
    assert asked - written - 0.1 <= float(st["lag_s"]) <= answered - before + 0.1  # type: ignore[arg-type]

    day.proxy.slow(8_000)
    st, asked, answered = behind()
    deadline = time.monotonic() + 20
    while not st["connected"] and time.monotonic() < deadline:
        time.sleep(0.05)
        st, asked, answered = behind()
    assert st["connected"] and st["lag_records"] > 0  # still going up the slow link
    assert asked - written - 0.1 <= float(st["lag_s"]) <= answered - before + 0.1  # type: ignore[arg-type]
    day.proxy.heal()
    day.wait_equal(60)
    deadline = time.monotonic() + 10
    while (st := day.link("site"))["lag_records"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert st["lag_records"] == 0 and st["lag_s"] == 0


def test_public_restarted_with_an_empty_log_is_rebuilt_equal(day: RaceDay) -> None:
    flow = Flow(day, races=("mile",), speed=120)
    try:
        time.sleep(2)
        day.public.stop()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{day.public_db}{suffix}").unlink(missing_ok=True)
        day.public.start()
        flow.wait_reads()
    finally:
        flow.stop()
    day.wait_equal()
    assert_nothing_lost_or_doubled(day, flow)
    assert_same_folds(day, ("mile",))


def test_site_public_and_both_killed_and_restarted_resume(day: RaceDay) -> None:
    """kill -9 of the site, then of the public server, then of both at once, mid-race."""
    flow = Flow(day, races=("mile",), speed=60)
    try:
        time.sleep(1.5)
        day.site.kill()
        day.site.start()
        time.sleep(1.5)
        day.restart_public(kill=True)
        time.sleep(1.5)
        day.site.kill()
        day.public.kill()
        day.start_both()
        flow.wait_reads()
    finally:
        flow.stop()
    day.wait_equal()
    assert_nothing_lost_or_doubled(day, flow)
    assert_same_folds(day, ("mile",))


def test_conflicting_record_is_refused_loudly_and_never_overwritten(day: RaceDay) -> None:
    """The public log already holds a record under a key the site uses for other content."""
    day.wait_equal()
    day.public.stop()
    import asyncio

    from linkrig import _append

    other = ChipRead("fin", "finish", "IMPOSTOR", 1_000, seq=7)
    asyncio.run(_append(day.public_db, [other]))
    day.public.start()
    day.post_reads(reads(20)).raise_for_status()
    deadline = time.monotonic() + 20
    while "conflict" not in day.link("site")["error"] and time.monotonic() < deadline:
        time.sleep(0.2)
    st = day.link("site")
    assert "conflict" in st["error"] and "read:fin:7" in st["error"]
    assert "conflict" in day.link("public")["error"]
    keys = day.public_keys()
    assert keys.count("read:fin:7") == 1
    assert "read:fin:6" not in keys  # nothing of the refused batch was stored
    assert "refused a batch" in day.public.tail()


def test_forged_and_revoked_site_tokens_get_401_and_store_nothing(day: RaceDay) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    day.wait_equal()
    before = day.public_keys()
    url = day.public.url.replace("http://", "ws://") + "/api/v1/link"
    with pytest.raises(InvalidStatus) as forged:
        connect(url, additional_headers={"Authorization": f"Bearer {new_token()}"}).close()
    assert forged.value.response.status_code == 401
    # revoke the site's own token at the public end: the running link is dropped too
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-c", "from livetrack.cli import main; raise SystemExit(main())",
         "site-key", "revoke", "--keys", str(day.keys), "--token", day.site_token],
        check=True, capture_output=True,
    )  # fmt: skip
    with pytest.raises(InvalidStatus) as revoked:
        connect(url, additional_headers={"Authorization": f"Bearer {day.site_token}"}).close()
    assert revoked.value.response.status_code == 401
    day.post_reads(reads(50)).raise_for_status()
    time.sleep(3)
    assert day.public_keys() == before
    assert "401" in day.link("site")["error"]


@pytest.mark.redis
def test_redis_public_follows_through_a_cut_and_an_emptied_log(
    tmp_path: Path, redis_url: str
) -> None:
    """The public server on Redis: the same records in the same order through a cut, and
    rebuilt equal when its stream is emptied under it."""
    import asyncio

    from redis.asyncio import Redis

    stream = f"livetrack:link:{uuid.uuid4().hex}"
    sep = "&" if "?" in redis_url else "?"
    day = RaceDay(tmp_path, public_log=f"{redis_url}{sep}stream={stream}")
    try:
        flow = Flow(day, races=("mile",), speed=120)
        try:
            time.sleep(1.5)
            day.proxy.cut()
            time.sleep(2)
            assert any(s == 202 for s in flow.sightings.values())
            day.proxy.heal()
            flow.wait_reads()
        finally:
            flow.stop()
        day.wait_equal()
        assert_nothing_lost_or_doubled(day, flow)
        assert_same_folds(day, ("mile",))

        day.public.stop()

        async def empty() -> None:
            client = Redis.from_url(redis_url)
            try:
                keys = [k async for k in client.scan_iter(match=f"{stream}*")]
                await client.delete(*keys)
            finally:
                await client.aclose()

        asyncio.run(empty())
        assert day.public_keys() == []
        day.public.start()
        day.wait_equal()
        assert_same_folds(day, ("mile",))
    finally:
        day.close()


def test_clocks_90s_apart_move_no_time_on_any_page(tmp_path: Path) -> None:
    """The public server's clock runs 90 s fast: it keeps the site's time, so a gun fired from
    a phone at the public end, the race clocks and every passing read the same at both ends."""
    day = RaceDay(tmp_path, public_env={"LIVETRACK_CLOCK_SHIFT_MS": "90000"})
    try:
        mile = [p for p in day.people if p.race == "mile"]
        t0 = int(time.time() * 1000)
        gun = httpx.post(
            day.site.url + "/api/v1/races/mile/gun",
            json={"time": t0 - 400_000},
            headers={"authorization": f"Bearer {day.tokens['timer']}"},
            timeout=30,
        )
        assert gun.status_code == 200, gun.text
        finish = [
            {"reader": "fin", "point": "finish", "chip": p.chips[0], "time": t0 - 1000 * i,
             "seq": i}
            for i, p in enumerate(mile[:20])
        ]  # fmt: skip
        day.post_reads(finish).raise_for_status()
        day.wait_equal()
        assert_same_folds(day, ("mile",))
        # the timer's phone, on the public server, fires the fun run's gun without a time
        before = int(time.time() * 1000)
        r = httpx.post(
            day.public.url + "/api/v1/races/fun/gun",
            json={},
            headers={"authorization": f"Bearer {day.tokens['timer']}"},
            timeout=30,
        )
        after = int(time.time() * 1000)
        assert r.status_code == 200, r.text
        day.wait_equal()
        from linkrig import records_in

        from livetrack.domain.records import GunStart

        [gun] = [g for g in records_in(day.site_db) if isinstance(g, GunStart) and g.race == "fun"]
        assert before - 2000 <= gun.time_ms <= after + 2000  # the site's clock, not 90 s on
        time.sleep(1.5)
        for race in ("mile", "fun"):
            clocks = []
            for base in (day.site.url, day.public.url):
                got = httpx.get(base + "/api/v1/races", timeout=10).json()["races"]
                clocks.append(next(x["clock"] for x in got if x["id"] == race))
            assert _seconds(clocks[0]) == pytest.approx(_seconds(clocks[1]), abs=2), clocks
        runners = [p.bib for p in day.people if p.race == "mile"][:5]
        for bib in runners:
            at = [httpx.get(f"{b}/api/v1/runners/{bib}", timeout=10).json() for b in
                  (day.site.url, day.public.url)]  # fmt: skip
            assert at[0] == at[1]
    finally:
        day.close()


def _seconds(clock: str) -> int:
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return total

"""A realistic simulated race day, played into a running server over its HTTP API.

Start waves, a backward-running pace spread, fatigue, double reads, a missed read now and
then and a backup mat at the finish. Also the load generator for the benchmarks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from livetrack.domain.event import Event, Race, TimingPoint
from livetrack.domain.records import ParticipantRecord

log = logging.getLogger("livetrack.sim")

_FIRST = {
    "F": [
        "Amelia",
        "Olivia",
        "Isla",
        "Ava",
        "Mia",
        "Ivy",
        "Lily",
        "Freya",
        "Grace",
        "Sophia",
        "Ella",
        "Evie",
        "Poppy",
        "Alice",
        "Ruby",
        "Harper",
        "Aisha",
        "Priya",
        "Zara",
        "Mei",
        "Zofia",
        "Siobhan",
        "Cerys",
        "Morag",
        "Niamh",
        "Chloe",
    ],
    "M": [
        "Noah",
        "Oliver",
        "George",
        "Arthur",
        "Leo",
        "Muhammad",
        "Harry",
        "Oscar",
        "Archie",
        "Henry",
        "Jack",
        "Theo",
        "Charlie",
        "Freddie",
        "Alfie",
        "Thomas",
        "Jacob",
        "Isaac",
        "Finley",
        "Sanjay",
        "Kwame",
        "Chen",
        "Tomasz",
        "Ciaran",
        "Rhys",
        "Hamish",
    ],
}
_LAST = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Wright",
    "Robinson",
    "Walker",
    "Thompson",
    "Evans",
    "Hughes",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Khan",
    "Ahmed",
    "Lewis",
    "Harris",
    "Martin",
    "Cooper",
    "King",
    "Lee",
    "Baker",
    "Morris",
    "Turner",
    "Kowalski",
    "Nowak",
    "Murphy",
    "Kelly",
    "O'Brien",
    "Campbell",
    "Stewart",
    "MacLeod",
    "Okafor",
    "Mensah",
    "Singh",
    "Kaur",
    "Chowdhury",
    "Nguyen",
    "Wang",
    "Byrne",
    "Lloyd",
    "Price",
]
_CLUBS = [
    "Salford Harriers",
    "Manchester AC",
    "Stockport Harriers",
    "Sale Harriers",
    "Trafford AC",
    "Heaton Park parkrunners",
    "Bury AC",
    "Rochdale Harriers",
    "Oldham & Royton",
    "Backward Running Club",
    "Prestwich Phoenix",
    "",
]
_CHARITIES = ("Christie Charity", "Manchester Mind", "Forever Manchester", "Mountain Rescue")

#: Median finish seconds and spread (log-normal sigma) of backward running by course length.
_PACE = {"mile": (13 * 60.0, 0.28, 415.0), "fun": (25 * 60.0, 0.3, 700.0)}


def make_participants(
    event: Event, counts: dict[str, int], seed: int = 7
) -> list[ParticipantRecord]:
    """Synthetic entrants: ``counts`` maps race id to how many (bibs numbered per race).

    Relay races get teams (one participant per team, a chip and a runner's name per leg);
    a relay race not named in ``counts`` gets :data:`RELAY_TEAMS` teams, numbered after
    everyone else, so the other races' entrants are the same with or without it. Entrants of
    a race with a championship get a nationality (mostly GBR)."""
    rng = random.Random(seed)
    nat_rng = random.Random(seed + 2)
    out: list[ParticipantRecord] = []
    bib = 1
    relays = {r.id: RELAY_TEAMS for r in event.races.values() if r.kind == "relay"}
    relays.update({k: v for k, v in counts.items() if event.races[k].kind == "relay"})
    for race_id, n in counts.items():
        race = event.races[race_id]
        if race.kind == "relay":
            continue
        teams = [f"{c.split()[0]} {t}" for c in _CLUBS if c for t in ("A", "B")]
        for i in range(n):
            gender = rng.choice("MF")
            age = max(16, min(84, int(rng.gauss(41, 13))))
            club = rng.choice(_CLUBS)
            team = teams[i // 5 % len(teams)] if race.kind == "team" else ""
            wave = race.waves[i * len(race.waves) // n].id if race.waves[0].id else ""
            out.append(
                ParticipantRecord(
                    bib=str(bib),
                    race=race_id,
                    first_name=rng.choice(_FIRST[gender]),
                    last_name=rng.choice(_LAST),
                    chips=(f"LT{bib:05d}",),
                    gender=gender,
                    age=age,
                    club=team.rsplit(" ", 1)[0] if team else club,
                    team=team,
                    wave=wave,
                    charity=rng.choice(_CHARITIES) if race.kind == "fun" else "",
                    pledged=float(rng.choice((0, 10, 20, 25, 50, 100)))
                    if race.kind == "fun"
                    else 0,
                    hide_name=rng.random() < 0.03,
                    nationality=_nationality(nat_rng) if race.championship is not None else "",
                )
            )
            bib += 1
    relay_rng = random.Random(seed + 1)
    for race_id, n in relays.items():
        out.extend(_relay_teams(event.races[race_id], n, bib, relay_rng))
        bib += n
    return out


RELAY_TEAMS = 16


def _nationality(rng: random.Random) -> str:
    return "GBR" if rng.random() < 0.8 else rng.choice(("IRL", "FRA", "POL", "GER", "USA"))


def _relay_teams(race: Race, n: int, first_bib: int, rng: random.Random) -> list[ParticipantRecord]:
    legs = len(race.handovers) + 1
    clubs = [c for c in _CLUBS if c]
    out: list[ParticipantRecord] = []
    for i in range(n):
        bib = first_bib + i
        genders = [rng.choice("MF") for _ in range(legs)]
        names = tuple(f"{rng.choice(_FIRST[g])} {rng.choice(_LAST)}" for g in genders)
        kinds = set(genders)
        club = clubs[i % len(clubs)]
        name = f"{club.split()[0]} {'ABCD'[i // len(clubs) % 4]}"
        out.append(
            ParticipantRecord(
                bib=str(bib),
                race=race.id,
                first_name=name,
                chips=tuple(f"LT{bib:05d}{'abcdefgh'[k]}" for k in range(legs)),
                club=club,
                team=name,
                category="Mixed" if len(kinds) > 1 else {"F": "Women", "M": "Men"}[genders[0]],
                legs=names,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Action:
    """Something that happens at race time ``at_ms``: a gun, a read to post, or a marshal's
    obstacle judgement (``read`` holds its body; see :mod:`livetrack.sim.marshals`)."""

    at_ms: int
    kind: str  # "gun" | "read" | "judge"
    race: str = ""
    wave: str = ""
    read: dict[str, object] | None = None


def _finish_estimate(race: Race, rng: random.Random) -> float:
    length = race.course.length_m
    if length <= 1700:
        median, sigma, floor = _PACE["mile"]
    elif length <= 3000:
        median, sigma, floor = _PACE["fun"]
    else:
        # Riegel from the mile: backward runners slow more than forward ones over distance.
        median = _PACE["mile"][0] * (length / 1609.34) ** 1.1
        sigma, floor = 0.25, 415.0 * (length / 1609.34) ** 1.08
    return max(floor, median * math.exp(rng.gauss(0, sigma)))


def plan(
    event: Event,
    participants: list[ParticipantRecord],
    guns: dict[str, int],
    seed: int = 11,
    miss_rate: float = 0.03,
    double_rate: float = 0.3,
) -> list[Action]:
    """Every gun and read of the day in race-time order (``guns``: race id → gun epoch ms)."""
    rng = random.Random(seed)
    actions: list[Action] = []
    seqs: dict[str, int] = {}

    def read(reader: str, point: str, chip: str, t: int) -> None:
        seqs[reader] = seqs.get(reader, 0) + 1
        body = {"reader": reader, "point": point, "chip": chip, "time": t, "seq": seqs[reader]}
        actions.append(Action(t, "read", read=body))

    for race_id, gun in guns.items():
        race = event.races[race_id]
        for w in race.waves:
            actions.append(Action(gun + int(w.offset_s * 1000), "gun", race_id, w.id))
    points_for = {
        cp: [p for p in event.points.values() if cp in p.checkpoints]
        for cp in event.checkpoint_ids()
    }
    for p in participants:
        if p.race not in guns or rng.random() < 0.02:  # a few never start
            continue
        race = event.races[p.race]
        wave_start = guns[p.race] + int(race.wave(p.wave).offset_s * 1000)
        start = wave_start + int(rng.uniform(1, 4 + 0.05 * int(p.bib) % 25) * 1000)
        total = _finish_estimate(race, rng)
        fade = rng.gauss(0.08, 0.05)
        stops = rng.random() < 0.02  # drops out part way
        cps = race.course.checkpoints
        length = race.course.length_m
        if race.kind == "relay":
            _relay_reads(race, p, start, rng, points_for, read, miss_rate)
            continue
        base_speed = length / total
        elapsed = 0.0
        prev_d = 0.0
        chip = p.chips[0]
        for i, cp in enumerate(cps):
            if i:
                seg = cp.distance_m - prev_d
                frac = cp.distance_m / length
                speed = base_speed / (1 + fade * (frac**2 - 0.33)) * math.exp(rng.gauss(0, 0.03))
                elapsed += seg / speed
                prev_d = cp.distance_m
                if stops and i == len(cps) - 1:
                    break
            t = start + int(elapsed * 1000)
            for tp in points_for[cp.id]:
                if tp.role == "main" and rng.random() < miss_rate:
                    continue
                if tp.role == "backup" and rng.random() < 0.05:
                    continue
                reader = f"mat-{tp.id}"
                jitter = 0 if tp.role == "main" else rng.randint(50, 400)
                read(reader, tp.id, chip, t + jitter)
                if rng.random() < double_rate:
                    read(reader, tp.id, chip, t + jitter + rng.randint(300, 2500))
        if p.race == "tenk" and "hall" in {c.id for c in cps}:
            # The 10K crosses the finish line at halfway: the finish mat sees it; it must not count.
            half = start + int((length / 2) / base_speed * 1000)
            read("mat-finish", "finish", chip, half)
    actions.sort(key=lambda a: (a.at_ms, a.kind != "gun"))
    return actions


def _relay_reads(
    race: Race,
    p: ParticipantRecord,
    start: int,
    rng: random.Random,
    points_for: dict[str, list[TimingPoint]],
    read: Callable[[str, str, str, int], None],
    miss_rate: float,
) -> None:
    """A relay team's reads: each leg's runner carries their own chip from the previous
    handover to the next; the outgoing runner is often read crossing the handover mat too."""
    cps = race.course.checkpoints
    ends = [*race.handovers, cps[-1].id]
    dist = {cp.id: cp.distance_m for cp in cps}
    t = start
    prev = 0.0
    for tp in points_for[cps[0].id]:
        read(f"mat-{tp.id}", tp.id, p.chips[0], start)
    for leg, end in enumerate(ends):
        seg = dist[end] - prev
        median = _PACE["mile"][0] * (seg / 1609.34) ** 1.1
        t += int(max(seg / 3.6, median * math.exp(rng.gauss(0, 0.22))) * 1000)
        prev = dist[end]
        for tp in points_for[end]:
            if tp.role == "main" and rng.random() < miss_rate:
                continue
            reader = f"mat-{tp.id}"
            jitter = 0 if tp.role == "main" else rng.randint(50, 400)
            read(reader, tp.id, p.chips[leg], t + jitter)
            if leg + 1 < len(ends) and rng.random() < 0.5:
                read(reader, tp.id, p.chips[leg + 1], t + jitter + rng.randint(500, 3000))


async def play(
    url: str,
    reader_token: str,
    actions: list[Action],
    *,
    timer_token: str | None = None,
    marshal_tokens: dict[str, str] | None = None,
    speed: float = 1.0,
    batch_ms: int = 250,
    clock: Callable[[], float] | None = None,
    client: httpx.AsyncClient | None = None,
) -> dict[str, int]:
    """Send ``actions`` to the server at ``url``, ``speed`` times faster than real time.

    Reads due within one ``batch_ms`` window go in one POST; a failed POST is retried (the
    server dedups by key), so nothing is lost to a network blip. A judgement is posted with
    ``marshal_tokens[point]`` (skipped without one), after the reads before it."""
    if not actions:
        return {"posted": 0}
    loop = asyncio.get_running_loop()
    now = clock or loop.time
    t0_race = actions[0].at_ms
    t0_wall = now()
    own = client is None
    http = client or httpx.AsyncClient(base_url=url, timeout=30)
    sent = {"reads": 0, "guns": 0, "judgements": 0, "accepted": 0, "duplicate": 0, "rejected": 0}
    try:
        i = 0
        while i < len(actions):
            due = actions[i].at_ms
            wait = t0_wall + (due - t0_race) / 1000 / speed - now()
            if wait > 0:
                await asyncio.sleep(wait)
            window_end = due + int(batch_ms * speed)
            batch: list[dict[str, object]] = []
            while i < len(actions) and actions[i].at_ms <= window_end and len(batch) < 1000:
                a = actions[i]
                if a.kind == "gun":
                    if batch:
                        break
                    if timer_token:
                        await _post(
                            http, f"/api/v1/races/{a.race}/gun", timer_token,
                            {"time": a.at_ms, "wave": a.wave},
                        )  # fmt: skip
                        sent["guns"] += 1
                    i += 1
                    continue
                if a.kind == "judge":
                    if batch:
                        break
                    assert a.read is not None
                    token = (marshal_tokens or {}).get(str(a.read["point"]))
                    if token:
                        await _post(http, "/api/v1/judgements", token, [a.read])
                        sent["judgements"] += 1
                    i += 1
                    continue
                assert a.read is not None
                batch.append(a.read)
                i += 1
            if batch:
                answer = await _post(http, "/api/v1/reads", reader_token, batch)
                sent["reads"] += len(batch)
                for k in ("accepted", "duplicate", "rejected"):
                    value = answer.get(k, 0)
                    sent[k] += value if isinstance(value, int) else 0
    finally:
        if own:
            await http.aclose()
    return sent


async def _post(http: httpx.AsyncClient, path: str, token: str, body: object) -> dict[str, object]:
    headers = {"authorization": f"Bearer {token}"}
    for attempt in range(8):
        try:
            r = await http.post(path, json=body, headers=headers)
        except httpx.TransportError as exc:
            log.warning("POST %s failed (%s); retrying", path, exc)
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
            continue
        if r.status_code >= 500:
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
            continue
        if r.status_code >= 400 and r.status_code not in (409, 422):
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:200]}")
        data = r.json()
        return data if isinstance(data, dict) else {}
    raise RuntimeError(f"POST {path}: gave up after 8 attempts")

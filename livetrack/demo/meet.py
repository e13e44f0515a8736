"""The demo's championship meet: a backward 100 m in heats and a final.

The timer draws the heats over the timer API; then, as each heat is run, the demo plays the
photo-finish system: it writes that heat's FinishLynx ``.lif`` file into the folder the
server watches (``Settings.lif_dir``), as a camera's PC would, and the server's watcher
imports it. When the last heat's file is in, the server draws the final by itself; the demo
reads the final's lanes back and writes the final's file a little later. Started again on the
same log it carries on: heats whose results the log holds are not run again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from pathlib import Path
from typing import Any

import httpx

from livetrack.domain.event import Event
from livetrack.domain.records import ParticipantRecord

log = logging.getLogger("livetrack.demo")

RACE = "b100"
#: Entrants of the demo's 100 m, numbered from this bib on.
FIRST_BIB = 901
ENTRANTS = 22
#: Race time (ms) from the demo's start to the first heat, between heats, and to the final.
FIRST_HEAT_MS = 120_000
HEAT_GAP_MS = 60_000
FINAL_GAP_MS = 120_000

_FIRST = (
    "Ada",
    "Ben",
    "Cara",
    "Dev",
    "Ema",
    "Finn",
    "Gus",
    "Hana",
    "Ivo",
    "Jess",
    "Kit",
    "Lena",
    "Max",
    "Nia",
    "Omar",
    "Pia",
    "Quin",
    "Rosa",
    "Sol",
    "Tess",
    "Uma",
    "Vic",
)
_LAST = (
    "Ashworth",
    "Barlow",
    "Crompton",
    "Dewhurst",
    "Entwistle",
    "Fairclough",
    "Greenhalgh",
    "Haworth",
    "Ingham",
    "Jolley",
    "Kenyon",
    "Lomax",
    "Mather",
    "Nuttall",
    "Ormerod",
    "Pilling",
    "Quayle",
    "Rostron",
    "Schofield",
    "Tattersall",
    "Unsworth",
    "Whittaker",
)
_CLUBS = ("Salford Harriers", "Sale Harriers", "Stockport Harriers", "Manchester AC")


def entrants(event: Event, seed: int = 100) -> list[ParticipantRecord]:
    """The 100 m's entrants with their declared entry times (none when the event has no
    such race)."""
    if RACE not in event.races:
        return []
    rng = random.Random(seed)
    out = []
    for i in range(ENTRANTS):
        bib = FIRST_BIB + i
        out.append(
            ParticipantRecord(
                bib=str(bib),
                race=RACE,
                first_name=_FIRST[i],
                last_name=_LAST[i],
                chips=(f"LT{bib:05d}",),
                gender="MF"[i % 2],
                age=rng.randint(18, 45),
                club=_CLUBS[i % len(_CLUBS)],
                entry_ms=14_600 + rng.randint(0, 40) * 100,
            )
        )
    return out


def lif_text(
    event_no: int,
    round_no: int,
    heat: int,
    title: str,
    rows: list[dict[str, Any]],
    rng: random.Random,
    people: dict[str, ParticipantRecord],
    start: str,
) -> str:
    """A heat's ``.lif`` file as FinishLynx writes it: a header line, then one line an
    athlete in finishing order (DNF last)."""
    wind = f"{rng.uniform(-1.5, 2.0):+.1f}"
    timed = []
    for r in rows:
        p = people.get(r["bib"])
        base = p.entry_ms if p is not None and p.entry_ms else 16_000
        ms = int(base * rng.uniform(0.975, 1.035))
        dnf = rng.random() < 0.04
        timed.append((dnf, ms, r, rng.randint(125, 210)))
    timed.sort(key=lambda t: (t[0], t[1]))
    lines = [f"{event_no},{round_no},{heat},{title},{wind},m/s,LYNX,,,100,{start}"]
    place = 0
    for dnf, ms, r, react in timed:
        p = people.get(r["bib"])
        who = f"{p.last_name},{p.first_name},{p.club}" if p is not None else ",,"
        if dnf:
            lines.append(f"DNF,{r['bib']},{r['lane']},{who},DNF,,,0.{react}")
            continue
        place += 1
        t = f"{ms // 1000}.{ms % 1000:03d}"
        lines.append(f"{place},{r['bib']},{r['lane']},{who},{t},,{t},0.{react}")
    return "\r\n".join(lines) + "\r\n"


def write_atomically(folder: Path, name: str, text: str) -> Path:
    """Write ``name`` in ``folder`` the way a results PC should: whole, then renamed."""
    part = folder / f".{name}.part"
    part.write_text(text, "latin-1")
    final = folder / name
    os.replace(part, final)
    return final


async def _rounds(http: httpx.AsyncClient) -> dict[str, Any]:
    r = await http.get(f"/api/v1/rounds/{RACE}")
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


async def play(
    base: str, timer_token: str, folder: Path, event: Event, speed: float,
    people: list[ParticipantRecord], seed: int = 21,
) -> None:  # fmt: skip
    """Run the meet into the server at ``base`` (see the module doc)."""
    race = event.races.get(RACE)
    if race is None or race.rounds is None:
        return
    config = race.rounds
    rng = random.Random(seed)
    by_bib = {p.bib: p for p in people if p.race == RACE}
    headers = {"authorization": f"Bearer {timer_token}"}

    async def pause(race_ms: int) -> None:
        await asyncio.sleep(race_ms / 1000 / speed)

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await pause(FIRST_HEAT_MS // 2)
        first = config.rounds[0]
        drawn = await http.post(
            f"/api/v1/rounds/{RACE}/draw",
            headers=headers,
            json={"id": "demo-draw-heats", "round": first.id},
        )
        if drawn.status_code != 200 and not (await _rounds(http))["rounds"][0]["drawn"]:
            log.warning("the demo could not draw the heats: %s", drawn.text)
            return
        for i, rnd in enumerate(config.rounds):
            view = await _rounds(http)
            while not view["rounds"][i]["drawn"]:  # a later round: the server draws it
                await asyncio.sleep(0.2)
                view = await _rounds(http)
            await pause(FIRST_HEAT_MS // 2 if i == 0 else FINAL_GAP_MS)
            for heat in view["rounds"][i]["heats"]:
                if heat["done"]:
                    continue  # a restart: the log has it
                start = _clock(event)
                title = f"Backward 100m {rnd.name}" + (
                    "" if len(view["rounds"][i]["heats"]) == 1 else f" Heat {heat['number']}"
                )
                text = lif_text(
                    config.lynx_event,
                    rnd.number,
                    heat["number"],
                    title,
                    heat["rows"],
                    rng,
                    by_bib,
                    start,
                )
                name = f"{config.lynx_event:03d}-{rnd.number}-{heat['number']:02d}.lif"
                write_atomically(folder, name, text)
                log.info("photo finish: wrote %s", name)
                await pause(HEAT_GAP_MS)


def _clock(event: Event) -> str:
    from datetime import datetime

    return datetime.now(event.tz).strftime("%H:%M:%S.000")

"""Random, extreme and hostile values posted to every write endpoint with every kind of token:
no answer is a 5xx, every page still renders, and still does after a restart.

The endpoints and pages are read from the app's own routes, so a new one is covered as soon as
it exists. One server serves all the examples (over a real socket); the log it leaves is then
served again by a fresh server, as after a crash or a redeploy."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from conftest import PATIENCE_S
from factory import GUN, event, person
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server import Running, serve, tokens_for

from livetrack.domain.records import Record
from livetrack.web.auth import issue

PEOPLE = [person("1"), person("2"), person("3", race="loop"), person("4", race="chip")]
EV = event()
BIBS = [p.bib for p in PEOPLE]
RACES = list(EV.races)
POINTS = list(EV.points) + [cp for c in EV.courses.values() for cp in (x.id for x in c.checkpoints)]
#: Paths that hold a connection open (not a page).
STREAMING = {"/api/v1/link"}


def all_tokens() -> tuple[dict[str, str], list[Record]]:
    toks, records = tokens_for(("half", "finish"))
    toks["bound reader"], rec = issue("reader", "finish", readers=("mat-x",))
    records.append(rec)
    toks["unlabelled marshal"], rec = issue("marshal", "lap1")
    records.append(rec)
    return toks, records


TOKENS = all_tokens()


def routes(app: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """(method, path) of every write route, and the path of every page (GET)."""
    writes: list[tuple[str, str]] = []
    pages: list[str] = []

    def walk(items: Any, prefix: str = "") -> None:
        for r in items:
            methods = getattr(r, "methods", None)
            path = prefix + getattr(r, "path", "")
            if methods is None and hasattr(r, "routes"):
                walk(r.routes, path)
            elif methods:
                for m in sorted(methods - {"HEAD"}):
                    if m == "GET":
                        pages.append(path)
                    else:
                        writes.append((m, path))

    walk(app.router.routes)
    return writes, pages


def fill(path: str, values: dict[str, str]) -> str:
    for name, raw in values.items():
        value = quote(raw.encode("utf-8", "surrogatepass"), safe="")
        path = path.replace("{" + name + "}", value).replace("{" + name + ":path}", value)
    return path


HOSTILE_TEXT = st.sampled_from(
    ["", " ", "\x00", "\u202e", "<img src=x onerror=alert(1)>", "'; DROP TABLE records; --",
     "../../etc/passwd", "%00", "a" * 5000, "💥" * 70, "null", "NaN", "\ud800"]
)  # fmt: skip
EXTREME_INT = st.sampled_from(
    [0, -1, 1, 2**31, 2**63 - 1, -(2**63), 2**64, 10**30, -(10**30), 10**11, GUN, GUN - 1]
)
TIMES = st.one_of(
    EXTREME_INT,
    st.integers(GUN - 3 * 86_400_000, GUN + 3 * 86_400_000),
    st.sampled_from(
        ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", "2026-06-14T10:05:00+01:00",
         "2026-06-14T10:05:00", "2026-02-30T10:00:00Z", "yesterday", "10:05:00", "1e400"]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
)  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), EXTREME_INT, st.integers(), st.floats(), st.text(max_size=40),
    HOSTILE_TEXT,
)  # fmt: skip
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELD = {
    "id": st.one_of(st.builds(lambda: str(uuid.uuid4())), HOSTILE_TEXT, SCALARS),
    "bib": st.one_of(st.sampled_from(BIBS), HOSTILE_TEXT, SCALARS),
    "point": st.one_of(st.sampled_from(POINTS), HOSTILE_TEXT, SCALARS),
    "reader": st.one_of(st.sampled_from(["mat-x", "r1", "slow-clock"]), HOSTILE_TEXT),
    "chip": st.one_of(st.sampled_from([f"C{b}" for b in BIBS]), HOSTILE_TEXT, SCALARS),
    "time": TIMES,
    "seq": st.one_of(st.none(), EXTREME_INT, st.integers(0, 20), SCALARS),
    "session": st.one_of(st.just("boot-2"), HOSTILE_TEXT, SCALARS),
    "kind": st.one_of(st.sampled_from(["void", "edit", "add", "undo"]), SCALARS),
    "status": st.one_of(st.sampled_from(["ok", "DNS", "DNF", "DQ"]), SCALARS),
    "reason": st.one_of(st.just("photo"), HOSTILE_TEXT, SCALARS),
    "target": st.one_of(st.sampled_from(["gun:mile::x", "sighting:x", "status:x"]), HOSTILE_TEXT),
    "wave": st.one_of(st.sampled_from(["", "A", "B"]), HOSTILE_TEXT, SCALARS),
    "confirm": st.one_of(st.booleans(), SCALARS),
    "endpoint": st.one_of(st.just("https://push.example/x"), HOSTILE_TEXT, SCALARS),
    "keys": JSON,
}
ITEM = st.fixed_dictionaries(
    {},
    optional={**FIELD, "extra": JSON},  # type: ignore[arg-type]
)
BODY = st.one_of(
    ITEM,
    st.lists(ITEM, max_size=6),
    st.fixed_dictionaries({"reads": st.lists(ITEM, max_size=4)}),
    st.fixed_dictionaries({"sightings": st.lists(ITEM, max_size=4)}),
    JSON,
)
#: For each write route: the token that may use it, and the fields of one item of its body
#: (a list of items where the route takes one). Routes not listed get generic bodies.
SHAPES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "/api/v1/reads": ("reader", ("reader", "point", "chip", "time", "seq", "session"), True),
    "/api/v1/races/{race}/gun": ("timer", ("time", "wave"), False),
    "/api/v1/sightings": ("marshal:half", ("id", "point", "bib", "time"), True),
    "/api/v1/sweeps": ("marshal:half", ("id", "point", "time"), False),
    "/api/v1/corrections": (
        "timer",
        ("id", "kind", "bib", "point", "time", "target", "reason", "confirm"),
        False,
    ),
    "/api/v1/status": ("timer", ("id", "bib", "status", "reason"), False),
    "/api/v1/assign": ("timer", ("id", "chip", "bib"), False),
    "/api/v1/push/subscription": ("", ("endpoint", "keys", "bib", "checkpoint"), False),
}
FIELD.setdefault("checkpoint", FIELD["point"])
#: Times that must never reach the log (and pages that must survive them if they did).
FAR_TIMES = st.sampled_from(
    ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", 10**11, -(2**63), 2**63 - 1,
     GUN - 86_400_000 * 30, GUN + 86_400_000 * 30]
)  # fmt: skip


def shaped(path: str) -> st.SearchStrategy[Any]:
    """Bodies that look right for ``path``: every field present, each valid or hostile."""
    _, names, many = SHAPES[path]
    fields = {n: FIELD[n] for n in names}
    if "time" in fields:
        fields["time"] = st.one_of(FAR_TIMES, TIMES)
    item = st.fixed_dictionaries(fields)
    return st.lists(item, min_size=1, max_size=4) if many else item


RAW = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[" * 5000, b'{"time": 1e999}', b"\xff\xfe", b"[NaN]"]),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, Path]]:
    db = tmp_path_factory.mktemp("property") / "log.db"
    with serve(EV, db, PEOPLE, tokens=TOKENS) as srv:
        with httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http:
            timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
            for race in RACES:
                http.post(f"/api/v1/races/{race}/gun", json={"time": GUN}, headers=timer)
        yield srv, db


def pages_of(srv: Running) -> list[str]:
    _, pages = routes(srv.app)
    out: list[str] = []
    for path in pages:
        if path in STREAMING or path.startswith("/static"):
            continue
        for race in [*RACES, "nope"]:
            for bib in [*BIBS, "404"]:
                out.append(fill(path, {"race": race, "bib": bib, "team": "x", "name": race}))
    return list(dict.fromkeys(out))


def every_page_renders(srv: Running) -> None:
    with httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http:
        srv.settle()
        for path in pages_of(srv):
            for auth in (None, srv.tokens["timer"]):
                headers = {"authorization": f"Bearer {auth}"} if auth else {}
                r = http.get(path, headers=headers)
                assert r.status_code < 500, f"GET {path}: {r.status_code} {r.text[:300]}"


@settings(
    max_examples=100,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_writes_never_get_a_5xx(server: tuple[Running, Path], data: st.DataObject) -> None:
    srv, _ = server
    writes, _ = routes(srv.app)
    method, path = data.draw(st.sampled_from(writes), label="route")
    race = data.draw(st.one_of(st.sampled_from(RACES), HOSTILE_TEXT), label="race")
    url = fill(path, {"race": race, "bib": data.draw(st.sampled_from(BIBS)), "name": race})
    proper = SHAPES[path][0] if path in SHAPES else None
    anyone = st.sampled_from([None, "lt_bogus", *srv.tokens])
    who = data.draw(st.one_of(st.just(proper), anyone) if proper else anyone, label="token")
    token = srv.tokens.get(who or "", who)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    form = data.draw(st.sampled_from(["shaped", "shaped", "generic", "raw"]), label="form")
    if form == "raw":
        content = data.draw(RAW, label="raw body")
    else:
        body = data.draw(
            shaped(path) if form == "shaped" and path in SHAPES else BODY, label="body"
        )
        content = json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
    headers["content-type"] = "application/json"
    with httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http:
        r = http.request(method, url, content=content, headers=headers)
    assert r.status_code < 500, f"{method} {url} as {who}: {r.status_code} {r.text[:300]}"


def test_every_page_renders_after_the_hostile_writes_and_after_a_restart(
    server: tuple[Running, Path],
) -> None:
    srv, db = server
    every_page_renders(srv)
    with serve(EV, db, PEOPLE, tokens=TOKENS) as again:
        every_page_renders(again)

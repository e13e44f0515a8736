"""Supporters' push alerts: where they stand, and their Web Push subscription.

- ``GET /push-sw.js``: the service worker that shows pushed alerts (scope ``/``).
- ``GET /api/v1/push``: the server's VAPID public key (the page's ``applicationServerKey``),
  the kinds of alert and the lead times a supporter may choose; 404 when push is off.
- ``GET /api/v1/runners/{bib}/where?checkpoint=ID`` or ``?distance=METRES``: the runner's
  course, and when they are expected at that spot (80% range), or that they have passed it.
  ``stands`` is false (and ``checkpoints`` empty) for a sprint run in rounds on a track:
  there is nowhere to stand along it.
- ``PUT /api/v1/push/subscription``: ``{"subscription": {"endpoint", "keys": {"p256dh",
  "auth"}}, "follows": [{"bib", "checkpoint" | "distance_m", "lead_s"}], "kinds": [...]}``
  stores (or replaces) the subscription; with no follows left it is removed.
- ``DELETE /api/v1/push/subscription``: ``{"endpoint"}``: removes it.

Nothing else about the supporter is asked or kept.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any
from urllib.parse import urlsplit

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from livetrack.domain.alerts import (
    DEFAULT_LEAD_S,
    KINDS,
    LEAD_CHOICES_S,
    Spot,
    eta_at,
    has_spots,
    spot_distance,
)
from livetrack.ingest.reads import BodyError
from livetrack.service.alerting import PushService
from livetrack.service.push import unb64url
from livetrack.service.runtime import Runtime, clock
from livetrack.store.subscriptions import MAX_RUNNERS, Follow, Subscription
from livetrack.web.guards import read_body
from livetrack.web.render import STATIC
from livetrack.web.views import fmt_clock

MAX_BODY = 16_384
MIN_LEAD_S, MAX_LEAD_S = 30, 1800


def _push(request: Request) -> PushService:
    push: PushService | None = getattr(request.app.state, "push", None)
    if push is None:
        raise HTTPException(404, "push alerts are not enabled on this server")
    return push


async def worker(request: Request) -> Response:
    resp = FileResponse(STATIC / "push-sw.js", media_type="text/javascript")
    resp.headers["cache-control"] = "no-cache"
    resp.headers["service-worker-allowed"] = "/"
    return resp


async def config(request: Request) -> Response:
    push = _push(request)
    return JSONResponse(
        {
            "key": push.sender.public_key,
            "kinds": list(KINDS),
            "leads_s": list(LEAD_CHOICES_S),
            "lead_s": DEFAULT_LEAD_S,
        }
    )


def where(request: Request) -> Response:
    rt: Runtime = request.state.runtime
    bib = request.path_params["bib"]
    r = rt.state.runners.get(bib)
    if r is None:
        raise HTTPException(404, f"No runner with bib {bib!r}.")
    cps = r.race.course.checkpoints
    stands = has_spots(r.race)
    out: dict[str, Any] = {
        "bib": bib,
        "race": r.race.id,
        "stands": stands,
        "length_m": cps[-1].distance_m,
        "checkpoints": [
            {"id": c.id, "name": c.name, "distance_m": c.distance_m}
            for c in (cps[1:] if stands else ())
        ],
        "eta": None,
    }
    if not stands:
        return JSONResponse(out)
    q = request.query_params
    spot = _spot(q.get("checkpoint", ""), q.get("distance", ""))
    if spot is None:
        return JSONResponse(out)
    if spot_distance(r.race, spot) is None:
        raise HTTPException(400, f"that spot is not on the course of {r.race.name}")
    now = clock(rt)
    eta = eta_at(rt.state, r, spot)
    if eta is not None:
        out["eta"] = {
            "label": eta.label,
            "passed": eta.passed,
            "at_ms": eta.at_ms,
            "clock": fmt_clock(rt.state, eta.at_ms)[:5],
            "low": fmt_clock(rt.state, eta.low_ms)[:5],
            "high": fmt_clock(rt.state, eta.high_ms)[:5],
            "in_min": max(0, round((eta.at_ms - now) / 60_000)),
        }
    return JSONResponse(out)


def _spot(checkpoint: str, distance: str) -> Spot | None:
    if checkpoint:
        return Spot(checkpoint[:40], None)
    if distance:
        try:
            d = float(distance)
        except ValueError:
            raise HTTPException(400, f"distance must be metres, not {distance[:20]!r}") from None
        if not d == d or d <= 0:  # NaN or not along the course
            raise HTTPException(400, "distance must be a positive number of metres")
        return Spot("", d)
    return None


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await read_body(request, MAX_BODY)
    except BodyError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "body must be a JSON object")
    return data


def check_endpoint(endpoint: object) -> str:
    """A push service URL: https (http only to this machine, for a local push service)."""
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > 1024:
        raise HTTPException(400, "subscription.endpoint must be a URL of at most 1024 characters")
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise HTTPException(400, "subscription.endpoint must be an https URL")
    if not host:
        raise HTTPException(400, "subscription.endpoint has no host")
    return endpoint


def check_keys(keys: object) -> tuple[str, str]:
    if not isinstance(keys, dict):
        raise HTTPException(400, "subscription.keys must be an object with p256dh and auth")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    try:
        point = unb64url(p256dh) if isinstance(p256dh, str) else b""
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise HTTPException(
            400, "subscription.keys.p256dh must be a P-256 public key (65 bytes, base64url)"
        ) from None
    try:
        secret = unb64url(auth) if isinstance(auth, str) else b""
    except ValueError:
        secret = b""
    if len(secret) != 16:
        raise HTTPException(400, "subscription.keys.auth must be 16 bytes, base64url")
    assert isinstance(p256dh, str) and isinstance(auth, str)
    return p256dh, auth


def check_follows(rt: Runtime, follows: object) -> tuple[Follow, ...]:
    if not isinstance(follows, list):
        raise HTTPException(400, "follows must be a list")
    if len(follows) > MAX_RUNNERS:
        raise HTTPException(400, f"follows: at most {MAX_RUNNERS} runners")
    out: list[Follow] = []
    seen: set[str] = set()
    for i, f in enumerate(follows):
        where = f"follows[{i}]"
        if not isinstance(f, dict) or not isinstance(f.get("bib"), str):
            raise HTTPException(400, f"{where} must be an object with a bib")
        bib = f["bib"]
        r = rt.state.runners.get(bib)
        if r is None:
            raise HTTPException(400, f"{where}: no runner with bib {bib[:20]!r}")
        if bib in seen:
            raise HTTPException(400, f"{where}: bib {bib!r} is listed twice")
        seen.add(bib)
        lead = f.get("lead_s", DEFAULT_LEAD_S)
        if (
            not isinstance(lead, int)
            or isinstance(lead, bool)
            or not (MIN_LEAD_S <= lead <= MAX_LEAD_S)
        ):
            raise HTTPException(
                400, f"{where}.lead_s must be whole seconds from {MIN_LEAD_S} to {MAX_LEAD_S}"
            )
        cp, dist = f.get("checkpoint") or "", f.get("distance_m")
        if not isinstance(cp, str):
            raise HTTPException(400, f"{where}.checkpoint must be a checkpoint id")
        if dist is not None and (not isinstance(dist, int | float) or isinstance(dist, bool)):
            raise HTTPException(400, f"{where}.distance_m must be metres")
        if cp and dist is not None:
            raise HTTPException(400, f"{where}: give a checkpoint or a distance, not both")
        spot = Spot(cp, None) if cp else Spot("", float(dist)) if dist is not None else None
        if spot is not None and not has_spots(r.race):
            # nowhere to stand along a sprint in rounds: a spot a page kept from before is
            # dropped, the runner is still followed (their "finished" alert stays)
            cp, dist, spot = "", None, None
        if spot is not None and spot_distance(r.race, spot) is None:
            raise HTTPException(400, f"{where}: that spot is not on the course of {r.race.name}")
        out.append(Follow(bib, cp, float(dist) if dist is not None else None, lead))
    return tuple(out)


async def put_subscription(request: Request) -> Response:
    push = _push(request)
    rt: Runtime = request.state.runtime
    data = await _json(request)
    sub = data.get("subscription")
    if not isinstance(sub, dict):
        raise HTTPException(400, "subscription must be the browser's PushSubscription as JSON")
    endpoint = check_endpoint(sub.get("endpoint"))
    p256dh, auth = check_keys(sub.get("keys"))
    follows = check_follows(rt, data.get("follows", []))
    kinds = data.get("kinds", list(KINDS))
    if not isinstance(kinds, list) or not all(k in KINDS for k in kinds):
        raise HTTPException(400, f"kinds must be a list of {', '.join(KINDS)}")
    record = Subscription(endpoint, p256dh, auth, follows, tuple(kinds), clock(rt))
    if not follows:
        await push.store.remove(record.id)
        return JSONResponse({"id": record.id, "follows": 0, "removed": True})
    await push.store.put(record)
    return JSONResponse({"id": record.id, "follows": len(follows)})


async def delete_subscription(request: Request) -> Response:
    push = _push(request)
    data = await _json(request)
    endpoint = check_endpoint(data.get("endpoint"))
    removed = await push.store.remove(Subscription(endpoint, "", "").id)
    return JSONResponse({"removed": removed})


ROUTES = [
    Route("/push-sw.js", worker),
    Route("/api/v1/push", config),
    Route("/api/v1/runners/{bib}/where", where),
    Route("/api/v1/push/subscription", put_subscription, methods=["PUT"]),
    Route("/api/v1/push/subscription", delete_subscription, methods=["DELETE"]),
]

"""Request parsing and guards shared by the HTTP handlers.

Every write goes through :func:`guard` (same-origin, then the token's role and checkpoint, as
:func:`livetrack.web.auth.require`), reads its body with :func:`read_body` or
:func:`json_body` (size-limited), checks each field with :func:`text`, :func:`ident`,
:func:`when` or :func:`checkpoint` (an :class:`Invalid` says what is wrong: a 422), and stores
with :func:`store`, which answers only once the fold has the records (read-your-writes).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from livetrack.domain import window
from livetrack.domain.records import Record, TokenRecord
from livetrack.domain.state import RaceState
from livetrack.ingest.reads import MAX_BODY_BYTES, BodyError, parse_time
from livetrack.service.runtime import Runtime
from livetrack.web.auth import identity, require, same_origin

log = logging.getLogger("livetrack.web")

#: At most this many items in one write request.
MAX_ITEMS = 500
_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


#: How long a request's whole body may take to arrive (seconds; ``app.state.body_timeout_s``
#: overrides it). A body still arriving then is answered 408 and dropped.
BODY_TIMEOUT_S = 10.0


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes without reading them all,
    and (408) a body that has not all arrived within :data:`BODY_TIMEOUT_S`. A client that
    goes away meanwhile raises :class:`~starlette.requests.ClientDisconnect` (answered by
    :func:`client_left`)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyError(f"body is {declared} bytes; the limit is {limit}", 413)
    timeout = float(getattr(request.app.state, "body_timeout_s", BODY_TIMEOUT_S))
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyError(f"body is over the limit of {limit} bytes", 413)
                chunks.append(chunk)
    except TimeoutError:
        raise BodyError(
            f"the body did not arrive within {timeout:g} s ({size} bytes came)", 408
        ) from None
    return b"".join(chunks)


async def client_left(request: Request, exc: Exception) -> Response:
    """A client that went away before its request was read: nothing to answer, nothing
    wrong here (a phone lost its signal), so a debug line rather than an error."""
    log.debug("%s %s: the client went away before its body arrived", request.method,
              request.url.path)  # fmt: skip
    return Response(status_code=400)


# -- access --------------------------------------------------------------------------------


def runtime(conn: HTTPConnection) -> Runtime:
    rt: Runtime = conn.state.runtime
    return rt


def guard(request: Request, roles: tuple[str, ...], point: str = "") -> TokenRecord:
    """The caller's grant for a write: 403 for a cross-site ``Origin``, else as
    :func:`livetrack.web.auth.require` (401 without a valid token, 403 wrong role/point)."""
    if not same_origin(request):
        raise HTTPException(403, "cross-site request refused: Origin is not this server")
    return require(request, runtime(request).state, roles, point)


def who(grant: TokenRecord) -> str:
    return identity(grant)


class Invalid(ValueError):
    """A request body that says what is wrong with it (422)."""


async def json_body(request: Request, limit: int = 256_000) -> Any:
    try:
        raw = await read_body(request, limit)
    except BodyError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    try:
        return orjson.loads(raw)  # depth-limited: a deeply nested body is a 400, not a crash
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"body is not JSON: {exc}") from None


async def json_object(request: Request, limit: int = 256_000) -> dict[str, Any]:
    """The request's body, which must be one JSON object (else a 422 saying so)."""
    data = await json_body(request, limit)
    if not isinstance(data, dict):
        raise HTTPException(422, "body must be a JSON object")
    return data


def items_of(data: Any, name: str) -> list[dict[str, Any]]:
    """A JSON array of objects, or ``{name: [...]}``, or one object."""
    if isinstance(data, dict) and isinstance(data.get(name), list):
        data = data[name]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise Invalid(f"body must be a non-empty JSON array of {name}")
    if len(data) > MAX_ITEMS:
        raise Invalid(f"at most {MAX_ITEMS} {name} per request")
    if not all(isinstance(d, dict) for d in data):
        raise Invalid(f"every one of the {name} must be a JSON object")
    return data


def text(d: dict[str, Any], key: str, limit: int, *, required: bool = True) -> str:
    value = d.get(key, "")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Invalid(f"{key}: must be a string")
    value = value.strip()
    if required and not value:
        raise Invalid(f"{key}: required")
    if len(value) > limit:
        raise Invalid(f"{key}: at most {limit} characters")
    if any(ord(c) < 32 for c in value):
        raise Invalid(f"{key}: control characters are not allowed")
    return value


def ident(d: dict[str, Any]) -> str:
    value = d.get("id")
    if not isinstance(value, str) or not _ID.match(value):
        raise Invalid("id: a UUID (8-64 letters, digits, '-' or '_') made by the client")
    return value


def when(d: dict[str, Any], key: str = "time") -> int:
    try:
        return parse_time(d.get(key))
    except ValueError as exc:
        raise Invalid(f"{key}: {exc}") from None


def in_window(rt: Runtime, ms: int, key: str = "time") -> int:
    """``ms`` if it lies in the event's window (:mod:`livetrack.domain.window`), else 422."""
    why = window.outside(rt.event, ms)
    if why:
        raise Invalid(f"{key}: {why}")
    return ms


def passing_time(st: RaceState, bib: str, ms: int, key: str = "time") -> int:
    """``ms`` as a passing of runner ``bib``: in the event's window and not before the
    runner's gun (an unknown bib is left to the fold, which lists it as a problem)."""
    why = window.outside(st.event, ms)
    runner = st.runners.get(bib)
    if not why and runner is not None:
        gun = st.gun_ms(runner.race.id, runner.p.wave)
        why = window.before_gun(gun, ms, runner.race.name)
    if why:
        raise Invalid(f"{key}: {why}")
    return ms


def checkpoint(rt: Runtime, d: dict[str, Any]) -> str:
    point = text(d, "point", 64)
    if point not in rt.event.checkpoint_ids():
        raise Invalid(f"point: no checkpoint {point!r} at this event")
    return point


def invalid(exc: Invalid, index: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": str(exc)}
    if index is not None:
        body["index"] = index
    return JSONResponse(body, status_code=422)


async def store(rt: Runtime, records: list[Record]) -> list[dict[str, Any]]:
    """Append ``records`` and wait until the fold has them (so a reload shows them)."""
    results = await rt.append(records)
    offsets = [r.offset for r in results if r.offset is not None]
    if offsets:
        try:
            await rt.wait_applied(max(offsets))
        except TimeoutError:  # stored all the same: the pages show it once the fold catches up
            log.warning("the fold is over 5 s behind: a stored write is not shown yet")
    return [{"key": r.key, "status": "duplicate" if r.duplicate else "accepted"} for r in results]

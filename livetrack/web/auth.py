"""Bearer tokens by role. Only a token's SHA-256 is ever stored (as a record in the log)."""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from livetrack.domain.records import TokenRecord
from livetrack.domain.state import RaceState

ROLES = ("reader", "marshal", "timer")


def new_token() -> str:
    return "lt_" + secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(
    role: str,
    point: str = "",
    label: str = "",
    at_ms: int = 0,
    readers: tuple[str, ...] = (),
) -> tuple[str, TokenRecord]:
    """A new token and the record that makes it valid once appended to the log. A marshal
    token needs its checkpoint; a reader token may be bound to ``readers`` (ids) and a
    timing ``point``; a timer token takes neither."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == "marshal" and not point:
        raise ValueError("a marshal token needs --point (the checkpoint it may write)")
    if readers and role != "reader":
        raise ValueError("--reader binds reader tokens only")
    if role == "timer" and point:
        raise ValueError("a timer token is for every point: leave out --point")
    token = new_token()
    record = TokenRecord(token_hash(token), role, point, label, False, at_ms, tuple(readers))
    return token, record


def identity(grant: TokenRecord) -> str:
    """Who a token is, as the author of what it writes: its label (else its role) and a
    short, unguessable-from part of its hash, so two tokens never share an author."""
    return f"{grant.label or grant.role} #{grant.token_hash[:6]}"


def reader_refusal(grant: TokenRecord, reader: str, point: str) -> str:
    """Why a reader token may not post a read of ``reader`` at ``point`` ("" if it may)."""
    if grant.role != "reader":
        return ""
    if grant.readers and reader not in grant.readers:
        return f"reader: this token may post for {', '.join(grant.readers)} only, not {reader!r}"
    if grant.point and point != grant.point:
        return f"point: this token may post for {grant.point!r} only, not {point!r}"
    return ""


def bearer(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def lookup(state: RaceState, token: str) -> TokenRecord | None:
    """The live (issued, not revoked) grant for ``token``."""
    record = state.tokens.get(token_hash(token))
    if record is None or record.revoked:
        return None
    return record


def same_origin(conn: HTTPConnection) -> bool:
    """False when the request names an ``Origin`` that is not this server (or ``null``)."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    host = conn.headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()


def require(
    conn: HTTPConnection, state: RaceState, roles: tuple[str, ...], point: str = ""
) -> TokenRecord:
    """The caller's grant; 403 for a cross-site ``Origin``, 401 without a valid token, 403
    with the wrong role or point. ``timer`` may do everything; a ``marshal`` only at its own
    checkpoint."""
    if not same_origin(conn):
        raise HTTPException(403, "cross-site request refused: Origin is not this server")
    token = bearer(conn)
    if token is None:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)")
    grant = lookup(state, token)
    if grant is None:
        follower = getattr(conn.app.state, "follower", None)
        if follower is not None and follower.rebuilding():
            # a public server rebuilding from the finish does not know every token yet
            raise HTTPException(
                503, "this server is catching up with the finish; try again shortly",
                headers={"retry-after": "2"},
            )  # fmt: skip
        raise HTTPException(401, "unknown or revoked token")
    why = refusal(grant, roles, point)
    if why:
        raise HTTPException(403, why)
    return grant


def refusal(grant: TokenRecord, roles: tuple[str, ...], point: str = "") -> str | None:
    """Why ``grant`` may not act where ``roles`` may (at checkpoint ``point``, when given);
    None when it may. ``timer`` may do everything; a ``marshal`` only at its own checkpoint.
    Writes (:func:`require`) and live regions (``Region.refusal``) share this rule."""
    if grant.role != "timer" and grant.role not in roles:
        return f"a {grant.role} token may not do this (needs {'/'.join(roles) or 'timer'})"
    if grant.role == "marshal" and point and grant.point != point:
        return f"this marshal token is for {grant.point!r}, not {point!r}"
    return None

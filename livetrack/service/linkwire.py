"""The frames of the link between a site and the public server that follows it.

The site dials the public server's ``/api/v1/link`` websocket (the public server cannot dial
into the park) with a bearer token of its own. Every frame is a binary message: a JSON object
compressed with zlib. ``t`` names the kind:

public → site
    ``hello``  ``acked`` (the site position of the last record stored, or null), ``acked_key``
               (that record's key, so a site whose log is not the one the public server
               followed starts again from its beginning), ``count`` and ``outbox``.
    ``ack``    ``pos``: every record up to it is durable at the public end; ``outbox``.
    ``writes`` ``items``: ``[[id, [record, ...]], ...]``, writes made at the public end, oldest
               first, for the site to append to its log.
    ``conflict`` ``key``, ``detail``: a record whose key the public server holds with other
               content; nothing of the batch was stored, and the connection closes.
site → public
    ``batch``  ``recs``: ``[[position, record], ...]`` in log order; ``head``, ``site_ms``.
    ``beat``   ``head``, ``site_ms``, ``lag_s``: sent every second, so the public end knows how
               far behind it is and what the site's clock says.
    ``taken``  ``ids``: the writes now in the site's log; ``refused``: ``{id: reason}``.

A record travels as its encoded JSON text, so both ends hold the very same bytes under the same
key. Positions are the site log's offsets, opaque to the public server.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

PATH = "/api/v1/link"
#: Close codes: the public end refused a batch as a conflict, or as malformed.
CONFLICT = 4409
MALFORMED = 4400
REPLACED = 4001


class FrameError(ValueError):
    """A frame that is not a compressed JSON object with a known ``t``."""


def pack(kind: str, **fields: Any) -> bytes:
    return zlib.compress(orjson.dumps({"t": kind, **fields}), 1)


def unpack(data: bytes | str) -> dict[str, Any]:
    if isinstance(data, str):
        raise FrameError("link frames are binary")
    try:
        obj = orjson.loads(zlib.decompress(data))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise FrameError(f"not a compressed JSON frame: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise FrameError("a frame must be a JSON object with a string 't'")
    return obj


def ws_url(upstream: str) -> str:
    """The link's websocket URL on the public server ``upstream`` (http(s):// or ws(s)://)."""
    base = upstream.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        base = "ws://" + base.removeprefix("http://")
    elif not base.startswith(("ws://", "wss://")):
        raise ValueError(f"--upstream must be an http(s):// URL, not {upstream!r}")
    return base + PATH

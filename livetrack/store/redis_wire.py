"""What the Redis log keeps and sends, free of I/O: its Lua scripts, and the reading of
Redis replies and URLs (:mod:`livetrack.store.redis` does the talking)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Take or renew a lease: KEYS[1] the lease, ARGV[1] the holder, ARGV[2] its time to live (ms).
LEASE_LUA: Final = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
#: Give a lease up if ARGV[1] holds it.
RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

#: KEYS[1] = stream, KEYS[2] = idempotency hash; ARGV = token, then key, body pairs.
#: Returns, per pair, the stream id it is stored at, or "" for a duplicate. A key already in
#: the hash whose entry carries this call's token was stored by an earlier attempt of the same
#: call (its reply was lost), so it is reported as stored, not as a duplicate.
APPEND_LUA: Final = """
local stream, index, token = KEYS[1], KEYS[2], ARGV[1]
local out = {}
for i = 2, #ARGV, 2 do
  local key = ARGV[i]
  local id = redis.call('HGET', index, key)
  if id then
    local mine = false
    local entry = redis.call('XRANGE', stream, id, id)
    if entry[1] then
      local f = entry[1][2]
      for j = 1, #f, 2 do
        if f[j] == 'c' and f[j + 1] == token then mine = true end
      end
    end
    if mine then out[#out + 1] = id else out[#out + 1] = '' end
  else
    id = redis.call('XADD', stream, '*', 'k', key, 'b', ARGV[i + 1], 'c', token)
    redis.call('HSET', index, key, id)
    out[#out + 1] = id
  end
end
return out
"""


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def as_text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_entries(reply: Any, stream: str) -> list[tuple[Any, dict[Any, Any]]]:
    """The ``(id, fields)`` pairs of one stream in an ``XREAD`` reply (RESP2 or RESP3)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        for name, entries in reply.items():
            if as_text(name) == stream:
                items = entries[0] if entries and isinstance(entries[0], list) else entries
                return [(sid, dict(f) if not isinstance(f, dict) else f) for sid, f in items]
        return []
    for name, entries in reply:
        if as_text(name) == stream:
            return [(sid, f or {}) for sid, f in entries]
    return []


@dataclass(frozen=True, slots=True)
class UrlOptions:
    """A Redis log's URL: what redis-py connects to, and the options only the log reads."""

    url: str
    stream: str
    wait_replicas: int
    wait_timeout_ms: int
    wait_aof: bool


def parse_url(url: str) -> UrlOptions:
    """Split ``stream``, ``wait_replicas`` (int), ``wait_timeout_ms`` (int) and ``wait_aof``
    (``1``/``true``) off a Redis URL; the rest stays for redis-py."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in ("stream", "wait_replicas", "wait_timeout_ms", "wait_aof"):
            ours[name] = value
        else:
            rest.append((name, value))
    try:
        wait_replicas = int(ours.get("wait_replicas", "0"))
        wait_timeout_ms = int(ours.get("wait_timeout_ms", "1000"))
    except ValueError as exc:
        raise ValueError(f"bad Redis URL {redact(url)!r}: {exc}") from None
    return UrlOptions(
        urlunsplit(parts._replace(query=urlencode(rest))),
        ours.get("stream", ""),
        wait_replicas,
        wait_timeout_ms,
        ours.get("wait_aof", "").lower() in ("1", "true", "yes", "on"),
    )

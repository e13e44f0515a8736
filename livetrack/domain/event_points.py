"""Reading the ``[[timing_point]]`` and ``[[reader]]`` sections of ``EVENT.toml``: where a
read counts (its checkpoints, main or backup) and by which rules, and each reader's protocol,
address and clock. :func:`livetrack.domain.event.parse_event` calls them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from livetrack.domain.event_fields import check_keys, identifier, num, string
from livetrack.domain.model import (
    LISTEN_BY_DEFAULT,
    ConfigError,
    Reader,
    ReadRules,
    TimingPoint,
)


def parse_point(data: Mapping[str, Any], path: str, checkpoint_ids: set[str]) -> TimingPoint:
    """One ``[[timing_point]]`` table; ``checkpoint_ids`` are all the courses' checkpoints."""
    check_keys(data, {"id", "checkpoint", "checkpoints", "role", "rules"}, path)
    pid = identifier(data, "id", path)
    raw = data.get("checkpoints", data.get("checkpoint", pid))
    cps: Sequence[Any] = [raw] if isinstance(raw, str) else raw
    if not isinstance(cps, list | tuple) or not cps:
        raise ConfigError(f"{path}.checkpoints", "must be a checkpoint id or a list of them")
    for cp in cps:
        if cp not in checkpoint_ids:
            raise ConfigError(f"{path}.checkpoints", f"unknown checkpoint {cp!r}")
    role = string(data, "role", path, "main")
    if role not in ("main", "backup"):
        raise ConfigError(f"{path}.role", "must be 'main' or 'backup'")
    rules = ReadRules(pick="last" if cps and _is_start(cps[0], checkpoint_ids) else "first")
    if "rules" in data:
        rules = _rules(data["rules"], f"{path}.rules", rules)
    return TimingPoint(pid, tuple(cps), "main" if role == "main" else "backup", rules)


def _is_start(checkpoint: str, _ids: set[str]) -> bool:
    return checkpoint == "start"


def _rules(data: Any, path: str, base: ReadRules) -> ReadRules:
    if not isinstance(data, dict):
        raise ConfigError(path, "must be a table")
    check_keys(data, {"dedup_s", "pick", "min_gap_s", "ignore_before_start"}, path)
    pick = string(data, "pick", path, base.pick)
    if pick not in ("first", "last"):
        raise ConfigError(f"{path}.pick", "must be 'first' or 'last'")
    dedup = num(data, "dedup_s", path, base.dedup_s)
    if dedup < 0:
        raise ConfigError(f"{path}.dedup_s", "must not be negative")
    min_gap = num(data, "min_gap_s", path) if "min_gap_s" in data else base.min_gap_s
    ibs = data.get("ignore_before_start", base.ignore_before_start)
    if not isinstance(ibs, bool):
        raise ConfigError(f"{path}.ignore_before_start", "must be true or false")
    return ReadRules(dedup, "first" if pick == "first" else "last", min_gap, ibs)


def parse_reader(data: Mapping[str, Any], path: str, points: Mapping[str, TimingPoint]) -> Reader:
    """One ``[[reader]]`` table; ``points`` are the event's timing points."""
    allowed = {
        "id", "protocol", "point", "host", "port", "listen", "role", "clock_offset_ms", "times"
    }  # fmt: skip
    check_keys(data, allowed, path)
    rid = identifier(data, "id", path)
    point = string(data, "point", path, "")
    if point and point not in points:
        raise ConfigError(f"{path}.point", f"unknown timing point {point!r}")
    role = data.get("role")
    if role not in (None, "main", "backup"):
        raise ConfigError(f"{path}.role", "must be 'main' or 'backup'")
    protocol = string(data, "protocol", path, "http")
    known = ("http", "raceresult", "ctp01", "ipico", "mylaps", "generic")
    if protocol not in known:
        raise ConfigError(f"{path}.protocol", f"{protocol!r} is not one of {', '.join(known)}")
    port = data.get("port", 0)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"{path}.port", "must be a port number 0-65535")
    listen = data.get("listen", protocol in LISTEN_BY_DEFAULT)
    if not isinstance(listen, bool):
        raise ConfigError(f"{path}.listen", "must be true or false")
    offset = data.get("clock_offset_ms", 0)
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise ConfigError(f"{path}.clock_offset_ms", "must be a whole number of milliseconds")
    times = data.get("times", "local")
    if times not in ("local", "utc"):
        raise ConfigError(f"{path}.times", "must be 'local' (the event's time zone) or 'utc'")
    host = string(data, "host", path, "")
    return Reader(rid, protocol, point, host, port, listen, role, offset, times)

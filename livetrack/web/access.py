"""Who may watch each kind of live topic: the one table of the public/staff boundary.

A kind is public (anyone may watch it on ``/live``, from any page, with no token) or staff
(only on ``/ws/staff``, and only for a token of a listed role; a marshal only for its own
checkpoint, as the write API allows). A kind in neither table is treated as staff until it is
placed: the boundary fails closed. ``tests/test_boundary_topics.py`` walks every registered
kind both ways.
"""

from __future__ import annotations

from collections.abc import Iterable

from livetrack.domain.records import TokenRecord
from livetrack.domain.state import marshal_topic

#: Spectators' regions: pages, the big screen, results.
PUBLIC: frozenset[str] = frozenset(
    {"races", "race", "feed", "runner", "board", "map", "teams", "team", "champ", "charity",
     "record", "relay", "sboards", "scharity", "sfeed", "srecord"}
)  # fmt: skip
#: The staff consoles' regions, and the roles that may watch them.
STAFF: dict[str, tuple[str, ...]] = {
    "guns": ("timer",),
    "readers": ("timer",),
    "announce": ("timer",),
    "accuracy": ("timer",),
    "problems": ("timer",),
    "unmatched": ("timer",),
    "marshal": ("timer", "marshal"),  # a marshal: its own checkpoint's list only
}


def kind_of(topic: str) -> str:
    return topic.partition(":")[0]


def is_public(topic: str) -> bool:
    return kind_of(topic) in PUBLIC


def public_refusal(topics: Iterable[str]) -> str | None:
    """Why the public socket may not serve ``topics`` (None when it may)."""
    for topic in topics:
        if not is_public(topic):
            return f"{topic[:60]!r} is a staff topic: sign in and use /ws/staff"
    return None


def staff_refusal(grant: TokenRecord, topics: Iterable[str]) -> str | None:
    """Why ``grant`` may not watch ``topics`` on the staff socket (None when it may)."""
    for topic in topics:
        kind = kind_of(topic)
        if kind in PUBLIC:
            continue
        roles = STAFF.get(kind, ("timer",))
        if grant.role not in roles:
            return f"a {grant.role} token may not watch {topic[:60]!r}"
        if grant.role == "marshal" and kind == "marshal" and topic != marshal_topic(grant.point):
            return f"a marshal for {grant.point!r} may watch only {marshal_topic(grant.point)!r}"
    return None

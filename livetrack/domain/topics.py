"""Topics: the names of live regions, typed.

A topic is a :class:`Kind` and one value per field of that kind, written ``kind:v1:v2`` (a
kind with no fields is written as its name alone): ``board:mile:finish:all`` is the ``board``
kind with race ``mile``, checkpoint ``finish`` and division ``all``. The last field may hold
``:`` (a bib, say); the others are identifiers that cannot. The name is what travels: the fold
returns the names of the topics it changed, the hub keys its subscriptions and renders by
name, pages hand the names to the browser, and :func:`dom_id` turns a name into the id of the
element that shows it.

Every kind is declared once, with :func:`declare`, by the module that defines it (the fold's
kinds below; a live region's own kind beside its definition in ``livetrack.web``). A kind is
``public`` (anyone may watch it) or ``staff`` (only a signed-in console, as its region's rules
say): ask ``parse(name).public`` or :func:`is_public`. A ``signal`` kind is never watched: the
fold uses it to tell the live regions something (see :data:`SHIFT`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from livetrack.domain.ranking import ALL

__all__ = [
    "BOARD",
    "FEED",
    "MAP",
    "MARSHAL",
    "MAX_TOPICS",
    "PROBLEMS",
    "RACE",
    "RACES",
    "RUNNER",
    "SHIFT",
    "TEAM_LEFT",
    "UNMATCHED",
    "Audience",
    "BadTopic",
    "Kind",
    "Topic",
    "declare",
    "dom_id",
    "is_public",
    "kinds",
    "parse",
]

Audience = Literal["public", "staff"]

#: The most topics one websocket may watch (the server refuses more; pages stay under it).
MAX_TOPICS = 64


class BadTopic(ValueError):
    """A topic name that is not one: an unknown kind or the wrong fields (the message says)."""


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of topic: its name, the names of its fields, and who may watch it."""

    name: str
    fields: tuple[str, ...] = ()
    audience: Audience = "public"
    #: A signal from the fold to the live regions, never watched by anyone.
    signal: bool = False

    def __call__(self, *values: str) -> str:
        """The name of this kind's topic with ``values`` (one per field)."""
        if len(values) != len(self.fields):
            raise TypeError(f"{self.pattern} needs {len(self.fields)} values, not {len(values)}")
        return ":".join((self.name, *values)) if values else self.name

    @property
    def pattern(self) -> str:
        """How its names are written: ``board:<race>:<checkpoint>:<division>``."""
        return ":".join((self.name, *(f"<{f}>" for f in self.fields)))

    @property
    def public(self) -> bool:
        return self.audience == "public"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic name: its kind and the value of each field."""

    kind: Kind
    values: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.kind(*self.values)

    def __str__(self) -> str:
        return self.name

    def __getitem__(self, field: str) -> str:
        """The value of the field called ``field`` (``topic["race"]``)."""
        try:
            return self.values[self.kind.fields.index(field)]
        except ValueError:
            raise KeyError(f"{self.kind.name!r} topics have no field {field!r}") from None

    @property
    def public(self) -> bool:
        """Whether anyone may watch it (else only staff, as its region's rules say)."""
        return self.kind.public

    @property
    def dom_id(self) -> str:
        return dom_id(self.name)


_KINDS: dict[str, Kind] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def declare(
    name: str, fields: tuple[str, ...] = (), audience: Audience = "public", *, signal: bool = False
) -> Kind:
    """Declare a kind of topic (once per process; declaring the same kind again returns it,
    declaring another kind under a name already taken is an error)."""
    if not _NAME.match(name):
        raise ValueError(f"topic kind {name!r}: lower-case letters, digits and '_' only")
    kind = Kind(name, tuple(fields), audience, signal)
    known = _KINDS.setdefault(name, kind)
    if known != kind:
        raise ValueError(f"topic kind {name!r} is declared twice, differently")
    return known


def kinds() -> dict[str, Kind]:
    """Every declared kind, by name."""
    return dict(_KINDS)


@functools.lru_cache(maxsize=65_536)
def parse(name: str) -> Topic:
    """The topic ``name`` names; :class:`BadTopic` saying why when it names none."""
    kind_name, sep, rest = name.partition(":")
    kind = _KINDS.get(kind_name)
    if kind is None:
        raise BadTopic(f"unknown topic {name[:60]!r}")
    values = tuple(rest.split(":", len(kind.fields) - 1)) if sep and kind.fields else ()
    if (sep and not kind.fields) or len(values) != len(kind.fields) or not all(values):
        raise BadTopic(f"topic {name[:60]!r} is not {kind.pattern}")
    return Topic(kind, values)


def is_public(name: str) -> bool:
    """Whether anyone may watch the topic ``name`` (False for a name that is no topic)."""
    try:
        return parse(name).public
    except BadTopic:
        return False


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def dom_id(name: str) -> str:
    """The element id of a topic (or any name made the same way):
    ``board:mile:finish:all`` → ``t-board-mile-finish-all``; other characters are escaped."""
    return "t-" + _UNSAFE.sub(lambda m: f"_{ord(m.group()):x}", name.replace(":", "-"))


# -- the kinds the fold marks ------------------------------------------------------------------

#: The home page's list of races.
RACES = declare("races")
#: A race's header: its clock and status.
RACE = declare("race", ("race",))
#: A race's latest finishers.
FEED = declare("feed", ("race",))
#: A race's standings at a checkpoint for one division (:data:`~livetrack.domain.ranking.ALL`).
BOARD = declare("board", ("race", "checkpoint", "division"))
#: One runner's card.
RUNNER = declare("runner", ("bib",))
#: The positions of a race's field on its course map.
MAP = declare("map", ("race",))
#: What a marshal at a checkpoint needs (expected, overdue, passed).
MARSHAL = declare("marshal", ("checkpoint",), "staff")
#: The timer's list of chips read that belong to nobody.
UNMATCHED = declare("unmatched", (), "staff")
#: The timer's list of problems to look at.
PROBLEMS = declare("problems", (), "staff")
#: Not a region but a signal: every runner of ``race`` ranked at ``checkpoint`` slower than
#: ``elapsed_ms`` moved a place (a late or corrected passing went in, or came out, ahead of
#: them), so their runner cards are out of date.
SHIFT = declare("shift", ("race", "checkpoint", "elapsed_ms"), signal=True)
#: A signal: a runner's entry moved them out of ``team`` of ``race`` (a page listing that
#: team's members is out of date).
TEAM_LEFT = declare("team_left", ("race", "team"), signal=True)


def board_topic(race: str, checkpoint: str, division: str = ALL) -> str:
    return BOARD(race, checkpoint, division)

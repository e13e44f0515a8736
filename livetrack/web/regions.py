"""Live regions: one definition per topic kind.

A :class:`Region` says everything about one kind of live region: its topic kind (the fields
of its names and whether it is public or staff, :mod:`livetrack.domain.topics`), which topics
of that kind exist (``valid``), who may watch them (``roles`` and ``point``, the same rules as
the write API's), its view model (``view``), the template block that draws it (the page draws
the same block, so a page and its pushes cannot drift apart), what else makes it dirty
(``per_race``, ``derive``, ``touch_s``), and its own ``cache``.

Each module of :mod:`livetrack.web.features` lists its regions in ``REGIONS``. Adding a live
region is one :class:`Region` in such a module and one block in a template::

    SPLITS = topics.declare("splits", ("race",))
    REGIONS = [Region(SPLITS, "race.html", "splits", "sp", lambda c, t: splits(c.state, t["race"]),
                      valid=is_race, per_race=True)]

and in ``race.html`` a ``{% block splits %}`` whose element has ``id="{{ dom_id(...) }}"``
and ``hx-swap-oob="true"``; the page lists ``SPLITS(race)`` among its topics.

A region draws a :class:`Frame`: the ``full`` region (what a new subscriber gets) and, when
the region defines ``changes``, the ``delta`` from the previous frame's view model (what the
ones already watching need). A ``keyed`` region's block marks its changeable pieces (rows
keyed by their element ids, parts replaced whole: :mod:`livetrack.web.parts`); its frame
carries that :class:`~livetrack.live.delta.Drawing`, from which the hub sends what changed
since the previous drawing (:func:`livetrack.live.delta.patch`), or the whole region to a
client that missed a state.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from livetrack.domain.records import TokenRecord
from livetrack.domain.state import RaceState
from livetrack.domain.topics import Kind, Topic
from livetrack.live.delta import Drawing
from livetrack.service.runtime import clock_of
from livetrack.web.auth import refusal

__all__ = ["Ctx", "Derive", "Frame", "Region", "View", "anything", "is_race"]


class Ctx:
    """What a region's ``view`` and ``derive`` see: the fold, the event's clock, and the
    region's own cache (one per region per fold, made by the region's ``cache`` factory)."""

    __slots__ = ("cache", "state")

    def __init__(self, state: RaceState, cache: Any = None) -> None:
        self.state = state
        self.cache = cache

    @property
    def now(self) -> int:
        return clock_of(self.state)


View = Callable[[Ctx, Topic], Any]
#: ``derive(ctx, dirty, watched)``: the topics of a region's kind that a tick's ``dirty``
#: topics make dirty, among the ``watched`` ones.
Derive = Callable[[Ctx, set[str], Collection[str]], set[str]]


def anything(state: RaceState, topic: Topic) -> bool:
    """Validity of a kind whose every well-formed name is a topic (one without fields)."""
    return True


def is_race(state: RaceState, topic: Topic) -> bool:
    """Validity of ``kind:<race>`` topics: the race exists."""
    return topic["race"] in state.event.races


@dataclass(frozen=True, slots=True)
class Frame:
    """One drawing of a region."""

    #: The whole region: an element with the topic's ``dom_id`` and ``hx-swap-oob``.
    full: str
    #: The view model it was drawn from (what the next frame's ``delta`` is computed against).
    model: Any = None
    #: Only what changed since the previous frame (None: send ``full``).
    delta: str | None = None
    #: A keyed region's drawing: the region with its rows and parts marked.
    drawing: Drawing | None = None


@dataclass(frozen=True, slots=True)
class Region:
    """One kind of live region (see the module doc)."""

    kind: Kind
    #: The template and block that draw it, and the name the block knows the view model by.
    template: str
    block: str
    var: str
    #: The view model of one topic.
    view: View
    #: Whether a well-formed topic of the kind exists at this event.
    valid: Callable[[RaceState, Topic], bool] = anything
    #: Staff kinds: the roles that may watch (``timer`` always may), and the field whose value
    #: must be a marshal's own checkpoint. Public kinds: anyone may watch.
    roles: tuple[str, ...] = ()
    point: str = ""
    #: ``kind:<race>`` summaries: dirty whenever anything in the race changed.
    per_race: bool = False
    derive: Derive | None = None
    #: Time-dependent regions: re-drawn every this many seconds while watched.
    touch_s: float = 0.0
    #: Makes the region's cache (one per fold), handed to ``view`` and ``derive`` in ``Ctx``.
    cache: Callable[[], Any] | None = None
    #: ``changes(previous_model, model)``: the fragment that updates a region drawn from
    #: ``previous_model`` to ``model``, or None when only the full region will do.
    changes: Callable[[Any, Any], str | None] | None = None
    #: Its block marks rows (``item``) and parts (``part``): pushes carry only what changed.
    keyed: bool = False

    @property
    def name(self) -> str:
        return self.kind.name

    def refusal(self, topic: Topic, grant: TokenRecord | None) -> str | None:
        """Why ``grant`` (None: nobody signed in) may not watch ``topic``; None if it may."""
        if self.kind.public:
            return None
        if grant is None:
            return f"{topic.name[:60]!r} is for staff: sign in first"
        return refusal(grant, self.roles, topic[self.point] if self.point else "")

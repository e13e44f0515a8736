"""Templates and live regions: every live region (:mod:`livetrack.web.regions`) is one template
block, used by the page and by the pushed fragment alike, with its element id derived from the
topic by :func:`~livetrack.domain.topics.dom_id`."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from livetrack.domain import topics
from livetrack.domain.event import Event
from livetrack.domain.ranking import ALL
from livetrack.domain.state import RaceState
from livetrack.domain.topics import BadTopic, Kind, Topic, dom_id
from livetrack.live.delta import Drawing, patch
from livetrack.service.runtime import clock_of
from livetrack.web import parts
from livetrack.web.regions import Ctx, Frame, Region, is_race

_PACKAGE = Path(__file__).resolve().parents[1]


def _shipped(name: str) -> Path:
    """``templates/`` or ``static/``: inside the installed package (a wheel ships them as
    ``livetrack/<name>``), else beside the package in a checkout, where they are kept."""
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name


TEMPLATES = _shipped("templates")
STATIC = _shipped("static")

log = logging.getLogger("livetrack.render")


def time_of(event: Event, ms: int | None, seconds: bool = True) -> str:
    """A time of day in the event's time zone (``10:16:05``, or ``10:16``)."""
    if not ms:
        return ""
    try:
        return datetime.fromtimestamp(ms / 1000, event.tz).strftime(
            "%H:%M:%S" if seconds else "%H:%M"
        )
    except (OverflowError, OSError, ValueError):
        return "??:??"


def race_clock(
    event: Event, gun_ms: int | None, stop_ms: int | None, now_ms: int | None = None
) -> str:
    """A race clock's text as served, honest for a page whose script has not run (or never
    will): the final time once the race is over; while it runs, when it started and, on a page
    (``now_ms``: when it was served), how long before. The page's script ticks the clock."""
    if not gun_ms:
        return ""
    if stop_ms:
        s = max(0, stop_ms - gun_ms) // 1000
        h, m = divmod(s // 60, 60)
        return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"
    text = "started " + time_of(event, gun_ms, seconds=False)
    if now_ms is None:
        return text  # a pushed region: the same text until the data changes
    mins = max(0, now_ms - gun_ms) // 60_000
    if mins < 1:
        return text + ", under a minute before this page loaded"
    h, m = divmod(mins, 60)
    return f"{text}, {f'{h} h {m} min' if h else f'{m} min'} before this page loaded"


def division_label(division: str) -> str:
    return {ALL: "Overall", "F": "Women", "M": "Men", "X": "Non-binary"}.get(division, division)


@functools.cache
def static_version(path: str) -> str:
    """A short digest of the static file ``path`` (relative to ``static/``): its URLs carry it,
    so the year-long immutable caching of static files never keeps a phone or the big screen
    on a file an upgrade changed, and an unchanged file stays cached across upgrades."""
    try:
        return hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:12]
    except OSError:
        return "0"  # no such file: the URL answers 404 whatever its version


def topic_name(kind: str, *values: Any) -> str:
    """The name of the ``kind`` topic with ``values`` (templates' ``topic(...)``); an unknown
    kind or the wrong number of values is an error in the template."""
    return topics.kinds()[kind](*(str(v) for v in values))


def make_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["dom_id"] = dom_id
    env.globals["topic"] = topic_name
    env.globals["topic_id"] = lambda kind, *values: dom_id(topic_name(kind, *values))
    env.globals["max_topics"] = topics.MAX_TOPICS
    env.globals["division_label"] = division_label
    env.globals["time_of"] = time_of
    env.globals["race_clock"] = race_clock
    env.globals["static"] = lambda path: f"/static/{path}?v={static_version(path)}"
    env.filters["part"] = parts.part
    env.filters["item"] = parts.item
    env.filters["derived"] = parts.derived
    return env


_reported: set[tuple[str, str, str]] = set()


def _report(where: str, what: str, exc: BaseException) -> None:
    """Log a failure with its traceback the first time it is seen in this process."""
    key = (where, what, type(exc).__name__)
    if key in _reported:
        log.debug("%s %s failed again: %s", where, what, exc)
        return
    _reported.add(key)
    log.error("%s %s failed; shown as unavailable", where, what, exc_info=exc)


def safe(view: Callable[..., Any], *args: Any) -> Any:
    """``view(*args)``, or, when it raises, a value whose every use raises inside the block
    that uses it (so that block alone is drawn as unavailable by :meth:`Renderer.page`)."""
    try:
        return view(*args)
    except Exception as exc:
        name = getattr(view, "__name__", "view")
        _report("view", name, exc)
        return StrictUndefined(hint=f"the {name} view failed")


def safe_html(draw: Callable[[], str]) -> str:
    """``draw()``, or the notice that the region cannot be shown when it raises."""
    try:
        return draw()
    except Exception as exc:
        _report("region", getattr(draw, "__qualname__", "html"), exc)
        return _UNAVAILABLE


def _guarded(template: str, block: str, func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def draw(ctx: Any) -> Any:
        try:
            out = "".join(func(ctx))
        except Exception as exc:
            _report(template, f"block {block!r}", exc)
            out = "" if block == "title" else _UNAVAILABLE
        yield out

    return draw


_UNAVAILABLE = (
    '<p class="unavailable" role="status">This part of the page cannot be shown just now.</p>'
)


def race_summary(
    kind: Kind,
    template: str,
    block: str,
    var: str,
    view: Callable[[RaceState, str], Any],
    keyed: bool = False,
) -> Region:
    """A ``kind:<race>`` region drawn from ``block`` of ``template`` with ``view(state, race)``
    bound to ``var``; dirty whenever anything in its race changes. ``keyed``: the block marks
    its rows and parts, so pushes carry only what changed (:class:`Region`)."""
    return Region(
        kind,
        template,
        block,
        var,
        lambda c, t: view(c.state, t["race"]),
        is_race,
        per_race=True,
        keyed=keyed,
    )


class Renderer:
    """Renders pages and topic fragments from the fold's current state."""

    def __init__(self, env: Environment, state: RaceState) -> None:
        self.env = env
        self.state = state
        self.regions: dict[str, Region] = {}
        self._ctx: dict[str, Ctx] = {}
        #: When the data last changed (the event's clock at the tick that saw it), so a page
        #: can say how fresh it is; None until the first change this process saw.
        self.changed_at: int | None = None

    def register(self, region: Region) -> None:
        if region.name in self.regions:
            raise ValueError(f"live region {region.name!r} is registered twice")
        if region.kind is not topics.kinds().get(region.name):
            raise ValueError(f"live region {region.name!r}: its kind is not the declared one")
        self.regions[region.name] = region
        self._ctx[region.name] = Ctx(self.state, region.cache() if region.cache else None)

    def page(self, name: str, **context: Any) -> str:
        """A whole page. Every block of it is drawn on its own: a block that fails (a view
        made by :func:`safe` that failed, or a fault in the block) is drawn as a short notice,
        logged once, and the rest of the page is drawn as usual."""
        tmpl: Template = self.env.get_template(name)
        now = clock_of(self.state)
        base = {"event": self.state.event, "server_now": now, "changed_ms": self.changed(now)}
        ctx = tmpl.new_context({**base, **context})
        for block, funcs in ctx.blocks.items():
            ctx.blocks[block] = [_guarded(name, block, f) for f in funcs]
        return "".join(tmpl.root_render_func(ctx))

    def block(self, template: str, block: str, **context: Any) -> str:
        """One block of ``template``, rendered alone (the pushed form of a page region)."""
        tmpl: Template = self.env.get_template(template)
        base = {"event": self.state.event, "changed_ms": self.changed(clock_of(self.state))}
        ctx = tmpl.new_context({**base, **context})
        return "".join(tmpl.blocks[block](ctx))

    def find(self, name: str) -> tuple[Region, Topic]:
        """The region that shows topic ``name``, and the topic; :class:`BadTopic` saying why
        when ``name`` is no topic of a region here."""
        topic = topics.parse(name)
        region = self.regions.get(topic.kind.name)
        if region is None or not region.valid(self.state, topic):
            raise BadTopic(f"unknown topic {name[:60]!r}")
        return region, topic

    def cache(self, kind: str) -> Any:
        """The cache the region of ``kind`` keeps for this fold (None when it keeps none)."""
        return self._ctx[kind].cache if kind in self._ctx else None

    def is_topic(self, name: str) -> bool:
        try:
            self.find(name)
        except BadTopic:
            return False
        return True

    def model(self, name: str) -> Any:
        """The view model of topic ``name`` (for the page that shows it first), as
        :func:`safe` makes it: a failing view draws its block alone as unavailable."""
        region, topic = self.find(name)
        return safe(region.view, self._ctx[region.name], topic)

    def frame(self, name: str, previous: Frame | None = None) -> Frame:
        """A drawing of topic ``name`` (which :meth:`is_topic` accepted); with ``previous``,
        the frame it follows, its ``delta`` too when the region can say what changed."""
        region, topic = self.find(name)
        model = region.view(self._ctx[region.name], topic)
        context = {region.var: model}
        if region.keyed:
            drawing = parts.render_region(
                lambda: self.block(region.template, region.block, **context)
            )
            delta = None
            if previous is not None and previous.drawing is not None:
                delta = patch(previous.drawing, drawing)
            return Frame(drawing.full, model, delta, drawing)
        full = self.block(region.template, region.block, **context)
        delta = None
        if region.changes is not None and previous is not None:
            delta = region.changes(previous.model, model)
        return Frame(full, model, delta)

    def topic(self, name: str) -> str | Drawing:
        """What the hub pushes for topic ``name``: a keyed region's drawing (the hub sends
        what changed since the previous one), else the out-of-band fragment."""
        frame = self.frame(name)
        return frame.drawing if frame.drawing is not None else frame.full

    def changed(self, now: int) -> int:
        """When the data last changed, as far as this process knows: the newest record's
        time before it saw a change of its own."""
        if self.changed_at is not None:
            return self.changed_at
        return min(now, self.state.now_ms) if self.state.now_ms else now

    def touch_periods(self, names: Collection[str]) -> dict[str, float]:
        """The time-dependent ones among ``names``, with how often each is re-drawn."""
        out: dict[str, float] = {}
        for name in names:
            region = self.regions.get(name.partition(":")[0])
            if region is not None and region.touch_s > 0:
                out[name] = region.touch_s
        return out

    def derive(self, dirty: set[str], watched: Collection[str] = ()) -> set[str]:
        """``dirty`` plus the per-race regions of every race it touches (once per tick, so the
        fold need not know which summaries exist), plus what each region's own ``derive``
        adds (runner cards a late passing shifted, a team whose member moved…)."""
        per_race = [r.kind for r in self.regions.values() if r.per_race]
        out = set(dirty)
        races: set[str] = set()
        for name in dirty:
            if name.partition(":")[0] in _RACE_SIGNALS:
                races.add(topics.parse(name)["race"])
        if races:  # the data changed: what pages say about their freshness
            self.changed_at = clock_of(self.state)
        out |= {kind(race) for kind in per_race for race in races}
        for r in self.regions.values():
            if r.derive is not None:
                out |= r.derive(self._ctx[r.name], dirty, watched)
        return out


#: Kinds the fold marks when something in a race changes (``map`` on any passing, ``board``
#: on any ranking, ``race``/``feed`` on finishes and guns).
_RACE_SIGNALS = frozenset(k.name for k in (topics.RACE, topics.FEED, topics.BOARD, topics.MAP))

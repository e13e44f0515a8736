"""Templates and topics: every live region is one template block, used by the page and by the
pushed fragment alike, with its element id derived from the topic by :func:`dom_id`."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from livetrack.domain.ranking import ALL
from livetrack.domain.state import RaceState, parse_shift
from livetrack.live.delta import Region
from livetrack.service.runtime import clock_of
from livetrack.web import parts, views

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
STATIC = ROOT / "static"

log = logging.getLogger("livetrack.render")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def dom_id(topic: str) -> str:
    """The element id of a topic: ``board:mile:finish:all`` → ``t-board-mile-finish-all``."""
    return "t-" + _UNSAFE.sub(lambda m: f"_{ord(m.group()):x}", topic.replace(":", "-"))


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


def make_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["dom_id"] = dom_id
    env.globals["division_label"] = division_label
    env.globals["static"] = lambda path: f"/static/{path}?v={static_version(path)}"
    env.filters["part"] = parts.part
    env.filters["item"] = parts.item
    env.filters["derived"] = parts.derived
    return env


@dataclass(frozen=True, slots=True)
class TopicKind:
    """One kind of live region: ``kind:rest`` topics, checked by ``valid`` and drawn by
    ``render`` (which returns the region's element, carrying ``hx-swap-oob``)."""

    name: str
    valid: Callable[[RaceState, str], bool]
    render: Callable[[Renderer, str], str | Region]
    #: ``kind:<race>`` summarises a whole race (team standings, a big-screen panel…): it is
    #: dirty whenever anything in that race changed (see :meth:`Renderer.derive`).
    per_race: bool = False
    #: ``derive(state, dirty, watched)``: the topics of this kind that a tick's ``dirty``
    #: topics make dirty, among those somebody watches (see :meth:`Renderer.derive`).
    derive: Callable[[RaceState, set[str], Collection[str]], set[str]] | None = None


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


def is_race(state: RaceState, rest: str) -> bool:
    """Topic validity for ``kind:<race>`` topics."""
    return rest in state.event.races


def race_summary(
    name: str, template: str, block: str, var: str, view: Callable[[RaceState, str], Any]
) -> TopicKind:
    """A ``name:<race>`` kind drawn from ``block`` of ``template`` with ``view(state, race)``
    bound to ``var``; dirty whenever anything in its race changes."""
    return TopicKind(
        name,
        is_race,
        lambda r, rest: r.block(template, block, **{var: view(r.state, rest)}),
        per_race=True,
    )


class Renderer:
    """Renders pages and topic fragments from the fold's current state."""

    def __init__(self, env: Environment, state: RaceState) -> None:
        self.env = env
        self.state = state
        self.kinds: dict[str, TopicKind] = {}
        #: When the data last changed (the event's clock at the tick that saw it), so a page
        #: can say how fresh it is; None until the first change this process saw.
        self.changed_at: int | None = None
        for kind in CORE_TOPICS:
            self.register(kind)

    def register(self, kind: TopicKind) -> None:
        if kind.name in self.kinds:
            raise ValueError(f"topic kind {kind.name!r} is registered twice")
        self.kinds[kind.name] = kind

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
        ctx = tmpl.new_context({"event": self.state.event, **context})
        return "".join(tmpl.blocks[block](ctx))

    def region(self, template: str, block: str, **context: Any) -> Region:
        """One block of ``template`` with its marked parts (see :mod:`livetrack.web.parts`),
        so that the hub can push what changed in it rather than all of it."""
        return parts.render_region(lambda: self.block(template, block, **context))

    def changed(self, now: int) -> int:
        """When the data last changed, as far as this process knows: the newest record's
        time before it saw a change of its own."""
        if self.changed_at is not None:
            return self.changed_at
        return min(now, self.state.now_ms) if self.state.now_ms else now

    def derive(self, dirty: set[str], watched: Collection[str] = ()) -> set[str]:
        """``dirty`` plus the per-race kinds of every race it touches (once per tick, so the
        fold need not know which summaries exist), plus the ``watched`` runner cards whose
        positions a late passing shifted (the fold's :func:`shift_topic` signals), plus what
        each kind's own ``derive`` hook adds."""
        per_race = [k.name for k in self.kinds.values() if k.per_race]
        races: set[str] = set()
        shifted: dict[tuple[str, str], int] = {}  # (race, checkpoint) -> fastest time moved
        for topic in dirty:
            kind, _, rest = topic.partition(":")
            if kind in _RACE_SIGNALS:
                races.add(rest.partition(":")[0])
            elif kind == "shift":
                shift = parse_shift(topic)
                if shift is not None:
                    key = (shift[0], shift[1])
                    shifted[key] = min(shift[2], shifted.get(key, shift[2]))
        if races:
            self.changed_at = clock_of(self.state)
        out = dirty | {f"{k}:{race}" for k in per_race for race in races}
        if shifted:
            out |= self._shifted_cards(shifted, watched)
        for k in self.kinds.values():
            if k.derive is not None:
                out |= k.derive(self.state, dirty, watched)
        return out

    def _shifted_cards(
        self, shifted: dict[tuple[str, str], int], watched: Collection[str]
    ) -> set[str]:
        runners = self.state.runners
        cards: set[str] = set()
        for topic in watched:
            if not topic.startswith("runner:"):
                continue
            runner = runners.get(topic[7:])
            if runner is None:
                continue
            race = runner.race.id
            for cp, elapsed in runner.ranked.items():
                moved = shifted.get((race, cp))
                if moved is not None and elapsed > moved:
                    cards.add(topic)
                    break
        return cards

    def is_topic(self, topic: str) -> bool:
        name, _, rest = topic.partition(":")
        kind = self.kinds.get(name)
        return kind is not None and kind.valid(self.state, rest)

    def topic(self, topic: str) -> str | Region:
        """The out-of-band fragment for ``topic`` (which :meth:`is_topic` accepted)."""
        name, _, rest = topic.partition(":")
        return self.kinds[name].render(self, rest)


#: Topics the fold marks when something in a race changes (``map`` on any passing, ``board``
#: on any ranking, ``race``/``feed`` on finishes and guns).
_RACE_SIGNALS = frozenset({"race", "feed", "board", "map"})


def _board_valid(st: RaceState, rest: str) -> bool:
    parts = rest.split(":")
    if len(parts) != 3 or parts[0] not in st.event.races or not parts[2]:
        return False
    return any(cp.id == parts[1] for cp in st.event.races[parts[0]].course.checkpoints[1:])


def _board(r: Renderer, rest: str) -> Region:
    race, cp, division = rest.split(":")
    return r.region("race.html", "board", b=views.board(r.state, race, cp, division))


# Pushed regions leave the race clocks' text out (the page ticks them from the gun time), so
# they change only when the data does.
CORE_TOPICS = (
    TopicKind(
        "races",
        lambda st, rest: rest == "",
        lambda r, rest: r.region(
            "home.html", "races", races=views.races(r.state, clock_of(r.state), clock_text=False)
        ),
    ),
    TopicKind(
        "race",
        is_race,
        lambda r, rest: r.region(
            "race.html",
            "header",
            rs=views.race_status(
                r.state, r.state.event.races[rest], clock_of(r.state), clock_text=False
            ),
        ),
    ),
    TopicKind(
        "feed",
        is_race,
        lambda r, rest: r.region("race.html", "feed", f=views.feed(r.state, rest)),
    ),
    TopicKind(
        "runner",
        lambda st, rest: rest in st.runners,
        lambda r, rest: r.region(
            "runner.html", "card", rn=views.runner(r.state, rest, clock_of(r.state))
        ),
    ),
    TopicKind("board", _board_valid, _board),
    TopicKind(
        "map",
        is_race,
        lambda r, rest: r.block("map.html", "field", fp=views.field_positions(r.state, rest)),
    ),
)

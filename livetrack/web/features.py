"""The parts of the web app beyond the core pages.

Each module named in :data:`MODULES` may define ``ROUTES`` (Starlette routes) and ``REGIONS``
(live regions, :class:`livetrack.web.regions.Region`); ``create_app`` mounts them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

from starlette.routing import BaseRoute

from livetrack.domain.state import RaceState
from livetrack.web.regions import Region
from livetrack.web.render import Renderer, make_env

MODULES: tuple[str, ...] = (
    "livetrack.web.pages",
    "livetrack.web.formats",
    "livetrack.web.screen",
    "livetrack.web.marshal",
    "livetrack.web.timer",
    "livetrack.web.results",
    "livetrack.web.push",
    "livetrack.web.obstacles",
    "livetrack.web.meets",
)


def modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in MODULES]


def routes() -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for m in modules():
        out.extend(getattr(m, "ROUTES", ()))
    return out


def regions() -> list[Region]:
    out: list[Region] = []
    for m in modules():
        found: Sequence[Region] = getattr(m, "REGIONS", ())
        out.extend(found)
    return out


def renderer(state: RaceState) -> Renderer:
    """A renderer of ``state`` with every feature's live regions registered."""
    r = Renderer(make_env(), state)
    for region in regions():
        r.register(region)
    return r

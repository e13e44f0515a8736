"""The parts of the web app beyond the core pages.

Each module named in :data:`MODULES` may define ``ROUTES`` (Starlette routes) and ``TOPICS``
(live region kinds, :class:`livetrack.web.render.TopicKind`); ``create_app`` mounts them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

from starlette.routing import BaseRoute

from livetrack.web.render import TopicKind

MODULES: tuple[str, ...] = (
    "livetrack.web.formats",
    "livetrack.web.screen",
    "livetrack.web.marshal",
    "livetrack.web.timer",
    "livetrack.web.results",
    "livetrack.web.push",
)


def modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in MODULES]


def routes() -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for m in modules():
        out.extend(getattr(m, "ROUTES", ()))
    return out


def topics() -> list[TopicKind]:
    out: list[TopicKind] = []
    for m in modules():
        kinds: Sequence[TopicKind] = getattr(m, "TOPICS", ())
        out.extend(kinds)
    return out

"""Marking a region's changeable pieces in its template, so a push can carry only what changed.

Two filters, used in the one template block that both the page and the push render:

- ``{% filter part %}<h2 id="…">…</h2>{% endfilter %}``: an element replaced whole when it
  changes;
- ``{% filter item(list_id) %}<tr id="…">…</tr>{% endfilter %}``: an element of the keyed list
  whose element id is ``list_id``, in order (a board's rows, a feed's lines);
- ``{% filter derived %}…{% endfilter %}`` inside an item: what the page works out again from
  the list itself after every change (a board's positions and gaps, from each row's order and
  time; see ``static/patch.js``), so a change there alone does not send the row.

Each marked element's first tag must carry its id; marked elements do not nest. On a page
render the filters change nothing; :func:`render_region` renders a block with them
collecting, and returns the :class:`~livetrack.live.delta.Drawing` the hub compares with the
previous rendering.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable

from markupsafe import Markup

from livetrack.live.delta import Drawing

_ID = re.compile(r'^\s*<[a-zA-Z][^>]*?\sid="([^"]+)"')
_MARK = re.compile("\x00([0-9]+)\x00")
_DERIVED = re.compile("\x01[^\x01]*\x01")


class _Collector:
    __slots__ = ("htmls", "lists", "parts")

    def __init__(self) -> None:
        self.htmls: list[tuple[str, str]] = []  # (part id, or "" for an item; html) by mark
        self.parts: dict[str, str] = {}
        self.lists: dict[str, list[tuple[str, str, str]]] = {}

    def mark(self, part_id: str, html: str) -> Markup:
        self.htmls.append((part_id, html))
        return Markup(f"\x00{len(self.htmls) - 1}\x00")


_collecting: contextvars.ContextVar[_Collector | None] = contextvars.ContextVar(
    "livetrack_region", default=None
)


def _element_id(html: str) -> str:
    m = _ID.match(html)
    if m is None:
        raise ValueError(f"a marked part must start with an element with an id: {html[:60]!r}")
    return m.group(1)


def part(html: str) -> Markup:
    c = _collecting.get()
    if c is None:
        return Markup(html)
    pid = _element_id(html)
    c.parts[pid] = html
    return c.mark(pid, html)


def item(html: str, list_id: str) -> Markup:
    c = _collecting.get()
    if c is None:
        return Markup(html)
    same = _DERIVED.sub("", html)  # what must differ for the row to be sent
    html = html.replace("\x01", "")
    c.lists.setdefault(list_id, []).append((_element_id(html), same, html))
    return c.mark("", html)


def derived(html: str) -> Markup:
    if _collecting.get() is None:
        return Markup(html)
    return Markup(f"\x01{html}\x01")


def _skeleton_mark(part_id: str) -> str:
    return f"\x00{part_id}\x00" if part_id else ""


def render_region(render: Callable[[], str]) -> Drawing:
    """Run ``render`` (a block's rendering) with the filters collecting its parts."""
    c = _Collector()
    token = _collecting.set(c)
    try:
        marked = render()
    finally:
        _collecting.reset(token)
    if not c.htmls:
        return Drawing(marked)
    htmls = c.htmls
    full = _MARK.sub(lambda m: htmls[int(m.group(1))][1], marked)
    # the skeleton names each part by its id (not its mark's number, which counts the items
    # before it) and leaves the items out
    skeleton = _MARK.sub(lambda m: _skeleton_mark(htmls[int(m.group(1))][0]), marked)
    return Drawing(full, skeleton, c.parts, c.lists)

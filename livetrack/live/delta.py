"""Changes, not regions: a rendered region's parts, and the patch from one rendering to the next.

A region (one topic's element) is rendered with its changeable pieces marked (see
:mod:`livetrack.web.parts`): **parts**, elements with an id that are replaced whole when they
change (a heading with a count, a runner card's "due" line), and **items**, elements with an id
in a keyed list (a board's rows keyed by bib, a feed's lines). What is left, the *skeleton*, is
the region without them. When the skeleton is the same in two renderings, the second one is sent
as a patch: the parts that changed, the items that changed, arrived, moved or left. Otherwise
(or when the patch would not be smaller) the region is sent whole.

A patch is HTML, one ``<template data-p="…">`` per step, applied in order by the page
(``static/app.js``); each template holds the new element, whose own id says what it replaces:

- ``data-p=""``: replace the element with the same id;
- ``data-p="after:ID"``: put the element (moving it if it is there already) right after ``ID``;
- ``data-p="first:ID"``: put it first inside the list ``ID``;
- ``data-p="drop:ID"`` (empty template): remove ``ID``.

A patch is only valid on top of the rendering it was computed from: the hub sends one to a
client only while that client has been sent every earlier state of the region (see
:mod:`livetrack.live.hub`); a client that missed one gets the whole region instead.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(slots=True)
class Drawing:
    """A rendered region: ``full`` is what a page shows; ``skeleton``, ``parts`` and ``lists``
    are for comparing two renderings (``lists``: the list's id -> its items in order, each
    (id, what is compared, html): the page derives the rest itself)."""

    full: str
    skeleton: str = ""
    parts: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.full

    def __contains__(self, text: str) -> bool:
        return text in self.full


def _tpl(op: str, html: str) -> str:
    return f'<template data-p="{op}">{html}</template>'


def _kept(old_pos: list[int]) -> set[int]:
    """Indices (into ``old_pos``) of a longest increasing subsequence of ``old_pos``: the items
    that keep their relative order, so that everything else is placed explicitly."""
    tails: list[int] = []  # old position ending the best subsequence of each length
    tail_at: list[int] = []  # index in old_pos of that tail
    prev: list[int] = [-1] * len(old_pos)
    for i, v in enumerate(old_pos):
        k = bisect.bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_at.append(i)
        else:
            tails[k] = v
            tail_at[k] = i
        prev[i] = tail_at[k - 1] if k else -1
    out: set[int] = set()
    i = tail_at[-1] if tail_at else -1
    while i >= 0:
        out.add(i)
        i = prev[i]
    return out


Items = list[tuple[str, str, str]]


def _list_patch(lid: str, old: Items, new: Items) -> list[str]:
    out: list[str] = []
    old_same = {k: same for k, same, _ in old}
    new_ids = {k for k, _, _ in new}
    out += [_tpl(f"drop:{k}", "") for k, _, _ in old if k not in new_ids]
    old_index = {k: i for i, (k, _, _) in enumerate(old) if k in new_ids}
    survivors = [i for i, (k, _, _) in enumerate(new) if k in old_index]
    kept_at = _kept([old_index[new[i][0]] for i in survivors])
    kept = {survivors[j] for j in kept_at}
    prev = ""
    for i, (key, same, html) in enumerate(new):
        if i in kept:
            if old_same[key] != same:
                out.append(_tpl("", html))
        else:
            out.append(_tpl(f"after:{prev}" if prev else f"first:{lid}", html))
        prev = key
    return out


def patch(old: Drawing, new: Drawing) -> str | None:
    """What turns ``old`` into ``new`` on a page, or None when ``new`` must be sent whole (its
    skeleton, parts or lists differ, or the patch is not smaller than the region)."""
    if (
        old.skeleton != new.skeleton
        or not new.skeleton
        or old.parts.keys() != new.parts.keys()
        or old.lists.keys() != new.lists.keys()
    ):
        return None
    for items in new.lists.values():
        if len({k for k, _, _ in items}) != len(items):
            return None  # two rows with one id: no way to say which is which
    out = [_tpl("", html) for pid, html in new.parts.items() if old.parts[pid] != html]
    for lid, items in new.lists.items():
        before = old.lists[lid]
        if [(k, s) for k, s, _ in before] != [(k, s) for k, s, _ in items]:
            out += _list_patch(lid, before, items)
    text = "".join(out)
    return text if len(text) < len(new.full) else None

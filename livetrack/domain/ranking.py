"""Incremental rankings: one sorted list per race × checkpoint × division.

A runner moves by one removal and one insertion (O(log n)); nothing is re-sorted per read.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedList

ALL = "all"

#: The checkpoint name of moves on a race's finish feed (see :meth:`Boards.move_many`).
FINISHERS = "\x00finishers"

#: One board move: (race, checkpoint, divisions, bib, old elapsed or None, new or None).
Move = tuple[str, str, tuple[str, ...], str, int | None, int | None]

#: :meth:`Boards.move_many` re-sorts a board that gains more entries than this (and more than
#: a quarter of its size); fewer are inserted one by one.
_REBUILD_FROM = 64


class Boards:
    """Rankings keyed by ``(race, checkpoint, division)``; entries are ``(elapsed_ms, bib)``."""

    def __init__(self) -> None:
        self._lists: dict[tuple[str, str, str], SortedList] = {}

    def _list(self, race: str, checkpoint: str, division: str) -> SortedList:
        key = (race, checkpoint, division)
        lst = self._lists.get(key)
        if lst is None:
            lst = self._lists[key] = SortedList()
        return lst

    def move(
        self,
        race: str,
        checkpoint: str,
        divisions: Iterable[str],
        bib: str,
        old: int | None,
        new: int | None,
    ) -> None:
        """Take ``bib`` out at ``old`` elapsed (if any) and put it in at ``new`` (if any)."""
        for division in divisions:
            lst = self._list(race, checkpoint, division)
            if old is not None:
                lst.discard((old, bib))
            if new is not None:
                lst.add((new, bib))

    def move_many(
        self, moves: Iterable[Move], finishers: dict[str, SortedList] | None = None
    ) -> None:
        """Make many moves (see :meth:`move`) at once, with the same result. A board that gains
        many entries is rebuilt with one sort instead of one insertion per entry. Moves at the
        checkpoint :data:`FINISHERS` go to ``finishers[race]`` (entries by time of day)."""
        gone: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
        come: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
        for race, checkpoint, divisions, bib, old, new in moves:
            if checkpoint == FINISHERS:
                divisions = (race,)
            for division in divisions:
                key = (race, checkpoint, division)
                if old is not None:
                    gone.setdefault(key, []).append((old, bib))
                if new is not None:
                    come.setdefault(key, []).append((new, bib))
        lists: dict[tuple[str, str, str], SortedList] = {}
        for key in gone.keys() | come.keys():
            if key[1] == FINISHERS:
                if finishers is None:
                    raise ValueError("finish feed moves need the finishers")
                lists[key] = finishers[key[0]]
            else:
                lists[key] = self._list(*key)
        for key, entries in gone.items():
            lst = lists[key]
            for entry in entries:
                lst.discard(entry)
        for key, entries in come.items():
            lst = lists[key]
            if len(entries) > _REBUILD_FROM and len(entries) * 4 > len(lst):
                lst.update(entries)
            else:
                for entry in entries:
                    lst.add(entry)

    def position(self, race: str, checkpoint: str, division: str, bib: str, elapsed: int) -> int:
        """1-based position of ``bib`` (which must be on the board at ``elapsed``)."""
        return int(self._list(race, checkpoint, division).bisect_left((elapsed, bib))) + 1

    def top(
        self, race: str, checkpoint: str, division: str, limit: int, offset: int = 0
    ) -> list[tuple[int, str]]:
        lst = self._lists.get((race, checkpoint, division))
        if lst is None:
            return []
        return list(lst.islice(offset, offset + limit))

    def count(self, race: str, checkpoint: str, division: str) -> int:
        lst = self._lists.get((race, checkpoint, division))
        return 0 if lst is None else len(lst)

    def quantile(self, race: str, checkpoint: str, division: str, q: float) -> int | None:
        """The elapsed time at fraction ``q`` (0–1) down the board, or None if it is empty."""
        lst = self._lists.get((race, checkpoint, division))
        if not lst:
            return None
        return int(lst[min(len(lst) - 1, int(q * len(lst)))][0])

    def last(self, race: str, checkpoint: str, division: str) -> int | None:
        """The largest elapsed time on the board, or None if it is empty."""
        lst = self._lists.get((race, checkpoint, division))
        return None if not lst else int(lst[-1][0])

    def leader(self, race: str, checkpoint: str, division: str) -> int | None:
        lst = self._lists.get((race, checkpoint, division))
        return None if not lst else int(lst[0][0])

    def divisions(self, race: str, checkpoint: str) -> list[str]:
        return sorted(
            d for (r, c, d), lst in self._lists.items() if r == race and c == checkpoint and lst
        )

"""Log offsets are typed: opaque text to the backends, ordered in log order for everyone else."""

from __future__ import annotations

import pytest

from livetrack.store.base import Offset


def test_row_ids_order_as_numbers_not_as_text() -> None:
    assert Offset("9") < Offset("10") and Offset("10") > Offset("9")
    assert max([Offset("9"), Offset("100"), Offset("11")]) == "100"
    assert sorted(Offset(x) for x in ("10", "9", "0010")) == ["9", "10", "0010"]


def test_stream_ids_order_by_time_then_sequence() -> None:
    assert Offset("1700000000000-2") < Offset("1700000000000-10") < Offset("1700000000001-0")
    assert Offset("5-1") >= Offset("5-1") and Offset("5-1") <= Offset("5-1")


def test_an_offset_compares_with_the_text_it_came_from() -> None:
    assert Offset("12") == "12" and hash(Offset("12")) == hash("12")
    assert Offset("10") > "9"  # a plain string on the left is read as an offset too
    assert f"after {Offset('3-1')}" == "after 3-1"


def test_records_between_offsets_are_counted_where_offsets_count_records() -> None:
    assert Offset("120").records_after(Offset("100")) == 20
    assert Offset("120").records_after(None) == 120
    assert Offset("100").records_after(Offset("120")) == 0
    assert Offset("1700000000000-5").records_after(Offset("1700000000000-1")) is None


def test_text_that_is_no_offset_says_so_when_compared() -> None:
    with pytest.raises(ValueError, match="'nope' is not a log offset"):
        Offset("nope") < Offset("1")  # noqa: B015

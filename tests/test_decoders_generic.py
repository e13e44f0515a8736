"""Tests of the generic line/CSV parser, the registry and the file reader."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from livetrack.ingest.decoders import CLOCK_UNSET, PROTOCOLS, GenericProtocol, make_parser
from livetrack.ingest.decoders.files import read_file

TZ = ZoneInfo("Europe/London")
DATE = dt.date(2024, 5, 1)


def utc_ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


def parser(**kw: object) -> GenericProtocol:
    p = make_parser("generic", source_id="gen", tz=TZ, **kw)  # type: ignore[arg-type]
    assert isinstance(p, GenericProtocol)
    return p


def test_registry() -> None:
    assert set(PROTOCOLS) == {"raceresult", "ctp01", "ipico", "mylaps", "generic"}
    assert make_parser("IPICO", source_id="x", tz=TZ).name == "ipico"
    with pytest.raises(KeyError, match="unknown decoder protocol"):
        make_parser("nope", source_id="x", tz=TZ)


def test_time_formats() -> None:
    p = parser(date=DATE)
    p.receive_data(
        b"chip;time;loop\r\n"
        b"# a comment\r\n"
        b" 101 ;2024-05-01T09:00:00.250;L1\r\n"
        b"102;2024-05-01T09:00:00+02:00\r\n"
        b"103;2024-05-01T09:00:00Z\r\n"
        b"104;09:00:01.5\r\n"
        b"105;1714550400123\r\n"
        b"106;1714550400\r\n"
        b"107;1714550400.5\r\n"
        b"108;2024-05-01 09:00:00\r\n"
    )
    reads = p.reads_received()
    assert p.errors_received() == []
    got = {r.chip: r.time_ms for r in reads}
    assert got == {
        "101": utc_ms(2024, 5, 1, 8, 0, 0) + 250,  # BST = UTC+1
        "102": utc_ms(2024, 5, 1, 7, 0, 0),
        "103": utc_ms(2024, 5, 1, 9, 0, 0),
        "104": utc_ms(2024, 5, 1, 8, 0, 1) + 500,
        "105": 1714550400123,
        "106": 1714550400000,
        "107": 1714550400500,
        "108": utc_ms(2024, 5, 1, 8, 0, 0),
    }
    assert reads[0].loop == "L1" and reads[1].loop is None
    assert all(r.source == "gen" and r.seq is None for r in reads)


def test_csv_header_and_errors() -> None:
    p = parser()
    p.receive_data(b"Tag,Timestamp\n42,10:00:00\n43,garbage\n44\n,2024-05-01T09:00:00\n")
    reasons = [e.reason for e in p.errors_received()]
    assert len(reasons) == 4
    assert "without a date" in reasons[0]
    assert reasons[1].startswith("bad time")
    assert reasons[2] == "expected at least chip and time"
    assert reasons[3] == "empty chip"
    assert p.reads_received() == []


def test_split_and_clock_unset() -> None:
    p = parser()
    data = b"7,2000-01-01T00:00:03\r\n8,2024-05-01T09:00:00\r\n"
    for i in range(len(data)):
        p.receive_data(data[i : i + 1])
    a, b = p.reads_received()
    assert a.flags == (CLOCK_UNSET,) and b.flags == ()


def test_read_file_path_and_text(tmp_path: Path) -> None:
    path = tmp_path / "reads.csv"
    path.write_text("chip,time\n1,2024-05-01T10:00:00\n2,2024-05-01T10:00:01\n3,2024-05-0")
    reads, errors = read_file(path, "generic", source_id="file", tz=TZ)
    assert [r.chip for r in reads] == ["1", "2"]
    assert len(errors) == 1  # the truncated last line
    reads2, _ = read_file(str(path), "generic", source_id="file", tz=TZ)
    assert reads2 == reads
    reads3, errors3 = read_file("1;10:00:00\n", "generic", source_id="t", tz=TZ, date=DATE)
    assert [r.time_ms for r in reads3] == [utc_ms(2024, 5, 1, 9, 0, 0)] and errors3 == []


def test_read_file_other_protocols() -> None:
    rr = "1;4711;2024-05-01;09:00:00.000;0;1;1;;0\r\n2;4712;2024-05-01;09:00:01.000;0;1;1;;0\r\n"
    reads, errors = read_file(rr.encode(), "raceresult", source_id="box", tz=TZ)
    assert [r.seq for r in reads] == [1, 2] and errors == []
    ml = "F@Passing@t=10:00:00.000|c=A|d=240501@1@$"
    reads, errors = read_file(ml, "mylaps", source_id="m", tz=TZ)
    assert [r.chip for r in reads] == ["A"] and errors == []

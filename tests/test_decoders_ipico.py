"""Byte-level tests of the IPICO read-line parser."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from livetrack.ingest.decoders import CLOCK_UNSET, IpicoProtocol, make_parser
from livetrack.ingest.decoders.ipico import format_read, ipico_checksum

TZ = ZoneInfo("Australia/Sydney")
# Reader 40, tag 000000012345, I/Q 0a/2a, 2001-12-30 18:45:59, hundredths 0x27, checksum a7.
EXAMPLE = "aa400000000123450a2a01123018455927a7"


def parser(**kw: object) -> IpicoProtocol:
    p = make_parser("ipico", source_id="ipico-1", tz=TZ, **kw)  # type: ignore[arg-type]
    assert isinstance(p, IpicoProtocol)
    return p


def good_line(tag: str = "058003000001", when: str = "240501091521", cs: str = "1f") -> str:
    body = f"00{tag}0000{when}{cs}"
    return f"aa{body}{ipico_checksum(body):02x}"


def test_example_line_fields() -> None:
    p = parser(min_year=2000)
    p.receive_data(EXAMPLE.encode() + b"\r\n")
    (read,) = p.reads_received()
    assert read.chip == "000000012345"
    assert read.loop == "40"
    assert read.source == "ipico-1"
    assert read.seq is None
    assert read.flags == ()
    local = dt.datetime(2001, 12, 30, 18, 45, 59, 390000, tzinfo=TZ)
    assert read.time_ms == int(local.timestamp() * 1000)


def test_old_year_flags_clock_unset() -> None:
    p = parser()
    p.receive_data(EXAMPLE.encode() + b"\n")
    (read,) = p.reads_received()
    assert read.flags == (CLOCK_UNSET,)


def test_year_2000_is_clock_unset_even_when_allowed() -> None:
    p = parser(min_year=1990)
    p.receive_data(good_line(when="000101000005").encode() + b"\n")
    (read,) = p.reads_received()
    assert CLOCK_UNSET in read.flags


def test_bad_checksum_rejected_stream_continues() -> None:
    p = parser(min_year=2000)
    bad = EXAMPLE[:-2] + "a8"
    p.receive_data(f"{bad}\r\n{EXAMPLE}\r\n".encode())
    (err,) = p.errors_received()
    assert err.reason == "checksum mismatch"
    assert err.raw == bad
    assert len(p.reads_received()) == 1


def test_first_and_last_seen_suffixes() -> None:
    p = parser(min_year=2000)
    p.receive_data(f"{EXAMPLE}FS\r\n{EXAMPLE}LS\r\n{EXAMPLE}ZZ\r\n".encode())
    assert [r.flags for r in p.reads_received()] == [("first_seen",), ("last_seen",)]
    assert [e.reason for e in p.errors_received()] == ["bad suffix 'ZZ'"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (EXAMPLE[:-1], "bad read length 35"),
        (EXAMPLE + "a", "bad read length 37"),
        ("ba" + EXAMPLE[2:], "not a tag read (no 'aa' prefix)"),
        ("aa40000000012345zz2a01123018455927a7", "non-hex characters in read"),
        ("hello world", "not a tag read (no 'aa' prefix)"),
    ],
)
def test_malformed(line: str, reason: str) -> None:
    p = parser()
    p.receive_data(f"{line}\r\n".encode())
    assert [e.reason for e in p.errors_received()] == [reason]
    assert p.reads_received() == []


def test_ab_lines_are_the_readers_own_records_not_errors() -> None:
    p = parser(min_year=2000)
    # an internal-time record and a trigger record between two tag reads
    p.receive_data(
        f"{EXAMPLE}\r\nab{EXAMPLE[2:]}\r\nab0000000000000000000000000000000000\r\n".encode()
    )
    p.receive_data(f"{EXAMPLE}\r\n".encode())
    assert p.errors_received() == []
    assert len(p.reads_received()) == 2
    assert p.other_records == 2


def test_hundredths_out_of_range() -> None:
    p = parser()
    p.receive_data(good_line(cs="64").encode() + b"\n")
    assert [e.reason for e in p.errors_received()] == ["hundredths out of range"]


def test_bad_calendar_date() -> None:
    p = parser()
    p.receive_data(good_line(when="241301091521").encode() + b"\n")
    assert p.errors_received()[0].reason.startswith("bad date/time")


def test_split_packets_byte_by_byte() -> None:
    p = parser()
    data = (good_line() + "\r\n" + good_line(tag="058003000002") + "\n").encode()
    for i in range(len(data)):
        p.receive_data(data[i : i + 1])
    assert [r.chip for r in p.reads_received()] == ["058003000001", "058003000002"]
    assert p.errors_received() == []


def test_truncated_and_garbage() -> None:
    p = parser()
    p.receive_data(b"\x00\x01\x02\r\n" + good_line().encode()[:20])
    p.receive_eof()
    reasons = [e.reason for e in p.errors_received()]
    assert reasons[0] == "not a tag read (no 'aa' prefix)"
    assert reasons[1].startswith("truncated")


def test_format_read_round_trip() -> None:
    local = dt.datetime(2024, 5, 1, 9, 15, 21, 470000, tzinfo=TZ)
    line = format_read("058003000001", local, reader="01", suffix="LS")
    p = parser()
    p.receive_data(line.encode() + b"\r\n")
    (read,) = p.reads_received()
    assert read.time_ms == int(local.timestamp() * 1000)
    assert (read.loop, read.flags) == ("01", ("last_seen",))
    with pytest.raises(ValueError):
        format_read("short", local)

"""Byte-level tests of the ChronoTrack CTP01 parser."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from livetrack.ingest.decoders import BACKLOG, CLOCK_UNSET, Ctp01Protocol, make_parser
from livetrack.ingest.decoders.ctp01 import format_tag_line

TZ = ZoneInfo("America/Chicago")
DATE = dt.date(2024, 5, 1)


def utc_ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


def parser(**kw: object) -> Ctp01Protocol:
    p = make_parser("ctp01", source_id="ct-cfg", tz=TZ, **kw)  # type: ignore[arg-type]
    assert isinstance(p, Ctp01Protocol)
    return p


def test_greeting_answered_with_settings_and_start() -> None:
    p = parser()
    p.connection_made()
    assert p.data_to_send() == b""  # the peer greets first
    p.receive_data(b"SimpleClient~0.5.0~CTP01\r\n")
    assert p.greeted and p.peer_name == "SimpleClient"
    assert p.data_to_send() == (
        b"livetrack~1.0~3\r\nstream-mode=push\r\ntime-format=iso\r\npushmode-ack=true\r\nstart\r\n"
    )
    p.receive_data(b"ack~start~finish\r\n")
    assert p.started
    assert p.errors_received() == []


def test_start_named_locations() -> None:
    p = parser(locations=("start", "finish"))
    p.receive_data(b"Controller~3.1~CTP01\r\n")
    assert p.data_to_send().endswith(b"start~start\r\nstart~finish\r\n")
    p.receive_data(b"CT01_33~2038~30k~newlocation~09:15:21.00~0~ED932A~0\r\n")
    assert p.data_to_send() == b"start~30k\r\n"
    assert p.reads_received() == []


def test_tag_line_iso_time() -> None:
    p = parser()
    p.receive_data(b"CT01_33~7~finish~0F2A38~2024-05-01T14:02:15.31~1~117F37~3\r\n")
    (read,) = p.reads_received()
    assert (read.chip, read.seq, read.loop, read.source) == ("0F2A38", 7, "finish", "117F37")
    assert read.kind == "read"
    # 14:02:15.31 CDT (UTC-5) -> 19:02:15.310 UTC
    assert read.time_ms == utc_ms(2024, 5, 1, 19, 2, 15) + 310


def test_guntime_is_gun() -> None:
    p = parser()
    p.receive_data(b"CT01_33~4~start~guntime~2024-05-01T07:45:01.01~0~DF239A~0\r\n")
    (read,) = p.reads_received()
    assert read.kind == "gun"
    assert read.chip == ""
    assert read.time_ms == utc_ms(2024, 5, 1, 12, 45, 1) + 10


def test_time_of_day_needs_date() -> None:
    p = parser()
    p.receive_data(b"CT01_33~1~start~9478~14:02:15.31~0~0F2A38~1\r\n")
    assert p.reads_received() == []
    (err,) = p.errors_received()
    assert "without a date" in err.reason
    p2 = parser(date=DATE)
    p2.receive_data(b"CT01_33~1~start~9478~14:02:15.31~0~0F2A38~1\r\n")
    (read,) = p2.reads_received()
    assert read.time_ms == utc_ms(2024, 5, 1, 19, 2, 15) + 310


def test_unix_and_msecs_times() -> None:
    p = parser(date=DATE)
    p.receive_data(b"CT01_33~1~f~11~1714590135.31~0~R1~0\r\n")
    p.receive_data(b"CT01_33~2~f~12~50535310~0~R1~0\r\n")
    a, b = p.reads_received()
    assert a.time_ms == 1714590135310
    assert b.time_ms == utc_ms(2024, 5, 1, 19, 2, 15) + 310  # 14:02:15.310 local


def test_ping_err_and_peer_settings() -> None:
    p = parser()
    p.receive_data(b"ping\r\nerr~start~invalid location\r\nstream-mode=push\r\nX~1~2\r\n")
    assert p.data_to_send() == b"ack~ping\r\n"
    (err,) = p.errors_received()
    assert err.reason == "peer reported an error"
    assert err.raw == "err~start~invalid location"


def test_sequence_gap_recorded() -> None:
    p = parser(date=DATE)
    p.receive_data(b"CT01_33~1~f~11~10:00:00.00~0~R1~0\nCT01_33~5~f~12~10:00:01.00~0~R1~0\n")
    assert p.gaps == [(2, 4)]
    assert p.last_seq == 5


def line(seq: int, chip: str = "") -> bytes:
    return f"CT01_33~{seq}~FIN~{chip or f'C{seq}'}~10:00:{seq:02d}.00~0~R1~0\r\n".encode()


def greeted(**kw: object) -> Ctp01Protocol:
    p = parser(date=DATE, gap_grace_s=1.0, retry_after_s=5.0, **kw)
    p.receive_data(b"Controller~3.1~CTP01\r\n")
    p.data_to_send()
    return p


def test_gap_that_fills_within_the_grace_is_not_asked_for() -> None:
    """Lines of one location may arrive out of order: a late line fills its gap."""
    p = greeted()
    p.receive_data(line(1) + line(3))
    p.tick(100.0)
    assert p.gaps == [(2, 2)] and p.data_to_send() == b""
    p.receive_data(line(2))
    p.tick(101.5)
    assert p.data_to_send() == b"" and p.gaps_filled == 1 and p.refetch_requests == 0
    assert [r.seq for r in p.reads_received()] == [1, 3, 2]


def test_gap_still_open_after_the_grace_is_played_again_from_its_first_number() -> None:
    p = greeted()
    p.receive_data(line(1) + line(4) + line(5))
    p.tick(100.0)
    p.tick(100.9)
    assert p.data_to_send() == b""  # still within the grace
    p.tick(101.0)
    assert p.data_to_send() == b"stop\r\nstart~FIN~2\r\n"
    assert p.refetch_requests == 1 and p.open_gaps() == [(2, 3)]
    p.reads_received()
    p.receive_data(b"ack~stop\r\n" + line(2) + line(3) + line(4) + line(5) + line(6))
    reads = p.reads_received()
    assert [r.seq for r in reads] == [2, 3, 4, 5, 6]
    # the replayed lines are not live; the line after the highest seen is
    assert [BACKLOG in r.flags for r in reads] == [True, True, True, True, False]
    assert p.gaps_filled == 1 and p.open_gaps() == []
    p.tick(200.0)
    assert p.data_to_send() == b""


def test_gap_lost_again_is_asked_for_again_then_given_up() -> None:
    p = greeted()
    p.receive_data(line(1) + line(3))
    p.tick(0.0)
    p.tick(1.0)
    assert p.data_to_send() == b"stop\r\nstart~FIN~2\r\n"
    p.receive_data(line(3))  # the replay loses line 2 again
    p.tick(5.5)
    assert p.data_to_send() == b""
    p.tick(6.0)
    assert p.data_to_send() == b"stop\r\nstart~FIN~2\r\n"
    p.tick(11.0)
    assert p.data_to_send() == b"stop\r\nstart~FIN~2\r\n"
    p.tick(16.0)
    assert p.data_to_send() == b"" and p.gaps_abandoned == [(2, 2)]
    assert p.refetch_requests == 3 and p.gaps_filled == 0 and p.open_gaps() == []


def test_other_locations_started_by_name_resume_after_the_highest_line() -> None:
    p = greeted(locations=("FIN", "30K"))
    p.receive_data(line(1) + line(3))
    p.tick(0.0)
    p.tick(1.0)
    assert p.data_to_send() == b"stop\r\nstart~30K~4\r\nstart~FIN~2\r\n"


def test_numbered_lines_that_hold_no_read_open_no_gap() -> None:
    p = greeted(locations=("FIN",))
    p.receive_data(b"CT01_33~2~30K~newlocation~10:00:00.00~0~R1~0\r\n")
    p.data_to_send()
    p.receive_data(line(1) + b"CT01_33~2~FIN~~10:00:02.00~0~R1~0\r\n" + line(3))
    assert p.gaps == []


def test_gaps_missing_when_a_connection_ended_start_the_next_one() -> None:
    p = parser(date=DATE)
    p.resume_from(9, [(4, 5)])
    p.receive_data(b"Controller~3.1~CTP01\r\n")
    assert p.data_to_send().endswith(b"getlocations\r\n")
    p.receive_data(b"ack~getlocations~FIN\r\n")
    assert p.data_to_send() == b"start~FIN~4\r\n"
    p.receive_data(line(4) + line(5))
    assert p.gaps_filled == 1 and p.open_gaps() == []


def test_byte_by_byte_crlf() -> None:
    p = parser()
    data = b"Sim~1~CTP01\r\nCT01_33~1~finish~11~2024-05-01T10:00:00.00~0~R1~0\r\n"
    for i in range(len(data)):
        p.receive_data(data[i : i + 1])
    (read,) = p.reads_received()
    assert read.chip == "11"
    assert p.greeted


@pytest.mark.parametrize(
    "line",
    [
        b"CT01_33~x~finish~11~2024-05-01T10:00:00.00~0~R1~0",
        b"CT01_33~1~finish",
        b"CT01_33~1~finish~~2024-05-01T10:00:00.00~0~R1~0",
        b"CT01_33~1~finish~11~2024-13-01T10:00:00.00~0~R1~0",
        b"CT01_33~1~finish~11~not-a-time~0~R1~0",
        b"\xde\xad\xbe\xef",
    ],
)
def test_malformed_tag_lines(line: bytes) -> None:
    p = parser()
    p.receive_data(line + b"\r\nCT01_33~9~finish~11~2024-05-01T10:00:00.00~0~R1~0\r\n")
    assert len(p.errors_received()) == 1
    assert [r.seq for r in p.reads_received()] == [9]


def test_clock_unset() -> None:
    p = parser(date=DATE)
    p.receive_data(b"CT01_33~1~f~11~2000-01-01T00:00:04.00~0~R1~0\r\n")
    p.receive_data(b"CT01_33~2~f~12~0000-00-00T00:00:04.00~0~R1~0\r\n")
    a, b = p.reads_received()
    assert a.flags == (CLOCK_UNSET,)
    assert b.flags == (CLOCK_UNSET,)
    assert b.time_ms == utc_ms(2024, 5, 1, 5, 0, 4)


def test_truncated_at_eof() -> None:
    p = parser()
    p.receive_data(b"CT01_33~1~finish~11~2024-05-01T10:0")
    p.receive_eof()
    assert p.reads_received() == []
    assert p.errors_received()[0].reason.startswith("truncated")


def test_format_tag_line_round_trip() -> None:
    local = dt.datetime(2024, 5, 1, 10, 0, 0, 120000, tzinfo=TZ)
    line = format_tag_line(3, "finish", "ABC", local, reader_id="R9")
    assert line == "CT01_33~3~finish~ABC~2024-05-01T10:00:00.12~0~R9~0"
    p = parser()
    p.receive_data(line.encode() + b"\r\n")
    (read,) = p.reads_received()
    assert read.time_ms == int(local.timestamp() * 1000)


def test_gaps_are_not_fetched_on_a_connection_carrying_several_locations() -> None:
    """Stopping the stream for one location would stop the others' live lines too."""
    p = greeted()
    p.receive_data(line(1) + b"CT01_33~4~30K~C9~10:00:09.00~0~R1~0\r\n")
    p.tick(0.0)
    p.tick(1.0)
    assert p.data_to_send() == b"" and p.refetch_requests == 0
    assert p.gaps == [(2, 3)] and p.gaps_abandoned == [(2, 3)]

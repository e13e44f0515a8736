"""Byte-level tests of the RACE RESULT decoder protocol parser."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from livetrack.ingest.decoders import CLOCK_UNSET, RaceResultProtocol, make_parser
from livetrack.ingest.decoders.raceresult import FILE_SPAN, file_seq, format_passing, split_seq

TZ = ZoneInfo("Europe/Berlin")


def utc_ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


# A protocol 2.0 record: number;transponder;date;time;event;hits;rssi;internal;active;
# channel;loop;loop-only;wakeup;battery;temp;active-data;box name;file;rssi antenna;box id
RECORD = "17;NXT1234;2024-05-01;09:15:21.345;0;1F;5A;;0;2;3;0;;;;;D-50123;4;;D-50123"


def parser(**kw: object) -> RaceResultProtocol:
    p = make_parser("raceresult", source_id="rr-cfg", tz=TZ, **kw)  # type: ignore[arg-type]
    assert isinstance(p, RaceResultProtocol)
    return p


def test_connection_made_enables_push_and_asks_count() -> None:
    p = parser()
    p.connection_made()
    assert p.data_to_send() == b"SETPROTOCOL;2.0\r\nSETPUSHPASSINGS;1;0\r\nPASSINGS\r\n"
    assert p.data_to_send() == b""


def test_pushed_passing_fields() -> None:
    p = parser()
    p.receive_data(f"#P;{RECORD}\r\n".encode())
    (read,) = p.reads_received()
    assert read.chip == "NXT1234"
    assert read.seq == file_seq(4, 17)  # passing 17 of the decoder's file 4
    assert read.source == "D-50123"
    assert read.loop == "3"
    assert read.kind == "read"
    assert read.flags == ()
    # 09:15:21.345 in Berlin (CEST, UTC+2) is 07:15:21.345 UTC.
    assert read.time_ms == utc_ms(2024, 5, 1, 7, 15, 21) + 345
    assert read.raw == f"#P;{RECORD}"
    assert p.errors_received() == []


def test_fetched_record_without_prefix_and_old_layout() -> None:
    p = parser()
    p.receive_data(b"5; 1234 ;2024-05-01;10:00:00.001;0;3;1A;;0\r\n")
    (read,) = p.reads_received()
    assert read.chip == "1234"
    assert read.seq == 5
    assert read.source == "rr-cfg"  # no box name in the old layout
    assert read.loop is None


def test_byte_by_byte_and_lf_only() -> None:
    p = parser()
    data = f"#P;{RECORD}\n#P;{RECORD.replace('17;', '18;', 1)}\r\n".encode()
    for i in range(len(data)):
        p.receive_data(data[i : i + 1])
    reads = p.reads_received()
    assert [r.seq for r in reads] == [file_seq(4, 17), file_seq(4, 18)]
    assert all(not r.raw.endswith("\r") for r in reads)


def test_resume_fetches_missed_range_in_chunks() -> None:
    p = parser(fetch_chunk=10)
    p.resume_from(file_seq(4, 100))
    p.connection_made()
    p.data_to_send()
    p.receive_data(b"SETPROTOCOL;2.0\r\nSETPUSHPASSINGS;1;0\r\nPASSINGS;125;4\r\n")
    assert p.data_to_send() == b"101:10\r\n111:10\r\n121:5\r\n"
    assert p.refetch_requests == 1
    assert p.file_number == "4"
    # Nothing missing -> nothing fetched.
    p.receive_data(b"PASSINGS;125;4\r\n")
    assert p.data_to_send() == b""


def test_resume_after_connection_made_asks_count_again() -> None:
    p = parser()
    p.connection_made()
    p.data_to_send()
    p.resume_from(7)
    assert p.data_to_send() == b"PASSINGS\r\n"


def test_first_connection_fetches_whole_file_by_default() -> None:
    p = parser()
    p.connection_made()
    p.data_to_send()
    p.receive_data(b"PASSINGS;3;1\r\n")
    assert p.data_to_send() == b"1:3\r\n"


def test_no_history_fetch_when_disabled() -> None:
    p = parser(fetch_all_on_connect=False)
    p.receive_data(b"PASSINGS;30;4\r\n")
    assert p.data_to_send() == b""
    p.receive_data(f"#P;{RECORD.replace('17;', '31;', 1)}\r\n".encode())
    assert p.data_to_send() == b""


def test_gap_in_pushed_passings_triggers_fetch() -> None:
    p = parser()
    p.resume_from(file_seq(4, 16))
    p.receive_data(f"#P;{RECORD}\r\n".encode())  # 17: contiguous
    assert p.data_to_send() == b""
    p.receive_data(f"#P;{RECORD.replace('17;', '21;', 1)}\r\n".encode())
    assert p.gaps == [(file_seq(4, 18), file_seq(4, 20))]
    assert p.data_to_send() == b"18:3\r\n"
    assert p.last_seq == file_seq(4, 21)


def passing_line(number: int, file: int, chip: str = "NXT1234") -> bytes:
    local = dt.datetime(2024, 5, 1, 9, 0, number % 60, tzinfo=TZ)
    return f"#P;{format_passing(number, chip, local, file_number=file)}\r\n".encode()


def test_a_new_file_on_the_decoder_numbers_from_one_without_clashing() -> None:
    p = parser()
    p.resume_from(file_seq(3, 5))  # passings 1..5 of file 3 are stored
    for n in (6, 7):
        p.receive_data(passing_line(n, 3))
    for n in (1, 2, 3):  # the timer started file 4: numbering restarts
        p.receive_data(passing_line(n, 4))
    seqs = [r.seq for r in p.reads_received()]
    assert seqs == [file_seq(3, 6), file_seq(3, 7), *(file_seq(4, n) for n in (1, 2, 3))]
    assert len(set(seqs)) == 5
    assert p.gaps == [] and p.data_to_send() == b""  # file 4 from its first: nothing missed


def test_a_resume_point_in_an_older_file_fetches_the_current_file_from_the_start() -> None:
    p = parser(fetch_chunk=10)
    p.resume_from(file_seq(3, 50))
    p.connection_made()
    p.data_to_send()
    p.receive_data(b"PASSINGS;12;4\r\n")  # the decoder is on file 4 now
    assert p.data_to_send() == b"1:10\r\n11:2\r\n"
    p.receive_data(b"PASSINGS;12;4\r\n")  # and then has nothing more to fetch
    assert p.data_to_send() == b""


def test_file_seq_round_trips() -> None:
    assert file_seq(1, 17) == 17  # the first file keeps its own numbers
    for file, number in [(1, 1), (1, FILE_SPAN), (2, 1), (4, 17), (9, FILE_SPAN)]:
        assert split_seq(file_seq(file, number)) == (file, number)


def test_clock_unset_date_zero() -> None:
    p = parser(date=dt.date(2024, 5, 1))
    p.receive_data(b"#P;1;555;0000-00-00;00:02:12.942;0;1;1;;0\r\n")
    p.receive_data(b"#P;2;556;0000-00-01;00:00:01.000;0;1;1;;0\r\n")
    first, second = p.reads_received()
    assert first.flags == (CLOCK_UNSET,)
    assert first.time_ms == utc_ms(2024, 4, 30, 22, 2, 12) + 942
    assert second.time_ms == utc_ms(2024, 5, 1, 22, 0, 1)
    assert p.clock_unset_seen


def test_clock_unset_absurd_year() -> None:
    p = parser()
    p.receive_data(b"#P;1;555;2000-01-01;00:00:05.000;0;1;1;;0\r\n")
    p.receive_data(b"#P;2;555;2150-01-01;00:00:05.000;0;1;1;;0\r\n")
    assert [r.flags for r in p.reads_received()] == [(CLOCK_UNSET,), (CLOCK_UNSET,)]


def test_malformed_lines_are_reported_and_stream_continues() -> None:
    p = parser()
    p.receive_data(
        b"#P;12;777\r\n"  # too short
        b"#P;x;777;2024-05-01;09:00:00.000\r\n"  # bad number
        b"#P;13;777;2024-05-01;25:00:00.000\r\n"  # bad time
        b"#P;14;777;01.05.2024;09:00:00.000\r\n"  # bad date
        b"#P;15;;2024-05-01;09:00:00.000\r\n"  # empty transponder
        b"\x00\xff\xfegarbage\r\n"
        b"#P;16;777;2024-05-01;09:00:00.000;0;1;1;;0\r\n"
    )
    reasons = [e.reason for e in p.errors_received()]
    assert reasons[:5] == [
        "passing record too short",
        "bad passing number",
        reasons[2],
        "bad date",
        "empty transponder code",
    ]
    assert reasons[2].startswith("bad date/time")
    assert reasons[5] == "unrecognised line"
    assert [r.seq for r in p.reads_received()] == [16]


def test_command_answers_are_not_errors() -> None:
    p = parser()
    p.receive_data(b"GETTIME;2024-05-01;09:00:00.000\r\nPING\r\nONLY 3\r\n\r\n#PW;1;2\r\n")
    assert p.errors_received() == []
    assert p.reads_received() == []


def test_truncated_line_at_eof() -> None:
    p = parser()
    p.receive_data(b"#P;16;777;2024-05-01;09:0")
    assert p.reads_received() == []
    p.receive_eof()
    (err,) = p.errors_received()
    assert err.reason.startswith("truncated")
    assert err.raw == "#P;16;777;2024-05-01;09:0"


def test_overlong_garbage_is_discarded() -> None:
    p = parser()
    p.receive_data(b"x" * 20000)
    assert [e.reason for e in p.errors_received()] == [
        "message too long without terminator (garbage?)"
    ]
    p.receive_data(b"\r\n#P;16;777;2024-05-01;09:00:00.000;0;1;1;;0\r\n")
    assert [r.seq for r in p.reads_received()] == [16]


def test_marker_is_gun() -> None:
    p = parser()
    p.receive_data(b"#P;3;99999;2024-05-01;08:00:00.000;0;1;1;;0\r\n")
    (read,) = p.reads_received()
    assert read.kind == "gun"
    assert read.chip == ""
    assert "marker" in read.flags


def test_format_passing_round_trip() -> None:
    local = dt.datetime(2024, 5, 1, 9, 0, 1, 250000, tzinfo=TZ)
    line = format_passing(9, "4711", local, box_name="D-1", loop="2")
    p = parser()
    p.receive_data(f"#P;{line}\r\n".encode())
    (read,) = p.reads_received()
    assert (read.seq, read.chip, read.source, read.loop) == (9, "4711", "D-1", "2")
    assert read.time_ms == int(local.timestamp() * 1000)

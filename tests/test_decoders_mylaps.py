"""Byte-level tests of the MYLAPS TCP/IP parser."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from livetrack.ingest.decoders import CLOCK_UNSET, MylapsProtocol, make_parser
from livetrack.ingest.decoders.mylaps import (
    format_marker_record,
    format_passing_record,
    format_store_record,
)

TZ = ZoneInfo("Europe/Amsterdam")

P1 = "t=13:11:30.904|c=0000041|ct=UH|d=120606|l=13|dv=4|re=0|an=00001111|g=0|b=41|n=41"
P2 = "t=13:12:21.830|c=0000039|ct=UH|d=120606|l=30|dv=4|re=0|an=00001101|g=0|b=39|n=39"
MESSAGE = f"10KM@Passing@{P1}@{P2}@1016@$"


def utc_ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


def parser(**kw: object) -> MylapsProtocol:
    p = make_parser("mylaps", source_id="ml-cfg", tz=TZ, **kw)  # type: ignore[arg-type]
    assert isinstance(p, MylapsProtocol)
    return p


def test_passing_message_and_ack() -> None:
    p = parser()
    p.receive_data(MESSAGE.encode())
    a, b = p.reads_received()
    # an=00001111 is a bit mask: antennas 1 to 4 saw the chip; the loop is the device (dv)
    assert (a.chip, a.source, a.loop, a.seq) == ("0000041", "10KM", "4", None)
    assert a.antennas == (1, 2, 3, 4) and b.antennas == (1, 3, 4)
    # 2012-06-06 13:11:30.904 CEST -> 11:11:30.904 UTC
    assert a.time_ms == utc_ms(2012, 6, 6, 11, 11, 30) + 904
    assert b.chip == "0000039"
    assert a.raw == P1
    assert p.data_to_send() == b"livetrack@AckPassing@1016@$"
    assert p.acked == [1016]


def test_ping_pong() -> None:
    p = parser(server_name="LT")
    p.receive_data(b"10KM@Ping@$10KM@Pong@$10KM@AckPing@$")
    # the answer to Pong names the passing fields wanted, the date among them
    assert p.data_to_send() == b"LT@AckPing@$LT@AckPong@Version2.1@c|t|d|l|dv|re|an@$"
    p.keepalive()
    assert p.data_to_send() == b"LT@Ping@$"
    assert p.errors_received() == []


def test_split_byte_by_byte_with_line_breaks() -> None:
    p = parser()
    data = ("\r\n" + MESSAGE + "\r\n" + MESSAGE.replace("1016", "1017")).encode()
    for i in range(len(data)):
        p.receive_data(data[i : i + 1])
    assert len(p.reads_received()) == 4
    assert p.data_to_send() == b"livetrack@AckPassing@1016@$livetrack@AckPassing@1017@$"


def test_marker_gunshot() -> None:
    p = parser()
    p.receive_data(b"Start@Marker@mt=Gunshot|t=11:03:40.347|d=240501|n=Gunshot 1@7@$")
    p.receive_data(b"Start@Marker@mt=Manual|t=11:04:00.000|n=Note@8@$")
    (read,) = p.reads_received()
    assert (read.kind, read.chip, read.source) == ("gun", "", "Start")
    assert read.time_ms == utc_ms(2024, 5, 1, 9, 3, 40) + 347
    assert p.data_to_send() == b"livetrack@AckMarker@7@$livetrack@AckMarker@8@$"


def test_store_legacy_records() -> None:
    p = parser()
    p.receive_data(
        b"Split 4Km@Store@KV8658316:13:57.417 3 0F  1000025030870"
        b"@TC3970116:14:00.638 3 0F  1000125030857@2@$"
    )
    a, b = p.reads_received()
    assert (a.chip, b.chip) == ("KV86583", "TC39701")
    assert a.time_ms == utc_ms(2025, 3, 8, 15, 13, 57) + 417
    # the 4-hex passing counter before the date is the sequence number
    assert (a.seq, b.seq) == (0, 1)
    assert p.data_to_send() == b"livetrack@AckStore@2@$"


def test_store_counter_is_hex_and_carries_on_past_ffff() -> None:
    p = parser()
    local = dt.datetime(2024, 5, 1, 9, 0, 0, tzinfo=TZ)
    recs = [format_store_record("KV1", local, n) for n in (0x000A, 0xFFFF, 0x10000, 0x10001)]
    p.receive_data(("Fin@Store@" + "@".join(recs) + "@9@$").encode())
    assert [r.seq for r in p.reads_received()] == [0x000A, 0xFFFF, 0x10000, 0x10001]
    assert p.errors_received() == []


def test_message_without_number_is_not_acked() -> None:
    p = parser()
    p.receive_data(f"10KM@Passing@{P1}@$".encode())
    assert p.reads_received() == []
    assert p.data_to_send() == b""
    assert p.errors_received()[0].reason == "Passing message without message number"


def test_bad_record_reported_message_still_acked() -> None:
    p = parser()
    p.receive_data(f"10KM@Passing@t=13:00:00.000|ct=UH@{P1}@t=99:00:00.000|c=1@5@$".encode())
    assert [r.chip for r in p.reads_received()] == ["0000041"]
    reasons = [e.reason for e in p.errors_received()]
    assert reasons[0] == "passing record without chip or time"
    assert "out of range" in reasons[1]
    assert p.data_to_send() == b"livetrack@AckPassing@5@$"


def test_missing_date_uses_configured_date() -> None:
    p = parser()
    p.receive_data(b"X@Passing@t=10:00:00.000|c=ABC@1@$")
    assert "without a date" in p.errors_received()[0].reason
    p2 = parser(date=dt.date(2024, 5, 1))
    p2.receive_data(b"X@Passing@t=10:00:00.000|c=ABC@1@$")
    assert p2.reads_received()[0].time_ms == utc_ms(2024, 5, 1, 8, 0, 0)


def test_clock_unset() -> None:
    p = parser(date=dt.date(2024, 5, 1))
    p.receive_data(b"X@Passing@t=00:00:01.000|c=A|d=000000@t=00:00:02.000|c=B|d=000101@1@$")
    a, b = p.reads_received()
    assert a.flags == (CLOCK_UNSET,) and b.flags == (CLOCK_UNSET,)


def test_unknown_function_garbage_and_truncation() -> None:
    p = parser()
    p.receive_data(b"X@Frobnicate@1@$\xff\xfe$justtext$")
    p.receive_data(b"X@Passing@t=10:00")
    p.receive_eof()
    reasons = [e.reason for e in p.errors_received()]
    assert reasons[0] == "unknown function 'Frobnicate'"
    assert reasons[1] == "message without function"
    assert reasons[2] == "message without function"
    assert reasons[3].startswith("truncated")


def test_format_helpers_round_trip() -> None:
    local = dt.datetime(2024, 5, 1, 9, 0, 0, 5000, tzinfo=TZ)
    rec = format_passing_record("KV10001", local, antenna="1")
    marker = format_marker_record(local)
    p = parser()
    p.receive_data(f"Fin@Passing@{rec}@1@$Fin@Marker@{marker}@2@$".encode())
    a, b = p.reads_received()
    assert a.time_ms == b.time_ms == int(local.timestamp() * 1000)
    assert (a.antennas, b.kind) == ((1,), "gun")

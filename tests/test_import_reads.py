"""``livetrack import-reads``: a decoder's saved file of each format into the event log."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from eventfiles import MILE, course, event_file, header, race

from livetrack.cli import main
from livetrack.domain.records import ChipRead, GunStart, decode
from livetrack.ingest.decoders.ctp01 import format_tag_line
from livetrack.ingest.decoders.ipico import format_read
from livetrack.ingest.decoders.mylaps import format_passing_record
from livetrack.ingest.decoders.raceresult import format_passing

TZ = ZoneInfo("Europe/London")
EVENT = event_file(header("imp", "Import"), course("mile", MILE), race("mile", "Mile", "mile"))

CHIPS = ("058003000001", "058003000002", "058003000003")


def at(second: int) -> datetime:
    return datetime(2026, 6, 14, 10, 5, second, 250_000, tzinfo=TZ)


def expected_ms(second: int) -> int:
    return int(at(second).timestamp() * 1000)


def raceresult_file() -> tuple[str, int]:
    good = [format_passing(i + 1, c, at(i), box_name="A-123") for i, c in enumerate(CHIPS)]
    lines = [good[0], "3;NOPE;2026-99-99;xx", good[1], good[2]]
    return "\r\n".join(lines) + "\r\n", 2


def ctp01_file() -> tuple[str, int]:
    good = [format_tag_line(i + 1, "fin", c, at(i), reader_id="r1") for i, c in enumerate(CHIPS)]
    lines = [good[0], good[1], "CT01_33~x~fin", good[2]]
    return "\n".join(lines) + "\n", 3


def ipico_file() -> tuple[str, int]:
    good = [format_read(c, at(i)) for i, c in enumerate(CHIPS)]
    broken = good[1][:-2] + ("00" if good[1][-2:] != "00" else "01")  # bad checksum
    lines = [good[0], broken, good[1], good[2]]
    return "\n".join(lines) + "\n", 2


def mylaps_file() -> tuple[str, int]:
    recs = [format_passing_record(c, at(i)) for i, c in enumerate(CHIPS)]
    lines = [
        f"fin@Passing@{recs[0]}@1@$",
        f"fin@Passing@{recs[1]}@{recs[2]}@2@$",
        "fin@Passing@t=99:99:99.000|c=XX@3@$",
    ]
    return "\n".join(lines) + "\n", 3


def generic_file() -> tuple[str, int]:
    lines = ["chip;time", *(f"{c};{at(i).isoformat()}" for i, c in enumerate(CHIPS))]
    lines.insert(2, "058003000009;yesterday-ish")
    return "\n".join(lines) + "\n", 3


FILES = {
    "raceresult": raceresult_file,
    "ctp01": ctp01_file,
    "ipico": ipico_file,
    "mylaps": mylaps_file,
    "generic": generic_file,
}


def stored(db: Path) -> list[object]:
    conn = sqlite3.connect(db)
    try:
        return [decode(b) for (b,) in conn.execute("SELECT body FROM records ORDER BY seq")]
    finally:
        conn.close()


@pytest.mark.parametrize("protocol", sorted(FILES))
def test_import_each_format_reports_bad_lines_and_is_idempotent(
    protocol: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, bad_line = FILES[protocol]()
    dump = tmp_path / f"dump.{protocol}"
    dump.write_text(text)
    (tmp_path / "EVENT.toml").write_text(EVENT)
    db = tmp_path / "log.db"
    argv = [
        "import-reads", str(dump), "--protocol", protocol, "--point", "finish",
        "--reader", "usb-fin", "--event", str(tmp_path / "EVENT.toml"), "--db", str(db),
    ]  # fmt: skip

    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{dump}: 3 accepted, 0 duplicate, 1 rejected"
    assert f"{dump}:{bad_line}:" in err
    reads = [r for r in stored(db) if isinstance(r, ChipRead)]
    assert sorted((r.chip, r.time_ms) for r in reads) == [
        (c, expected_ms(i)) for i, c in enumerate(CHIPS)
    ]
    assert {(r.reader, r.point, r.received_ms) for r in reads} == {("usb-fin", "finish", 0)}

    assert main(argv) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == f"{dump}: 0 accepted, 3 duplicate, 1 rejected"
    assert len(stored(db)) == 3


def test_import_gun_marker_and_unset_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A marker at the start becomes the gun; a read from an unset clock is refused."""
    lines = [
        format_passing(1, "99999", at(0)),
        format_passing(2, CHIPS[0], at(1)),
        format_passing(3, CHIPS[1], at(2), clock_unset=True),
    ]
    dump = tmp_path / "start.txt"
    dump.write_text("\n".join(lines) + "\n")
    (tmp_path / "EVENT.toml").write_text(EVENT)
    db = tmp_path / "log.db"
    argv = [
        "import-reads", str(dump), "--protocol", "raceresult", "--point", "start",
        "--reader", "rr", "--event", str(tmp_path / "EVENT.toml"), "--db", str(db),
    ]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{dump}: 2 accepted, 0 duplicate, 1 rejected"
    assert f"{dump}:3: decoder clock unset" in err
    records = stored(db)
    guns = [r for r in records if isinstance(r, GunStart)]
    assert [(g.race, g.time_ms, g.id) for g in guns] == [("mile", expected_ms(0), "rr#1")]


def test_import_reads_command_line(tmp_path: Path) -> None:
    """The installed command, as a timer would run it; a wrong point is refused clearly."""
    text, _ = generic_file()
    dump = tmp_path / "dump.csv"
    dump.write_text(text)
    (tmp_path / "EVENT.toml").write_text(EVENT)
    exe = shutil.which("livetrack")
    cmd = [exe] if exe else [sys.executable, "-m", "livetrack.cli"]
    base = [*cmd, "import-reads", str(dump), "--protocol", "generic", "--reader", "usb",
            "--event", str(tmp_path / "EVENT.toml"), "--db", str(tmp_path / "log.db")]  # fmt: skip
    ok = subprocess.run([*base, "--point", "finish"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "3 accepted, 0 duplicate, 1 rejected" in ok.stdout
    bad = subprocess.run([*base, "--point", "moon"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "unknown point 'moon'" in bad.stderr
